"""A connector's declared capabilities are honoured: what it cannot do is refused clearly (or,
for a 3-D Secure challenge it cannot complete, taken elsewhere), never attempted."""

from __future__ import annotations

import msgspec
import pytest
from paymux.api.http import SERVICE

from tests.gateway.conftest import card

CHALLENGE_CARD = "4000000000003220"  # Stripe's published 3DS2 "challenge required" test card


def _limit(gateway, connector: str, **changes) -> None:
    instance = gateway.app[SERVICE].connectors[connector]
    instance.capabilities = msgspec.structs.replace(instance.capabilities, **changes)


async def _authorized(gateway, connector: str, amount: int = 5000) -> dict:
    status, pay = await gateway.post(
        "/v1/payments",
        {
            "amount": amount,
            "currency": "EUR",
            "payment_method": card(),
            "capture_method": "manual",
            "connector": connector,
        },
    )
    assert status == 200 and pay["status"] == "requires_capture", pay
    return pay


@pytest.mark.parametrize("connector", ["stripe", "adyen", "checkout"])
async def test_partial_capture_on_a_connector_that_cannot_is_a_clear_400(gateway, connector):
    pay = await _authorized(gateway, connector)
    _limit(gateway, connector, partial_capture=False)
    status, err = await gateway.post(f"/v1/payments/{pay['id']}/capture", {"amount": 1000})
    assert status == 400, err
    assert err["error"]["code"] == "partial_capture_unsupported"
    assert err["error"]["param"] == "amount"
    # nothing happened: the authorization stands and the full capture still works
    _, now = await gateway.get(f"/v1/payments/{pay['id']}")
    assert now["status"] == "requires_capture" and now["amount_capturable"] == 5000
    ledger = await gateway.ledger()
    assert all(p["captured"] == 0 for p in ledger["psps"][connector]["payments"])
    status, captured = await gateway.post(f"/v1/payments/{pay['id']}/capture", {})
    assert status == 200 and captured["amount_received"] == 5000


async def test_second_refund_on_a_connector_without_multiple_refunds_is_refused(gateway):
    pay = await _authorized(gateway, "adyen")
    status, _ = await gateway.post(f"/v1/payments/{pay['id']}/capture", {})
    assert status == 200
    _limit(gateway, "adyen", multiple_refunds=False)
    status, first = await gateway.post("/v1/refunds", {"payment_id": pay["id"], "amount": 1000})
    assert status == 200 and first["status"] == "succeeded", first
    status, err = await gateway.post("/v1/refunds", {"payment_id": pay["id"], "amount": 1000})
    assert status == 400 and err["error"]["code"] == "multiple_refunds_unsupported"
    _, now = await gateway.get(f"/v1/payments/{pay['id']}")
    assert now["amount_refunded"] == 1000


async def test_a_challenge_from_a_connector_without_3ds_is_not_left_waiting(gateway):
    _limit(gateway, "stripe", three_ds=False)
    status, pay = await gateway.post(
        "/v1/payments",
        {
            "amount": 1500,
            "currency": "EUR",
            "payment_method": card(CHALLENGE_CARD),
            "connector": "stripe",
        },
    )
    # Pinned to the one connector: nowhere else to go, so it fails with a clear code instead of
    # sitting in requires_action with a challenge nobody can complete.
    assert status == 402, pay
    assert pay["status"] == "failed"
    assert pay["error"]["code"] == "three_ds_unsupported"
    assert pay["error"]["decline_class"] == "soft_route"
