"""Inbound tokenizing routes ("redact in"): paymux in front of the merchant's own backend.

Each ``[[redact_routes]]`` entry serves one path: the checkout page posts the card fields to
paymux (CORS for the checkout's origins), paymux vaults each configured card field into the
route's merchant's vault, replaces it with the paymux token (``tok_...``), drops the CVC fields,
and forwards the request to the merchant's upstream. The merchant's servers never see card data:
they pay with the token through ``/v1``, the Stripe front or the pass-through.

A card that cannot be vaulted (not a card number, expired) is a 400 with paymux's error JSON,
naming the field; nothing is forwarded. An upstream that does not answer is a 502/504.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import msgspec
import orjson
from aiohttp import web
from multidict import CIMultiDict

from paymux.api.http import SERVICE
from paymux.config import RedactRoute
from paymux.domain import commands
from paymux.domain.errors import Refusal
from paymux.observability.logs import log

REDACT_SESSION: web.AppKey[dict[str, aiohttp.ClientSession]] = web.AppKey("redact_session", dict)

_HOP = frozenset(
    ("connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "host",
     "content-length", "content-encoding", "accept-encoding", "origin", "cookie")
)  # fmt: skip
_MAX_FIELDS = 20


class _Bad(Exception):
    def __init__(self, status: int, type_: str, code: str, message: str, param: str | None) -> None:
        super().__init__(message)
        self.response = web.Response(
            status=status,
            body=orjson.dumps(
                {"error": {"type": type_, "code": code, "message": message, "param": param}}
            ),
            content_type="application/json",
        )


def _cors(route: RedactRoute, request: web.Request, response: web.StreamResponse) -> None:
    origin = request.headers.get("Origin")
    if origin and origin in route.cors_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"


def _preflight(route: RedactRoute) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if not origin or origin not in route.cors_origins:
            return web.Response(status=403, text="origin not allowed")
        wanted = request.headers.get("Access-Control-Request-Headers", "")
        allowed = {"content-type"} | {h.strip().lower() for h in wanted.split(",") if h.strip()}
        allowed -= {"cookie", "authorization"}
        response = web.Response(status=204)
        _cors(route, request, response)
        response.headers["Access-Control-Allow-Methods"] = ", ".join(route.methods)
        response.headers["Access-Control-Allow-Headers"] = ", ".join(sorted(allowed))
        response.headers["Access-Control-Max-Age"] = "600"
        return response

    return handler


def _get(doc: Any, path: list[str]) -> Any:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _put(doc: Any, path: list[str], value: Any) -> None:
    for key in path[:-1]:
        doc = doc.get(key) if isinstance(doc, dict) else None
    if isinstance(doc, dict):
        if value is None:
            doc.pop(path[-1], None)
        else:
            doc[path[-1]] = value


async def _tokenize(
    request: web.Request, route: RedactRoute, number: Any, month: Any, year: Any, field: str
) -> str:
    try:
        card = msgspec.convert(
            {"number": str(number).replace(" ", ""), "exp_month": int(month),
             "exp_year": int(year)},
            commands.CardInput,
        )  # fmt: skip
    except (msgspec.ValidationError, TypeError, ValueError):
        raise _Bad(
            400, "card_error", "invalid_card", "The card fields are invalid", field
        ) from None
    try:
        token = await request.app[SERVICE].create_token(
            route.merchant, commands.CreateToken(card=card)
        )
    except Refusal as exc:
        raise _Bad(400, "card_error", exc.code, exc.message, field) from None
    return token.id


async def _redact_json(
    request: web.Request, route: RedactRoute, body: bytes
) -> tuple[bytes, list[str]]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _Bad(400, "invalid_request_error", "invalid_json", "The body is not valid JSON",
                   None) from None  # fmt: skip
    done: list[str] = []
    month_path = route.exp_month_field.split(".") if route.exp_month_field else None
    year_path = route.exp_year_field.split(".") if route.exp_year_field else None
    for field in route.json_fields[:_MAX_FIELDS]:
        path = field.split(".")
        number = _get(doc, path)
        if number in (None, "") or (isinstance(number, str) and number.startswith("tok_")):
            continue
        month = _get(doc, month_path) if month_path else None
        year = _get(doc, year_path) if year_path else None
        _put(doc, path, await _tokenize(request, route, number, month, year, field))
        done.append(field)
    for field in route.cvc_fields:
        _put(doc, field.split("."), None)
    return orjson.dumps(doc), done


async def _redact_form(
    request: web.Request, route: RedactRoute, body: bytes
) -> tuple[bytes, list[str]]:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise _Bad(400, "invalid_request_error", "invalid_form", "The body is not valid UTF-8",
                   None) from None  # fmt: skip
    form = dict(pairs)
    done: list[str] = []
    for field in route.form_fields[:_MAX_FIELDS]:
        number = form.get(field)
        if not number or number.startswith("tok_"):
            continue
        token = await _tokenize(
            request,
            route,
            number,
            form.get(route.exp_month_field or ""),
            form.get(route.exp_year_field or ""),
            field,
        )
        pairs = [(k, token if k == field else v) for k, v in pairs]
        done.append(field)
    pairs = [(k, v) for k, v in pairs if k not in route.cvc_fields]
    return urlencode(pairs).encode(), done


def _handler(route: RedactRoute) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            response = await _forward(request, route)
        except _Bad as bad:
            response = bad.response
        _cors(route, request, response)
        return response

    return handler


async def _forward(request: web.Request, route: RedactRoute) -> web.StreamResponse:
    body = await request.read()
    fields: list[str] = []
    if body:
        if request.content_type == "application/json":
            body, fields = await _redact_json(request, route, body)
        elif request.content_type == "application/x-www-form-urlencoded":
            body, fields = await _redact_form(request, route, body)
        else:
            raise _Bad(415, "invalid_request_error", "unsupported_content_type",
                       "Send JSON or a form", None)  # fmt: skip
    headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _HOP)
    headers["Paymux-Tokenized"] = ",".join(fields)
    url = route.upstream + (("?" + request.query_string) if request.query_string else "")
    session = request.app[REDACT_SESSION]["session"]
    started = time.perf_counter()
    try:
        async with session.request(
            request.method,
            url,
            data=body or None,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=route.timeout_s),
        ) as upstream:
            answer = await upstream.read()
            response = web.Response(status=upstream.status, body=answer)
            for key, value in upstream.headers.items():
                if key.lower() not in _HOP and not key.lower().startswith("access-control-"):
                    response.headers.add(key, value)
    except (TimeoutError, aiohttp.ServerTimeoutError):
        raise _Bad(504, "api_error", "upstream_timeout", "The merchant's backend did not answer "
                   "in time", None) from None  # fmt: skip
    except (aiohttp.ClientError, OSError):
        raise _Bad(502, "api_error", "upstream_unreachable", "The merchant's backend did not "
                   "answer", None) from None  # fmt: skip
    log(
        "redact_in",
        path=route.path,
        merchant_id=route.merchant,
        tokenized=len(fields),
        status=response.status,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
    )
    return response


def add_redact_routes(app: web.Application, routes: list[RedactRoute]) -> None:
    if not routes:
        return
    app[REDACT_SESSION] = {}
    for route in routes:
        app.router.add_route("OPTIONS", route.path, _preflight(route))
        for method in route.methods:
            app.router.add_route(method, route.path, _handler(route))

    async def open_session(app: web.Application) -> None:
        app[REDACT_SESSION]["session"] = aiohttp.ClientSession(auto_decompress=True)

    async def close_session(app: web.Application) -> None:
        session = app[REDACT_SESSION].get("session")
        if session is not None:
            await session.close()

    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
