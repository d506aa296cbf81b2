"""`paymux demo`: a minute of realistic checkout traffic through paymux, with a PSP outage on the way.

    paymux demo [--duration 60] [--rate 30] [--port 8080] [--sandbox-port 8090]
                [--no-live] [--exit] [--outage-psp stripe] [--degrade-psp adyen] [--json FILE]

It starts the sandbox PSPs (examples/scenarios/demo.toml) and the gateway (the embedded default
config, a fresh SQLite store in a temporary directory, a generated admin key) in this process, then
sends payments at `--rate` per second: mixed brands, issuer countries and currencies, published
test cards (some decline), automatic and manual capture, captures, voids and refunds, an
Idempotency-Key on every request and a few idempotent retries. A third of the way in, one PSP goes
fully down for a quarter of the run (15 s of a minute) through `POST /_sandbox/outage`; a little
later another one degrades (fewer approvals, slower) through `POST /_sandbox/scenario`.

What the view shows comes from the gateway's answers (each payment's `attempts`) and from
`GET /metrics` (breaker states, cascades), never from paymux's internals. At the end it prints a
summary per PSP and the dashboard URL with the admin key, and keeps serving until Ctrl-C (or exits
at once with `--exit`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

APPROVED_ATTEMPT = {"authorized", "captured"}
APPROVED_PAYMENT = {"succeeded", "requires_capture"}
DEMO_SCENARIO = Path(__file__).resolve().parents[3] / "examples" / "scenarios" / "demo.toml"

# (card number, country, currency, weight). Issuer countries come from the scenario's bin_countries.
CARDS: list[tuple[str, str, str, float]] = [
    ("4242424242424242", "US", "USD", 14),
    ("4000002760000016", "DE", "EUR", 9),
    ("4000002500000003", "FR", "EUR", 6),
    ("4000008260000000", "GB", "GBP", 7),
    ("4000000760000002", "BR", "BRL", 8),
    ("4000003920000003", "JP", "JPY", 4),
    ("4000001240000000", "CA", "CAD", 3),
    ("5555555555554444", "US", "USD", 9),
    ("5200828282828210", "DE", "EUR", 6),
    ("5105105105105100", "BR", "BRL", 5),
    ("2223003122003222", "FR", "EUR", 3),
    ("378282246310005", "US", "USD", 5),
    ("371449635398431", "GB", "GBP", 3),
    ("6011111111111117", "US", "USD", 2),
    ("3566002020360505", "US", "USD", 1),
]
# The published decline test cards: the issuer declines them whichever PSP asks.
DECLINE_CARDS: list[tuple[str, float]] = [
    ("4000000000000002", 3),  # generic_decline (soft: paymux fails over, the issuer says no again)
    ("4000000000009995", 3),  # insufficient_funds
    ("4000000000009987", 1),  # lost_card (hard: never retried)
    ("4000000000000069", 1),  # expired_card
    ("4000000000000127", 1),  # incorrect_cvc
]
DECLINE_SHARE = 0.06
# A typical basket per currency, in minor units (median); JPY has no minor unit.
BASKET = {"USD": 4500, "EUR": 3900, "GBP": 3500, "BRL": 18000, "JPY": 5200, "CAD": 5500}


# -- options ----------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="paymux demo", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=60.0, help="seconds of traffic (60)")
    p.add_argument("--rate", type=float, default=30.0, help="payments per second (30)")
    p.add_argument("--port", type=int, default=8080, help="gateway port (8080)")
    p.add_argument("--sandbox-port", type=int, default=8090, help="sandbox port (8090)")
    p.add_argument(
        "--no-live",
        dest="live",
        action="store_false",
        help="plain progress lines instead of the live view (CI, logs)",
    )
    p.add_argument(
        "--exit",
        action="store_true",
        help="exit after the summary instead of serving the dashboard until Ctrl-C",
    )
    p.add_argument(
        "--outage-psp",
        default="auto",
        help="the PSP that goes down (auto: the one approving most at that moment)",
    )
    p.add_argument(
        "--degrade-psp",
        default="auto",
        help="the PSP that degrades (auto: the busiest of the others at that moment)",
    )
    p.add_argument("--scenario", default=str(DEMO_SCENARIO), help="sandbox scenario TOML")
    p.add_argument("--seed", type=int, default=0, help="traffic and sandbox seed (random)")
    p.add_argument(
        "--data-dir",
        help="where the SQLite store and keys go (a temporary directory, removed on exit)",
    )
    p.add_argument("--json", dest="json_path", help="also write the summary as JSON to this file")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.rate <= 0:
        p.error("--duration and --rate must be positive")
    if args.outage_psp == args.degrade_psp != "auto":
        p.error("--outage-psp and --degrade-psp must differ")
    return args


@dataclass
class Plan:
    """When things happen, in seconds from the start of traffic (proportional to the duration)."""

    duration: float
    outage_psp: str
    degrade_psp: str

    @property
    def outage(self) -> tuple[float, float]:
        return 0.30 * self.duration, 0.55 * self.duration  # 18-33 s of a minute

    @property
    def degradation(self) -> tuple[float, float]:
        return 0.45 * self.duration, 0.75 * self.duration  # 27-45 s of a minute


# -- what happened ----------------------------------------------------------------------------


@dataclass
class PspStats:
    attempts: int = 0
    approved: int = 0  # attempts authorized or captured
    declined: int = 0
    failed: int = 0  # technical failures (5xx, outage, timeout)
    first_choice: int = 0  # payments whose first attempt went here
    recovered: int = 0  # payments approved here after another PSP failed them (failover recovered)
    latencies: list[float] = field(default_factory=list)  # PSP round trips, ms
    recent: deque[tuple[float, bool, bool]] = field(default_factory=deque)  # (t, approved, failed)
    per_second: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # approvals


@dataclass
class Stats:
    started: float = 0.0  # monotonic start of traffic
    sent: int = 0
    done: int = 0
    approved: int = 0
    declined: int = 0
    errors: int = 0  # HTTP errors, exceptions, or payments that failed for technical reasons only
    cascaded: int = 0
    recovered: int = 0
    replays: int = 0
    replay_mismatches: int = 0
    captures: int = 0
    partial_captures: int = 0
    voids: int = 0
    refunds: int = 0
    followup_errors: int = 0
    followup_retries: int = 0  # captures, voids, refunds tried again after a 5xx
    followup_failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    in_flight: int = 0
    latencies: deque[tuple[float, float]] = field(default_factory=deque)  # (t, ms) end to end
    all_latencies: list[float] = field(default_factory=list)
    psps: dict[str, PspStats] = field(default_factory=lambda: defaultdict(PspStats))
    # approvals per PSP per phase (by when the payment was sent)
    phases: dict[str, dict[str, dict[str, int]]] = field(
        default_factory=lambda: defaultdict(
            lambda: defaultdict(lambda: {"attempts": 0, "approved": 0})
        )
    )
    events: list[tuple[float, str]] = field(default_factory=list)
    breakers: dict[str, str] = field(default_factory=dict)
    server_cascades: float = 0.0
    server_recovered: float = 0.0
    outage_window: tuple[float, float] | None = None  # as it really happened, traffic-relative
    traffic_ended: float | None = None  # traffic-relative, when the last payment was sent

    def now(self) -> float:
        return time.monotonic() - self.started


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f}%"


def _p50(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# -- the traffic ------------------------------------------------------------------------------


class Demo:
    def __init__(
        self, args: argparse.Namespace, base: str, sandbox: str, merchant_key: str, admin_key: str
    ) -> None:
        import aiohttp

        self.args = args
        self.base = base
        self.sandbox = sandbox
        self.merchant_key = merchant_key
        self.admin_key = admin_key
        self.rng = random.Random(args.seed or None)
        self.plan = Plan(args.duration, args.outage_psp, args.degrade_psp)
        self.stats = Stats()
        self.run_id = secrets.token_hex(4)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256),
            timeout=aiohttp.ClientTimeout(total=60),
        )
        self.tasks: set[asyncio.Task[Any]] = set()
        self.stopping = asyncio.Event()
        self.degrade_saved: dict[str, Any] | None = None
        self.down: set[str] = set()  # PSPs in an outage right now
        self.outage_began: float | None = None
        self.degraded: set[str] = set()
        cards, weights = zip(*[((n, c, cur), w) for n, c, cur, w in CARDS], strict=True)
        self.cards, self.card_weights = list(cards), list(weights)
        self.decline_cards = [n for n, _ in DECLINE_CARDS]
        self.decline_weights = [w for _, w in DECLINE_CARDS]

    # phases

    def phase(self, sent: float) -> str:
        """Which part of the run a payment sent at `sent` (and answered now) belongs to. "outage"
        holds only payments sent after the outage began and answered before it ended, so every
        one of their attempts met the dead PSP down; one that straddles the end counts as after."""
        window = self.stats.outage_window
        if window is None:  # the outage has not ended (or not begun)
            began = self.outage_began
            return "outage" if began is not None and sent >= began else "before"
        return "before" if sent < window[0] else "after"

    def event(self, text: str) -> None:
        self.stats.events.append((self.stats.now(), text))
        if not self.args.live:
            print(f"[{self.stats.now():6.1f}s] ** {text}", flush=True)

    # HTTP helpers

    def _headers(self, idem: str | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.merchant_key}"}
        if idem:
            h["Idempotency-Key"] = idem
        return h

    async def _post(
        self, url: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> tuple[int, Any, Any]:
        async with self.session.post(url, json=body, headers=headers) as r:
            try:
                data = await r.json(content_type=None)
            except ValueError:
                data = None
            return r.status, data, r.headers

    async def _sandbox(self, path: str, body: dict[str, Any]) -> bool:
        try:
            status, data, _ = await self._post(f"{self.sandbox}{path}", body)
        except Exception as exc:  # noqa: BLE001 - a control failure shows as an event, not a crash
            self.event(f"sandbox control {path} failed: {type(exc).__name__}")
            return False
        if status != 200:
            self.event(f"sandbox control {path} answered {status}: {data}")
            return False
        return True

    # one payment and what follows it

    def _payment_body(self, i: int) -> dict[str, Any]:
        number, country, currency = self.rng.choices(self.cards, self.card_weights)[0]
        if self.rng.random() < DECLINE_SHARE:
            number = self.rng.choices(self.decline_cards, self.decline_weights)[0]
        median = BASKET[currency]
        amount = max(100, int(self.rng.lognormvariate(0, 0.8) * median))
        if currency == "JPY":
            amount = max(100, round(amount, -1))
        manual = self.rng.random() < 0.3
        return {
            "amount": amount,
            "currency": currency,
            "capture_method": "manual" if manual else "automatic",
            "reference": f"demo-{self.run_id}-{i}",
            "billing": {"country": country},
            "metadata": {"source": "paymux-demo", "order": str(i)},
            "payment_method": {
                "card": {
                    "number": number,
                    "exp_month": self.rng.randint(1, 12),
                    "exp_year": 2030 + self.rng.randint(0, 6),
                    "cvc": f"{self.rng.randint(0, 999):03d}",
                }
            },
        }

    def _record(self, t: float, pay: dict[str, Any]) -> None:
        s = self.stats
        attempts = pay.get("attempts") or []
        phase = self.phase(t)
        for n, a in enumerate(attempts):
            ps = s.psps[a["connector"]]
            ok = a["outcome"] in APPROVED_ATTEMPT
            failed = a.get("decline_class") == "technical" or a["outcome"] == "failed"
            ps.attempts += 1
            ps.approved += ok
            ps.failed += failed and not ok
            ps.declined += not ok and not failed
            if n == 0:
                ps.first_choice += 1
            if a.get("latency_ms") is not None:
                ps.latencies.append(float(a["latency_ms"]))
            ps.recent.append((s.now(), ok, failed and not ok))
            if ok:
                ps.per_second[int(s.now())] += 1
            ph = s.phases[a["connector"]][phase]
            ph["attempts"] += 1
            ph["approved"] += ok
        approved = pay.get("status") in APPROVED_PAYMENT
        if len(attempts) > 1:
            s.cascaded += 1
            if approved:
                s.recovered += 1
                s.psps[attempts[-1]["connector"]].recovered += 1
        if approved:
            s.approved += 1
        else:
            classes = {a.get("decline_class") for a in attempts}
            if pay.get("status") == "failed" and classes <= {"technical", None}:
                s.errors += 1
            else:
                s.declined += 1

    async def payment(self, i: int) -> None:
        s = self.stats
        body = self._payment_body(i)
        idem = f"demo-{self.run_id}-pay-{i}"
        t = s.now()
        s.sent += 1
        s.in_flight += 1
        t0 = time.monotonic()
        try:
            status, pay, _ = await self._post(f"{self.base}/v1/payments", body, self._headers(idem))
        except Exception:  # noqa: BLE001 - counted as an error, the demo goes on
            s.errors += 1
            return
        finally:
            s.in_flight -= 1
            s.done += 1
        ms = (time.monotonic() - t0) * 1000
        s.latencies.append((s.now(), ms))
        s.all_latencies.append(ms)
        if status not in (200, 402) or not isinstance(pay, dict) or "attempts" not in pay:
            s.errors += 1
            return
        self._record(t, pay)
        # A client that lost the answer retries with the same key: the same payment comes back.
        if self.rng.random() < 0.04:
            self._spawn(self._retry(body, idem, pay["id"]))
        if pay["status"] == "requires_capture":
            self._spawn(self._capture_or_void(pay))
        elif pay["status"] == "succeeded" and self.rng.random() < 0.12:
            self._spawn(self._refund(pay))

    async def _later(self, lo: float, hi: float) -> None:
        scale = min(1.0, self.args.duration / 60.0)
        await asyncio.sleep(self.rng.uniform(lo, hi) * scale)

    async def _retry(self, body: dict[str, Any], idem: str, payment_id: str) -> None:
        await self._later(0.2, 1.5)
        try:
            _, pay, headers = await self._post(
                f"{self.base}/v1/payments", body, self._headers(idem)
            )
        except Exception as exc:  # noqa: BLE001
            self.stats.followup_errors += 1
            self.stats.followup_failures[f"retry: {type(exc).__name__}"] += 1
            return
        if (
            headers.get("Idempotent-Replayed") == "true"
            and isinstance(pay, dict)
            and pay.get("id") == payment_id
        ):
            self.stats.replays += 1
        else:
            self.stats.replay_mismatches += 1

    async def _followup(
        self, what: str, pay: dict[str, Any], path: str, body: dict[str, Any]
    ) -> bool:
        """POST a capture, cancel or refund; on a 5xx (the PSP is down) try again later with a new
        Idempotency-Key, as a merchant's job queue would (a replayed key would replay the 5xx)."""
        delay = 1.0
        for n in range(1, 7):
            try:
                status, data, _ = await self._post(
                    f"{self.base}{path}", body, self._headers(f"{pay['id']}-{what}-{n}")
                )
            except Exception as exc:  # noqa: BLE001
                status, data = None, type(exc).__name__
            if status == 200:
                return True
            if status is not None and status < 500 or self.stopping.is_set() or n == 6:
                self._followup_failed(what, pay, status, data)
                return False
            self.stats.followup_retries += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 8.0)
        return False

    async def _capture_or_void(self, pay: dict[str, Any]) -> None:
        await self._later(1.0, 4.0)
        pid = pay["id"]
        roll = self.rng.random()
        if roll < 0.15:
            ok = await self._followup(
                "cancel",
                pay,
                f"/v1/payments/{pid}/cancel",
                {"reason": "customer changed their mind"},
            )
            self.stats.voids += ok
            return
        body: dict[str, Any] = {}
        partial = roll > 0.8 and pay["amount"] >= 200
        if partial:  # one item out of stock: capture what ships
            body["amount"] = pay["amount"] * 3 // 4
        ok = await self._followup("capture", pay, f"/v1/payments/{pid}/capture", body)
        self.stats.captures += ok
        self.stats.partial_captures += ok and partial

    async def _refund(self, pay: dict[str, Any]) -> None:
        await self._later(1.0, 5.0)
        body: dict[str, Any] = {"payment_id": pay["id"], "reason": "requested_by_customer"}
        if self.rng.random() < 0.5 and pay["amount"] >= 200:
            body["amount"] = pay["amount"] // 2
        self.stats.refunds += await self._followup("refund", pay, "/v1/refunds", body)

    def _followup_failed(
        self, what: str, pay: dict[str, Any], status: int | None, data: Any
    ) -> None:
        code = data
        if isinstance(data, dict):
            err = data.get("error") or {}
            code = err.get("code") or err.get("type") or "?"
        self.stats.followup_errors += 1
        self.stats.followup_failures[f"{what} on {pay.get('connector')}: {status} {code}"] += 1

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # the script: traffic, outage, degradation

    async def traffic(self) -> None:
        interval = 1.0 / self.args.rate
        next_at = time.monotonic()
        end = self.stats.started + self.args.duration
        cap = max(64, int(self.args.rate * 10))
        i = 0
        while not self.stopping.is_set():
            now = time.monotonic()
            if now >= end:
                break
            if now < next_at:
                try:
                    await asyncio.wait_for(self.stopping.wait(), next_at - now)
                except TimeoutError:
                    pass
                continue
            next_at += interval
            if (
                self.stats.in_flight >= cap
            ):  # the gateway is not keeping up: shed, as a client would
                continue
            i += 1
            self._spawn(self.payment(i))
        self.stats.traffic_ended = self.stats.now()

    async def _until(self, t: float) -> bool:
        """Sleep until traffic-relative time t; False if the demo was stopped first."""
        delay = t - self.stats.now()
        if delay > 0:
            try:
                await asyncio.wait_for(self.stopping.wait(), delay)
                return False
            except TimeoutError:
                pass
        return not self.stopping.is_set()

    def busiest(self, exclude: set[str]) -> str:
        """The PSP that approved most in the last 5 s (all of the run to break ties), so that
        taking it down or slowing it shows, whatever routing decided."""
        _, recent = _recent(self.stats)
        names = [n for n in _psp_names(self) if n not in exclude] or ["stripe"]
        return max(
            names,
            key=lambda n: (
                recent.get(n, (0, 0))[1],
                self.stats.psps[n].approved if n in self.stats.psps else 0,
            ),
        )

    async def outage(self) -> None:
        start, end = self.plan.outage
        if not await self._until(start):
            return
        if self.plan.outage_psp == "auto":
            self.plan.outage_psp = self.busiest({self.plan.degrade_psp})
        psp = self.plan.outage_psp
        body = {"psp": psp, "duration_s": end - start + 5.0, "error_rate": 1.0, "kind": "error"}
        if not await self._sandbox("/_sandbox/outage", body):
            return
        began = self.outage_began = self.stats.now()  # after the sandbox said yes
        self.down.add(psp)
        self.event(f"{psp} outage started (every request answers 5xx)")
        await self._until(end)
        # Before clearing: a payment answered after this may have met the PSP up again.
        ended = self.stats.now()
        self.stats.outage_window = (began, ended)
        await self._sandbox("/_sandbox/outage", {"psp": psp, "clear": True})
        self.down.discard(psp)
        self.event(f"{psp} outage ended after {ended - began:.1f}s")

    async def degradation(self) -> None:
        import aiohttp

        start, end = self.plan.degradation
        if not await self._until(start):
            return
        if self.plan.degrade_psp == "auto":
            self.plan.degrade_psp = self.busiest({self.plan.outage_psp})
        psp = self.plan.degrade_psp
        try:
            async with self.session.get(f"{self.sandbox}/_sandbox/scenario") as r:
                scenario = await r.json()
            saved = scenario["psps"][psp].get("default", {})
        except (aiohttp.ClientError, KeyError, ValueError):
            self.event(f"cannot read the sandbox scenario; {psp} stays healthy")
            return
        worse = {
            "approval_rate": 0.55,
            "latency": {"kind": "lognormal", "median_ms": 900, "p99_ms": 3000},
        }
        patch = {
            "psps": {
                psp: {
                    "default": worse,
                    "segments": [
                        {**seg, "approval_rate": 0.55}
                        for seg in scenario["psps"][psp].get("segments", [])
                    ],
                }
            }
        }
        if not await self._sandbox("/_sandbox/scenario", patch):
            return
        self.degrade_saved = {
            "psps": {psp: {"default": saved, "segments": scenario["psps"][psp].get("segments", [])}}
        }
        self.degraded.add(psp)
        self.event(f"{psp} degraded: approvals down to 55%, answers ~900 ms")
        await self._until(end)
        await self.restore()

    async def restore(self) -> None:
        if self.degrade_saved is not None:
            saved, self.degrade_saved = self.degrade_saved, None
            if await self._sandbox("/_sandbox/scenario", saved):
                self.degraded.discard(self.plan.degrade_psp)
                self.event(f"{self.plan.degrade_psp} recovered")

    async def watch_metrics(self) -> None:
        """Breaker states and server-side cascade counts, from `GET /metrics` twice a second."""
        from prometheus_client.parser import text_string_to_metric_families

        names = {0: "closed", 1: "half_open", 2: "open"}
        while True:
            try:
                async with self.session.get(f"{self.base}/metrics") as r:
                    text = await r.text()
                breakers: dict[str, str] = {}
                cascades = recovered = 0.0
                for fam in text_string_to_metric_families(text):
                    for sample in fam.samples:
                        if sample.name == "paymux_breaker_state":
                            breakers[sample.labels.get("connector", "?")] = names.get(
                                int(sample.value), str(sample.value)
                            )
                        elif sample.name == "paymux_cascades_total":
                            cascades += sample.value
                        elif (
                            sample.name == "paymux_cascade_results_total"
                            and sample.labels.get("result") == "recovered"
                        ):
                            recovered += sample.value
                for name, state in sorted(breakers.items()):
                    before = self.stats.breakers.get(name)
                    if before is not None and before != state:
                        self.event(f"breaker {name}: {before} -> {state}")
                    elif before is None and state != "closed":
                        self.event(f"breaker {name}: {state}")
                self.stats.breakers = breakers
                self.stats.server_cascades = cascades
                self.stats.server_recovered = recovered
            except Exception:  # noqa: BLE001, S110 - the view goes on with the last known states
                pass
            await asyncio.sleep(0.5)

    async def check_admin_api(self) -> int | str:
        """What the dashboard's first call (the health report) gets with the admin key."""
        try:
            async with self.session.get(
                f"{self.base}/admin/analytics/health",
                headers={"Authorization": f"Bearer {self.admin_key}"},
            ) as r:
                await r.read()
                return r.status
        except Exception as exc:  # noqa: BLE001
            return type(exc).__name__

    async def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.tasks and time.monotonic() < deadline:
            await asyncio.wait(list(self.tasks), timeout=max(0.05, deadline - time.monotonic()))
        for task in list(self.tasks):
            task.cancel()


