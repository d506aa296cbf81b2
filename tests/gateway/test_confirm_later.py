"""Payments created unconfirmed (what a drop-in front's PaymentIntent without confirm=true is):
stored in requires_confirmation with nothing sent to any PSP, then confirmed, updated or
canceled through the same flow and state machine as /v1."""

from __future__ import annotations

import msgspec
import orjson
import pytest
from paymux.api.http import SERVICE
from paymux.domain import commands
from paymux.domain.errors import Refusal

from tests.gateway.conftest import card


def _create(amount: int = 1200, method: dict | None = None) -> commands.CreatePayment:
    return msgspec.convert(
        {"amount": amount, "currency": "EUR", "payment_method": method or {}},
        commands.CreatePayment,
    )


async def _psp_requests(gateway) -> int:
    ledger = await gateway.ledger()
    return sum(p["stats"]["requests"] for p in ledger["psps"].values())


async def test_unconfirmed_payment_reaches_no_psp_until_confirmed(gateway):
    service = gateway.app[SERVICE]
    before = await _psp_requests(gateway)
    status, body = await service.create_payment("m_alpha", _create(), None, confirm=False)
    created = orjson.loads(body)
    assert created["status"] == "requires_confirmation" and created["card"] is None
    assert await _psp_requests(gateway) == before

    updated = await service.update_payment(
        "m_alpha", created["id"], metadata={"order": "7"}, description="Order 7"
    )
    assert updated.metadata == {"order": "7"} and updated.description == "Order 7"

    method = msgspec.convert(card(), commands.PaymentMethodInput)
    status, body = await service.confirm_payment("m_alpha", created["id"], method, None)
    confirmed = orjson.loads(body)
    assert status == 200 and confirmed["status"] == "succeeded", confirmed
    assert confirmed["metadata"] == {"order": "7"}
    assert confirmed["card"]["last4"] == "4242"
    _, read = await gateway.get(f"/v1/payments/{created['id']}")
    assert read["status"] == "succeeded" and read["amount_received"] == 1200

    with pytest.raises(Refusal) as second:
        await service.confirm_payment("m_alpha", created["id"], None, None)
    assert second.value.code == "payment_unexpected_state"


async def test_confirm_uses_the_card_given_at_creation(gateway):
    service = gateway.app[SERVICE]
    _, body = await service.create_payment(
        "m_alpha", _create(method=card("5555555555554444")), None, confirm=False
    )
    created = orjson.loads(body)
    assert created["status"] == "requires_confirmation"
    assert created["card"]["last4"] == "4444"
    status, body = await service.confirm_payment("m_alpha", created["id"], None, None)
    assert status == 200 and orjson.loads(body)["status"] == "succeeded"


async def test_confirm_without_any_payment_method_is_refused(gateway):
    service = gateway.app[SERVICE]
    _, body = await service.create_payment("m_alpha", _create(), None, confirm=False)
    with pytest.raises(Refusal) as refused:
        await service.confirm_payment("m_alpha", orjson.loads(body)["id"], None, None)
    assert refused.value.code == "parameter_missing"


async def test_canceling_an_unconfirmed_payment_calls_no_psp(gateway):
    service = gateway.app[SERVICE]
    _, body = await service.create_payment("m_alpha", _create(), None, confirm=False)
    payment_id = orjson.loads(body)["id"]
    before = await _psp_requests(gateway)
    status, body = await service.cancel("m_alpha", payment_id, None)
    assert status == 200 and orjson.loads(body)["status"] == "canceled"
    assert await _psp_requests(gateway) == before
    with pytest.raises(Refusal):
        await service.confirm_payment("m_alpha", payment_id, None, None)


async def test_another_merchants_unconfirmed_payment_is_not_found(gateway):
    service = gateway.app[SERVICE]
    _, body = await service.create_payment("m_alpha", _create(), None, confirm=False)
    with pytest.raises(Refusal) as refused:
        await service.confirm_payment("m_beta", orjson.loads(body)["id"], None, None)
    assert refused.value.code == "resource_missing"
