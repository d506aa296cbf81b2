"""Adyen connector (Checkout API v72) against canned answers on a loopback server."""

from __future__ import annotations

import orjson
import pytest
from paymux.connectors.adyen import AdyenConnector, adyen_hmac
from paymux.connectors.base import (
    CaptureRequest,
    RefundRequest,
    SyncRequest,
    VoidRequest,
    WebhookError,
)
from paymux.domain.outcomes import AttemptStatus, DeclineClass

from .conftest import ADYEN_HMAC_KEY, API_KEY, CVC, PAN, Canned, authorize_request, make_config


def authorised(psp_ref: str = "8815123456789012", value: int = 1099) -> dict:
    return {
        "pspReference": psp_ref,
        "resultCode": "Authorised",
        "merchantReference": "att_unit_0001",
        "amount": {"currency": "EUR", "value": value},
        "additionalData": {"authCode": "012345", "refusalReasonRaw": "AUTHORISED"},
    }


def refused(
    code: str, reason: str, raw: str = "", result_code: str = "Refused", **extra_data
) -> dict:
    return {
        "pspReference": "8815123456789013",
        "resultCode": result_code,
        "refusalReason": reason,
        "refusalReasonCode": code,
        "merchantReference": "att_unit_0001",
        "amount": {"currency": "EUR", "value": 1099},
        "additionalData": {"refusalReasonRaw": raw, **extra_data},
    }


async def test_manual_capture_approval(psp, adyen):
    psp.on("POST", "/v72/payments", Canned(200, authorised()))
    result = await adyen.authorize(authorize_request("att_adyen_1", capture=False))
    assert result.status is AttemptStatus.AUTHORIZED
    assert result.connector_reference == "8815123456789012"
    assert result.amount == 1099
    req = psp.requests[0]
    body = req.json()
    assert req.headers["Idempotency-Key"] == "att_adyen_1"
    assert req.headers["X-API-Key"] == API_KEY
    assert body["reference"] == "att_adyen_1"
    assert body["merchantAccount"] == "PaymuxECOM"
    assert body["amount"] == {"value": 1099, "currency": "EUR"}
    assert body["paymentMethod"] == {
        "type": "scheme",
        "number": PAN,
        "expiryMonth": "12",
        "expiryYear": "2034",
        "cvc": CVC,
        "holderName": "Ada Lovelace",
    }
    assert body["additionalData"] == {"manualCapture": "true"}
    assert "captureDelayHours" not in body


async def test_automatic_capture_approval(psp, adyen):
    psp.on("POST", "/v72/payments", Canned(200, authorised()))
    result = await adyen.authorize(authorize_request(capture=True))
    assert result.status is AttemptStatus.CAPTURED
    body = psp.requests[0].json()
    assert body["captureDelayHours"] == 0 and "additionalData" not in body


@pytest.mark.parametrize(
    ("code", "reason", "normalized", "cls"),
    [
        ("12", "Not enough balance", "insufficient_funds", DeclineClass.ISSUER_NOT_NOW),
        ("2", "Refused", "do_not_honor", DeclineClass.SOFT_ROUTE),
        ("5", "Blocked Card", "restricted_card", DeclineClass.HARD),
        ("6", "Expired Card", "expired_card", DeclineClass.FIX_DATA),
        ("24", "CVC Declined", "incorrect_cvc", DeclineClass.FIX_DATA),
        ("8", "Invalid Card Number", "invalid_card_number", DeclineClass.HARD),
        ("9", "Issuer Unavailable", "issuer_unavailable", DeclineClass.TECHNICAL),
        ("28", "Withdrawal amount exceeded", "card_velocity_exceeded", DeclineClass.ISSUER_NOT_NOW),
    ],
)
async def test_refusals_map_through_the_table(psp, adyen, code, reason, normalized, cls):
    psp.on("POST", "/v72/payments", Canned(200, refused(code, reason, "05 : Do not honor")))
    result = await adyen.authorize(authorize_request())
    assert result.status is AttemptStatus.DECLINED
    assert result.raw_code == code
    assert result.normalized_code == normalized
    assert result.decline_class is cls
    assert reason in result.raw_message and "05 : Do not honor" in result.raw_message
    assert result.connector_reference == "8815123456789013"


async def test_unknown_refusal_code_is_soft_route_and_keeps_raw(psp, adyen):
    psp.on("POST", "/v72/payments", Canned(200, refused("977", "Something new")))
    result = await adyen.authorize(authorize_request())
    assert (result.raw_code, result.normalized_code, result.decline_class) == (
        "977",
        "unknown_decline",
        DeclineClass.SOFT_ROUTE,
    )


