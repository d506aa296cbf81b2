"""The payment and refund state machines: one transitions table each, one function that applies it.

Every status change of a payment, a refund or an attempt anywhere in paymux goes through
``transition``, ``transition_refund`` or ``settle_attempt``; nothing else assigns a status (a test
greps for it). An illegal move raises ``IllegalTransition`` instead of being a branch somebody
forgot. In-flight PSP operations are states of their own (``processing`` while authorizing,
``capturing``, ``canceling``, a refund ``pending``), so a crash in the middle of one leaves a
state that says exactly which PSP call is unresolved; the row that caused it (attempt or
operation) is named on the event written with it.

The table is also the documentation: ``mermaid()`` draws it, and docs/lifecycle.md holds that
drawing (a test compares the two, so the picture cannot go stale).

Amounts move with the statuses and are checked here too: captured <= authorized, refunded
(including refunds still pending at the PSP) <= captured, all integers in minor units.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from paymux.domain.outcomes import AttemptStatus
from paymux.domain.records import (
    AttemptRecord,
    OperationRecord,
    PaymentRecord,
    PaymentStatus,
    RefundRecord,
)


class Operation(enum.StrEnum):
    """What was done to a payment: each names the PSP call (or the lack of one) behind a change."""

    CONFIRM = "confirm"  # a payment created unconfirmed (a drop-in front's intent) goes ahead
    AUTHORIZE = "authorize"  # an attempt's answer (or the end of the cascade)
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"
    SYNC = "sync"  # the PSP's answer to "what happened to our reference?" (reconciler, restart)
    EXPIRE = "expire"  # nobody completed it in time (a 3DS challenge left unanswered)


class Outcome(enum.StrEnum):
    """How an operation ended, in the gateway's terms (not one PSP's)."""

    STARTED = "started"  # persisted, about to call the PSP
    AUTHORIZED = "authorized"
    CAPTURED = "captured"  # authorize with automatic capture
    REQUIRES_ACTION = "requires_action"
    DECLINED = "declined"  # the PSP said no to an authorization: nothing is held
    NOT_FOUND = "not_found"  # the PSP confirms it never saw the call: nothing happened
    UNKNOWN = "unknown"  # timeout, reset, 5xx, garbage, or not settled yet: ask again later
    SUCCEEDED = "succeeded"  # a capture, void or refund the PSP applied (or accepted to apply)
    FAILED = "failed"  # the PSP refused a capture, void or refund: nothing changed there
    EXPIRED = "expired"


class RefundStatus(enum.StrEnum):
    PENDING = "pending"  # reserved against the captured amount; the PSP may or may not have it
    SUCCEEDED = "succeeded"
    FAILED = "failed"


S = PaymentStatus
O = Operation  # one-letter names: the table reads as a table
R = Outcome

#: Statuses a payment never leaves. (A succeeded payment's status does not change either, but
#: refunds still move its amounts, so it is not listed here.)
TERMINAL = frozenset({S.FAILED, S.CANCELED})

#: Statuses in which a PSP call of the payment's own is unresolved.
IN_FLIGHT = frozenset({S.PROCESSING, S.CAPTURING, S.CANCELING})

#: Statuses that will still change without the client doing anything (a PSP answer, a sync, the
#: customer's 3-D Secure answer): an Idempotency-Key's answer given in one of them is provisional.
UNSETTLED = IN_FLIGHT | {S.REQUIRES_ACTION}

# (from status, operation, outcome) -> to status
_AUTHORIZE_ENDINGS: dict[Outcome, PaymentStatus] = {
    R.AUTHORIZED: S.REQUIRES_CAPTURE,
    R.CAPTURED: S.SUCCEEDED,
    R.REQUIRES_ACTION: S.REQUIRES_ACTION,
    R.DECLINED: S.FAILED,
    R.NOT_FOUND: S.FAILED,
    R.UNKNOWN: S.PROCESSING,
}

TRANSITIONS: dict[tuple[PaymentStatus, Operation, Outcome], PaymentStatus] = {
    # Created unconfirmed (Stripe's PaymentIntent without confirm=true): nothing at any PSP yet.
    (S.REQUIRES_CONFIRMATION, O.CONFIRM, R.STARTED): S.PROCESSING,
    (S.REQUIRES_CONFIRMATION, O.VOID, R.SUCCEEDED): S.CANCELED,  # no PSP call to make
    **{(S.PROCESSING, O.AUTHORIZE, r): to for r, to in _AUTHORIZE_ENDINGS.items()},
    **{(S.PROCESSING, O.SYNC, r): to for r, to in _AUTHORIZE_ENDINGS.items()},
    # 3-D Secure: the customer's answer arrives later, through a sync (or a webhook).
    (S.REQUIRES_ACTION, O.SYNC, R.AUTHORIZED): S.REQUIRES_CAPTURE,
    (S.REQUIRES_ACTION, O.SYNC, R.CAPTURED): S.SUCCEEDED,
    (S.REQUIRES_ACTION, O.SYNC, R.DECLINED): S.FAILED,
    (S.REQUIRES_ACTION, O.SYNC, R.REQUIRES_ACTION): S.REQUIRES_ACTION,
    (S.REQUIRES_ACTION, O.SYNC, R.UNKNOWN): S.REQUIRES_ACTION,
    (S.REQUIRES_ACTION, O.EXPIRE, R.EXPIRED): S.FAILED,
    # Capture, all or part: the rest of the authorization is released, as Stripe does.
    (S.REQUIRES_CAPTURE, O.CAPTURE, R.STARTED): S.CAPTURING,
    (S.CAPTURING, O.CAPTURE, R.SUCCEEDED): S.SUCCEEDED,
    (S.CAPTURING, O.CAPTURE, R.FAILED): S.REQUIRES_CAPTURE,
    (S.CAPTURING, O.CAPTURE, R.NOT_FOUND): S.REQUIRES_CAPTURE,
    (S.CAPTURING, O.CAPTURE, R.UNKNOWN): S.CAPTURING,
    (S.CAPTURING, O.SYNC, R.SUCCEEDED): S.SUCCEEDED,
    (S.CAPTURING, O.SYNC, R.FAILED): S.REQUIRES_CAPTURE,
    (S.CAPTURING, O.SYNC, R.NOT_FOUND): S.REQUIRES_CAPTURE,
    (S.CAPTURING, O.SYNC, R.UNKNOWN): S.CAPTURING,
    # Void of an uncaptured authorization.
    (S.REQUIRES_CAPTURE, O.VOID, R.STARTED): S.CANCELING,
    (S.CANCELING, O.VOID, R.SUCCEEDED): S.CANCELED,
    (S.CANCELING, O.VOID, R.FAILED): S.REQUIRES_CAPTURE,
    (S.CANCELING, O.VOID, R.NOT_FOUND): S.REQUIRES_CAPTURE,
    (S.CANCELING, O.VOID, R.UNKNOWN): S.CANCELING,
    (S.CANCELING, O.SYNC, R.SUCCEEDED): S.CANCELED,
    (S.CANCELING, O.SYNC, R.FAILED): S.REQUIRES_CAPTURE,
    (S.CANCELING, O.SYNC, R.NOT_FOUND): S.REQUIRES_CAPTURE,
    (S.CANCELING, O.SYNC, R.UNKNOWN): S.CANCELING,
    # Refunds have their own machine (below); on the payment they only move amounts.
    (S.SUCCEEDED, O.REFUND, R.STARTED): S.SUCCEEDED,
    (S.SUCCEEDED, O.REFUND, R.SUCCEEDED): S.SUCCEEDED,
    (S.SUCCEEDED, O.REFUND, R.FAILED): S.SUCCEEDED,
    (S.SUCCEEDED, O.REFUND, R.NOT_FOUND): S.SUCCEEDED,
    (S.SUCCEEDED, O.REFUND, R.UNKNOWN): S.SUCCEEDED,  # the refund stays pending and reserved
}

RS = RefundStatus
# (from refund status, outcome) -> to refund status; a new refund starts as pending.
REFUND_TRANSITIONS: dict[tuple[RefundStatus, Outcome], RefundStatus] = {
    (RS.PENDING, R.SUCCEEDED): RS.SUCCEEDED,
    (RS.PENDING, R.FAILED): RS.FAILED,
    (RS.PENDING, R.NOT_FOUND): RS.FAILED,
    (RS.PENDING, R.UNKNOWN): RS.PENDING,
}

# An attempt's status is the PSP's word on it; it may move from "started" or an unsettled answer
# to anything, and from a hold to its release (a late authorization voided or refunded).
_UNSETTLED_ATTEMPT = frozenset({"started", AttemptStatus.PENDING, AttemptStatus.FAILED})
ATTEMPT_MOVES: dict[str, frozenset[str]] = {
    AttemptStatus.AUTHORIZED: frozenset({AttemptStatus.CAPTURED, AttemptStatus.VOIDED}),
    AttemptStatus.CAPTURED: frozenset({AttemptStatus.REFUNDED}),
    AttemptStatus.REQUIRES_ACTION: frozenset(
        {
            AttemptStatus.AUTHORIZED,
            AttemptStatus.CAPTURED,
            AttemptStatus.DECLINED,
            AttemptStatus.FAILED,
            AttemptStatus.REQUIRES_ACTION,
        }
    ),
    AttemptStatus.DECLINED: frozenset({AttemptStatus.AUTHORIZED, AttemptStatus.CAPTURED}),
    # A sync's "not found" is recorded on the attempt as a clean failure.
    AttemptStatus.NOT_FOUND: frozenset(
        {AttemptStatus.AUTHORIZED, AttemptStatus.CAPTURED, AttemptStatus.FAILED}
    ),
}


class IllegalTransition(Exception):
    """An operation that the current state does not allow (or amounts that do not add up)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Transition:
    """One applied change: what the event row written with it records."""

    from_status: str
    to_status: str
    operation: Operation
    outcome: Outcome

    @property
    def changed(self) -> bool:
        return self.from_status != self.to_status


