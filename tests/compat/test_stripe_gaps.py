"""The Stripe front's fields beyond the payment flow's own, driven by the official `stripe` SDK:
livemode from the key's mode, statement_descriptor / return_url / cancellation_reason / refund
metadata kept and echoed (in reserved ``paymux_`` metadata keys the merchant never sees),
refunds listed without a payment_intent, PaymentMethod create honouring Idempotency-Key, and
``expand[]`` of latest_charge and payment_method."""

from __future__ import annotations

import pytest
import stripe
from paymux.api.app import new_api_key_secret

from tests.compat.conftest import stripe_client

CARD = {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12,
                                 "exp_year": 2034, "cvc": "123"}}  # fmt: skip


def create(client: stripe.StripeClient, **params):
    params.setdefault("amount", 2000)
    params.setdefault("currency", "eur")
    return client.v1.payment_intents.create(params=params)


def test_livemode_follows_the_keys_mode(gw, client):
    gw.add_key("m_alpha:live", new_api_key_secret("live"))
    live = stripe_client(gw, "m_alpha:live")
    pi = create(live, confirm=True, payment_method="pm_card_visa")
    assert pi.livemode is True and "paymux_livemode" not in pi.metadata
    # The intent keeps the mode it was made in, whichever key reads it (as Stripe's objects).
    assert client.v1.payment_intents.retrieve(pi.id).livemode is True
    assert create(client, confirm=True, payment_method="pm_card_visa").livemode is False
    pm = live.v1.payment_methods.create(params={"type": "card", "card": CARD["card"]})
    assert pm.livemode is True
    assert client.v1.payment_methods.retrieve(pm.id).livemode is False
    refund = live.v1.refunds.create(params={"payment_intent": pi.id, "amount": 100})
    assert refund.livemode is True


def test_statement_descriptor_return_url_and_cancellation_reason_are_kept(client):
    pi = create(client, confirm=True, payment_method="pm_card_visa", capture_method="manual",
                statement_descriptor="SHOP ORDER 7", return_url="https://shop.example/back",
                metadata={"order": "7"})  # fmt: skip
    assert pi.statement_descriptor == "SHOP ORDER 7"
    assert pi.paymux["return_url"] == "https://shop.example/back"
    assert pi.metadata.to_dict() == {"order": "7"}  # the reserved keys stay hidden
    assert pi.cancellation_reason is None
    canceled = client.v1.payment_intents.cancel(pi.id, params={"cancellation_reason": "duplicate"})
    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "duplicate")
    again = client.v1.payment_intents.retrieve(pi.id)
    assert (again.statement_descriptor, again.cancellation_reason) == ("SHOP ORDER 7", "duplicate")
    # Updating metadata (even clearing it) keeps what paymux keeps for itself.
    cleared = client.v1.payment_intents.update(pi.id, params={"metadata": ""})
    assert cleared.metadata.to_dict() == {} and cleared.statement_descriptor == "SHOP ORDER 7"
    assert cleared.cancellation_reason == "duplicate"


def test_return_url_given_at_confirmation(client):
    pi = create(client)
    pi = client.v1.payment_intents.confirm(pi.id, params={
        "payment_method": "pm_card_visa", "return_url": "https://shop.example/done"})  # fmt: skip
    assert pi.status == "succeeded" and pi.paymux["return_url"] == "https://shop.example/done"


def test_bad_descriptor_and_reserved_metadata_keys_are_refused(client):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        create(client, confirm=True, payment_method="pm_card_visa",
               statement_descriptor="X" * 23)  # fmt: skip
    assert exc.value.param == "statement_descriptor"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        create(client, metadata={"paymux_livemode": "true"})
    assert exc.value.param == "metadata[paymux_livemode]"
    assert client.v1.payment_intents.list().data == []  # nothing stored half-way


def test_refund_metadata_is_kept_echoed_and_replayed(client, gw):
    pi = create(client, confirm=True, payment_method="pm_card_visa")
    options = {"idempotency_key": "refund-meta-1"}
    refund = client.v1.refunds.create(
        params={"payment_intent": pi.id, "amount": 300, "metadata": {"ticket": "T-9"}},
        options=options,
    )
    assert refund.metadata.to_dict() == {"ticket": "T-9"}
    replay = client.v1.refunds.create(
        params={"payment_intent": pi.id, "amount": 300, "metadata": {"ticket": "T-9"}},
        options=options,
    )
    assert replay.id == refund.id and replay.metadata.to_dict() == {"ticket": "T-9"}
    assert replay.last_response.headers.get("Idempotent-Replayed") == "true"
    assert client.v1.refunds.retrieve(refund.id).metadata.to_dict() == {"ticket": "T-9"}
    listed = client.v1.refunds.list(params={"payment_intent": pi.id})
    assert listed.data[0].metadata.to_dict() == {"ticket": "T-9"}
    # The intent's own metadata does not show the refund's.
    assert client.v1.payment_intents.retrieve(pi.id).metadata.to_dict() == {}