# -- rendering --------------------------------------------------------------------------------


def _recent(stats: Stats, window: float = 5.0) -> tuple[float | None, dict[str, tuple[int, int]]]:
    """p50 end-to-end latency and (attempts, approved) per PSP over the last `window` seconds."""
    now = stats.now()
    while stats.latencies and stats.latencies[0][0] < now - window:
        stats.latencies.popleft()
    p50 = _p50([ms for _, ms in stats.latencies])
    per: dict[str, tuple[int, int]] = {}
    for name, ps in stats.psps.items():
        while ps.recent and ps.recent[0][0] < now - window:
            ps.recent.popleft()
        per[name] = (len(ps.recent), sum(ok for _, ok, _ in ps.recent))
    return p50, per


def _error_rate(stats: Stats) -> float | None:
    return stats.errors / stats.done if stats.done else None


def _psp_names(demo: Demo) -> list[str]:
    names = set(demo.stats.psps) | set(demo.stats.breakers)
    order = ["stripe", "adyen", "checkout"]
    return sorted(names, key=lambda n: (order.index(n) if n in order else 99, n))


def progress_line(demo: Demo) -> str:
    s = demo.stats
    p50, _ = _recent(s)
    psps = "  ".join(
        f"{n} {s.psps[n].approved}/{s.psps[n].attempts} [{s.breakers.get(n, '?')}]"
        for n in _psp_names(demo)
    )
    approval = s.approved / (s.approved + s.declined + s.errors) if s.done else None
    return (
        f"[{s.now():6.1f}s/{demo.args.duration:.0f}s] sent {s.sent} done {s.done} "
        f"approved {_pct(approval)} errors {_pct(_error_rate(s))} "
        f"cascades {s.cascaded} (recovered {s.recovered}) "
        f"p50 {'–' if p50 is None else f'{p50:.0f}ms'}  | {psps}"
    )