def next_status(status: str, operation: Operation, outcome: Outcome) -> PaymentStatus:
    """Where the table goes from ``status``, or IllegalTransition."""
    try:
        return TRANSITIONS[(PaymentStatus(status), operation, outcome)]
    except (KeyError, ValueError):
        if status in TERMINAL:
            raise IllegalTransition(
                "payment_unexpected_state", f"This payment is {status}, which is final"
            ) from None
        raise IllegalTransition(
            "payment_unexpected_state", f"A payment in status {status} cannot {operation} now"
        ) from None


def transition(
    payment: PaymentRecord,
    operation: Operation,
    outcome: Outcome,
    *,
    amount: int | None = None,
    now: float | None = None,
) -> Transition:
    """Apply one (operation, outcome) to ``payment``: its status and the amounts that move with it.

    ``amount`` is the operation's amount (a capture's or a refund's); refunds' own statuses go
    through ``transition_refund``, and this only keeps the payment's refunded total in step.
    """
    before = payment.status
    try:  # plain strings look the table up fine, but the amount moves compare enum members
        operation, outcome = Operation(operation), Outcome(outcome)
    except ValueError:
        raise IllegalTransition(
            "payment_unexpected_state", f"Unknown operation {operation!r} or outcome {outcome!r}"
        ) from None
    to = next_status(before, operation, outcome)
    _move_amounts(payment, operation, outcome, amount)
    payment.status = to
    if now is not None:
        payment.updated_at = now
    return Transition(before, to, operation, outcome)


