"""The official `Adyen` SDK (Checkout API v72), unchanged but for `baseUrl`, against the sandbox."""

from __future__ import annotations

import Adyen
import pytest
import requests
from Adyen.exceptions import (
    AdyenAPIAuthenticationError,
    AdyenAPICommunicationError,
    AdyenAPIInvalidPermission,
    AdyenAPIUnprocessableEntity,
)
from paymux.sandbox.scenario import DEFAULT_CREDENTIALS

CREDS = DEFAULT_CREDENTIALS["adyen"]
MERCHANT = CREDS["merchant_account"]


def adyen_apis(base: str, key: str = CREDS["api_key"]):
    client = Adyen.Adyen()
    client.client.xapikey = key
    client.client.platform = "test"
    payments, modifications = client.checkout.payments_api, client.checkout.modifications_api
    payments.baseUrl = modifications.baseUrl = base + "/adyen/v72"
    return payments, modifications


@pytest.fixture
def apis(sandbox):
    return adyen_apis(sandbox.base)


def pay(payments, number="4111111111111111", reference="ord-a1", manual=True, **extra):
    request = {
        "amount": {"value": 10_000, "currency": "EUR"},
        "reference": reference,
        "paymentMethod": {"type": "scheme", "number": number, "expiryMonth": "03",
                          "expiryYear": "2030", "cvc": "737", "holderName": "Jo Smith"},
        "merchantAccount": MERCHANT,
        **extra,
    }  # fmt: skip
    if manual:
        request["additionalData"] = {"manualCapture": "true"}
    return payments.payments(request)


def amount(value: int) -> dict:
    return {"merchantAccount": MERCHANT, "amount": {"value": value, "currency": "EUR"}}


def test_authorise_capture_partially_then_refund_several_times(apis, sandbox):
    payments, mods = apis
    result = pay(payments)
    assert result.status_code == 200
    assert result.message["resultCode"] == "Authorised"
    psp = result.message["pspReference"]
    assert len(psp) == 16 and result.psp == psp

    capture = mods.capture_authorised_payment(amount(6_000), psp)
    assert capture.status_code == 201
    assert capture.message["status"] == "received"
    assert capture.message["paymentPspReference"] == psp
    assert capture.message["pspReference"] != psp

    for value in (1_000, 2_000):
        refund = mods.refund_captured_payment(amount(value), psp)
        assert (refund.status_code, refund.message["status"]) == (201, "received")
    with pytest.raises(AdyenAPIUnprocessableEntity):
        mods.refund_captured_payment(amount(3_001), psp)

    ledger = sandbox.payments("adyen")[0]
    assert (ledger["captured"], ledger["refunded"], ledger["reference"]) == (6_000, 3_000, "ord-a1")


def test_capture_above_authorised_amount_is_rejected(apis):
    payments, mods = apis
    psp = pay(payments).message["pspReference"]
    with pytest.raises(AdyenAPIUnprocessableEntity) as exc:
        mods.capture_authorised_payment(amount(10_001), psp)
    assert exc.value.error_code == "137"


def test_cancel_releases_the_authorisation_but_not_after_capture(apis, sandbox):
    payments, mods = apis
    held = pay(payments, reference="ord-held").message["pspReference"]
    cancel = mods.cancel_authorised_payment_by_psp_reference({"merchantAccount": MERCHANT}, held)
    assert (cancel.status_code, cancel.message["status"]) == (201, "received")
    captured = pay(payments, reference="ord-auto", manual=False).message["pspReference"]
    with pytest.raises(AdyenAPIUnprocessableEntity):
        mods.cancel_authorised_payment_by_psp_reference({"merchantAccount": MERCHANT}, captured)
    statuses = {p["reference"]: p["status"] for p in sandbox.payments("adyen")}
    assert statuses == {"ord-held": "voided", "ord-auto": "captured"}


