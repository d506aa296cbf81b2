"""The official `stripe` SDK, unchanged but for its base URL and key, against paymux's
Stripe-compatible front, with the sandbox behind it: paymux routes and fails over the payments
across every connector while the SDK sees Stripe's objects and errors."""

from __future__ import annotations

import pytest
import requests
import stripe

from tests.compat.conftest import stripe_client

CARD = {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12,
                                 "exp_year": 2034, "cvc": "123"}}  # fmt: skip


def create(client: stripe.StripeClient, **params):
    params.setdefault("amount", 2000)
    params.setdefault("currency", "eur")
    return client.v1.payment_intents.create(params=params)


def test_automatic_capture_with_raw_card_data(client, gw):
    pi = create(client, confirm=True, payment_method_data=CARD, metadata={"order": "1"},
                description="order 1")  # fmt: skip
    assert isinstance(pi, stripe.PaymentIntent)
    assert (pi.object, pi.status, pi.amount_received, pi.currency) == (
        "payment_intent", "succeeded", 2000, "eur")  # fmt: skip
    assert pi.id.startswith("pi_") and pi.payment_method.startswith("pm_")
    assert pi.latest_charge.startswith("ch_") and pi.livemode is False
    assert pi.metadata["order"] == "1" and pi.description == "order 1"
    assert pi.paymux["connector"] == "stripe" and len(pi.paymux["attempts"]) == 1
    # The card arrived at the PSP; the answer holds no PAN.
    assert gw.ledger("stripe")[0]["card"] == "424242******4242"
    assert "4242424242424242" not in str(pi.to_dict())
    assert "4242424242424242" not in gw.log.getvalue()


def test_manual_capture_partial_capture_and_partial_refunds(client):
    pi = create(client, confirm=True, payment_method="pm_card_visa", capture_method="manual")
    assert (pi.status, pi.amount_capturable) == ("requires_capture", 2000)
    pi = client.v1.payment_intents.capture(pi.id, params={"amount_to_capture": 1500})
    assert (pi.status, pi.amount_received, pi.amount_capturable) == ("succeeded", 1500, 0)
    first = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 500})
    second = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 700})
    assert (first.object, first.status, first.amount, first.payment_intent) == (
        "refund", "succeeded", 500, pi.id)  # fmt: skip
    assert client.v1.refunds.retrieve(second.id).amount == 700
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 301})
    assert exc.value.param == "amount"
    refunds = client.v1.refunds.list(params={"payment_intent": pi.id, "limit": 1})
    assert refunds.object == "list" and refunds.has_more and refunds.data[0].id == second.id
    assert [r.id for r in refunds.auto_paging_iter()] == [second.id, first.id]


def test_capture_above_capturable_names_amount_to_capture(client):
    pi = create(client, confirm=True, payment_method="pm_card_visa", capture_method="manual")
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.payment_intents.capture(pi.id, params={"amount_to_capture": 2001})
    assert exc.value.param == "amount_to_capture"


def test_cancel_an_authorization(client):
    pi = create(client, confirm=True, payment_method="pm_card_visa", capture_method="manual")
    canceled = client.v1.payment_intents.cancel(
        pi.id, params={"cancellation_reason": "requested_by_customer"}
    )
    assert canceled.status == "canceled" and canceled.canceled_at
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.payment_intents.capture(pi.id)
    assert exc.value.code == "payment_intent_unexpected_state"


def test_create_then_update_then_confirm(client):
    pi = create(client, metadata={"a": "1", "b": "2"})
    assert pi.status == "requires_payment_method" and pi.payment_method is None
    pi = client.v1.payment_intents.update(pi.id, params={"metadata": {"b": "", "c": "3"},
                                                          "description": "later"})  # fmt: skip
    assert pi.metadata.to_dict() == {"a": "1", "c": "3"} and pi.description == "later"
    pm = client.v1.payment_methods.create(params={"type": "card", "card": {
        "number": "5555555555554444", "exp_month": 12, "exp_year": 2033, "cvc": "123"}})  # fmt: skip
    assert (pm.object, pm.card.brand, pm.card.last4) == ("payment_method", "mastercard", "4444")
    assert client.v1.payment_methods.retrieve(pm.id).card.exp_year == 2033
    pi = client.v1.payment_intents.confirm(pi.id, params={"payment_method": pm.id})
    assert pi.status == "succeeded" and pi.payment_method == pm.id
    assert client.v1.payment_intents.retrieve(pi.id).amount_received == 2000


def test_decline_raises_card_error_with_decline_code(client):
    with pytest.raises(stripe.CardError) as exc:
        create(client, confirm=True, payment_method="pm_card_chargeDeclinedInsufficientFunds")
    err = exc.value
    assert err.http_status == 402
    assert (err.code, err.error.decline_code) == ("card_declined", "insufficient_funds")
    intent = err.error.payment_intent
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error.decline_code == "insufficient_funds"
    # issuer_not_now: no cascade to another PSP (the issuer declines whoever asks)
    assert [a["connector"] for a in intent.paymux["attempts"]] == ["stripe"]
    assert intent.paymux["decline_class"] == "issuer_not_now"


