"""The official `checkout-sdk`, unchanged but for its Environment, against the sandbox."""

from __future__ import annotations

import warnings

import pytest
import requests
from checkout_sdk.checkout_sdk import CheckoutSdk
from checkout_sdk.environment import Environment
from checkout_sdk.exception import CheckoutApiException
from checkout_sdk.payments.payments import (
    CaptureRequest,
    PaymentRequest,
    PaymentRequestCardSource,
    PaymentsQueryFilter,
    RefundRequest,
)
from paymux.sandbox.scenario import DEFAULT_CREDENTIALS

KEY = DEFAULT_CREDENTIALS["checkout"]["api_key"]


def checkout_api(base: str, key: str = KEY):
    env = Environment(base_uri=base + "/checkout/", authorization_uri=base + "/connect/token",
                      files_uri=base, transfers_uri=base, balances_uri=base, forward_uri=base,
                      identity_uri=base, is_sandbox=True)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # use_legacy_domain is deprecated
        return CheckoutSdk.builder().secret_key(key).environment(env).use_legacy_domain().build()


@pytest.fixture
def api(sandbox):
    return checkout_api(sandbox.base)


def card_payment(number="4242424242424242", amount=5000, reference="ord-c1", capture=False):
    source = PaymentRequestCardSource()
    source.number, source.expiry_month, source.expiry_year, source.cvv = number, 12, 2030, "100"
    request = PaymentRequest()
    request.source, request.amount, request.currency = source, amount, "GBP"
    request.reference, request.capture = reference, capture
    request.metadata = {"attempt": "1"}
    return request


def capture(amount):
    request = CaptureRequest()
    request.amount = amount
    return request


def refund(amount):
    request = RefundRequest()
    request.amount = amount
    return request


def test_authorize_capture_partially_then_refund_several_times(api, sandbox):
    payment = api.payments.request_payment(card_payment(), idempotency_key="ik-1")
    assert payment.http_metadata.status_code == 201
    assert (payment.approved, payment.status, payment.response_code) == (
        True,
        "Authorized",
        "10000",
    )
    assert payment.id.startswith("pay_") and payment.source.last4 == "4242"

    captured = api.payments.capture_payment(payment.id, capture(3000))
    assert captured.http_metadata.status_code == 202 and captured.action_id.startswith("act_")
    for value in (1000, 500):
        assert (
            api.payments.refund_payment(payment.id, refund(value)).http_metadata.status_code == 202
        )
    with pytest.raises(CheckoutApiException) as exc:
        api.payments.refund_payment(payment.id, refund(1501))
    assert exc.value.http_metadata.status_code == 422
    assert exc.value.error_details == ["refund_amount_exceeds_balance"]

    details = api.payments.get_payment_details(payment.id)
    assert details.status == "Partially Refunded"
    assert (details.balances.total_captured, details.balances.total_refunded) == (3000, 1500)
    ledger = sandbox.payments("checkout")[0]
    assert (ledger["captured"], ledger["refunded"], ledger["idempotency_key"]) == (
        3000,
        1500,
        "ik-1",
    )


def test_capture_above_authorized_amount_is_rejected(api):
    payment = api.payments.request_payment(card_payment())
    with pytest.raises(CheckoutApiException) as exc:
        api.payments.capture_payment(payment.id, capture(5001))
    assert exc.value.http_metadata.status_code == 422


def test_void_releases_the_authorization_but_not_after_capture(api):
    held = api.payments.request_payment(card_payment(reference="held"))
    assert api.payments.void_payment(held.id).http_metadata.status_code == 202
    assert api.payments.get_payment_details(held.id).status == "Voided"
    paid = api.payments.request_payment(card_payment(reference="paid", capture=True))
    assert api.payments.get_payment_details(paid.id).status == "Captured"
    with pytest.raises(CheckoutApiException) as exc:
        api.payments.void_payment(paid.id)
    assert exc.value.http_metadata.status_code == 403


def test_payments_are_found_by_reference(api):
    payment = api.payments.request_payment(card_payment(reference="ord-find"))
    query = PaymentsQueryFilter()
    query.reference = "ord-find"
    found = api.payments.get_payments_list(query)
    assert found.total_count == 1 and found.data[0].id == payment.id


@pytest.mark.parametrize(
    ("number", "code"),
    [("4000000000009995", "20051"), ("4000000000009987", "30041"), ("4000000000009979", "30043")],
)
def test_issuer_declines_use_checkout_response_codes(api, number, code):
    payment = api.payments.request_payment(card_payment(number=number))
    assert payment.http_metadata.status_code == 201
    assert (payment.approved, payment.status, payment.response_code) == (False, "Declined", code)


def test_missing_currency_is_a_422_with_error_codes(sandbox):
    response = requests.post(sandbox.url("/checkout/payments"), json={"amount": 100},
                             headers={"Authorization": f"Bearer {KEY}"})  # fmt: skip
    assert response.status_code == 422
    body = response.json()
    assert body["error_type"] == "request_invalid"
    assert "currency_required" in body["error_codes"]


def test_wrong_secret_key_is_a_401_with_an_empty_body(sandbox):
    bad = checkout_api(sandbox.base, key="sk_sbox_aaaaaaaaaaaaaaaaaaaaaaaaaaa")
    with pytest.raises(CheckoutApiException) as exc:
        bad.payments.request_payment(card_payment())
    assert exc.value.http_metadata.status_code == 401
    assert requests.get(sandbox.url("/checkout/payments/pay_x")).content == b""


def test_idempotency_key_replays_the_payment(api, sandbox):
    first = api.payments.request_payment(card_payment(), idempotency_key="same")
    again = api.payments.request_payment(card_payment(), idempotency_key="same")
    assert first.id == again.id
    assert len(sandbox.payments("checkout")) == 1
