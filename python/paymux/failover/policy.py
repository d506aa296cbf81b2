"""The failover policy interface and the built-in default policy.

A policy is an object with async hooks the orchestrator calls after every attempt that neither
approved nor left the payment waiting at the PSP (ambiguous answers are synced first and never
reach the policy). Third-party policies register under the entry-point group ``paymux.policies``
and are chosen by name in config (``payments.failover_policy``); see docs/failover.md.
"""

from __future__ import annotations

import msgspec

from paymux.domain.outcomes import AttemptStatus, DeclineClass

# Mastercard merchant advice codes that forbid any retry of this card (card-network rules).
DO_NOT_RETRY_ADVICE = frozenset({"03", "21"})


class AttemptContext(msgspec.Struct, kw_only=True):
    """What a policy knows about the payment when it decides."""

    payment_id: str
    attempt_number: int  # 1 for the first attempt
    max_attempts: int
    elapsed_s: float
    deadline_s: float
    remaining_candidates: list[str]  # in the routing order
    connector: str = ""  # the connector that just answered
    normalized_code: str | None = None
    amount: int = 0  # minor units
    currency: str = ""


class FailoverDecision(msgspec.Struct, kw_only=True):
    cascade: bool
    reason: str  # recorded on the attempt and in the payment's events
    delay_s: float = 0.0  # wait before the next attempt
    next_connector: str | None = None  # jump to this remaining candidate (None: routing order)


class FailoverPolicy:
    """Base class: subclass and override `decide`."""

    name = "base"

    async def decide(
        self,
        status: AttemptStatus,
        decline_class: DeclineClass | None,
        advice_code: str | None,
        context: AttemptContext,
    ) -> FailoverDecision:
        raise NotImplementedError


class DefaultPolicy(FailoverPolicy):
    """Cascade only on soft_route and technical outcomes, within the attempt budget and deadline."""

    name = "default"

    async def decide(
        self,
        status: AttemptStatus,
        decline_class: DeclineClass | None,
        advice_code: str | None,
        context: AttemptContext,
    ) -> FailoverDecision:
        if status not in (AttemptStatus.DECLINED, AttemptStatus.FAILED):
            return FailoverDecision(cascade=False, reason=f"final:{status}")
        if advice_code in DO_NOT_RETRY_ADVICE:
            return FailoverDecision(cascade=False, reason=f"do_not_retry_advice:{advice_code}")
        if decline_class not in (DeclineClass.SOFT_ROUTE, DeclineClass.TECHNICAL):
            return FailoverDecision(cascade=False, reason=f"no_cascade_on:{decline_class}")
        if not context.remaining_candidates:
            return FailoverDecision(cascade=False, reason="no_candidates_left")
        if context.attempt_number >= context.max_attempts:
            return FailoverDecision(cascade=False, reason="attempt_budget_spent")
        if context.elapsed_s >= context.deadline_s:
            return FailoverDecision(cascade=False, reason="deadline_passed")
        return FailoverDecision(
            cascade=True, reason=f"cascade_on:{decline_class}->{context.remaining_candidates[0]}"
        )
