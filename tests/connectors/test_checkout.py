"""Checkout.com connector against canned answers on a loopback server."""

from __future__ import annotations

import orjson
import pytest
from paymux.connectors.base import (
    CaptureRequest,
    RefundRequest,
    SyncRequest,
    VoidRequest,
    WebhookError,
)
from paymux.connectors.checkout import sign_webhook
from paymux.domain.outcomes import AttemptStatus, DeclineClass

from .conftest import API_KEY, CVC, PAN, WEBHOOK_SECRET, Canned, authorize_request


def payment(
    status: str = "Authorized",
    code: str = "10000",
    approved: bool = True,
    pay_id: str = "pay_unit1",
    **extra,
) -> dict:
    body = {
        "id": pay_id,
        "action_id": "act_unit1",
        "amount": 1099,
        "currency": "EUR",
        "approved": approved,
        "status": status,
        "auth_code": "770687",
        "response_code": code,
        "response_summary": "Approved" if approved else "Declined",
        "reference": "att_unit_0001",
        "processing": {"acquirer_transaction_id": "8367314942"},
        "source": {"type": "card", "last4": "4242", "bin": "424242"},
    }
    body.update(extra)
    return body


async def test_manual_capture_approval(psp, checkout):
    psp.on("POST", "/payments", Canned(201, payment()))
    result = await checkout.authorize(authorize_request("att_cko_1", capture=False))
    assert result.status is AttemptStatus.AUTHORIZED
    assert result.connector_reference == "pay_unit1" and result.amount == 1099
    req = psp.requests[0]
    assert req.headers["Cko-Idempotency-Key"] == "att_cko_1"
    assert req.headers["Authorization"] == f"Bearer {API_KEY}"
    body = req.json()
    assert body["reference"] == "att_cko_1"
    assert body["capture"] is False
    assert body["amount"] == 1099 and body["currency"] == "EUR"
    assert body["source"] == {
        "type": "card",
        "number": PAN,
        "expiry_month": 12,
        "expiry_year": 2034,
        "cvv": CVC,
        "name": "Ada Lovelace",
    }


async def test_automatic_capture_approval(psp, checkout):
    psp.on("POST", "/payments", Canned(201, payment("Captured")))
    result = await checkout.authorize(authorize_request(capture=True))
    assert result.status is AttemptStatus.CAPTURED
    assert psp.requests[0].json()["capture"] is True


@pytest.mark.parametrize(
    ("code", "normalized", "cls"),
    [
        ("20005", "do_not_honor", DeclineClass.SOFT_ROUTE),
        ("20051", "insufficient_funds", DeclineClass.ISSUER_NOT_NOW),
        ("20054", "expired_card", DeclineClass.FIX_DATA),
        ("20087", "incorrect_cvc", DeclineClass.FIX_DATA),
        ("30004", "pickup_card", DeclineClass.HARD),
        ("30041", "lost_card", DeclineClass.HARD),
        ("30043", "stolen_card", DeclineClass.HARD),
        ("20091", "issuer_unavailable", DeclineClass.TECHNICAL),
        ("20061", "card_velocity_exceeded", DeclineClass.ISSUER_NOT_NOW),
        ("20014", "invalid_card_number", DeclineClass.HARD),
        # unlisted codes fall back by prefix
        ("20999", "unknown_decline", DeclineClass.SOFT_ROUTE),
        ("30999", "unknown_hard_decline", DeclineClass.HARD),
        ("40101", "risk_blocked", DeclineClass.HARD),
        ("50001", "processing_error", DeclineClass.TECHNICAL),
    ],
)
async def test_declines_map_through_the_table(psp, checkout, code, normalized, cls):
    psp.on("POST", "/payments", Canned(201, payment("Declined", code, approved=False)))
    result = await checkout.authorize(authorize_request())
    assert result.status in (AttemptStatus.DECLINED, AttemptStatus.FAILED)
    assert (result.raw_code, result.normalized_code, result.decline_class) == (
        code,
        normalized,
        cls,
    )
    assert result.connector_reference == "pay_unit1"


async def test_partner_merchant_advice_code_03_is_hard(psp, checkout):
    body = payment(
        "Declined", "20005", approved=False, processing={"partner_merchant_advice_code": "03"}
    )
    psp.on("POST", "/payments", Canned(201, body))
    result = await checkout.authorize(authorize_request())
    assert result.decline_class is DeclineClass.HARD and result.advice_code == "03"


async def test_pending_with_redirect_requires_action(psp, checkout):
    body = {
        "id": "pay_3ds",
        "status": "Pending",
        "reference": "att_unit_0001",
        "_links": {"redirect": {"href": "https://3ds.example/challenge"}},
    }
    psp.on("POST", "/payments", Canned(202, body))
    result = await checkout.authorize(authorize_request())
    assert result.status is AttemptStatus.REQUIRES_ACTION


async def test_unknown_status_is_pending(psp, checkout):
    psp.on(
        "POST",
        "/payments",
        Canned(201, {"id": "pay_x", "status": "Reticulating", "approved": None}),
    )
    assert (await checkout.authorize(authorize_request())).status is AttemptStatus.PENDING


