"""The outage goal on the gateway's own path: the real gateway (dynamic routing, the payment flow
calling `Router.attempt_started` / `Router.observe`), the real sandbox, a PSP that goes down under a
steady stream of payments. Measured in seconds of traffic (printed); asserted on counts of first
attempts per PSP, never on a time: on a slow machine the stream is slower but the counts hold.

The benchmark's simulator drives the same `Router` methods (benchmarks/routing/simulator.py), so
the two cannot drift apart.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from paymux.api.http import SERVICE

from tests.failover.helpers import eventually, payment_body, sandbox_outage

NAMES = ["stripe", "adyen", "checkout"]
DYNAMIC = {
    "default": {"strategy": "dynamic", "connectors": NAMES},
    "dynamic": {"seed": 1},
}
RATE = 40.0  # payments per second
STREAM_S = 5.0


async def _stream(gw: Any, n: int, amount0: int) -> list[tuple[float, dict[str, Any]]]:
    """`n` payments sent at RATE per second, each with its send time (monotonic)."""

    async def one(i: int) -> tuple[float, dict[str, Any]]:
        sent = time.monotonic()
        status, body = await gw.post("/v1/payments", payment_body(amount=amount0 + i))
        assert status in (200, 202), body
        return sent, body

    tasks = []
    t0 = time.monotonic()
    for i in range(n):
        delay = t0 + i / RATE - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    return list(await asyncio.gather(*tasks))


@pytest.mark.parametrize("kind", ["timeout", "error"])
@pytest.mark.gateway_config(routing=DYNAMIC)
async def test_a_dead_psp_loses_its_traffic_on_the_gateway_path(gw, kind):
    router = gw.app[SERVICE].router
    warm = await _stream(gw, 60, 1000)  # learn who is best for these payments
    assert all(b["status"] == "succeeded" for _, b in warm)
    firsts = [b["attempts"][0]["connector"] for _, b in warm[-20:]]
    dead = max(set(firsts), key=firsts.count)

    await sandbox_outage(gw, psp=dead, error_rate=1.0, kind=kind)
    start = time.monotonic()
    n = int(RATE * STREAM_S)
    sent = await _stream(gw, n, 5000)
    await sandbox_outage(gw, psp=dead, clear=True)

    to_dead = [(t - start, b) for t, b in sent if b["attempts"][0]["connector"] == dead]
    last = max((t for t, _ in to_dead), default=0.0)
    # seconds of traffic until every later 1-s window sends < 1% of first attempts to the PSP
    window = sorted(t - start for t, _ in sent)
    cut = 0.0
    for t_dead, _ in to_dead:
        later = [t for t in window if t_dead - 1.0 < t <= t_dead]
        if later and 1 / len(later) >= 0.01:
            cut = max(cut, t_dead)
    print(
        f"\n[{kind}] {dead} down: {len(to_dead)} of {n} payments tried it first; the last one "
        f"{last:.2f} s after the outage began (every later 1-s window < 1%: {cut:.2f} s); "
        f"breaker {router.breaker_states()[dead]}; stream lasted "
        f"{max(t for t, _ in sent) - start:.1f} s"
    )
    # Counts: the dead PSP got first attempts only early in the stream, never in its second
    # half; the second half was answered elsewhere (a slow shared machine may time out a live
    # PSP now and then: such a payment waits for the reconciler, it is not sent to the dead one).
    second = [b for _, b in sent[n // 2 :]]
    assert sum(b["attempts"][0]["connector"] == dead for b in second) == 0
    assert len(to_dead) <= n // 2
    settled = [b for b in second if b["status"] == "succeeded"]
    assert len(settled) >= 0.9 * len(second)
    assert {b["connector"] for b in settled} <= set(NAMES) - {dead}

    # Let the reconciler settle what waits on an unanswered attempt (the ledger check after the
    # test wants every authorization on a settled payment).
    waiting = [b["id"] for _, b in warm + sent if b["status"] == "processing"]

    async def settled_all() -> bool:
        for pid in list(waiting):
            status, body = await gw.get(f"/v1/payments/{pid}")
            assert status == 200
            if body["status"] == "processing":
                return False
            waiting.remove(pid)
        return True

    await eventually(settled_all, timeout_s=60, every_s=0.5)
