"""A PSP goes down mid-burst: every payment is still answered, traffic moves, the breaker opens,
and after the outage a half-open probe closes it again."""

from __future__ import annotations

import asyncio

import pytest
from paymux.api.http import SERVICE

from tests.failover.helpers import events, eventually, payment_body, sandbox_outage

FAST_BREAKER = {
    "default_order": ["stripe", "adyen", "checkout"],
    "health": {
        "breaker_open_seconds": 0.5,
        "breaker_max_open_seconds": 1.0,
        "breaker_half_open_probes": 1,
    },
}


@pytest.mark.gateway_config(routing=FAST_BREAKER)
async def test_outage_mid_burst_moves_traffic_and_the_breaker_recovers(gw):
    router = gw.app[SERVICE].router

    async def pay(i: int) -> dict:
        status, body = await gw.post("/v1/payments", payment_body(amount=1000 + i))
        assert status == 200, body
        assert body["status"] == "succeeded"
        return body

    before = await asyncio.gather(*(pay(i) for i in range(10)))
    assert {p["connector"] for p in before} == {"stripe"}

    await sandbox_outage(gw, psp="stripe", error_rate=1.0, kind="error")
    burst: list[dict] = []
    for wave in range(5):  # a burst arriving over time: 5 waves of 8 concurrent payments
        burst += await asyncio.gather(*(pay(100 + 10 * wave + i) for i in range(8)))
    assert all(p["connector"] in ("adyen", "checkout") for p in burst)
    firsts = [p["attempts"][0]["connector"] for p in burst]
    # The breaker opened after a handful of technical failures: later payments skip Stripe.
    assert firsts[:8] == ["stripe"] * 8  # the first wave had no evidence yet
    assert firsts.count("stripe") <= 16, firsts
    assert router.breaker_states()["stripe"] in ("open", "half_open")
    skipped = [p for p in burst if p["attempts"][0]["connector"] == "adyen"]
    assert skipped
    created = await gw.get(f"/v1/payments/{skipped[-1]['id']}")
    assert created[0] == 200

    await sandbox_outage(gw, psp="stripe", clear=True)

    async def recovered() -> bool:
        status, body = await gw.post("/v1/payments", payment_body(amount=3000))
        assert status == 200 and body["status"] == "succeeded", body
        return body["connector"] == "stripe" and router.breaker_states()["stripe"] == "closed"

    await eventually(recovered, timeout_s=10, every_s=0.2)
    after = await asyncio.gather(*(pay(200 + i) for i in range(5)))
    assert {p["connector"] for p in after} == {"stripe"}
    assert all(len(p["attempts"]) == 1 for p in after)


DYNAMIC_FAST_BREAKER = {
    "default": {"strategy": "dynamic", "connectors": ["stripe", "adyen", "checkout"]},
    "dynamic": {"exploration": 0.0, "seed": 1},
    "health": FAST_BREAKER["health"],
}


@pytest.mark.gateway_config(routing=DYNAMIC_FAST_BREAKER)
async def test_outage_under_dynamic_routing_excludes_the_psp_and_probes_it_back(gw):
    router = gw.app[SERVICE].router
    await sandbox_outage(gw, psp="stripe", error_rate=1.0, kind="error")
    answered: list[dict] = []
    for wave in range(5):
        bodies = await asyncio.gather(
            *(gw.post("/v1/payments", payment_body(amount=5000 + 10 * wave + i)) for i in range(8))
        )
        assert all(status == 200 and b["status"] == "succeeded" for status, b in bodies)
        answered += [b for _, b in bodies]
    assert all(p["connector"] != "stripe" for p in answered)
    assert router.breaker_states()["stripe"] in ("open", "half_open")
    last = answered[-1]
    created = next(e for e in events(gw.db_path, last["id"]) if e["type"] == "payment.created")
    assert created["data"]["strategy"] == "dynamic"
    assert {e["connector"] for e in created["data"]["estimates"]} >= {"adyen", "checkout"}
    if "stripe" in created["data"].get("excluded", {}):
        assert created["data"]["excluded"]["stripe"].startswith("breaker_")

    await sandbox_outage(gw, psp="stripe", clear=True)

    async def closed() -> bool:
        status, body = await gw.post("/v1/payments", payment_body(amount=7000))
        assert status == 200 and body["status"] == "succeeded"
        return router.breaker_states()["stripe"] == "closed"

    await eventually(closed, timeout_s=10, every_s=0.2)