SPARKS = "·▁▂▃▄▅▆▇█"  # "·": none at all (a space would let the table wrap the line)


def _sparkline(values: list[int], peak: float) -> str:
    """One character per second, scaled to `peak` (the target rate): the outage shows as a gap."""
    top = len(SPARKS) - 1
    return "".join(SPARKS[min(top, round(v / peak * top)) if v else 0] for v in values)


BREAKER_STYLE = {"closed": "green", "half_open": "yellow", "open": "bold red"}


def live_view(demo: Demo) -> Any:
    from rich.console import Group
    from rich.panel import Panel
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    s = demo.stats
    elapsed = min(s.now(), demo.args.duration)
    p50, recent = _recent(s)
    header = Table.grid(padding=(0, 2))
    header.add_row(
        Text(f"{elapsed:5.1f}s / {demo.args.duration:.0f}s", style="bold"),
        ProgressBar(total=demo.args.duration, completed=elapsed, width=40),
        Text(f"sent {s.sent} · in flight {s.in_flight} · target {demo.args.rate:g}/s"),
    )
    decided = s.approved + s.declined + s.errors
    kpis = Text.assemble(
        ("approved ", "dim"),
        (_pct(s.approved / decided if decided else None), "bold green"),
        ("   errors ", "dim"),
        (_pct(_error_rate(s)), "bold red" if s.errors else "bold"),
        ("   cascades ", "dim"),
        (f"{s.cascaded}", "bold"),
        (f" (recovered {s.recovered})", ""),
        ("   p50 end to end, last 5 s ", "dim"),
        ("–" if p50 is None else f"{p50:.0f} ms", "bold"),
    )
    lifecycle = Text.assemble(
        ("captures ", "dim"),
        (f"{s.captures}", ""),
        (f" ({s.partial_captures} partial)", "dim"),
        ("   voids ", "dim"),
        (f"{s.voids}", ""),
        ("   refunds ", "dim"),
        (f"{s.refunds}", ""),
        ("   idempotent replays ", "dim"),
        (f"{s.replays}", ""),
        ("   retried after a 5xx ", "dim"),
        (f"{s.followup_retries}", ""),
    )
    t = Table(expand=False, title="per PSP", title_justify="left")
    for col in (
        "PSP",
        "attempts",
        "approved",
        "approval",
        "5xx",
        "recovered here",
        "ok/all 5 s",
        "approvals/s, 20 s",
        "p50 PSP",
        "breaker",
    ):
        if col.startswith("approvals/s"):
            t.add_column(col, no_wrap=True, min_width=20)
        else:
            t.add_column(
                col, justify="left" if col in ("PSP", "breaker") else "right", no_wrap=col == "PSP"
            )
    now = int(s.now())
    for name in _psp_names(demo):
        ps = s.psps[name]
        n5, ok5 = recent.get(name, (0, 0))
        state = s.breakers.get(name, "?")
        label = name
        if name in demo.down:
            label = f"{name} [bold red](down)[/]"
        elif name in demo.degraded:
            label = f"{name} [yellow](degraded)[/]"
        t.add_row(
            label,
            str(ps.attempts),
            str(ps.approved),
            _pct(ps.approved / ps.attempts if ps.attempts else None),
            str(ps.failed),
            str(ps.recovered),
            f"{ok5}/{n5}",
            _sparkline(
                [ps.per_second.get(sec, 0) for sec in range(now - 20, now)],
                peak=max(1.0, demo.args.rate),
            ),
            "–" if not ps.latencies else f"{statistics.median(ps.latencies[-500:]):.0f} ms",
            f"[{BREAKER_STYLE.get(state, '')}]{state}[/]",
        )
    events = Text()
    for at, text in s.events[-8:]:
        events.append(f"{at:6.1f}s  ", style="dim")
        events.append(
            text + "\n",
            style="bold red"
            if "started" in text or "degraded" in text or "-> open" in text
            else "",
        )
    plan = demo.plan
    o, d = plan.outage, plan.degradation
    down = "the busiest PSP" if plan.outage_psp == "auto" else plan.outage_psp
    worse = "the busiest other PSP" if plan.degrade_psp == "auto" else plan.degrade_psp
    script = f"script: {down} down {o[0]:g}-{o[1]:g}s · {worse} degraded {d[0]:g}-{d[1]:g}s"
    return Panel(
        Group(
            header,
            kpis,
            lifecycle,
            t,
            Panel(events or Text("(nothing yet)", style="dim"), title="events", title_align="left"),
            Text(script, style="dim"),
        ),
        title="paymux demo",
        title_align="left",
    )