def _move_amounts(
    payment: PaymentRecord, operation: Operation, outcome: Outcome, amount: int | None
) -> None:
    if outcome is R.AUTHORIZED:
        payment.amount_capturable = payment.amount
    elif outcome is R.CAPTURED:
        payment.amount_received = payment.amount
        payment.amount_capturable = 0
    elif operation is O.CAPTURE or (payment.status == S.CAPTURING and operation is O.SYNC):
        if outcome is R.STARTED:
            _check_amount(amount, payment.amount_capturable, "capture", "amount_too_large")
        elif outcome is R.SUCCEEDED:
            assert amount is not None, "a capture's amount moves with it"
            _check_amount(amount, payment.amount_capturable, "capture", "amount_too_large")
            payment.amount_received = amount
            payment.amount_capturable = 0  # a partial capture releases the rest
    elif operation is O.VOID or (payment.status == S.CANCELING and operation is O.SYNC):
        if outcome is R.SUCCEEDED:
            payment.amount_capturable = 0
    elif operation is O.REFUND:
        assert amount is not None, "a refund's amount moves with it"
        if outcome is R.STARTED:
            # Pending refunds are reserved: two concurrent refunds cannot both take the last cent.
            _check_amount(
                amount,
                payment.amount_received - payment.amount_refunded,
                "refund",
                "refund_exceeds_captured",
            )
            payment.amount_refunded += amount
        elif outcome in (R.FAILED, R.NOT_FOUND):
            # Only what was reserved can be released: refunded never goes below zero (nor up).
            _check_amount(amount, payment.amount_refunded, "release", "refund_exceeds_reserved")
            payment.amount_refunded -= amount  # the reservation is released
    elif operation is O.EXPIRE:
        payment.amount_capturable = 0


