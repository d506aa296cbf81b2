"""Stripe connector against canned PaymentIntents answers on a loopback server."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paymux.connectors.base import CaptureRequest, RefundRequest, SyncRequest, VoidRequest
from paymux.connectors.stripe import encode_form, form_body
from paymux.domain.outcomes import AttemptStatus, DeclineClass

from .conftest import API_KEY, CVC, PAN, Canned, assert_no_card_data, authorize_request


def payment_intent(status: str, *, pi_id: str = "pi_3Punit", amount: int = 1099, **extra) -> dict:
    pi = {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": amount if status == "requires_capture" else 0,
        "amount_received": amount if status == "succeeded" else 0,
        "currency": "eur",
        "capture_method": "manual",
        "status": status,
        "metadata": {"paymux_reference": "att_unit_0001"},
        "last_payment_error": None,
        "latest_charge": "ch_3Punit",
    }
    pi.update(extra)
    return pi


def card_error(code: str, decline_code: str | None = None, **extra) -> dict:
    err = {
        "type": "card_error",
        "code": code,
        "decline_code": decline_code,
        "message": "Your card was declined.",
        "payment_intent": payment_intent(
            "requires_payment_method", last_payment_error={"code": code}
        ),
    }
    err.update(extra)
    return {"error": err}


async def test_manual_capture_approval_is_authorized(psp, stripe):
    psp.on("POST", "/v1/payment_intents", Canned(200, payment_intent("requires_capture")))
    result = await stripe.authorize(authorize_request(capture=False))
    assert result.status is AttemptStatus.AUTHORIZED
    assert result.connector_reference == "pi_3Punit"
    assert result.amount == 1099
    assert result.decline_class is None and not result.ambiguous
    assert result.latency_ms > 0
    form = psp.requests[0].form()
    assert form["capture_method"] == "manual"
    assert form["confirm"] == "true"


async def test_automatic_capture_approval_is_captured(psp, stripe):
    psp.on(
        "POST",
        "/v1/payment_intents",
        Canned(200, payment_intent("succeeded", capture_method="automatic")),
    )
    result = await stripe.authorize(authorize_request(capture=True))
    assert result.status is AttemptStatus.CAPTURED
    assert result.amount == 1099
    assert psp.requests[0].form()["capture_method"] == "automatic"


async def test_authorize_sends_the_wire_format_and_the_reference(psp, stripe):
    psp.on("POST", "/v1/payment_intents", Canned(200, payment_intent("requires_capture")))
    await stripe.authorize(authorize_request("att_ref_77"))
    req = psp.requests[0]
    assert req.headers["Idempotency-Key"] == "att_ref_77"
    assert req.headers["Authorization"] == f"Bearer {API_KEY}"
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = req.form()
    assert form["metadata[paymux_reference]"] == "att_ref_77"
    assert form["payment_method_data[type]"] == "card"
    assert form["payment_method_data[card][number]"] == PAN
    assert form["payment_method_data[card][exp_month]"] == "12"
    assert form["payment_method_data[card][exp_year]"] == "2034"
    assert form["payment_method_data[card][cvc]"] == CVC
    assert form["amount"] == "1099" and form["currency"] == "eur"
    assert form["payment_method_types[0]"] == "card"


def test_bracket_notation_encoding():
    pairs = encode_form({"a": {"b": {"c": 1}}, "l": ["x", "y"], "t": True, "n": None})
    assert pairs == [("a[b][c]", "1"), ("l[0]", "x"), ("l[1]", "y"), ("t", "true")]


@pytest.mark.parametrize(
    ("code", "decline_code", "normalized", "cls"),
    [
        ("card_declined", "insufficient_funds", "insufficient_funds", DeclineClass.ISSUER_NOT_NOW),
        ("card_declined", "do_not_honor", "do_not_honor", DeclineClass.SOFT_ROUTE),
        ("card_declined", "lost_card", "lost_card", DeclineClass.HARD),
        ("card_declined", "stolen_card", "stolen_card", DeclineClass.HARD),
        ("expired_card", None, "expired_card", DeclineClass.FIX_DATA),
        ("incorrect_cvc", None, "incorrect_cvc", DeclineClass.FIX_DATA),
        ("incorrect_number", None, "invalid_card_number", DeclineClass.HARD),
        (
            "card_declined",
            "card_velocity_exceeded",
            "card_velocity_exceeded",
            DeclineClass.ISSUER_NOT_NOW,
        ),
        ("processing_error", None, "processing_error", DeclineClass.TECHNICAL),
        ("card_declined", "issuer_not_available", "issuer_unavailable", DeclineClass.TECHNICAL),
    ],
)
async def test_card_errors_map_through_the_table(psp, stripe, code, decline_code, normalized, cls):
    psp.on("POST", "/v1/payment_intents", Canned(402, card_error(code, decline_code)))
    result = await stripe.authorize(authorize_request())
    assert result.status is AttemptStatus.DECLINED
    assert result.raw_code == (decline_code or code)
    assert result.normalized_code == normalized
    assert result.decline_class is cls
    assert result.http_status == 402
    assert result.connector_reference == "pi_3Punit"
    assert not result.ambiguous


async def test_unknown_decline_code_falls_back_to_soft_route_and_keeps_raw(psp, stripe):
    psp.on(
        "POST", "/v1/payment_intents", Canned(402, card_error("card_declined", "brand_new_reason"))
    )
    result = await stripe.authorize(authorize_request())
    assert result.status is AttemptStatus.DECLINED
    assert result.raw_code == "brand_new_reason"
    assert result.normalized_code == "unknown_decline"
    assert result.decline_class is DeclineClass.SOFT_ROUTE


async def test_mastercard_advice_code_03_makes_a_soft_decline_hard(psp, stripe):
    body = card_error(
        "card_declined", "do_not_honor", network_advice_code="03", advice_code="do_not_try_again"
    )
    psp.on("POST", "/v1/payment_intents", Canned(402, body))
    result = await stripe.authorize(authorize_request())
    assert result.decline_class is DeclineClass.HARD
    assert result.normalized_code == "do_not_honor"
    assert result.advice_code == "03"


async def test_advice_code_never_loosens_a_hard_decline(psp, stripe):
    psp.on(
        "POST",
        "/v1/payment_intents",
        Canned(402, card_error("card_declined", "lost_card", network_advice_code="02")),
    )
    result = await stripe.authorize(authorize_request())
    assert result.decline_class is DeclineClass.HARD


async def test_invalid_request_error_is_technical_not_ambiguous(psp, stripe):
    body = {
        "error": {
            "type": "invalid_request_error",
            "code": "parameter_missing",
            "message": "Missing required param: amount.",
        }
    }
    psp.on("POST", "/v1/payment_intents", Canned(400, body))
    result = await stripe.authorize(authorize_request())
    assert result.status is AttemptStatus.FAILED
    assert result.decline_class is DeclineClass.TECHNICAL
    assert result.raw_code == "parameter_missing"
    assert not result.ambiguous


async def test_authentication_error_is_technical(psp, stripe):
    body = {
        "error": {
            "type": "invalid_request_error",
            "message": "Invalid API Key provided: sk_test_****6789",
        }
    }
    psp.on("POST", "/v1/payment_intents", Canned(401, body))
    result = await stripe.authorize(authorize_request())
    assert result.normalized_code == "authentication_failed"
    assert result.decline_class is DeclineClass.TECHNICAL
    assert not result.ambiguous


async def test_idempotency_conflict_is_ambiguous(psp, stripe):
    body = {
        "error": {
            "type": "idempotency_error",
            "message": "Keys for idempotent requests can only be used with the same parameters",
        }
    }
    psp.on("POST", "/v1/payment_intents", Canned(409, body))
    result = await stripe.authorize(authorize_request())
    assert result.status is AttemptStatus.FAILED and result.ambiguous


async def test_requires_action_and_processing(psp, stripe):
    psp.on(
        "POST",
        "/v1/payment_intents",
        Canned(200, payment_intent("requires_action", next_action={"type": "redirect_to_url"})),
        Canned(200, payment_intent("processing")),
        Canned(200, payment_intent("some_future_status")),
    )
    assert (await stripe.authorize(authorize_request())).status is AttemptStatus.REQUIRES_ACTION
    assert (await stripe.authorize(authorize_request())).status is AttemptStatus.PENDING
    assert (await stripe.authorize(authorize_request())).status is AttemptStatus.PENDING


async def test_partial_capture(psp, stripe):
    captured = payment_intent("succeeded", amount=1099, amount_received=500)
    psp.on("POST", "/v1/payment_intents/pi_3Punit/capture", Canned(200, captured))
    result = await stripe.capture(
        CaptureRequest(
            reference="cap_1", connector_reference="pi_3Punit", amount=500, currency="EUR"
        )
    )
    assert result.status is AttemptStatus.CAPTURED
    assert result.amount == 500
    req = psp.requests[0]
    assert req.form() == {"amount_to_capture": "500"}
    assert req.headers["Idempotency-Key"] == "cap_1"


async def test_capture_of_a_canceled_intent_is_a_technical_error(psp, stripe):
    body = {
        "error": {
            "type": "invalid_request_error",
            "code": "payment_intent_unexpected_state",
            "message": "This PaymentIntent could not be captured because it has a status of canceled.",
        }
    }
    psp.on("POST", "/v1/payment_intents/pi_3Punit/capture", Canned(400, body))
    result = await stripe.capture(
        CaptureRequest(
            reference="cap_1", connector_reference="pi_3Punit", amount=500, currency="EUR"
        )
    )
    assert result.status is AttemptStatus.FAILED
    assert result.normalized_code == "invalid_state"


async def test_void(psp, stripe):
    psp.on("POST", "/v1/payment_intents/pi_3Punit/cancel", Canned(200, payment_intent("canceled")))
    result = await stripe.void(
        VoidRequest(
            reference="void_1", connector_reference="pi_3Punit", amount=1099, currency="EUR"
        )
    )
    assert result.status is AttemptStatus.VOIDED
    assert psp.requests[0].headers["Idempotency-Key"] == "void_1"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("succeeded", AttemptStatus.REFUNDED),
        ("pending", AttemptStatus.PENDING),
        ("failed", AttemptStatus.DECLINED),
    ],
)
async def test_refund(psp, stripe, status, expected):
    refund = {
        "id": "re_1unit",
        "object": "refund",
        "amount": 300,
        "status": status,
        "payment_intent": "pi_3Punit",
    }
    if status == "failed":
        refund["failure_reason"] = "expired_or_canceled_card"
    psp.on("POST", "/v1/refunds", Canned(200, refund))
    result = await stripe.refund(
        RefundRequest(
            reference="ref_1", connector_reference="pi_3Punit", amount=300, currency="EUR"
        )
    )
    assert result.status is expected
    assert result.connector_reference == "re_1unit"
    assert result.amount == 300
    form = psp.requests[0].form()
    assert form["payment_intent"] == "pi_3Punit" and form["amount"] == "300"
    assert psp.requests[0].headers["Idempotency-Key"] == "ref_1"


async def test_sync_by_reference_finds_the_intent(psp, stripe):
    psp.on(
        "GET",
        "/v1/payment_intents/search",
        Canned(
            200,
            {
                "object": "search_result",
                "data": [payment_intent("requires_capture")],
                "has_more": False,
            },
        ),
    )
    result = await stripe.sync(SyncRequest(reference="att_unit_0001"))
    assert result.status is AttemptStatus.AUTHORIZED
    assert result.connector_reference == "pi_3Punit"
    assert psp.requests[0].query["query"] == "metadata['paymux_reference']:'att_unit_0001'"


async def test_sync_by_reference_not_found(psp, stripe):
    psp.on(
        "GET",
        "/v1/payment_intents/search",
        Canned(200, {"object": "search_result", "data": [], "has_more": False}),
    )
    result = await stripe.sync(SyncRequest(reference="att_missing"))
    assert result.status is AttemptStatus.NOT_FOUND


async def test_sync_by_id_and_missing_id(psp, stripe):
    psp.on("GET", "/v1/payment_intents/pi_3Punit", Canned(200, payment_intent("succeeded")))
    psp.on(
        "GET",
        "/v1/payment_intents/pi_gone",
        Canned(404, {"error": {"type": "invalid_request_error", "code": "resource_missing"}}),
    )
    found = await stripe.sync(
        SyncRequest(reference="att_unit_0001", connector_reference="pi_3Punit")
    )
    assert found.status is AttemptStatus.CAPTURED
    missing = await stripe.sync(
        SyncRequest(reference="att_unit_0001", connector_reference="pi_gone")
    )
    assert missing.status is AttemptStatus.NOT_FOUND


async def test_sync_of_a_declined_intent_reports_the_decline(psp, stripe):
    pi = payment_intent(
        "requires_payment_method",
        last_payment_error={
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
        },
    )
    psp.on(
        "GET", "/v1/payment_intents/search", Canned(200, {"object": "search_result", "data": [pi]})
    )
    result = await stripe.sync(SyncRequest(reference="att_unit_0001"))
    assert result.status is AttemptStatus.DECLINED
    assert result.decline_class is DeclineClass.ISSUER_NOT_NOW


async def test_error_echoing_the_request_never_leaks_card_data(psp, stripe, caplog):
    def echo(rec):
        return Canned(
            500,
            b"<html><body>Internal error for "
            + rec.body
            + b" Authorization: Bearer "
            + API_KEY.encode()
            + b"</body></html>",
            content_type="text/html",
        )

    psp.on("POST", "/v1/payment_intents", echo)
    with caplog.at_level(logging.DEBUG, logger="paymux"):
        result = await stripe.authorize(authorize_request())
    assert result.status is AttemptStatus.FAILED and result.ambiguous
    assert "payment_method_data" in result.detail
    assert_no_card_data(result.detail, caplog.text)
    assert PAN not in repr(result)


def test_repr_of_requests_masks_the_card():
    req = authorize_request()
    assert PAN not in repr(req)
    assert "424242******4242" in repr(req)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=30), st.text(max_size=30)), max_size=8))
def test_form_body_is_urlencode_byte_for_byte(pairs):
    assert form_body(pairs) == urlencode(pairs)


def test_form_body_of_a_payment_intent_matches_urlencode():
    pairs = encode_form(
        {
            "amount": 1099,
            "currency": "eur",
            "confirm": True,
            "metadata": {"merchant_reference": "order 1001/ä&x=y", "k": "a+b"},
            "payment_method_data": {"card": {"number": "4242424242424242"}},
        }
    )
    assert form_body(pairs) == urlencode(pairs)