async def test_merchant_advice_code_21_is_hard(psp, adyen):
    psp.on(
        "POST",
        "/v72/payments",
        Canned(200, refused("2", "Refused", merchantAdviceCode="21 : Payment Cancellation")),
    )
    result = await adyen.authorize(authorize_request())
    assert result.decline_class is DeclineClass.HARD
    assert result.advice_code == "21 : Payment Cancellation"


async def test_result_code_error_is_a_technical_failure(psp, adyen):
    psp.on(
        "POST", "/v72/payments", Canned(200, refused("4", "Acquirer Error", result_code="Error"))
    )
    result = await adyen.authorize(authorize_request())
    assert result.status is AttemptStatus.FAILED
    assert result.decline_class is DeclineClass.TECHNICAL
    assert result.normalized_code == "processing_error"


@pytest.mark.parametrize(
    ("result_code", "status"),
    [
        ("RedirectShopper", AttemptStatus.REQUIRES_ACTION),
        ("IdentifyShopper", AttemptStatus.REQUIRES_ACTION),
        ("ChallengeShopper", AttemptStatus.REQUIRES_ACTION),
        ("Pending", AttemptStatus.PENDING),
        ("Received", AttemptStatus.PENDING),
        ("SomethingAdyenAddsNextYear", AttemptStatus.PENDING),
    ],
)
async def test_neither_success_nor_failure_is_pending_or_action(psp, adyen, result_code, status):
    psp.on(
        "POST",
        "/v72/payments",
        Canned(200, {"pspReference": "8815000000000001", "resultCode": result_code}),
    )
    result = await adyen.authorize(authorize_request())
    assert result.status is status
    assert result.decline_class is None


async def test_validation_error_on_card_number_is_hard(psp, adyen):
    body = {
        "status": 422,
        "errorCode": "101",
        "message": "Invalid card number",
        "errorType": "validation",
    }
    psp.on("POST", "/v72/payments", Canned(422, body))
    result = await adyen.authorize(authorize_request())
    assert result.status is AttemptStatus.DECLINED
    assert result.decline_class is DeclineClass.HARD
    assert result.raw_code == "101"


async def test_unauthorized_is_technical(psp, adyen):
    body = {
        "status": 401,
        "errorCode": "000",
        "message": "HTTP Status Response - Unauthorized",
        "errorType": "security",
    }
    psp.on("POST", "/v72/payments", Canned(401, body))
    result = await adyen.authorize(authorize_request())
    assert result.status is AttemptStatus.FAILED
    assert result.normalized_code == "authentication_failed"
    assert not result.ambiguous


def _modification(kind: str, value: int | None = None) -> dict:
    body = {
        "merchantAccount": "PaymuxECOM",
        "paymentPspReference": "8815123456789012",
        "pspReference": f"99{kind[:2].upper()}000000000001",
        "reference": "mod_ref",
        "status": "received",
    }
    if value is not None:
        body["amount"] = {"currency": "EUR", "value": value}
    return body


async def test_partial_capture_received_is_captured(psp, adyen):
    psp.on(
        "POST",
        "/v72/payments/8815123456789012/captures",
        Canned(201, _modification("captures", 500)),
    )
    result = await adyen.capture(
        CaptureRequest(
            reference="cap_1", connector_reference="8815123456789012", amount=500, currency="EUR"
        )
    )
    assert result.status is AttemptStatus.CAPTURED
    assert result.raw_code == "received"
    assert result.amount == 500
    assert result.connector_reference == "8815123456789012"
    req = psp.requests[0]
    assert req.json() == {
        "merchantAccount": "PaymuxECOM",
        "amount": {"value": 500, "currency": "EUR"},
        "reference": "cap_1",
    }
    assert req.headers["Idempotency-Key"] == "cap_1"


async def test_void_received_is_voided(psp, adyen):
    psp.on("POST", "/v72/payments/8815123456789012/cancels", Canned(201, _modification("cancels")))
    result = await adyen.void(
        VoidRequest(
            reference="void_1", connector_reference="8815123456789012", amount=1099, currency="EUR"
        )
    )
    assert result.status is AttemptStatus.VOIDED