def test_cancel_by_our_own_reference(apis, sandbox):
    payments, mods = apis
    pay(payments, reference="ord-late")
    result = mods.cancel_authorised_payment(
        {"merchantAccount": MERCHANT, "paymentReference": "ord-late", "reference": "void-1"}
    )
    assert result.status_code == 201
    assert sandbox.payments("adyen")[0]["voided"] is True


def test_insufficient_funds_card_is_refused_with_adyens_reason(apis):
    payments, _ = apis
    result = pay(payments, number="4000000000009995")
    assert result.message["resultCode"] == "Refused"
    assert (result.message["refusalReason"], result.message["refusalReasonCode"]) == (
        "Not enough balance", "12")  # fmt: skip
    assert result.message["additionalData"]["refusalReasonRaw"].startswith("51")


def test_holder_name_test_trick_forces_an_adyen_refusal(apis):
    payments, _ = apis
    request = {"amount": {"value": 100, "currency": "EUR"}, "reference": "r",
               "merchantAccount": MERCHANT,
               "paymentMethod": {"type": "scheme", "encryptedCardNumber": "test_4111111111111111",
                                 "encryptedExpiryMonth": "test_03", "encryptedExpiryYear": "test_2030",
                                 "encryptedSecurityCode": "test_737", "holderName": "REFUSED"}}  # fmt: skip
    assert payments.payments(request).message["resultCode"] == "Refused"


def test_missing_amount_is_a_422_validation_error(apis):
    payments, _ = apis
    with pytest.raises(AdyenAPIUnprocessableEntity) as exc:
        payments.payments({"reference": "r", "merchantAccount": MERCHANT,
                           "paymentMethod": {"type": "scheme", "number": "4111111111111111"}})  # fmt: skip
    assert exc.value.error_code == "100"


def test_wrong_api_key_is_refused_with_a_401_security_error(sandbox):
    payments, _ = adyen_apis(sandbox.base, key="not-the-key")
    with pytest.raises(AdyenAPIAuthenticationError):
        pay(payments)
    body = requests.post(sandbox.url("/adyen/v72/payments"), json={}).json()
    assert body == {"status": 401, "errorCode": "000",
                    "message": "HTTP Status Response - Unauthorized", "errorType": "security"}  # fmt: skip


def test_wrong_merchant_account_is_forbidden(apis):
    payments, _ = apis
    with pytest.raises(AdyenAPIInvalidPermission):
        pay(payments, merchantAccount="SomeoneElse")


def test_idempotency_key_replays_the_payment_and_authorises_once(apis, sandbox):
    payments, _ = apis
    request = {"amount": {"value": 700, "currency": "EUR"}, "reference": "ord-idem",
               "merchantAccount": MERCHANT,
               "paymentMethod": {"type": "scheme", "number": "4111111111111111",
                                 "expiryMonth": "03", "expiryYear": "2030"}}  # fmt: skip
    first = payments.payments(request, idempotency_key="key-1")
    again = payments.payments(request, idempotency_key="key-1")
    assert first.message["pspReference"] == again.message["pspReference"]
    assert len(sandbox.payments("adyen")) == 1


def test_sandbox_lookup_by_merchant_reference(apis, sandbox):
    payments, _ = apis
    psp = pay(payments, reference="ord-lookup").message["pspReference"]
    found = requests.get(sandbox.url("/adyen/v72/_sandbox/payments"), params={"reference": "ord-lookup"},
                         headers={"X-API-Key": CREDS["api_key"]}).json()["payments"]  # fmt: skip
    assert [(p["pspReference"], p["resultCode"], p["status"]) for p in found] == [
        (psp, "Authorised", "authorized")]  # fmt: skip


def test_technical_error_is_a_500_the_sdk_reports(sandbox):
    sandbox.admin("/_sandbox/scenario", {"psps": {"adyen": {"default": {"error_rate": 1.0}}}})
    payments, _ = adyen_apis(sandbox.base)
    with pytest.raises(AdyenAPICommunicationError):
        pay(payments)
    assert sandbox.payments("adyen") == []