async def test_422_card_number_invalid_is_hard(psp, checkout):
    psp.on(
        "POST",
        "/payments",
        Canned(
            422,
            {
                "request_id": "req_1",
                "error_type": "request_invalid",
                "error_codes": ["card_number_invalid"],
            },
        ),
    )
    result = await checkout.authorize(authorize_request())
    assert result.status is AttemptStatus.DECLINED
    assert result.decline_class is DeclineClass.HARD
    assert result.raw_code == "card_number_invalid"


async def test_401_with_empty_body_is_authentication_failed(psp, checkout):
    psp.on("POST", "/payments", Canned(401, b""))
    result = await checkout.authorize(authorize_request())
    assert result.status is AttemptStatus.FAILED
    assert result.normalized_code == "authentication_failed" and not result.ambiguous


async def test_partial_capture_202_is_captured(psp, checkout):
    psp.on(
        "POST",
        "/payments/pay_unit1/captures",
        Canned(202, {"action_id": "act_cap1", "reference": "cap_1"}),
    )
    result = await checkout.capture(
        CaptureRequest(
            reference="cap_1", connector_reference="pay_unit1", amount=500, currency="EUR"
        )
    )
    assert result.status is AttemptStatus.CAPTURED and result.amount == 500
    assert result.connector_reference == "pay_unit1"
    assert psp.requests[0].json() == {"amount": 500, "reference": "cap_1"}
    assert psp.requests[0].headers["Cko-Idempotency-Key"] == "cap_1"


async def test_void_and_refund(psp, checkout):
    psp.on(
        "POST",
        "/payments/pay_unit1/voids",
        Canned(202, {"action_id": "act_void1", "reference": "void_1"}),
    )
    psp.on(
        "POST",
        "/payments/pay_unit1/refunds",
        Canned(202, {"action_id": "act_ref1", "reference": "ref_1"}),
    )
    voided = await checkout.void(
        VoidRequest(
            reference="void_1", connector_reference="pay_unit1", amount=1099, currency="EUR"
        )
    )
    refunded = await checkout.refund(
        RefundRequest(
            reference="ref_1", connector_reference="pay_unit1", amount=300, currency="EUR"
        )
    )
    assert voided.status is AttemptStatus.VOIDED
    assert refunded.status is AttemptStatus.REFUNDED and refunded.connector_reference == "act_ref1"
    assert psp.requests[1].json() == {"amount": 300, "reference": "ref_1"}


async def test_capture_not_allowed_is_technical_not_ambiguous(psp, checkout):
    psp.on("POST", "/payments/pay_unit1/captures", Canned(403, b""))
    result = await checkout.capture(
        CaptureRequest(
            reference="cap_1", connector_reference="pay_unit1", amount=500, currency="EUR"
        )
    )
    assert result.status is AttemptStatus.FAILED and not result.ambiguous


async def test_sync_by_reference_found_and_not_found(psp, checkout):
    psp.on(
        "GET",
        "/payments",
        Canned(200, {"limit": 10, "skip": 0, "total_count": 1, "data": [payment("Captured")]}),
        Canned(200, {"limit": 10, "skip": 0, "total_count": 0, "data": []}),
    )
    found = await checkout.sync(SyncRequest(reference="att_unit_0001"))
    assert found.status is AttemptStatus.CAPTURED and found.connector_reference == "pay_unit1"
    assert psp.requests[0].query["reference"] == "att_unit_0001"
    missing = await checkout.sync(SyncRequest(reference="att_never"))
    assert missing.status is AttemptStatus.NOT_FOUND


async def test_sync_by_id(psp, checkout):
    psp.on("GET", "/payments/pay_unit1", Canned(200, payment("Authorized")))
    psp.on("GET", "/payments/pay_gone", Canned(404, b""))
    assert (
        await checkout.sync(SyncRequest(reference="r", connector_reference="pay_unit1"))
    ).status is AttemptStatus.AUTHORIZED
    assert (
        await checkout.sync(SyncRequest(reference="r", connector_reference="pay_gone"))
    ).status is AttemptStatus.NOT_FOUND


def _event(kind: str = "payment_captured") -> bytes:
    return orjson.dumps(
        {
            "id": "evt_1",
            "type": kind,
            "data": {
                "id": "pay_unit1",
                "reference": "att_unit_0001",
                "amount": 500,
                "response_code": "10000",
            },
        }
    )


def test_webhook_good_signature(checkout):
    body = _event()
    events = checkout.parse_webhook({"cko-signature": sign_webhook(body, WEBHOOK_SECRET)}, body)
    assert [(e.connector_reference, e.reference, e.status, e.amount) for e in events] == [
        ("pay_unit1", "att_unit_0001", AttemptStatus.CAPTURED, 500)
    ]


def test_webhook_bad_signature(checkout):
    body = _event()
    with pytest.raises(WebhookError):
        checkout.parse_webhook({"Cko-Signature": sign_webhook(body, "wrong")}, body)
    with pytest.raises(WebhookError):
        checkout.parse_webhook({}, body)
    with pytest.raises(WebhookError):
        checkout.parse_webhook({"Cko-Signature": sign_webhook(body, WEBHOOK_SECRET)}, body + b" ")
