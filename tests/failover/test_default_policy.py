"""The built-in failover policy, called directly (as the orchestrator does after an attempt)."""

from __future__ import annotations

import pytest
from paymux.domain.outcomes import AttemptStatus, DeclineClass
from paymux.failover.policy import AttemptContext, DefaultPolicy


def ctx(**kw) -> AttemptContext:
    values = {
        "payment_id": "pay_1",
        "attempt_number": 1,
        "max_attempts": 3,
        "elapsed_s": 0.1,
        "deadline_s": 30.0,
        "remaining_candidates": ["adyen", "checkout"],
    }
    values.update(kw)
    return AttemptContext(**values)


@pytest.mark.parametrize(
    "decline_class, cascade",
    [
        (DeclineClass.SOFT_ROUTE, True),
        (DeclineClass.TECHNICAL, True),
        (DeclineClass.HARD, False),
        (DeclineClass.FIX_DATA, False),
        (DeclineClass.ISSUER_NOT_NOW, False),
    ],
)
async def test_only_soft_route_and_technical_cascade(decline_class, cascade):
    decision = await DefaultPolicy().decide(AttemptStatus.DECLINED, decline_class, None, ctx())
    assert decision.cascade is cascade


@pytest.mark.parametrize("advice", ["03", "21"])
async def test_do_not_retry_advice_stops_even_a_soft_decline(advice):
    decision = await DefaultPolicy().decide(
        AttemptStatus.DECLINED, DeclineClass.SOFT_ROUTE, advice, ctx()
    )
    assert not decision.cascade and decision.reason == f"do_not_retry_advice:{advice}"


async def test_budget_deadline_and_candidates_bound_the_cascade():
    policy = DefaultPolicy()
    soft = (AttemptStatus.DECLINED, DeclineClass.SOFT_ROUTE, None)
    assert (await policy.decide(*soft, ctx(attempt_number=3))).reason == "attempt_budget_spent"
    assert (await policy.decide(*soft, ctx(elapsed_s=31.0))).reason == "deadline_passed"
    assert (await policy.decide(*soft, ctx(remaining_candidates=[]))).reason == "no_candidates_left"
    ok = await policy.decide(*soft, ctx())
    assert ok.cascade and ok.reason == "cascade_on:soft_route->adyen" and ok.next_connector is None
