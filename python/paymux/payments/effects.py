"""How a PSP's answer becomes a state change: outcomes from connector results, the errors a
payment carries, and the event row written with every transition. Shared by the flow, the
operations, the reconciler and crash recovery, so they cannot disagree."""

from __future__ import annotations

import time
from typing import Any

from paymux.connectors.base import ConnectorResult
from paymux.domain.lifecycle import (
    UNSETTLED,
    Operation,
    Outcome,
    Transition,
    settle_attempt,
    transition,
)
from paymux.domain.outcomes import AttemptStatus
from paymux.domain.records import AttemptRecord, EventRecord, PaymentRecord, StoredAnswer

# What an operation's PSP call looks like when the PSP applied it (or accepted to apply it).
DONE_STATUS = {
    "capture": AttemptStatus.CAPTURED,
    "void": AttemptStatus.VOIDED,
    "refund": AttemptStatus.REFUNDED,
}


def event(
    payment: PaymentRecord,
    type_: str,
    now: float | None = None,
    change: Transition | None = None,
    **kw: Any,
) -> EventRecord:
    """The event row of a change, written in the same transaction as the state it records."""
    if change is not None:
        kw.setdefault("from_status", change.from_status)
        kw.setdefault("to_status", change.to_status)
        data = kw.setdefault("data", {})
        data.setdefault("operation", str(change.operation))
        data.setdefault("outcome", str(change.outcome))
    return EventRecord(
        payment_id=payment.id,
        merchant_id=payment.merchant_id,
        type=type_,
        created_at=time.time() if now is None else now,
        **kw,
    )


def payment_answer(payment: PaymentRecord, answer: tuple[int, bytes]) -> StoredAnswer:
    """The answer for the keys bound to the payment itself (the request that created or
    confirmed it): provisional while the payment is unsettled, so the transaction that settles
    it replaces it."""
    return StoredAnswer(
        payment_id=payment.id,
        operation_id=None,
        status=answer[0],
        body=answer[1],
        final=payment.status not in UNSETTLED,
    )


def authorization_outcome(result: ConnectorResult) -> Outcome:
    """An authorize (or its sync) answer in the lifecycle's terms."""
    status = result.status
    if status is AttemptStatus.AUTHORIZED:
        return Outcome.AUTHORIZED
    if status is AttemptStatus.CAPTURED:
        return Outcome.CAPTURED
    if status is AttemptStatus.REQUIRES_ACTION:
        return Outcome.REQUIRES_ACTION
    if status is AttemptStatus.DECLINED:
        return Outcome.DECLINED
    if status is AttemptStatus.NOT_FOUND:
        return Outcome.NOT_FOUND
    if status is AttemptStatus.FAILED and not result.ambiguous:
        return Outcome.DECLINED  # a technical failure the PSP surely never acted on
    return Outcome.UNKNOWN  # pending, or ambiguous


def operation_outcome(kind: str, result: ConnectorResult) -> Outcome:
    """A capture, void or refund answer (or its sync) in the lifecycle's terms."""
    status = result.status
    if status is DONE_STATUS[kind]:
        return Outcome.SUCCEEDED
    if status is AttemptStatus.DECLINED:
        return Outcome.FAILED
    if status is AttemptStatus.NOT_FOUND:
        return Outcome.NOT_FOUND
    if status is AttemptStatus.FAILED and not result.ambiguous:
        return Outcome.NOT_FOUND  # never reached the PSP, or refused before it acted
    return Outcome.UNKNOWN  # pending, an ambiguous failure, or an answer we cannot place


def record_attempt_result(attempt: AttemptRecord, result: ConnectorResult) -> None:
    settle_attempt(attempt, result.status)
    attempt.connector_reference = result.connector_reference or attempt.connector_reference
    attempt.raw_code = result.raw_code
    attempt.raw_message = result.raw_message
    attempt.normalized_code = result.normalized_code
    attempt.decline_class = result.decline_class
    attempt.advice_code = result.advice_code
    attempt.latency_ms = round(result.latency_ms, 3)
    attempt.ambiguous = result.ambiguous
    attempt.updated_at = time.time()


def apply_authorization(
    payment: PaymentRecord,
    attempt: AttemptRecord,
    result: ConnectorResult,
    operation: Operation = Operation.AUTHORIZE,
) -> Transition:
    """The payment's move on an attempt's answer that holds funds, waits, or is unknown."""
    change = transition(payment, operation, authorization_outcome(result), now=time.time())
    payment.connector = attempt.connector
    payment.connector_reference = result.connector_reference or payment.connector_reference
    if change.to_status != "processing":
        payment.error = None
    return change


def fail_payment(
    payment: PaymentRecord,
    outcome: Outcome,
    error: dict[str, Any],
    operation: Operation = Operation.AUTHORIZE,
    connector: str | None = None,
) -> Transition:
    """End a payment as failed (a decline, or nothing held at any PSP), with its error."""
    change = transition(payment, operation, outcome, now=time.time())
    if connector is not None:
        payment.connector = connector
    payment.error = error
    return change


def declined_error(result: ConnectorResult) -> dict[str, Any]:
    return {
        "type": "card_error" if result.status is AttemptStatus.DECLINED else "api_error",
        "code": result.normalized_code or "declined",
        "decline_class": result.decline_class,
        "message": result.raw_message or "The payment was declined.",
        "raw_code": result.raw_code,
    }


def interrupted_error() -> dict[str, Any]:
    """The error of a payment the gateway stopped processing before any PSP acted on it (the
    PSP confirmed, by a sync, that it never saw the attempt)."""
    return {
        "type": "api_error",
        "code": "processing_interrupted",
        "decline_class": None,
        "message": "The gateway stopped before this payment was completed; no PSP holds funds "
        "for it. Retry with the same Idempotency-Key.",
        "raw_code": None,
    }
