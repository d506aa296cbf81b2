"""The official `stripe` SDK, unchanged but for `api_base`, against the sandbox's Stripe dialect."""

from __future__ import annotations

import pytest
import requests
import stripe
from paymux.sandbox.scenario import DEFAULT_CREDENTIALS

KEY = DEFAULT_CREDENTIALS["stripe"]["api_key"]


@pytest.fixture
def client(sandbox):
    # The StripeClient carries its own base and key: nothing global leaks between tests.
    return stripe.StripeClient(KEY, base_addresses={"api": sandbox.url("/stripe")},
                               max_network_retries=0)  # fmt: skip


def create(client, **params):
    params.setdefault("amount", 2000)
    params.setdefault("currency", "eur")
    params.setdefault("confirm", True)
    return client.v1.payment_intents.create(params=params)


def test_manual_capture_flow_with_partial_capture_and_several_partial_refunds(client, sandbox):
    pi = create(client, payment_method="pm_card_visa", capture_method="manual",
                metadata={"paymux_reference": "att_s1"}, description="order 1")  # fmt: skip
    assert (pi.object, pi.status, pi.amount_capturable) == (
        "payment_intent",
        "requires_capture",
        2000,
    )
    assert pi.latest_charge.startswith("ch_")

    pi = client.v1.payment_intents.capture(pi.id, params={"amount_to_capture": 1500})
    assert (pi.status, pi.amount_received, pi.amount_capturable) == ("succeeded", 1500, 0)

    first = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 500})
    second = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 700})
    assert (first.object, first.status, first.amount) == ("refund", "succeeded", 500)
    assert client.v1.refunds.retrieve(second.id).amount == 700
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 301})
    assert exc.value.param == "amount"

    fetched = client.v1.payment_intents.retrieve(pi.id)
    assert fetched.metadata["paymux_reference"] == "att_s1"
    ledger = sandbox.payments("stripe")[0]
    assert (ledger["authorized"], ledger["captured"], ledger["refunded"]) == (2000, 1500, 1200)
    assert ledger["card"] == "424242******4242" and ledger["reference"] == "att_s1"


def test_automatic_capture_with_raw_card_data_succeeds(client):
    pi = create(client, payment_method_data={"type": "card", "card": {
        "number": "5555555555554444", "exp_month": 12, "exp_year": 2031, "cvc": "123"}})  # fmt: skip
    assert (pi.status, pi.amount_received) == ("succeeded", 2000)


def test_capture_above_capturable_amount_is_rejected(client):
    pi = create(client, payment_method="pm_card_visa", capture_method="manual")
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.payment_intents.capture(pi.id, params={"amount_to_capture": 2001})
    assert exc.value.param == "amount_to_capture"


def test_cancel_releases_an_authorization_but_not_a_captured_payment(client, sandbox):
    held = create(client, payment_method="pm_card_visa", capture_method="manual")
    canceled = client.v1.payment_intents.cancel(held.id)
    assert canceled.status == "canceled"
    paid = create(client, payment_method="pm_card_visa")
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.payment_intents.cancel(paid.id)
    assert exc.value.code == "payment_intent_unexpected_state"
    voided = next(p for p in sandbox.payments("stripe") if p["id"] == held.id)
    assert voided["voided"] and voided["status"] == "voided"


def test_create_then_confirm_separately(client):
    pi = client.v1.payment_intents.create(params={"amount": 999, "currency": "usd"})
    assert pi.status == "requires_payment_method"
    pi = client.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_amex"})
    assert pi.status == "succeeded"


def test_insufficient_funds_test_card_is_a_402_card_error_with_the_intent(client):
    with pytest.raises(stripe.CardError) as exc:
        create(client, payment_method="pm_card_chargeDeclinedInsufficientFunds")
    err = exc.value
    assert err.http_status == 402
    assert (err.code, err.error.decline_code) == ("card_declined", "insufficient_funds")
    intent = err.json_body["error"]["payment_intent"]
    assert intent["status"] == "requires_payment_method"
    assert intent["last_payment_error"]["decline_code"] == "insufficient_funds"


@pytest.mark.parametrize(
    ("number", "code", "decline_code"),
    [
        ("4000000000000002", "card_declined", "generic_decline"),
        ("4000000000000069", "expired_card", None),
        ("4000000000000127", "incorrect_cvc", None),
    ],
)
def test_published_decline_cards_decline_as_documented(client, number, code, decline_code):
    card = {"number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"}
    with pytest.raises(stripe.CardError) as exc:
        create(client, payment_method_data={"type": "card", "card": card})
    assert exc.value.code == code
    assert exc.value.error.decline_code == decline_code


def test_search_finds_an_intent_by_our_reference(client):
    pi = create(client, payment_method="pm_card_visa", metadata={"paymux_reference": "att_find"})
    create(client, payment_method="pm_card_visa", metadata={"paymux_reference": "att_other"})
    result = client.v1.payment_intents.search(
        params={"query": "metadata['paymux_reference']:'att_find'"}
    )
    assert [p.id for p in result.data] == [pi.id]


def test_missing_amount_is_a_parameter_missing_error(client):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.payment_intents.create(params={"currency": "eur"})
    assert (exc.value.code, exc.value.param) == ("parameter_missing", "amount")


def test_wrong_api_key_is_refused_with_401(sandbox):
    bad = stripe.StripeClient(
        "sk_test_wrong_key_123456", base_addresses={"api": sandbox.url("/stripe")}
    )
    with pytest.raises(stripe.AuthenticationError) as exc:
        bad.v1.payment_intents.retrieve("pi_x")
    assert "Invalid API Key provided" in str(exc.value)


def test_missing_api_key_is_refused_with_401(sandbox):
    response = requests.post(sandbox.url("/stripe/v1/payment_intents"), data={"amount": 1})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_same_idempotency_key_replays_the_answer_and_authorizes_once(client, sandbox):
    options = {"idempotency_key": "idem-1"}
    params = {"amount": 1200, "currency": "eur", "confirm": True, "payment_method": "pm_card_visa"}
    first = client.v1.payment_intents.create(params=params, options=options)
    again = client.v1.payment_intents.create(params=params, options=options)
    assert first.id == again.id
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert len(sandbox.payments("stripe")) == 1
    with pytest.raises(stripe.IdempotencyError):
        client.v1.payment_intents.create(params={**params, "amount": 1300}, options=options)


def test_module_level_api_base_works_too(sandbox, monkeypatch):
    monkeypatch.setattr(stripe, "api_key", KEY)
    monkeypatch.setattr(stripe, "api_base", sandbox.url("/stripe"))
    pi = stripe.PaymentIntent.create(amount=500, currency="gbp", confirm=True,
                                     payment_method="pm_card_mastercard")  # fmt: skip
    assert stripe.PaymentIntent.retrieve(pi.id).status == "succeeded"
