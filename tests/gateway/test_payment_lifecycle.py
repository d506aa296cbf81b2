"""The whole payment lifecycle through /v1, against each of the three sandbox PSPs."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import card

CONNECTORS = ["stripe", "adyen", "checkout"]


@pytest.mark.parametrize("connector", CONNECTORS)
async def test_automatic_capture_payment_succeeds_and_reads_back(gateway, connector):
    status, pay = await gateway.post(
        "/v1/payments",
        {
            "amount": 1999,
            "currency": "EUR",
            "payment_method": card(),
            "connector": connector,
            "reference": "order-1",
            "billing": {"country": "DE"},
            "metadata": {"cart": "42"},
        },
    )
    assert status == 200, pay
    assert pay["status"] == "succeeded"
    assert pay["connector"] == connector
    assert pay["amount_received"] == 1999 and pay["amount_capturable"] == 0
    assert pay["card"] == {
        "brand": "visa",
        "bin": "42424242",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": 2034,
    }
    assert pay["connector_reference"]
    assert [a["outcome"] for a in pay["attempts"]] == ["captured"]
    status, again = await gateway.get(f"/v1/payments/{pay['id']}")
    assert status == 200 and again == pay
    ledger = await gateway.ledger()
    assert pay["connector_reference"] in str(ledger)


@pytest.mark.parametrize("connector", CONNECTORS)
async def test_manual_capture_partial_then_two_partial_refunds(gateway, connector):
    status, pay = await gateway.post(
        "/v1/payments",
        {
            "amount": 5000,
            "currency": "USD",
            "payment_method": card("5555555555554444"),
            "capture_method": "manual",
            "connector": connector,
        },
    )
    assert status == 200, pay
    assert pay["status"] == "requires_capture" and pay["amount_capturable"] == 5000
    status, captured = await gateway.post(f"/v1/payments/{pay['id']}/capture", {"amount": 4000})
    assert status == 200, captured
    assert captured["status"] == "succeeded"
    assert captured["amount_received"] == 4000 and captured["amount_capturable"] == 0
    for amount in (1500, 2500):
        status, refund = await gateway.post(
            "/v1/refunds", {"payment_id": pay["id"], "amount": amount}
        )
        assert status == 200, refund
        assert refund["amount"] == amount and refund["status"] in ("succeeded", "pending")
        status, fetched = await gateway.get(f"/v1/refunds/{refund['id']}")
        assert status == 200 and fetched["id"] == refund["id"]
    status, after = await gateway.get(f"/v1/payments/{pay['id']}")
    assert after["amount_refunded"] == 4000
    status, err = await gateway.post("/v1/refunds", {"payment_id": pay["id"], "amount": 1})
    assert status == 400 and err["error"]["code"] == "refund_exceeds_captured"


@pytest.mark.parametrize("connector", CONNECTORS)
async def test_cancel_voids_an_uncaptured_authorization(gateway, connector):
    _, pay = await gateway.post(
        "/v1/payments",
        {
            "amount": 700,
            "currency": "GBP",
            "payment_method": card(),
            "capture_method": "manual",
            "connector": connector,
        },
    )
    status, canceled = await gateway.post(f"/v1/payments/{pay['id']}/cancel", {})
    assert status == 200, canceled
    assert canceled["status"] == "canceled" and canceled["amount_capturable"] == 0
    status, err = await gateway.post(f"/v1/payments/{pay['id']}/capture", {})
    assert status == 409 and err["error"]["code"] == "payment_unexpected_state"
    status, err = await gateway.post("/v1/refunds", {"payment_id": pay["id"]})
    assert status == 400 and err["error"]["code"] == "payment_not_refundable"


async def test_capture_above_authorized_amount_is_rejected(gateway):
    _, pay = await gateway.post(
        "/v1/payments",
        {"amount": 1000, "currency": "EUR", "payment_method": card(), "capture_method": "manual"},
    )
    status, err = await gateway.post(f"/v1/payments/{pay['id']}/capture", {"amount": 1001})
    assert status == 400 and err["error"]["code"] == "amount_too_large"
    assert err["error"]["param"] == "amount"
    _, still = await gateway.get(f"/v1/payments/{pay['id']}")
    assert still["status"] == "requires_capture"


async def test_issuer_decline_fails_the_payment_with_normalized_error(gateway):
    status, pay = await gateway.post(
        "/v1/payments",
        {"amount": 1000, "currency": "EUR", "payment_method": card("4000000000009995")},
    )
    assert status == 402
    assert pay["status"] == "failed"
    assert pay["error"]["code"] == "insufficient_funds"
    assert pay["error"]["decline_class"] == "issuer_not_now"
    assert pay["error"]["raw_code"]
    # issuer_not_now never cascades: the issuer would say the same to every PSP
    assert len(pay["attempts"]) == 1


async def test_paying_with_a_token_reuses_the_vaulted_card(gateway):
    status, tok = await gateway.post("/v1/tokens", {"card": card()["card"]})
    assert status == 200, tok
    assert tok["id"].startswith("tok_") and tok["card"]["last4"] == "4242"
    _, tok2 = await gateway.post("/v1/tokens", {"card": card()["card"]})
    assert tok2["fingerprint"] == tok["fingerprint"] and tok2["id"] != tok["id"]
    _, other = await gateway.post("/v1/tokens", {"card": card()["card"]}, merchant="m_beta")
    assert other["fingerprint"] != tok["fingerprint"]
    status, pay = await gateway.post(
        "/v1/payments", {"amount": 1234, "currency": "EUR", "payment_method": {"token": tok["id"]}}
    )
    assert status == 200 and pay["status"] == "succeeded", pay
    async with gateway.session.delete(
        f"{gateway.url}/v1/tokens/{tok['id']}", headers=gateway.headers()
    ) as r:
        assert r.status == 200
    status, err = await gateway.post(
        "/v1/payments", {"amount": 1234, "currency": "EUR", "payment_method": {"token": tok["id"]}}
    )
    assert status == 404 and err["error"]["code"] == "resource_missing"


async def test_list_payments_paginates_with_a_cursor_and_filters(gateway):
    ids = []
    for i in range(5):
        _, pay = await gateway.post(
            "/v1/payments",
            {
                "amount": 100 + i,
                "currency": "EUR",
                "payment_method": card(),
                "capture_method": "manual" if i % 2 else "automatic",
            },
        )
        ids.append(pay["id"])
    status, page1 = await gateway.get("/v1/payments?limit=2")
    assert status == 200 and page1["has_more"] is True
    assert [p["id"] for p in page1["data"]] == ids[::-1][:2]
    _, page2 = await gateway.get(f"/v1/payments?limit=2&starting_after={page1['next_cursor']}")
    assert [p["id"] for p in page2["data"]] == ids[::-1][2:4]
    _, manual = await gateway.get("/v1/payments?status=requires_capture")
    assert sorted(p["id"] for p in manual["data"]) == sorted([ids[1], ids[3]])
    status, err = await gateway.get("/v1/payments?limit=1000")
    assert status == 400 and err["error"]["param"] == "limit"


async def test_openapi_document_describes_the_payments_api(gateway):
    async with gateway.session.get(gateway.url + "/openapi.json") as r:
        doc = await r.json()
    assert doc["openapi"].startswith("3.")
    assert "/v1/payments" in doc["paths"]
    assert "CreatePayment" in doc["components"]["schemas"]
    assert (
        doc["components"]["schemas"]["CreatePayment"]["properties"]["amount"]["type"] == "integer"
    )