def _check_amount(amount: int | None, available: int, what: str, code: str) -> None:
    if amount is None or amount <= 0:
        raise IllegalTransition("amount_invalid", f"A {what} needs a positive amount")
    if amount > available:
        raise IllegalTransition(code, f"Cannot {what} {amount}: only {available} is available")


def transition_refund(refund: RefundRecord, outcome: Outcome, *, now: float | None = None) -> str:
    """Apply a PSP outcome to a refund; returns its status before. Final statuses never change."""
    before = refund.status
    try:
        refund.status = REFUND_TRANSITIONS[(RefundStatus(before), outcome)]
    except (KeyError, ValueError):
        raise IllegalTransition(
            "refund_unexpected_state", f"A refund in status {before} cannot become {outcome}"
        ) from None
    if now is not None:
        refund.updated_at = now
    return before


# A capture's or void's own row: pending until the PSP's answer is known, then final.
OPERATION_TRANSITIONS: dict[tuple[str, Outcome], str] = {
    ("pending", R.SUCCEEDED): "succeeded",
    ("pending", R.FAILED): "failed",
    ("pending", R.NOT_FOUND): "failed",
    ("pending", R.UNKNOWN): "pending",
}


def settle_operation(
    operation: OperationRecord, outcome: Outcome, now: float | None = None
) -> None:
    """Apply a PSP outcome to a capture's or void's row; final rows never change."""
    try:
        operation.status = OPERATION_TRANSITIONS[(operation.status, outcome)]
    except KeyError:
        raise IllegalTransition(
            "operation_unexpected_state",
            f"A {operation.kind} that is {operation.status} cannot become {outcome}",
        ) from None
    if now is not None:
        operation.updated_at = now


def settle_attempt(attempt: AttemptRecord, status: str) -> None:
    """Record the PSP's word on an attempt. An attempt that holds funds only moves to releasing
    them; an unsettled one (started, pending, an ambiguous failure) may move anywhere."""
    before = attempt.status
    if (
        before != status
        and before not in _UNSETTLED_ATTEMPT
        and status not in ATTEMPT_MOVES.get(before, frozenset())
    ):
        raise IllegalTransition(
            "attempt_unexpected_state", f"An attempt {before} cannot become {status}"
        )
    attempt.status = status


def mermaid() -> str:
    """The payment state diagram, drawn from the table itself (Mermaid ``stateDiagram-v2``)."""
    lines = ["stateDiagram-v2", "    [*] --> processing: authorize started"]
    edges: dict[tuple[str, str], list[str]] = {}
    for (frm, op, outcome), to in TRANSITIONS.items():
        if frm == to and outcome in (R.UNKNOWN, R.REQUIRES_ACTION) or frm == to == S.SUCCEEDED:
            continue  # self-loops of "still unknown" and refunds' amount moves: in the table
        edges.setdefault((frm, to), []).append(f"{op} {outcome}")
    for (source, target), labels in edges.items():
        lines.append(f"    {source} --> {target}: {', '.join(labels)}")
    for final in sorted(TERMINAL):
        lines.append(f"    {final} --> [*]")
    lines.append("    succeeded --> [*]")
    return "\n".join(lines) + "\n"


def refund_mermaid() -> str:
    lines = ["stateDiagram-v2", "    [*] --> pending: refund started"]
    for (frm, outcome), to in REFUND_TRANSITIONS.items():
        if frm != to:
            lines.append(f"    {frm} --> {to}: {outcome}")
    lines += ["    succeeded --> [*]", "    failed --> [*]"]
    return "\n".join(lines) + "\n"