def test_refunds_listed_without_payment_intent(client, gw):
    one = create(client, confirm=True, payment_method="pm_card_visa")
    two = create(client, confirm=True, payment_method="pm_card_visa")
    create(client, confirm=True, payment_method="pm_card_visa")  # never refunded
    r1 = client.v1.refunds.create(params={"payment_intent": one.id, "amount": 100})
    r2 = client.v1.refunds.create(params={"payment_intent": two.id, "amount": 200})
    r3 = client.v1.refunds.create(params={"payment_intent": one.id, "amount": 300})
    page = client.v1.refunds.list(params={"limit": 2})
    assert [r.id for r in page.data] == [r3.id, r2.id] and page.has_more
    assert [r.id for r in page.auto_paging_iter()] == [r3.id, r2.id, r1.id]
    # Another merchant sees none of them.
    assert stripe_client(gw, "m_beta").v1.refunds.list().data == []


def test_payment_method_create_honours_idempotency_key(client, gw):
    params = {"type": "card", "card": CARD["card"]}
    first = client.v1.payment_methods.create(params=params, options={"idempotency_key": "pm-1"})
    again = client.v1.payment_methods.create(params=params, options={"idempotency_key": "pm-1"})
    assert again.id == first.id
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    other = client.v1.payment_methods.create(params=params, options={"idempotency_key": "pm-2"})
    assert other.id != first.id
    with pytest.raises(stripe.IdempotencyError) as exc:
        client.v1.payment_methods.create(
            params={"type": "card", "card": {**CARD["card"], "exp_month": 11}},
            options={"idempotency_key": "pm-1"},
        )
    assert exc.value.http_status == 400
    # The replayed answer holds no PAN either.
    assert "4242424242424242" not in again.last_response.body


def test_expand_latest_charge_and_payment_method(client):
    pi = client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "eur", "confirm": True,
                "payment_method": "pm_card_visa", "expand": ["latest_charge", "payment_method"]},
        options={"idempotency_key": "expand-1"},
    )  # fmt: skip
    assert isinstance(pi.latest_charge, stripe.Charge)
    charge = pi.latest_charge
    assert (charge.object, charge.status, charge.paid, charge.captured) == (
        "charge", "succeeded", True, True)  # fmt: skip
    assert charge.amount_captured == 2000 and charge.payment_intent == pi.id
    assert isinstance(pi.payment_method, stripe.PaymentMethod)
    assert pi.payment_method.card.last4 == "4242"
    # A replay of the same request is expanded too.
    replay = client.v1.payment_intents.create(
        params={"amount": 2000, "currency": "eur", "confirm": True,
                "payment_method": "pm_card_visa", "expand": ["latest_charge", "payment_method"]},
        options={"idempotency_key": "expand-1"},
    )  # fmt: skip
    assert replay.id == pi.id and isinstance(replay.latest_charge, stripe.Charge)
    got = client.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]})
    assert isinstance(got.latest_charge, stripe.Charge) and isinstance(got.payment_method, str)
    listed = client.v1.payment_intents.list(params={"expand": ["data.payment_method"]})
    assert isinstance(listed.data[0].payment_method, stripe.PaymentMethod)
    refunded = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 500})
    got = client.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]})
    assert got.latest_charge.amount_refunded == 500 and got.latest_charge.refunded is False
    assert refunded.status == "succeeded"


def test_expand_of_a_declined_payments_charge_and_unknown_paths(client):
    with pytest.raises(stripe.CardError) as exc:
        create(client, confirm=True, payment_method="pm_card_chargeDeclinedInsufficientFunds")
    intent = exc.value.error.payment_intent
    got = client.v1.payment_intents.retrieve(intent["id"], params={"expand": ["latest_charge"]})
    assert (got.latest_charge.status, got.latest_charge.failure_code) == ("failed", "card_declined")
    assert got.latest_charge.outcome.reason == "insufficient_funds"
    with pytest.raises(stripe.InvalidRequestError) as bad:
        client.v1.payment_intents.retrieve(intent["id"], params={"expand": ["nonsense"]})
    assert bad.value.param == "expand"
    # A null field Stripe can expand stays null.
    assert client.v1.payment_intents.retrieve(
        intent["id"], params={"expand": ["customer"]}).customer is None  # fmt: skip
