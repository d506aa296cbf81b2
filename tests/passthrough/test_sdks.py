"""The official `stripe`, `Adyen` and `checkout-sdk` SDKs, unchanged but for their base URL
and key (a paymux key in each PSP's shape), through `/proxy/<connector>` to the sandbox: they pay
with a paymux token, the sandbox receives the real card, the merchant side sees no PAN, and the
answers feed paymux's health windows and metrics."""

from __future__ import annotations

import warnings

import Adyen
import pytest
import requests
import stripe
from checkout_sdk.checkout_sdk import CheckoutSdk
from checkout_sdk.environment import Environment
from checkout_sdk.exception import CheckoutApiException
from checkout_sdk.payments.payments import PaymentRequest, PaymentRequestCardSource

from tests.passthrough.conftest import vault

PAN = "4242424242424242"


def stripe_client(gw, key="m_alpha:stripe"):
    return stripe.StripeClient(gw.keys[key], base_addresses={"api": gw.url + "/proxy/stripe"},
                               max_network_retries=0)  # fmt: skip


def adyen_payments(gw, key="m_alpha:adyen"):
    client = Adyen.Adyen()
    client.client.xapikey = gw.keys[key]
    client.client.platform = "test"
    payments = client.checkout.payments_api
    payments.baseUrl = gw.url + "/proxy/adyen/v72"
    return payments


def checkout_api(gw, key="m_alpha:checkout"):
    base = gw.url + "/proxy/checkout"
    env = Environment(base_uri=base + "/", authorization_uri=base + "/connect/token",
                      files_uri=base, transfers_uri=base, balances_uri=base, forward_uri=base,
                      identity_uri=base, is_sandbox=True)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return (
            CheckoutSdk.builder().secret_key(gw.keys[key]).environment(env)
            .use_legacy_domain().build()
        )  # fmt: skip


def no_pan_anywhere(gw, *answers) -> None:
    for answer in answers:
        assert PAN not in str(answer)
    assert PAN not in gw.log.getvalue()


def test_stripe_sdk_pays_with_a_token_through_the_pass_through(gw):
    token = vault(gw)
    pi = stripe_client(gw).v1.payment_intents.create(params={
        "amount": 2500, "currency": "eur", "confirm": True, "capture_method": "manual",
        "payment_method_data": {"type": "card", "card": {"number": token, "cvc": "123"}},
    })  # fmt: skip
    assert (pi.object, pi.status, pi.amount_capturable) == ("payment_intent", "requires_capture",
                                                            2500)  # fmt: skip
    captured = stripe_client(gw).v1.payment_intents.capture(pi.id)
    assert captured.status == "succeeded"
    [paid] = gw.ledger("stripe")
    assert paid["card"] == "424242******4242" and paid["captured"] == 2500
    no_pan_anywhere(gw, pi.to_dict(), captured.to_dict())
    assert "passthrough" in gw.log.getvalue()


def test_adyen_sdk_pays_with_a_token_and_the_merchant_account_is_injected(gw):
    token = vault(gw, merchant_key="m_alpha:adyen")
    result = adyen_payments(gw).payments({
        "amount": {"value": 1800, "currency": "EUR"}, "reference": "ord-p1",
        "paymentMethod": {"type": "scheme", "number": token, "cvc": "737"},
        "merchantAccount": "SomeoneElsesAccount",
    })  # fmt: skip
    assert result.status_code == 200, result.message
    assert result.message["resultCode"] == "Authorised"
    [paid] = gw.ledger("adyen")
    assert paid["card"] == "424242******4242"
    no_pan_anywhere(gw, result.message, result.raw_response)


def test_checkout_sdk_pays_with_a_token(gw):
    token = vault(gw, merchant_key="m_alpha:checkout")
    source = PaymentRequestCardSource()
    source.number, source.cvv = token, "100"
    request = PaymentRequest()
    request.source, request.amount, request.currency = source, 4200, "GBP"
    request.reference, request.capture = "ord-c1", True
    answer = checkout_api(gw).payments.request_payment(request)
    assert answer.approved is True and answer.status in ("Authorized", "Captured")
    [paid] = gw.ledger("checkout")
    assert paid["card"] == "424242******4242"
    no_pan_anywhere(gw, vars(answer))


def test_a_decline_through_the_pass_through_feeds_the_health_windows(gw):
    token = vault(gw, "4000000000009995")
    with pytest.raises(stripe.CardError) as exc:
        stripe_client(gw).v1.payment_intents.create(params={
            "amount": 900, "currency": "eur", "confirm": True,
            "payment_method_data": {"type": "card", "card": {"number": token}},
        })  # fmt: skip
    assert exc.value.error.decline_code == "insufficient_funds"
    log = gw.log.getvalue()
    assert '"normalized_code": "insufficient_funds"' in log or "insufficient_funds" in log
    text = requests.get(gw.url + "/metrics", timeout=5).text
    assert 'connector="stripe"' in text and "insufficient_funds" in text


