"""`/_sandbox`: the test-only control surface (ledger, live scenario changes, reset, 3DS page).

No PSP key is needed here: the sandbox is a local test fixture, never exposed beyond it.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from aiohttp import web

from paymux.sandbox.engine import Sandbox
from paymux.sandbox.http import json_response
from paymux.sandbox.scenario import merge_patch, scenario_from_dict, scenario_to_dict


def _bad(message: str, status: int = 400) -> web.Response:
    return json_response(status, {"error": {"type": "invalid_request", "message": message}})


async def _json_body(request: web.Request) -> dict[str, Any]:
    body = await request.read()
    if not body:
        return {}
    value = orjson.loads(body)
    if not isinstance(value, dict):
        raise TypeError("the body must be a JSON object")
    return value


class Admin:
    def __init__(self, sandbox: Sandbox, dialects: dict[str, Any]) -> None:
        self.sandbox = sandbox
        self.dialects = dialects

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_sandbox/health", self.health),
            web.get("/_sandbox/ledger", self.ledger),
            web.get("/_sandbox/scenario", self.get_scenario),
            web.post("/_sandbox/scenario", self.post_scenario),
            web.post("/_sandbox/outage", self.start_outage),
            web.post("/_sandbox/reset", self.reset),
            web.get("/_sandbox/3ds/{psp}/{id}", self.three_ds),
        ]

    async def health(self, request: web.Request) -> web.Response:
        return json_response(200, {"status": "ok", "clock_s": round(self.sandbox.now_s(), 3),
                                   "psps": {n: p.config.mount for n, p in self.sandbox.psps.items()}})  # fmt: skip

    async def ledger(self, request: web.Request) -> web.Response:
        psp = request.query.get("psp")
        if psp is not None and psp not in self.sandbox.psps:
            return _bad(f"unknown psp {psp!r}", 404)
        return json_response(200, self.sandbox.ledger(psp, request.query.get("reference")))

    async def get_scenario(self, request: web.Request) -> web.Response:
        return json_response(200, scenario_to_dict(self.sandbox.scenario))

    async def post_scenario(self, request: web.Request) -> web.Response:
        """Patch (deep merge, the default) or replace (`?mode=replace`) the running scenario."""
        try:
            body = await _json_body(request)
            if request.query.get("mode", "patch") == "replace":
                raw = body
            else:
                raw = merge_patch(scenario_to_dict(self.sandbox.scenario), body)
            scenario = scenario_from_dict(raw)
            self.sandbox.load(scenario)
        except (ValueError, TypeError, msgspec.ValidationError) as exc:
            return _bad(f"scenario rejected: {exc}")
        return json_response(200, scenario_to_dict(self.sandbox.scenario))

    async def start_outage(self, request: web.Request) -> web.Response:
        """Start an outage now: {"psp": "stripe", "duration_s": 30, "error_rate": 1, "kind": ...}."""
        try:
            body = await _json_body(request)
            name = body.get("psp")
            if name not in self.sandbox.psps:
                return _bad(f"unknown psp {name!r}", 404)
            raw = scenario_to_dict(self.sandbox.scenario)
            outages = raw["psps"][name].setdefault("outages", [])
            if body.get("clear"):
                outages.clear()
            else:
                now = self.sandbox.now_s()
                duration = body.get("duration_s")
                outage = {"start_s": now, "error_rate": body.get("error_rate", 1.0),
                          "kind": body.get("kind", "error")}  # fmt: skip
                if duration is not None:
                    outage["end_s"] = now + float(duration)
                outages.append(outage)
            self.sandbox.load(scenario_from_dict(raw))
        except (ValueError, TypeError, msgspec.ValidationError) as exc:
            return _bad(f"outage rejected: {exc}")
        return json_response(200, scenario_to_dict(self.sandbox.scenario)["psps"][name])

    async def reset(self, request: web.Request) -> web.Response:
        """Forget every payment and idempotency key, restart the clock; optionally a new seed."""
        try:
            body = await _json_body(request)
            seed = body.get("seed")
            if body.get("scenario") is not None:
                self.sandbox.load(scenario_from_dict(body["scenario"]))
        except (ValueError, TypeError, msgspec.ValidationError) as exc:
            return _bad(f"reset rejected: {exc}")
        self.sandbox.reset(int(seed) if seed is not None else None)
        return json_response(200, {"status": "reset", "seed": self.sandbox.seed})

    async def three_ds(self, request: web.Request) -> web.StreamResponse:
        """The issuer's challenge page: `?result=failed` fails it; otherwise it is passed."""
        name, payment_id = request.match_info["psp"], request.match_info["id"]
        dialect = self.dialects.get(name)
        payment = self.sandbox.psps[name].payments.get(payment_id) if dialect else None
        if payment is None or dialect is None:
            return _bad("no such challenge", 404)
        if payment.status == "challenged":
            dialect.complete_challenge(payment, request.query.get("result") != "failed")
        return_url = payment.extra.get("return_url") or payment.extra.get("returnUrl")
        if return_url and request.query.get("redirect", "true") != "false":
            sep = "&" if "?" in return_url else "?"
            key = {
                "stripe": "payment_intent",
                "adyen": "redirectResult",
                "checkout": "cko-payment-id",
            }
            raise web.HTTPFound(f"{return_url}{sep}{key[dialect.psp.wire]}={payment.id}")
        return json_response(200, {"id": payment.id, "status": payment.status})
