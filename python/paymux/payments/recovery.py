"""Crash recovery, run once on start: every PSP call whose answer never arrived is resolved by
asking that PSP about its reference, before anything is declared failed.

- attempts persisted as ``started`` (the process died before, during or just after the call);
- captures and voids still ``pending``, and refunds still ``pending``;
- payments left ``processing`` with nothing outstanding at any PSP (the process stopped between
  a decline and the next cascade);
- Idempotency-Keys whose first request never got its answer out.

"Failed" needs the PSP's word that nothing happened (a sync that does not find our reference).
A PSP that cannot be reached leaves the state in flight: the reconciler keeps asking.
"""

from __future__ import annotations

import logging
import time

from paymux.config import GatewayConfig
from paymux.connectors.base import Connector, SyncRequest
from paymux.domain.lifecycle import Operation, Outcome, settle_attempt
from paymux.domain.outcomes import AttemptStatus
from paymux.domain.records import Conflict, OperationRecord, PaymentStatus, RefundRecord
from paymux.observability.logs import log
from paymux.payments.answers import Answers
from paymux.payments.effects import (
    apply_authorization,
    authorization_outcome,
    declined_error,
    event,
    fail_payment,
    interrupted_error,
    payment_answer,
    record_attempt_result,
)
from paymux.payments.operations import OperationFlow
from paymux.payments.reconciler import Reconciler
from paymux.store.base import Store


