"""The normalized vocabulary every PSP answer is mapped into: decline classes and attempt statuses."""

from __future__ import annotations

import enum


class DeclineClass(enum.StrEnum):
    """What failover may do after a decline (see shared/psp-reference/decline-classes.md)."""

    HARD = "hard"  # the issuer will never approve this card: never retry
    FIX_DATA = "fix_data"  # expired, wrong CVV: the same data fails everywhere
    ISSUER_NOT_NOW = "issuer_not_now"  # insufficient funds, limits: any PSP gets the same answer
    SOFT_ROUTE = "soft_route"  # do-not-honor, acquirer rejects: another PSP may approve
    TECHNICAL = "technical"  # no real answer (timeout, 5xx, issuer down): the only breaker input


class AttemptStatus(enum.StrEnum):
    """The normalized result of one call to a PSP."""

    AUTHORIZED = "authorized"  # approved, funds held, not captured
    CAPTURED = "captured"  # approved and (fully or partly) captured
    DECLINED = "declined"  # a real answer that said no; decline_class says why
    PENDING = "pending"  # neither an explicit success nor an explicit failure
    REQUIRES_ACTION = "requires_action"  # 3DS challenge or redirect needed
    FAILED = "failed"  # technical failure: no usable answer (decline_class is technical)
    VOIDED = "voided"  # an authorization released
    REFUNDED = "refunded"  # a refund accepted (possibly asynchronously, see PENDING)
    NOT_FOUND = "not_found"  # sync only: the PSP has no payment with our reference


#: Statuses in which money is (or may be) held at the PSP for this attempt.
HOLDS_FUNDS = frozenset({AttemptStatus.AUTHORIZED, AttemptStatus.CAPTURED})
