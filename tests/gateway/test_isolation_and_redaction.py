"""Merchants never see each other's objects; card numbers and CVVs never reach logs or disk."""

from __future__ import annotations

import re

from tests.gateway.conftest import card

CARDS = ["4242424242424242", "5555555555554444", "378282246310005", "4000000000009995"]
CVCS = ["907", "4816", "392"]


async def test_another_merchants_payment_is_not_found(gateway):
    _, pay = await gateway.post(
        "/v1/payments",
        {"amount": 900, "currency": "EUR", "payment_method": card(), "capture_method": "manual"},
    )
    for method, path, body in [
        ("get", f"/v1/payments/{pay['id']}", None),
        ("post", f"/v1/payments/{pay['id']}/capture", {}),
        ("post", f"/v1/payments/{pay['id']}/cancel", {}),
        ("post", "/v1/refunds", {"payment_id": pay["id"]}),
    ]:
        if method == "get":
            status, err = await gateway.get(path, merchant="m_beta")
        else:
            status, err = await gateway.post(path, body, merchant="m_beta")
        assert status == 404, (path, err)
        assert err["error"]["code"] == "resource_missing"
    _, listed = await gateway.get("/v1/payments", merchant="m_beta")
    assert listed["data"] == []
    _, still = await gateway.get(f"/v1/payments/{pay['id']}")
    assert still["status"] == "requires_capture"


async def test_another_merchants_token_and_refund_are_not_found(gateway):
    _, tok = await gateway.post("/v1/tokens", {"card": card()["card"]})
    status, _ = await gateway.post(
        "/v1/payments",
        {"amount": 100, "currency": "EUR", "payment_method": {"token": tok["id"]}},
        merchant="m_beta",
    )
    assert status == 404
    async with gateway.session.delete(
        f"{gateway.url}/v1/tokens/{tok['id']}", headers=gateway.headers("m_beta")
    ) as r:
        assert r.status == 404
    _, pay = await gateway.post(
        "/v1/payments", {"amount": 100, "currency": "EUR", "payment_method": {"token": tok["id"]}}
    )
    _, refund = await gateway.post("/v1/refunds", {"payment_id": pay["id"], "amount": 50})
    status, _ = await gateway.get(f"/v1/refunds/{refund['id']}", merchant="m_beta")
    assert status == 404


async def test_no_pan_or_cvv_in_logs_responses_or_database(gateway):
    bodies = []
    for number in CARDS:
        for cvc in CVCS:
            if number.startswith("37") != (len(cvc) == 4):
                continue
            _, body = await gateway.post(
                "/v1/payments",
                {"amount": 1500, "currency": "EUR", "payment_method": card(number, cvc)},
            )
            bodies.append(str(body))
            _, tok = await gateway.post("/v1/tokens", {"card": card(number, cvc)["card"]})
            bodies.append(str(tok))
    # bad input must not echo the number either
    _, err = await gateway.post(
        "/v1/payments",
        {"amount": 1500, "currency": "EUR", "payment_method": card("4242424242424241", "907")},
    )
    bodies.append(str(err))
    db_bytes = b""
    for suffix in ("", "-wal"):
        path = gateway.db_path.with_name(gateway.db_path.name + suffix)
        if path.exists():
            db_bytes += path.read_bytes()
    logs = gateway.log.getvalue()
    assert logs, "the traffic produced no log lines to check"
    responses = "\n".join(bodies)
    for secret in CARDS + ["4242424242424241"] + CVCS:
        # Standalone only: a 3-digit CVC occurs by chance inside hex ids and timestamps.
        pattern = rf"(?<![0-9A-Za-z.]){secret}(?![0-9A-Za-z.])"
        for where, text in (("logs", logs), ("responses", responses)):
            assert not re.search(pattern, text), f"{secret[:6]}... found in {where}"
        assert not re.search(pattern.encode(), db_bytes), f"{secret[:6]}... found in the database"