class Recovery:
    def __init__(
        self,
        config: GatewayConfig,
        store: Store,
        connectors: dict[str, Connector],
        answers: Answers,
        operations: OperationFlow,
        reconciler: Reconciler,
    ) -> None:
        self.config = config
        self.store = store
        self.connectors = connectors
        self.answers = answers
        self.operations = operations
        self.reconciler = reconciler

    async def run(self, immediate: bool = True) -> int:
        """Resolve what a previous process left in flight; returns how many were settled.

        ``immediate``: everything in flight is an orphan (one SQLite node, whose workers all
        start together). Otherwise (several nodes on one database) only what is older than the
        budget of the request that started it, which may still be running on another node."""
        resolved = await self.resolve_stale(0.0 if immediate else None)
        pending: list[OperationRecord | RefundRecord] = [
            *await self.store.pending_operations(),
            *await self.store.pending_refunds(),
        ]
        for operation in pending:
            if not immediate and operation.updated_at > time.time() - self._budget(
                operation.connector
            ):
                continue  # the reconciler's pass takes it once its request cannot be running
            try:
                resolved += await self.operations.settle_pending(operation)
            except Exception as exc:  # noqa: BLE001 - one bad row never blocks the others
                log(
                    "recovery_operation_failed",
                    logging.ERROR,
                    operation_id=operation.id,
                    error_type=type(exc).__name__,
                )
        return resolved

    async def resolve_stale(self, min_age_s: float | None = None) -> int:
        """Attempts still ``started`` and payments ``processing`` with nothing outstanding whose
        request can no longer be running (it died, here or on another node): older than
        ``min_age_s``, or by default than the budget of the call that left them (the connector's
        timeout and the sync after it; a payment's whole deadline). The reconciler runs this on
        every pass, so a dead node's work is taken over once that budget has passed."""
        resolved = await self._unfinished_attempts(min_age_s)
        await self._interrupted_payments(min_age_s)
        await self._stale_idempotency(min_age_s)
        return resolved

    def _budget(self, connector_name: str) -> float:
        connector = self.connectors.get(connector_name)
        timeout = connector.config.timeout_s if connector is not None else 30.0
        return timeout + self.config.payments.sync_timeout_s + 1.0

    async def _unfinished_attempts(self, min_age_s: float | None) -> int:
        resolved = 0
        now = time.time()
        for attempt in await self.store.unfinished_attempts():
            age = min_age_s if min_age_s is not None else self._budget(attempt.connector)
            if attempt.updated_at > now - age:
                continue
            connector = self.connectors.get(attempt.connector)
            payment = await self.store.get_payment(attempt.merchant_id, attempt.payment_id)
            if connector is None or payment is None:
                continue
            result = await connector.sync(
                SyncRequest(
                    reference=attempt.reference, amount=attempt.amount, currency=attempt.currency
                )
            )
            record_attempt_result(attempt, result)
            attempt.next_action = "recovered_after_restart"
            outcome = authorization_outcome(result)
            watch = None
            if payment.status not in (PaymentStatus.PROCESSING, PaymentStatus.REQUIRES_ACTION):
                change = None  # the payment moved on (it cannot, but never overwrite it)
                watch = "late_auth"
            elif outcome is Outcome.NOT_FOUND:
                # The PSP never saw it (the gateway stopped before or while sending): nothing
                # was charged, so the client's retry with the same Idempotency-Key is processed
                # afresh, and should this attempt surface at the PSP after all, it is voided.
                settle_attempt(attempt, AttemptStatus.FAILED)
                change = fail_payment(
                    payment,
                    Outcome.NOT_FOUND,
                    interrupted_error(),
                    Operation.SYNC,
                    attempt.connector,
                )
                watch = "late_auth"
            elif outcome is Outcome.DECLINED:
                error = declined_error(result)
                error["message"] = (
                    "The gateway restarted before the PSP's answer was recorded; the PSP did "
                    "not approve this attempt."
                )
                change = fail_payment(
                    payment, Outcome.DECLINED, error, Operation.SYNC, attempt.connector
                )
            else:
                # Authorized, captured, waiting for the customer, or still unknown (the PSP is
                # unreachable: the attempt becomes an ambiguous failure the reconciler syncs).
                if outcome is Outcome.UNKNOWN and result.status is not AttemptStatus.PENDING:
                    attempt.ambiguous = True
                change = apply_authorization(payment, attempt, result, Operation.SYNC)
                if outcome is Outcome.UNKNOWN:
                    watch = "pending"
            answer = None
            if change is not None and outcome is not Outcome.NOT_FOUND:
                attempts = [
                    attempt if a.id == attempt.id else a
                    for a in await self.store.list_attempts(payment.id)
                ]
                rendered = self.answers.payment(payment.front, payment, attempts)
                answer = payment_answer(payment, rendered)
            await self.store.finish_attempt(
                attempt,
                payment if change is not None else None,
                [
                    event(
                        payment,
                        "payment.recovered",
                        change=change,
                        attempt_id=attempt.id,
                        data={"sync": str(result.status)},
                    )
                ],
                answer,
            )
            if watch is not None:
                await self.reconciler.watch(attempt, watch, "after restart")
            resolved += 1
        return resolved

    async def _interrupted_payments(self, min_age_s: float | None) -> None:
        """Payments left processing with nothing outstanding at any PSP: every attempt has the
        PSP's final word, and the gateway stopped before starting the next one."""
        payments = self.config.payments
        age = min_age_s if min_age_s is not None else payments.deadline_s + payments.sync_timeout_s
        cutoff = time.time() - age
        for payment in await self.store.payments_in_status(PaymentStatus.PROCESSING):
            if payment.updated_at > cutoff:
                continue
            attempts = await self.store.list_attempts(payment.id)
            if any(
                a.status in (AttemptStatus.PENDING, AttemptStatus.REQUIRES_ACTION, "started")
                or (a.status == AttemptStatus.FAILED and a.ambiguous)
                for a in attempts
            ):
                continue  # the PSP may still act on it: leave it for sync and webhooks
            before = payment.status
            change = fail_payment(payment, Outcome.NOT_FOUND, interrupted_error(), Operation.SYNC)
            await self.store.transition_payment(
                payment, (before,), [event(payment, "payment.interrupted", change=change)]
            )

    async def _stale_idempotency(self, min_age_s: float | None) -> None:
        """Keys whose first request never got its answer out (older than a payment's whole
        budget, so not one still running on another node): answer with the payment's state if
        it reached a PSP (provisionally while it is unsettled, so the transaction that settles
        it replaces the answer), otherwise forget the key so the client's retry runs afresh."""
        payments = self.config.payments
        age = min_age_s if min_age_s is not None else payments.deadline_s + payments.sync_timeout_s
        cutoff = time.time() - age
        for record in await self.store.stale_idempotency_records():
            if record.created_at > cutoff:
                continue
            payment = None
            if record.payment_id is not None:
                payment = await self.store.get_payment(record.merchant_id, record.payment_id)
            if payment is None or (
                record.operation_id is None
                and (payment.error or {}).get("code") == "processing_interrupted"
            ):
                await self.store.forget_idempotent(record.merchant_id, record.key)
                continue
            if record.operation_id is not None:
                continue  # an operation's key: completed by the transaction that settles it
            rendered = self.answers.payment(
                payment.front, payment, await self.store.list_attempts(payment.id)
            )
            try:
                await self.store.transition_payment(
                    payment, (payment.status,), [], payment_answer(payment, rendered)
                )
            except Conflict:
                continue  # it moved on meanwhile: the transaction that moved it answered the key
