"""Stripe webhook signature verification and event mapping."""

from __future__ import annotations

import time

import orjson
import pytest
from paymux.connectors.base import WebhookError
from paymux.connectors.stripe import sign_webhook
from paymux.domain.outcomes import AttemptStatus

from .conftest import WEBHOOK_SECRET


def _event(kind: str, obj: dict) -> bytes:
    return orjson.dumps({"id": "evt_1", "object": "event", "type": kind, "data": {"object": obj}})


def test_payment_intent_succeeded(stripe):
    body = _event(
        "payment_intent.succeeded",
        {
            "id": "pi_1",
            "object": "payment_intent",
            "status": "succeeded",
            "amount": 1099,
            "amount_received": 1099,
            "metadata": {"paymux_reference": "att_1"},
        },
    )
    [ev] = stripe.parse_webhook({"Stripe-Signature": sign_webhook(body, WEBHOOK_SECRET)}, body)
    assert (ev.connector_reference, ev.reference, ev.event_type, ev.status, ev.amount) == (
        "pi_1",
        "att_1",
        "payment_intent.succeeded",
        AttemptStatus.CAPTURED,
        1099,
    )


def test_payment_failed_carries_the_decline_code(stripe):
    obj = {
        "id": "pi_1",
        "object": "payment_intent",
        "status": "requires_payment_method",
        "amount": 1099,
        "metadata": {"paymux_reference": "att_1"},
        "last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds"},
    }
    body = _event("payment_intent.payment_failed", obj)
    [ev] = stripe.parse_webhook({"stripe-signature": sign_webhook(body, WEBHOOK_SECRET)}, body)
    assert ev.status is AttemptStatus.DECLINED and ev.raw_code == "insufficient_funds"


def test_charge_refunded(stripe):
    body = _event(
        "charge.refunded",
        {
            "id": "ch_1",
            "object": "charge",
            "payment_intent": "pi_1",
            "refunded": True,
            "amount_refunded": 300,
            "metadata": {},
        },
    )
    [ev] = stripe.parse_webhook({"Stripe-Signature": sign_webhook(body, WEBHOOK_SECRET)}, body)
    assert (
        ev.connector_reference == "pi_1"
        and ev.status is AttemptStatus.REFUNDED
        and ev.amount == 300
    )


def test_bad_signature_missing_header_and_stale_timestamp(stripe):
    body = _event(
        "payment_intent.succeeded",
        {"id": "pi_1", "object": "payment_intent", "status": "succeeded"},
    )
    with pytest.raises(WebhookError):
        stripe.parse_webhook({"Stripe-Signature": sign_webhook(body, "whsec_other")}, body)
    with pytest.raises(WebhookError):
        stripe.parse_webhook({}, body)
    with pytest.raises(WebhookError):
        stripe.parse_webhook({"Stripe-Signature": "garbage"}, body)
    with pytest.raises(WebhookError):
        stripe.parse_webhook(
            {"Stripe-Signature": sign_webhook(body, WEBHOOK_SECRET, int(time.time()) - 3600)}, body
        )
    with pytest.raises(WebhookError):
        stripe.parse_webhook(
            {"Stripe-Signature": sign_webhook(body, WEBHOOK_SECRET)}, body.replace(b"pi_1", b"pi_2")
        )