def summary(demo: Demo) -> dict[str, Any]:
    s = demo.stats
    out: dict[str, Any] = {
        "duration_s": demo.args.duration,
        "rate": demo.args.rate,
        "payments": s.done,
        "approved": s.approved,
        "declined": s.declined,
        "errors": s.errors,
        "cascaded": s.cascaded,
        "recovered": s.recovered,
        "captures": s.captures,
        "partial_captures": s.partial_captures,
        "voids": s.voids,
        "refunds": s.refunds,
        "idempotent_replays": s.replays,
        "replay_mismatches": s.replay_mismatches,
        "followup_errors": s.followup_errors,
        "followup_retries": s.followup_retries,
        "followup_failures": dict(s.followup_failures),
        "p50_ms": _p50(s.all_latencies),
        "server_cascades": s.server_cascades,
        "server_recovered": s.server_recovered,
        "outage": {"psp": demo.plan.outage_psp, "window_s": s.outage_window},
        "degraded": {
            "psp": demo.plan.degrade_psp,
            "window_s": demo.plan.degradation if demo.plan.degrade_psp != "auto" else None,
        },
        "breakers": s.breakers,
        "events": [{"t": round(t, 2), "event": e} for t, e in s.events],
        "psps": {},
    }
    start, end = s.outage_window or demo.plan.outage
    stop = s.traffic_ended if s.traffic_ended is not None else demo.args.duration
    seconds = {"before": start, "outage": end - start, "after": max(0.0, stop - end)}
    totals_by_phase: dict[str, int] = defaultdict(int)
    for name in _psp_names(demo):
        for phase, v in s.phases[name].items():
            totals_by_phase[phase] += v["approved"]
    for name in _psp_names(demo):
        ps = s.psps[name]
        out["psps"][name] = {
            "attempts": ps.attempts,
            "approved": ps.approved,
            "declined": ps.declined,
            "failed": ps.failed,
            "first_choice": ps.first_choice,
            "recovered": ps.recovered,
            "approval_rate": ps.approved / ps.attempts if ps.attempts else None,
            "p50_ms": _p50(ps.latencies),
            "phases": {
                ph: {
                    **s.phases[name][ph],
                    "attempts_per_s": (
                        s.phases[name][ph]["attempts"] / seconds[ph] if seconds[ph] > 0 else None
                    ),
                    "share_of_approvals": (
                        s.phases[name][ph]["approved"] / totals_by_phase[ph]
                        if totals_by_phase[ph]
                        else None
                    ),
                }
                for ph in ("before", "outage", "after")
            },
        }
    return out