async def test_refund_received_is_refunded_with_the_refund_reference(psp, adyen):
    psp.on(
        "POST", "/v72/payments/8815123456789012/refunds", Canned(201, _modification("refunds", 300))
    )
    result = await adyen.refund(
        RefundRequest(
            reference="ref_1", connector_reference="8815123456789012", amount=300, currency="EUR"
        )
    )
    assert result.status is AttemptStatus.REFUNDED
    assert result.connector_reference == "99RE000000000001"


async def test_modification_on_unknown_payment_is_technical_not_ambiguous(psp, adyen):
    body = {
        "status": 422,
        "errorCode": "167",
        "message": "Original pspReference required for this operation",
        "errorType": "validation",
    }
    psp.on("POST", "/v72/payments/nope/captures", Canned(422, body))
    result = await adyen.capture(
        CaptureRequest(reference="cap_1", connector_reference="nope", amount=500, currency="EUR")
    )
    assert result.status is AttemptStatus.FAILED and not result.ambiguous


async def test_sync_replays_the_original_request_with_the_same_key(psp, adyen):
    psp.on(
        "POST", "/v72/payments", Canned(200, authorised(), delay_s=2.0), Canned(200, authorised())
    )
    original = authorize_request("att_lost_1")
    lost = await adyen.authorize(original)
    assert lost.ambiguous and lost.normalized_code == "timeout"
    synced = await adyen.sync(SyncRequest(reference="att_lost_1", original=original))
    assert synced.status is AttemptStatus.AUTHORIZED
    assert [r.headers["Idempotency-Key"] for r in psp.requests] == ["att_lost_1", "att_lost_1"]
    assert psp.requests[0].body == psp.requests[1].body


async def test_sync_without_the_original_and_without_lookup_is_pending(adyen):
    result = await adyen.sync(SyncRequest(reference="att_lost_2"))
    assert result.status is AttemptStatus.PENDING
    assert result.normalized_code == "status_unknown"


async def test_sync_through_the_sandbox_lookup(psp):
    conn = AdyenConnector(
        make_config("adyen", psp.url, extra={"lookup_path": "/v72/_sandbox/payments"})
    )
    found = {
        **authorised(),
        "status": "captured",
        "capturedAmount": {"currency": "EUR", "value": 700},
    }
    psp.on(
        "GET",
        "/v72/_sandbox/payments",
        Canned(200, {"payments": [found]}),
        Canned(200, {"payments": []}),
    )
    async with conn:
        hit = await conn.sync(SyncRequest(reference="att_unit_0001"))
        miss = await conn.sync(SyncRequest(reference="att_never"))
    assert hit.status is AttemptStatus.CAPTURED and hit.amount == 700
    assert miss.status is AttemptStatus.NOT_FOUND
    assert psp.requests[0].query == {"reference": "att_unit_0001"}


def _notification(
    event: str = "AUTHORISATION", success: str = "true", key: str = ADYEN_HMAC_KEY, **item
) -> bytes:
    nri = {
        "pspReference": "8815123456789012",
        "originalReference": "",
        "merchantAccountCode": "PaymuxECOM",
        "merchantReference": "att_unit_0001",
        "amount": {"value": 1099, "currency": "EUR"},
        "eventCode": event,
        "success": success,
        "additionalData": {},
        **item,
    }
    nri["additionalData"]["hmacSignature"] = adyen_hmac(nri, bytes.fromhex(key))
    return orjson.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": nri}]})


def test_webhook_with_good_hmac(adyen):
    events = adyen.parse_webhook({}, _notification())
    assert len(events) == 1
    ev = events[0]
    assert (ev.connector_reference, ev.reference, ev.status, ev.amount) == (
        "8815123456789012",
        "att_unit_0001",
        AttemptStatus.AUTHORIZED,
        1099,
    )


def test_webhook_refused_and_capture_failed(adyen):
    refused_ev = adyen.parse_webhook({}, _notification(success="false", reason="Refused"))[0]
    assert refused_ev.status is AttemptStatus.DECLINED
    failed = adyen.parse_webhook(
        {},
        _notification("CAPTURE_FAILED", originalReference="8815123456789012", pspReference="9915"),
    )[0]
    assert (
        failed.status is AttemptStatus.DECLINED and failed.connector_reference == "8815123456789012"
    )


def test_webhook_with_bad_hmac_is_rejected(adyen):
    with pytest.raises(WebhookError):
        adyen.parse_webhook({}, _notification(key="00" * 32))
    tampered = _notification().replace(b'"value":1099', b'"value":9999')
    with pytest.raises(WebhookError):
        adyen.parse_webhook({}, tampered)
    with pytest.raises(WebhookError):
        adyen.parse_webhook({}, b"not json")
