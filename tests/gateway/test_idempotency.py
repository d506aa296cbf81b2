"""Idempotency-Key with Stripe's semantics: replay, reuse with other parameters, in-flight use."""

from __future__ import annotations

import asyncio

from tests.gateway.conftest import card


def _body(amount: int = 1000) -> dict:
    return {"amount": amount, "currency": "EUR", "payment_method": card()}


async def test_same_key_replays_the_first_response_exactly(gateway):
    status1, first = await gateway.post("/v1/payments", _body(), idem="k-replay")
    async with gateway.session.post(
        gateway.url + "/v1/payments", json=_body(), headers=gateway.headers(idem="k-replay")
    ) as r:
        assert r.headers.get("Idempotent-Replayed") == "true"
        second = await r.json()
        status2 = r.status
    assert (status1, first) == (status2, second)
    _, listed = await gateway.get("/v1/payments")
    assert len(listed["data"]) == 1


async def test_an_error_response_is_replayed_too(gateway):
    bad = {"amount": 1000, "currency": "EUR", "payment_method": card("4000000000009995")}
    s1, r1 = await gateway.post("/v1/payments", bad, idem="k-decline")
    s2, r2 = await gateway.post("/v1/payments", bad, idem="k-decline")
    assert s1 == s2 == 402 and r1 == r2


async def test_same_key_with_different_parameters_is_rejected(gateway):
    await gateway.post("/v1/payments", _body(1000), idem="k-reuse")
    status, err = await gateway.post("/v1/payments", _body(2000), idem="k-reuse")
    assert status == 422
    assert err["error"]["code"] == "idempotency_key_reused"


async def test_keys_are_scoped_per_merchant(gateway):
    s1, a = await gateway.post("/v1/payments", _body(), idem="shared-key")
    s2, b = await gateway.post("/v1/payments", _body(), merchant="m_beta", idem="shared-key")
    assert s1 == s2 == 200 and a["id"] != b["id"]


async def test_hundred_concurrent_identical_requests_authorize_once(gateway):
    results = await asyncio.gather(
        *[gateway.post("/v1/payments", _body(4321), idem="k-burst") for _ in range(100)]
    )
    statuses = [s for s, _ in results]
    assert set(statuses) <= {200, 409}
    ok = [body for s, body in results if s == 200]
    assert ok and all(b["id"] == ok[0]["id"] for b in ok)
    conflicts = [body for s, body in results if s == 409]
    assert all(c["error"]["code"] == "idempotency_key_in_use" for c in conflicts)
    ledger = await gateway.ledger()
    authorizations = [
        p for psp in ledger["psps"].values() for p in psp["payments"] if p["amount"] == 4321
    ]
    assert len(authorizations) == 1


async def test_a_new_payments_answer_is_stored_with_its_final_state(gateway):
    """The idempotent answer is written in the payment's final transaction: as soon as the
    client has its answer, the key is completed with exactly those bytes."""
    import sqlite3

    async with gateway.session.post(
        gateway.url + "/v1/payments", json=_body(4321), headers=gateway.headers(idem="k-stored")
    ) as r:
        raw = await r.read()
        assert r.status == 200
    conn = sqlite3.connect(gateway.db_path)
    try:
        status, code, body, payment_status = conn.execute(
            "SELECT i.status, i.response_status, i.response_body, p.status FROM idempotency i "
            "JOIN payments p ON p.id = i.payment_id WHERE i.key = 'k-stored'"
        ).fetchone()
    finally:
        conn.close()
    assert (status, code, payment_status) == ("completed", 200, "succeeded")
    assert bytes(body) == raw


async def test_a_request_that_fails_validation_claims_no_key(gateway):
    """As Stripe: no result is saved for a request that never started executing, so the
    corrected request with the same key is processed."""
    bad = {"amount": -5, "currency": "EUR", "payment_method": card()}
    status, err = await gateway.post("/v1/payments", bad, idem="k-fixed")
    assert status == 400 and err["error"]["param"] == "amount"
    status, paid = await gateway.post("/v1/payments", _body(1500), idem="k-fixed")
    assert status == 200 and paid["status"] == "succeeded"
    status, again = await gateway.post("/v1/payments", _body(1500), idem="k-fixed")
    assert (status, again["id"]) == (200, paid["id"])