def test_another_merchants_token_is_a_404_in_the_psps_own_shape(gw):
    gw.add_key("m_beta:stripe", "sk_test_" + "b" * 30)
    gw.add_key("m_beta:adyen", "AQEbetabetabetabetabetabetabeta")
    theirs = vault(gw, merchant_key="m_beta:stripe")
    with pytest.raises(stripe.InvalidRequestError) as exc:
        stripe_client(gw).v1.payment_intents.create(params={
            "amount": 900, "currency": "eur", "confirm": True,
            "payment_method_data": {"type": "card", "card": {"number": theirs}},
        })  # fmt: skip
    assert exc.value.http_status == 404 and exc.value.code == "token_not_found"
    r = requests.post(gw.url + "/proxy/adyen/v72/payments", timeout=5,
                      headers={"X-API-Key": gw.keys["m_alpha:adyen"]},
                      json={"amount": {"value": 1, "currency": "EUR"}, "reference": "x",
                            "paymentMethod": {"type": "scheme", "number": theirs}})  # fmt: skip
    assert r.status_code == 404 and r.json()["errorType"] == "validation"
    assert gw.ledger("stripe") == [] and gw.ledger("adyen") == []


def test_bad_key_unknown_connector_and_wrong_shape(gw):
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("sk_test_wrong", base_addresses={"api": gw.url + "/proxy/stripe"},
                            max_network_retries=0).v1.payment_intents.list()  # fmt: skip
    # A key of the right shape (the SDK builds) that paymux does not know: Checkout.com's 401.
    gw.keys["unknown"] = "sk_sbox_" + "a" * 27
    with pytest.raises(CheckoutApiException) as exc:
        checkout_api(gw, "unknown").payments.get_payment_details("pay_x")
    assert exc.value.http_metadata.status_code == 401
    r = requests.get(gw.url + "/proxy/nope/v1/x", timeout=5)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_connector"


def test_psp_that_does_not_answer_is_a_502_with_paymux_json(gw):
    gw.outage(psp="stripe", error_rate=1.0, kind="reset")
    r = requests.post(gw.url + "/proxy/stripe/v1/payment_intents", timeout=10,
                      headers={"Authorization": f"Bearer {gw.keys['m_alpha:stripe']}"},
                      data={"amount": "100", "currency": "eur", "confirm": "true",
                            "payment_method_data[type]": "card",
                            "payment_method_data[card][number]": vault(gw)})  # fmt: skip
    assert r.status_code in (502, 504), r.text
    assert r.headers["Paymux-Upstream"] == "no-answer"
    assert r.json()["error"]["type"] == "api_error"


def test_mask_pans_masks_only_luhn_valid_numbers():
    from paymux.api.passthrough import mask_pans

    body = b'{"n": "4242424242424242", "t": "1733160000000", "id": "4242424242424241"}'
    assert mask_pans(body) == (
        b'{"n": "424242******4242", "t": "1733160000000", "id": "4242424242424241"}'
    )


FAST_BREAKER = {
    "default_order": ["stripe", "adyen", "checkout"],
    "health": {"breaker_consecutive_failures": 3, "breaker_open_seconds": 30.0,
               "breaker_max_open_seconds": 60.0},
}  # fmt: skip


@pytest.mark.gateway_config(routing=FAST_BREAKER)
def test_open_breaker_is_a_503_and_nothing_is_retried(gw):
    gw.outage(psp="stripe", error_rate=1.0, kind="error")
    token = vault(gw)
    data = {
        "amount": "100",
        "currency": "eur",
        "confirm": "true",
        "payment_method_data[type]": "card",
        "payment_method_data[card][number]": token,
    }
    headers = {"Authorization": f"Bearer {gw.keys['m_alpha:stripe']}"}  # fmt: skip
    statuses = []
    for _ in range(5):
        r = requests.post(gw.url + "/proxy/stripe/v1/payment_intents", data=data,
                          headers=headers, timeout=10)  # fmt: skip
        statuses.append(r.status_code)
    assert statuses[:3] == [500, 500, 500] or all(s >= 500 for s in statuses[:3]), statuses
    assert statuses[-1] == 503 and r.headers["Paymux-Breaker"] == "open"
    assert r.json()["error"]["code"] == "connector_unavailable"
    # Never rerouted: nothing reached another PSP.
    assert gw.ledger("adyen") == [] and gw.ledger("checkout") == []
