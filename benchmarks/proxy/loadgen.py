"""A Python HTTP load generator (aiohttp on uvloop): closed loop at a fixed concurrency, or open
loop at a fixed arrival rate. It also builds the two request shapes the benchmarks compare.

Open loop: request i is due at start + i / rate whatever happened before (a slow answer never
holds the next request back: new connections open as needed). Latency is measured from the actual
send; `lag_p99_ms` (due time to actual send) shows when the generator itself fell behind, which
with uvloop's 1 ms timer resolution is up to about a millisecond.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp
import orjson
from paymux.connectors.stripe import encode_form

CARD = "4242424242424242"

# (method, url, headers, body)
Request = tuple[str, str, dict[str, str], bytes]
MakeRequest = Callable[[int], Request]


def payment_request(gateway_url: str, api_key: str, run: str) -> MakeRequest:
    """`POST /v1/payments` with a unique Idempotency-Key and reference per request."""
    url = gateway_url + "/v1/payments"

    def make(i: int) -> Request:
        key = f"{run}-{i}"
        body = orjson.dumps({
            "amount": 1000 + i % 5000,
            "currency": "EUR",
            "reference": key,
            "payment_method": {"card": {"number": CARD, "exp_month": 12, "exp_year": 2034,
                                        "cvc": "123"}},
        })  # fmt: skip
        headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        }
        return "POST", url, headers, body

    return make


def stripe_form(i: int, key: str, number: str = CARD) -> bytes:
    """The form body paymux's Stripe connector sends for an automatic-capture authorization
    (``number``: a paymux token instead of the card, for the pass-through)."""
    params = {
        "amount": 1000 + i % 5000,
        "currency": "eur",
        "confirm": True,
        "capture_method": "automatic",
        "payment_method_types": ["card"],
        "payment_method_data": {
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        },
        "metadata": {
            "paymux_reference": key,
            "paymux_payment_id": f"pay_{key}",
            "merchant_reference": key,
        },
    }
    return urlencode(encode_form(params)).encode()


def stripe_request(base_url: str, secret_key: str, run: str, number: str = CARD) -> MakeRequest:
    """`POST {base}/stripe/v1/payment_intents` as the connector sends it, straight at the PSP
    (or through paymux's pass-through, base ``<gateway>/proxy``, with a token as ``number``)."""
    url = base_url + "/stripe/v1/payment_intents"

    def make(i: int) -> Request:
        key = f"{run}-{i}"
        headers = {
            "Authorization": f"Bearer {secret_key}",
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
            "Idempotency-Key": key,
        }
        return "POST", url, headers, stripe_form(i, key, number)

    return make


def front_form(i: int, key: str) -> bytes:
    """What a merchant's Stripe SDK sends paymux's Stripe-compatible front for the payment of
    `payment_request`: confirm=true, a raw card, the reference in metadata."""
    params = {
        "amount": 1000 + i % 5000,
        "currency": "eur",
        "confirm": True,
        "payment_method_data": {
            "type": "card",
            "card": {"number": CARD, "exp_month": 12, "exp_year": 2034, "cvc": "123"},
        },
        "metadata": {"order": key},
    }
    return urlencode(encode_form(params)).encode()


def front_request(gateway_url: str, api_key: str, run: str) -> MakeRequest:
    """`POST /compat/stripe/v1/payment_intents` with a unique Idempotency-Key per request."""
    url = gateway_url + "/compat/stripe/v1/payment_intents"

    def make(i: int) -> Request:
        key = f"{run}-{i}"
        headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Idempotency-Key": key,
        }
        return "POST", url, headers, front_form(i, key)

    return make


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class Result:
    label: str
    sent: int = 0
    duration_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # successful (2xx) requests only
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # transport errors by type
    lag_ms: list[float] = field(default_factory=list)  # open loop: due time to actual send
    cpu_us_per_request: dict[str, float] = field(default_factory=dict)  # per server process

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def rps(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    def pct(self, p: float) -> float:
        return percentile(self.latencies_ms, p)

    def summary(self) -> dict[str, object]:
        return {
            "label": self.label, "sent": self.sent, "ok": self.ok,
            "rps": round(self.rps, 1), "duration_s": round(self.duration_s, 2),
            "p50_ms": round(self.pct(50), 3), "p90_ms": round(self.pct(90), 3),
            "p99_ms": round(self.pct(99), 3),
            "mean_ms": round(statistics.fmean(self.latencies_ms), 3) if self.latencies_ms else None,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors),
            "lag_p99_ms": round(percentile(self.lag_ms, 99), 3) if self.lag_ms else None,
        }  # fmt: skip


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _session(connections: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, force_close=False),
        timeout=aiohttp.ClientTimeout(total=30),
        skip_auto_headers=("User-Agent",),
    )


async def _one(session: aiohttp.ClientSession, req: Request, res: Result, started: float) -> None:
    method, url, headers, body = req
    try:
        async with session.request(method, url, headers=headers, data=body) as resp:
            await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        res.errors[type(exc).__name__] += 1
        return
    res.statuses[status] += 1
    if 200 <= status < 300:
        res.latencies_ms.append((time.perf_counter() - started) * 1000.0)


async def closed_loop(
    label: str, make: MakeRequest, total: int, concurrency: int, first_index: int = 0
) -> Result:
    """`total` requests from `concurrency` workers, each sending its next as soon as one returns."""
    res = Result(label)
    async with _session(concurrency) as session:
        counter = iter(range(first_index, first_index + total))

        async def worker() -> None:
            for i in counter:
                await _one(session, make(i), res, time.perf_counter())
                res.sent += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        res.duration_s = time.perf_counter() - t0
    return res


async def open_loop(
    label: str,
    make: MakeRequest,
    rate: float,
    duration_s: float,
    max_in_flight: int = 512,
    first_index: int = 0,
) -> Result:
    """Requests at a fixed arrival rate for `duration_s`."""
    res = Result(label)
    total = int(rate * duration_s)
    interval = 1.0 / rate
    async with _session(max_in_flight) as session:
        tasks: set[asyncio.Task[None]] = set()
        t0 = time.perf_counter()
        for n in range(total):
            due = t0 + n * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            res.lag_ms.append(max(0.0, (time.perf_counter() - due) * 1000.0))
            task = asyncio.create_task(
                _one(session, make(first_index + n), res, time.perf_counter())
            )
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            res.sent += 1
        if tasks:
            await asyncio.gather(*tasks)
        res.duration_s = time.perf_counter() - t0
    return res
