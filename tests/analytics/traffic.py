"""Known traffic through the real gateway, and what the analytics must say about it.

The expectations are computed from the payments the gateway returned (their attempts), so the
analytics are checked against what actually happened, not against what the sandbox was told.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

from paymux.sandbox.scenario import Match, Psp, Scenario, Segment

from tests.gateway.conftest import card

ADMIN_KEY = "adm_test_analytics"

# Stripe's acquirer refuses Mastercard (do_not_honor: soft, another PSP may approve); everything
# else approves unless the test card says otherwise. Unpinned Mastercard payments therefore fail
# over stripe->adyen and are recovered there.
SCENARIO = Scenario(
    psps={
        "stripe": Psp(
            wire="stripe",
            segments=[
                Segment(
                    name="no-mastercard",
                    match=Match(brand=["mastercard"]),
                    approval_rate=0.0,
                    declines={"do_not_honor": 1.0},
                )
            ],
        ),
        "adyen": Psp(wire="adyen"),
        "checkout": Psp(wire="checkout"),
    }
)

VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
INSUFFICIENT_FUNDS = "4000000000009995"
LOST_CARD = "4000000000009987"
GENERIC_DECLINE = "4000000000000002"

# (card, connector or None for routing, currency, country, amount, how many)
PLAN: list[tuple[str, str | None, str, str, int, int]] = [
    (VISA, "stripe", "EUR", "DE", 1000, 3),
    (INSUFFICIENT_FUNDS, "stripe", "EUR", "DE", 1000, 1),
    (MASTERCARD, "adyen", "USD", "US", 2500, 2),
    (LOST_CARD, "adyen", "USD", "US", 2500, 1),
    (VISA, "checkout", "GBP", "GB", 700, 2),
    (MASTERCARD, None, "EUR", "FR", 4000, 2),
    (GENERIC_DECLINE, None, "EUR", "FR", 1500, 1),
]
APPROVED = {"authorized", "captured"}


async def drive(gateway: Any) -> list[dict[str, Any]]:
    payments = []
    for number, connector, currency, country, amount, count in PLAN:
        for _ in range(count):
            body: dict[str, Any] = {
                "amount": amount,
                "currency": currency,
                "payment_method": card(number),
                "billing": {"country": country},
            }
            if connector:
                body["connector"] = connector
            status, pay = await gateway.post("/v1/payments", body)
            assert status in (200, 402), pay
            payments.append(pay)
    return payments


def expected(payments: list[dict[str, Any]]) -> dict[str, Any]:
    """Per connector: payments (by first attempt), first-attempt and final approvals, attempts,
    declines by normalized code, and cascade paths."""
    per: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "payments": 0,
            "first_attempt_approved": 0,
            "approved": 0,
            "attempts": 0,
            "attempts_approved": 0,
            "volume": defaultdict(int),
        }
    )
    codes: dict[str, int] = defaultdict(int)
    paths: dict[str, int] = defaultdict(int)
    recovered = 0
    for pay in payments:
        attempts = pay["attempts"]
        first = per[attempts[0]["connector"]]
        first["payments"] += 1
        first["first_attempt_approved"] += attempts[0]["outcome"] in APPROVED
        ok = pay["status"] in ("succeeded", "requires_capture")
        first["approved"] += ok
        if ok:
            first["volume"][pay["currency"]] += pay["amount"]
        if ok and len(attempts) > 1:
            recovered += 1
        for a, b in itertools.pairwise(attempts):
            paths[f"{a['connector']}->{b['connector']}"] += 1
        for a in attempts:
            per[a["connector"]]["attempts"] += 1
            per[a["connector"]]["attempts_approved"] += a["outcome"] in APPROVED
            if a["outcome"] in ("declined", "failed"):
                codes[a["normalized_code"]] += 1
    return {"per": per, "codes": codes, "paths": paths, "recovered": recovered}