def print_summary(demo: Demo, result: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    t = Table(title="paymux demo: per PSP", title_justify="left")
    for col in (
        "PSP",
        "attempts",
        "approved",
        "approval",
        "5xx",
        "failovers recovered",
        "p50 ms",
        "attempts/s before · outage · after",
        "share of approvals before · outage · after",
    ):
        t.add_column(col, justify="left" if col == "PSP" else "right")
    for name, p in result["psps"].items():
        ph = [p["phases"][x] for x in ("before", "outage", "after")]
        rates = " · ".join(
            "–" if x["attempts_per_s"] is None else f"{x['attempts_per_s']:.1f}" for x in ph
        )
        shares = " · ".join(_pct(x["share_of_approvals"]) for x in ph)

        label = (
            f"{name} (down)"
            if name == demo.plan.outage_psp
            else (f"{name} (degraded)" if name == demo.plan.degrade_psp else name)
        )  # "auto": never ran
        t.add_row(
            label,
            str(p["attempts"]),
            str(p["approved"]),
            _pct(p["approval_rate"]),
            str(p["failed"]),
            str(p["recovered"]),
            "–" if p["p50_ms"] is None else f"{p['p50_ms']:.0f}",
            rates,
            shares,
        )
    console.print(t)
    r = result
    decided = r["approved"] + r["declined"] + r["errors"]
    window = r["outage"]["window_s"]
    p50 = "–" if r["p50_ms"] is None else f"{r['p50_ms']:.0f} ms"
    console.print(
        f"payments {r['payments']}: approved {r['approved']} ({_pct(r['approved'] / decided if decided else None)}), "
        f"declined {r['declined']}, errors {r['errors']}; cascaded {r['cascaded']}, "
        f"recovered by failover {r['recovered']} (gateway /metrics: "
        f"{r['server_cascades']:.0f} hops, {r['server_recovered']:.0f} recovered)\n"
        f"captures {r['captures']} ({r['partial_captures']} partial), voids {r['voids']}, "
        f"refunds {r['refunds']}, idempotent replays {r['idempotent_replays']}"
        + (f" ({r['replay_mismatches']} NOT replayed)" if r["replay_mismatches"] else "")
        + (
            f", follow-ups retried after a 5xx {r['followup_retries']}"
            if r["followup_retries"]
            else ""
        )
        + (f", follow-up errors {r['followup_errors']}" if r["followup_errors"] else "")
        + f"; end-to-end p50 {p50}\n"
        + (
            f"outage of {r['outage']['psp']}: {window[0]:.1f}s to {window[1]:.1f}s; "
            if window
            else "the outage did not run; "
        )
        + "the outage columns count payments sent and answered while it lasted",
        highlight=False,
    )
    if r["followup_failures"]:
        console.print(
            "follow-up failures: "
            + "; ".join(f"{k} ×{v}" for k, v in sorted(r["followup_failures"].items())),
            highlight=False,
        )
    console.print(
        "timeline: "
        + (
            "; ".join(f"{e['t']:.1f}s {e['event']}" for e in r["events"])
            or "(nothing happened yet)"
        ),
        highlight=False,
    )


# -- main -------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    from paymux.cli.embedded import default_config, start_both, use_sandbox_port
    from paymux.observability import logs
    from paymux.sandbox import load_scenario

    # Piped (CI, logs): wide enough for the summary table instead of rich's 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    data_dir = (
        Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="paymux-demo-"))
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    # The gateway's log lines go to a file, not over the live view.
    log_file = open(data_dir / "paymux.log", "a")  # noqa: SIM115, ASYNC230 - lives as long as we do
    logs.configure(os.environ.get("PAYMUX_LOG_LEVEL", "warning"), stream=log_file)
    config = default_config()
    config.server.port = args.port
    config.storage.path = str(data_dir / "paymux.db")
    config.vault.key_file = str(data_dir / "keys.json")
    config.vault.generate_if_missing = True
    config.admin_api_key = (
        os.environ.get("PAYMUX_ADMIN_KEY") or f"adm_demo_{secrets.token_urlsafe(18)}"
    )
    use_sandbox_port(config, args.sandbox_port)
    merchant_key = config.demo.api_key if config.demo and config.demo.api_key else ""
    if not merchant_key:
        print("paymux demo: the embedded default has no demo merchant key", file=sys.stderr)
        return 1
    scenario = None
    if Path(args.scenario).is_file():
        scenario = load_scenario(args.scenario)
    else:
        print(
            f"paymux demo: no scenario at {args.scenario}; using the sandbox's default",
            file=sys.stderr,
        )
    try:
        gateway, sandbox = await start_both(config, args.sandbox_port, scenario, args.seed)
    except BaseException as exc:
        logs.configure(os.environ.get("PAYMUX_LOG_LEVEL", "warning"))
        log_file.close()
        if not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
        if not isinstance(exc, OSError):
            raise
        print(
            f"paymux demo: cannot listen ({exc.strerror or exc}); is `paymux run-default` "
            f"running? Pick other ports with --port and --sandbox-port",
            file=sys.stderr,
        )
        return 1
    host = config.server.host
    base = f"http://{host}:{args.port}"
    demo = Demo(
        args, base, f"http://{host}:{args.sandbox_port}", merchant_key, config.admin_api_key
    )
    dashboard = f"{base}/dashboard?key={config.admin_api_key}"
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()

    def on_signal() -> None:
        interrupted.set()
        demo.stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    console.print(
        f"paymux demo: gateway {base} · sandbox {demo.sandbox} · "
        f"{args.rate:g} payments/s for {args.duration:g}s · store {config.storage.path}",
        highlight=False,
    )
    watcher = asyncio.ensure_future(demo.watch_metrics())
    try:
        demo.stats.started = time.monotonic()
        script = [
            asyncio.ensure_future(c) for c in (demo.traffic(), demo.outage(), demo.degradation())
        ]
        if args.live:
            with Live(
                live_view(demo), console=console, auto_refresh=False, transient=False
            ) as live:
                while not all(t.done() for t in script):
                    await asyncio.wait(script, timeout=0.25)
                    live.update(live_view(demo), refresh=True)
                await demo.drain(30.0)
                live.update(live_view(demo), refresh=True)
        else:
            every = 1.0 if args.duration <= 30 else 2.0
            while not all(t.done() for t in script):
                await asyncio.wait(script, timeout=every)
                print(progress_line(demo), flush=True)
            await demo.drain(30.0)
            print(progress_line(demo), flush=True)
        for t in script:
            if t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
        if demo.stats.outage_window is None and any(
            "outage started" in e for _, e in demo.stats.events
        ):
            demo.stats.outage_window = (demo.outage_began or 0.0, demo.stats.now())
            await demo._sandbox("/_sandbox/outage", {"psp": demo.plan.outage_psp, "clear": True})
        await demo.restore()
        await asyncio.sleep(0.6)  # one more /metrics read: the final breaker states and cascades
        result = summary(demo)
        result["dashboard_url"] = dashboard
        result["store"] = config.storage.path
        result["admin_api"] = await demo.check_admin_api()
        console.print()
        print_summary(demo, result, console)
        if args.json_path:
            Path(args.json_path).write_text(json.dumps(result, indent=2, default=str))
        console.print(
            f"\n[bold]Dashboard:[/] {dashboard}\n"
            f"  (the page keeps the admin key in the tab's sessionStorage; admin API: "
            f"curl -H 'Authorization: Bearer {config.admin_api_key}' {base}/admin/analytics/health)\n"
            f"  terminal report: paymux report --db {config.storage.path} --since 1h",
            highlight=False,
            soft_wrap=True,
        )
        if result["admin_api"] != 200:
            console.print(
                f"[bold red]The admin API answered {result['admin_api']} to the admin "
                f"key: the dashboard will not show data.[/]"
            )
        if interrupted.is_set():  # Ctrl-C during the traffic: the summary so far, then stop
            return 130
        if args.exit:
            return 0
        console.print("Serving the gateway and the sandbox until Ctrl-C.", highlight=False)
        sys.stdout.flush()
        await interrupted.wait()
        return 0
    finally:
        watcher.cancel()
        for t in list(demo.tasks):
            t.cancel()
        await demo.session.close()
        await gateway.cleanup()
        await sandbox.cleanup()
        logs.configure(os.environ.get("PAYMUX_LOG_LEVEL", "warning"))  # back to stderr
        log_file.close()
        if not args.data_dir:
            shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    import uvloop

    args = parse_args(sys.argv[1:] if argv is None else argv)
    return uvloop.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
