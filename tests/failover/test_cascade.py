"""Failover end to end: which outcomes cascade to the next PSP, and what the payment records."""

from __future__ import annotations

import pytest

from tests.failover.helpers import events, payment_body, sandbox_patch

# Stripe's acquirer refuses every Mastercard (do not honor); the issuer would approve it.
STRIPE_REFUSES_MASTERCARD = {
    "psps": {
        "stripe": {
            "segments": [
                {
                    "name": "mc",
                    "match": {"brand": ["mastercard"]},
                    "approval_rate": 0.0,
                    "declines": {"do_not_honor": 1.0},
                },
            ]
        }
    }
}


async def test_soft_decline_cascades_to_next_psp(gw):
    await sandbox_patch(gw, STRIPE_REFUSES_MASTERCARD)
    status, pay = await gw.post("/v1/payments", payment_body("5555555555554444"))
    assert status == 200, pay
    assert pay["status"] == "succeeded" and pay["connector"] == "adyen"
    first, second = pay["attempts"]
    assert (first["connector"], first["outcome"], first["decline_class"]) == (
        "stripe",
        "declined",
        "soft_route",
    )
    assert first["normalized_code"] == "do_not_honor"
    assert first["next_action"] == "cascade_on:soft_route->adyen"
    assert (second["connector"], second["outcome"], second["next_action"]) == (
        "adyen",
        "captured",
        "done",
    )
    types = [e["type"] for e in events(gw.db_path, pay["id"])]
    assert types == [
        "payment.created",
        "attempt.started",
        "attempt.cascaded",
        "attempt.started",
        "payment.authorized",
    ]
    cascaded = next(e for e in events(gw.db_path, pay["id"]) if e["type"] == "attempt.cascaded")
    assert cascaded["data"]["next_connector"] == "adyen"
    assert cascaded["data"]["policy"] == "default"
    created = events(gw.db_path, pay["id"])[0]
    assert created["data"]["order"] == ["stripe", "adyen", "checkout"]
    assert created["data"]["rule"] == "default"


async def test_visa_is_not_affected_by_the_mastercard_segment(gw):
    await sandbox_patch(gw, STRIPE_REFUSES_MASTERCARD)
    status, pay = await gw.post("/v1/payments", payment_body())
    assert status == 200 and pay["connector"] == "stripe" and len(pay["attempts"]) == 1


@pytest.mark.parametrize(
    "number, code, decline_class",
    [
        ("4000000000009987", "lost_card", "hard"),
        ("4000000000009995", "insufficient_funds", "issuer_not_now"),
        ("4000000000000127", "incorrect_cvc", "fix_data"),
    ],
)
async def test_card_declines_never_cascade(gw, number, code, decline_class):
    status, pay = await gw.post("/v1/payments", payment_body(number))
    assert status == 402, pay
    assert pay["status"] == "failed"
    assert len(pay["attempts"]) == 1
    attempt = pay["attempts"][0]
    assert attempt["connector"] == "stripe"
    assert attempt["normalized_code"] == code and attempt["decline_class"] == decline_class
    assert attempt["next_action"] == f"no_cascade_on:{decline_class}"
    assert pay["error"]["code"] == code
    ledger = await gw.ledger()
    assert ledger["psps"]["adyen"]["stats"]["requests"] == 0
    assert ledger["psps"]["checkout"]["stats"]["requests"] == 0


@pytest.mark.gateway_config(payments={"max_attempts": 2})
async def test_attempt_budget_stops_the_cascade(gw):
    await sandbox_patch(
        gw,
        {
            "psps": {
                "stripe": {"default": {"approval_rate": 0.0, "declines": {"do_not_honor": 1.0}}},
                "adyen": {"default": {"approval_rate": 0.0, "declines": {"do_not_honor": 1.0}}},
            }
        },
    )
    status, pay = await gw.post("/v1/payments", payment_body())
    assert status == 402
    assert [a["connector"] for a in pay["attempts"]] == ["stripe", "adyen"]
    assert pay["attempts"][-1]["next_action"] == "attempt_budget_spent"
    ledger = await gw.ledger()
    assert ledger["psps"]["checkout"]["stats"]["requests"] == 0


async def test_technical_error_cascades_after_sync_finds_nothing(gw):
    # A 5xx is ambiguous: the gateway asks Stripe by our reference first (nothing there), then
    # moves on; the attempt stays on the reconciler's watch list in case it surfaces later.
    await sandbox_patch(gw, {"psps": {"stripe": {"default": {"error_rate": 1.0}}}})
    status, pay = await gw.post("/v1/payments", payment_body())
    assert status == 200, pay
    assert [a["connector"] for a in pay["attempts"]] == ["stripe", "adyen"]
    first = pay["attempts"][0]
    assert first["outcome"] == "failed" and first["decline_class"] == "technical"
    assert first["next_action"] == "cascade_on:technical->adyen"
    ledger = await gw.ledger()
    assert ledger["psps"]["stripe"]["stats"]["authorized"] == 0


@pytest.mark.gateway_config(payments={"deadline_s": 0.2})
async def test_deadline_stops_the_cascade(gw):
    await sandbox_patch(
        gw,
        {
            "psps": {
                "stripe": {
                    "default": {
                        "approval_rate": 0.0,
                        "declines": {"do_not_honor": 1.0},
                        "latency": {"kind": "fixed", "ms": 300},
                    }
                }
            }
        },
    )
    status, pay = await gw.post("/v1/payments", payment_body())
    assert status == 402
    assert [a["connector"] for a in pay["attempts"]] == ["stripe"]
    assert pay["attempts"][0]["next_action"] == "deadline_passed"