def test_same_key_replays_other_params_conflict(client, gw):
    options = {"idempotency_key": "order-77"}
    first = client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "eur", "confirm": True, "payment_method_data": CARD},
        options=options,
    )
    again = client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "eur", "confirm": True, "payment_method_data": CARD},
        options=options,
    )
    assert again.id == first.id
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    with pytest.raises(stripe.IdempotencyError) as exc:
        client.v1.payment_intents.create(
            params={"amount": 1001, "currency": "eur", "confirm": True,
                    "payment_method_data": CARD},
            options=options,
        )  # fmt: skip
    assert exc.value.http_status == 400
    assert len(gw.ledger("stripe")) == 1


def test_sdk_retries_never_double_charge(gw):
    client = stripe_client(gw, retries=2)
    params = {"amount": 1200, "currency": "eur", "confirm": True, "payment_method": "pm_card_visa"}
    pi = client.v1.payment_intents.create(params=dict(params))
    # The SDK sent an Idempotency-Key of its own (echoed back); its retry of the same request
    # (a lost answer, a 409, a 5xx) carries the same key and is answered by a replay.
    key = pi.last_response.idempotency_key
    assert key
    again = client.v1.payment_intents.create(params=dict(params), options={"idempotency_key": key})
    assert again.id == pi.id and again.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(gw.ledger("stripe")) == 1


def test_list_with_pagination_and_created_filter(client):
    made = [create(client, amount=1000 + i, confirm=True, payment_method="pm_card_visa").id
            for i in range(5)]  # fmt: skip
    page = client.v1.payment_intents.list(params={"limit": 2})
    assert page.object == "list" and page.url == "/v1/payment_intents" and page.has_more
    assert [p.id for p in page.data] == made[::-1][:2]
    nxt = client.v1.payment_intents.list(params={"limit": 2, "starting_after": page.data[-1].id})
    assert [p.id for p in nxt.data] == made[::-1][2:4]
    back = client.v1.payment_intents.list(params={"limit": 2, "ending_before": nxt.data[0].id})
    assert [p.id for p in back.data] == made[::-1][:2]
    assert [p.id for p in client.v1.payment_intents.list(params={"limit": 2}).auto_paging_iter()
            ] == made[::-1]  # fmt: skip
    created = page.data[0].created
    assert len(client.v1.payment_intents.list(params={"created": {"gte": created}}).data) >= 1
    assert client.v1.payment_intents.list(params={"created": {"gt": created + 5}}).data == []


def test_failover_when_the_stripe_psp_is_down(client, gw):
    gw.outage(psp="stripe", error_rate=1.0, kind="error")
    pi = create(client, confirm=True, payment_method_data=CARD)
    assert pi.status == "succeeded"
    assert pi.paymux["connector"] == "adyen"
    assert [a["connector"] for a in pi.paymux["attempts"]] == ["stripe", "adyen"]
    assert gw.ledger("adyen")[0]["card"].endswith("4242")


def test_another_merchants_intent_is_missing(client, gw):
    pi = create(client, confirm=True, payment_method="pm_card_visa")
    other = stripe_client(gw, "m_beta")
    with pytest.raises(stripe.InvalidRequestError) as exc:
        other.v1.payment_intents.retrieve(pi.id)
    assert (exc.value.http_status, exc.value.code) == (404, "resource_missing")
    pm = pi.payment_method
    with pytest.raises(stripe.InvalidRequestError) as exc:
        create(other, confirm=True, payment_method=pm)
    assert (exc.value.http_status, exc.value.code, exc.value.param) == (
        404, "resource_missing", "payment_method")  # fmt: skip


def test_authentication_errors(gw):
    bad = stripe.StripeClient("sk_test_nope", base_addresses={"api": gw.url + "/compat/stripe"},
                              max_network_retries=0)  # fmt: skip
    with pytest.raises(stripe.AuthenticationError):
        bad.v1.payment_intents.list()
    # Stripe also takes the key as HTTP Basic's user name.
    r = requests.get(gw.url + "/compat/stripe/v1/payment_intents", auth=(gw.keys["m_alpha"], ""),
                     headers={"Stripe-Version": "2023-10-16"}, timeout=5)  # fmt: skip
    assert r.status_code == 200 and r.json()["object"] == "list"
    assert r.headers["Stripe-Version"] == "2023-10-16"


def test_unknown_parameter_and_endpoint(client, gw):
    with pytest.raises(stripe.InvalidRequestError) as exc:
        create(client, confirm=True, payment_method="pm_card_visa", colour="blue")
    assert (exc.value.code, exc.value.param) == ("parameter_unknown", "colour")
    with pytest.raises(stripe.InvalidRequestError) as exc:
        create(client, payment_method_data={"type": "card", "card": {"number": "4242", "x": "1"}})
    assert exc.value.param == "payment_method_data[card][x]"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.customers.create()
    assert (exc.value.http_status, exc.value.code) == (404, "resource_missing")
