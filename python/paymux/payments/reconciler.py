"""The reconciler: settles attempts whose PSP-side state paymux does not know, in the background.

It works through the store's watch list (``reconcile_watch``), one row per attempt:

- ``pending``: the payment is ``processing`` and waits on this attempt (its answer was lost, or
  the PSP said pending). Synced every ``pending_check_s`` until the PSP says something final:
  authorized → the payment becomes requires_capture/succeeded; declined or not found → the
  payment fails. A not-found is not proof (Stripe's search lags writes), so the attempt then stays
  watched as ``late_auth``.
- ``late_auth``: the payment went elsewhere (or failed) after this attempt looked unanswered. If
  the PSP later shows an authorization for it, nobody will ever capture it: it is voided (a
  capture is refunded), retried with exponential back-off until the PSP accepts, and recorded on
  the attempt (``next_action``) and as an ``attempt.late_authorization_voided`` event.

Every worker runs one; a due row is claimed by a conditional update of ``next_check_at`` (a
lease) before the PSP call, so two workers never check the same attempt at once; a void or refund
carries an idempotency key derived from the attempt's reference all the same.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from paymux.config import ReconcilerConfig
from paymux.connectors.base import (
    Connector,
    ConnectorResult,
    RefundRequest,
    SyncRequest,
    VoidRequest,
)
from paymux.domain.lifecycle import Operation, Outcome, settle_attempt, transition
from paymux.domain.outcomes import AttemptStatus
from paymux.domain.records import (
    AttemptRecord,
    Conflict,
    OperationRecord,
    PaymentRecord,
    PaymentStatus,
    ReconcileWatch,
    RefundRecord,
)
from paymux.observability.logs import log
from paymux.payments.answers import Answers
from paymux.payments.effects import (
    apply_authorization,
    authorization_outcome,
    declined_error,
    event,
    fail_payment,
    payment_answer,
    record_attempt_result,
)
from paymux.payments.operations import OperationFlow
from paymux.store.base import Store

_HOLDS = (AttemptStatus.AUTHORIZED, AttemptStatus.CAPTURED)
_LATE_AUTH_MAX_INTERVAL_S = 3600.0
_OPERATION_MAX_INTERVAL_S = 300.0


class Reconciler:
    def __init__(
        self,
        store: Store,
        connectors: dict[str, Connector],
        config: ReconcilerConfig,
        operations: OperationFlow,
        answers: Answers,
    ) -> None:
        self.store = store
        self.connectors = connectors
        self.config = config
        self.operations = operations
        self.answers = answers
        self.sync_timeout_s = operations.config.payments.sync_timeout_s
        # Crash recovery's pass over orphaned attempts and payments (set by the app): run on
        # every pass too, so work a dead process or node left behind is taken over.
        self.orphans: Callable[[], Awaitable[int]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # lifecycle

    def start(self) -> None:
        if self.config.enabled and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="paymux-reconciler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def poke(self) -> None:
        """Run a pass now rather than at the next interval."""
        self._wake.set()

    async def adopt_orphans(self) -> int:
        """Payments left `processing` on an unsettled attempt with no watch row (the process
        stopped between the two writes, or they predate the reconciler): watch them now."""
        adopted = 0
        for payment in await self.store.payments_in_status(PaymentStatus.PROCESSING):
            watched = {w.attempt_id for w in await self.store.list_watches(payment.id)}
            for attempt in await self.store.list_attempts(payment.id):
                unsettled = attempt.status == AttemptStatus.PENDING or (
                    attempt.status == AttemptStatus.FAILED and attempt.ambiguous
                )
                if unsettled and attempt.id not in watched:
                    await self.watch(attempt, "pending", "adopted on start")
                    adopted += 1
        return adopted

    async def _loop(self) -> None:
        try:
            adopted = await self.adopt_orphans()
            if adopted:
                log("reconciler_adopted", attempts=adopted)
        except Exception as exc:  # noqa: BLE001 - the loop runs regardless
            log("reconciler_adopt_failed", logging.ERROR, error_type=type(exc).__name__)
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop must survive a bad pass
                log(
                    "reconciler_pass_failed",
                    logging.ERROR,
                    error_type=type(exc).__name__,
                    error=str(exc)[:200],
                )
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.config.interval_s)
            except TimeoutError:
                pass
            self._wake.clear()

    # watch list

    async def watch(self, attempt: AttemptRecord, kind: str, note: str | None = None) -> None:
        now = time.time()
        delay = self.config.pending_check_s if kind == "pending" else self.config.late_auth_check_s
        await self.store.watch_attempt(
            ReconcileWatch(
                attempt_id=attempt.id,
                payment_id=attempt.payment_id,
                merchant_id=attempt.merchant_id,
                kind=kind,
                next_check_at=now + delay,
                until=now + self.config.late_auth_watch_s,
                note=note,
                created_at=now,
                updated_at=now,
            )
        )

    async def check_attempt_now(self, attempt: AttemptRecord) -> str:
        """Run this attempt's check now rather than when its watch row is due (``paymux
        reconcile``): the same check a pass runs, so a ``processing`` payment waiting on it is
        settled if the PSP can tell, and an authorization the payment does not rely on is
        released. The attempt is put on the watch list (or re-opened on it) if need be, and its
        row is claimed as a pass claims it, so no worker checks it at the same time. Returns the
        row's state afterwards (open, resolved, voided, expired), or "busy" if a worker holds it.
        """
        payment = await self.store.get_payment(attempt.merchant_id, attempt.payment_id)
        if payment is None:
            return "expired"

        async def current() -> ReconcileWatch | None:
            rows = await self.store.list_watches(attempt.payment_id)
            return next((w for w in rows if w.attempt_id == attempt.id), None)

        watch = await current()
        if watch is None or watch.state != "open":
            waiting = (
                payment.status == PaymentStatus.PROCESSING
                and payment.connector == attempt.connector
            )
            await self.watch(attempt, "pending" if waiting else "late_auth", "checked on demand")
            watch = await current()
            if watch is None:
                return "expired"
        lease = time.time() + max(self.config.interval_s * 4, 5.0)
        if not await self.store.claim_watch(watch.attempt_id, watch.next_check_at, lease):
            return "busy"
        watch.next_check_at = lease
        try:
            await self._check(watch)
        except Exception as exc:
            self._reschedule(watch, self.config.late_auth_check_s, f"error: {exc}"[:200])
            await self.store.update_watch(watch)
            raise
        return watch.state

    async def run_once(self) -> int:
        """One pass: due watch rows, in-flight captures, voids and refunds, and 3-D Secure
        challenges left unanswered; returns how many were checked."""
        checked = await self.orphans() if self.orphans is not None else 0
        checked += await self._check_watches()
        checked += await self._check_operations()
        checked += await self._expire_actions()
        return checked

    # captures, voids and refunds whose PSP answer is unknown

    async def _check_operations(self) -> int:
        """Sync every pending operation that is due (backing off per operation), through the
        same code the inline path settles with (OperationFlow.settle_pending)."""
        now = time.time()
        checked = 0
        pending: list[OperationRecord | RefundRecord] = [
            *await self.store.pending_operations(),
            *await self.store.pending_refunds(),
        ]
        for operation in pending:
            checks = operation.checks if isinstance(operation, OperationRecord) else 0
            delay = min(
                self.config.pending_check_s * 2 ** min(checks, 16), _OPERATION_MAX_INTERVAL_S
            )
            # Never while the request that started it may still be waiting for its PSP: its own
            # call and sync are bounded by the connector's timeout and sync_timeout_s.
            connector = self.connectors.get(operation.connector)
            if connector is not None:
                delay = max(delay, connector.config.timeout_s + self.sync_timeout_s + 1.0)
            if operation.updated_at + delay > now:
                continue
            try:
                await self.operations.settle_pending(operation)
            except Exception as exc:  # noqa: BLE001 - one bad row never blocks the others
                log(
                    "reconcile_operation_failed",
                    logging.ERROR,
                    operation_id=operation.id,
                    error_type=type(exc).__name__,
                    error=str(exc)[:200],
                )
            checked += 1
        return checked

    # 3-D Secure challenges nobody completed

    async def _expire_actions(self) -> int:
        """A payment waiting for its customer longer than ``requires_action_expiry_s`` is asked
        about once more, then fails ``authentication_expired``; its attempt stays watched, so an
        authorization that surfaces late is voided."""
        cutoff = time.time() - self.config.requires_action_expiry_s
        expired = 0
        for payment in await self.store.payments_in_status(PaymentStatus.REQUIRES_ACTION):
            if payment.updated_at > cutoff:
                continue
            attempts = await self.store.list_attempts(payment.id)
            waiting = [a for a in attempts if a.status == AttemptStatus.REQUIRES_ACTION]
            if waiting:
                result = await self._sync(waiting[-1])
                if result is not None and result.status not in (
                    AttemptStatus.REQUIRES_ACTION,
                    AttemptStatus.PENDING,
                    AttemptStatus.FAILED,
                ):
                    continue  # it did complete: the next pass settles it through its watch
            before = payment.status
            change = transition(payment, Operation.EXPIRE, Outcome.EXPIRED, now=time.time())
            payment.error = {
                "type": "card_error",
                "code": "authentication_expired",
                "decline_class": None,
                "message": "The customer did not complete authentication in time.",
                "raw_code": None,
            }
            status, body = self.answers.payment(payment.front, payment, attempts)
            try:
                await self.store.transition_payment(
                    payment,
                    (before,),
                    [event(payment, "payment.authentication_expired", change=change)],
                    payment_answer(payment, (status, body)),
                )
            except Conflict:
                continue
            for attempt in waiting:
                await self.watch(attempt, "late_auth", "authentication expired")
            expired += 1
        return expired

    async def _check_watches(self) -> int:
        now = time.time()
        lease = now + max(self.config.interval_s * 4, 5.0)
        claimed = []
        for watch in await self.store.due_watches(now):
            # Claim it first: another worker's pass skips it until this check is done (or the
            # lease runs out, if this worker dies meanwhile).
            if await self.store.claim_watch(watch.attempt_id, watch.next_check_at, lease):
                watch.next_check_at = lease
                claimed.append(watch)
        checked = 0
        for watch in claimed:
            try:
                await self._check(watch)
            except Exception as exc:  # noqa: BLE001 - one bad row never blocks the others
                log(
                    "reconcile_check_failed",
                    logging.ERROR,
                    attempt_id=watch.attempt_id,
                    error_type=type(exc).__name__,
                    error=str(exc)[:200],
                )
                self._reschedule(watch, self.config.late_auth_check_s, f"error: {exc}"[:200])
                await self.store.update_watch(watch)
            checked += 1
        return checked

    def _reschedule(self, watch: ReconcileWatch, delay: float, note: str | None = None) -> None:
        now = time.time()
        watch.checks += 1
        watch.updated_at = now
        watch.next_check_at = now + delay
        if note is not None:
            watch.note = note
        if watch.state == "open" and now >= watch.until:
            watch.state = "expired"

    async def _attempt_of(
        self, watch: ReconcileWatch
    ) -> tuple[AttemptRecord | None, PaymentRecord | None]:
        payment = await self.store.get_payment(watch.merchant_id, watch.payment_id)
        if payment is None:
            return None, None
        for attempt in await self.store.list_attempts(payment.id):
            if attempt.id == watch.attempt_id:
                return attempt, payment
        return None, payment

    async def _sync(self, attempt: AttemptRecord) -> ConnectorResult | None:
        connector = self.connectors.get(attempt.connector)
        if connector is None:
            return None
        return await connector.sync(
            SyncRequest(
                reference=attempt.reference,
                connector_reference=attempt.connector_reference,
                amount=attempt.amount,
                currency=attempt.currency,
            )
        )

    async def _check(self, watch: ReconcileWatch) -> None:
        attempt, payment = await self._attempt_of(watch)
        if attempt is None or payment is None:
            watch.state = "expired"
            watch.note = "attempt or payment not found"
            watch.updated_at = time.time()
            await self.store.update_watch(watch)
            return
        if watch.kind == "pending":
            await self._check_pending(watch, attempt, payment)
        else:
            await self._check_late(watch, attempt, payment)
        await self.store.update_watch(watch)

    # kind "pending": the payment waits on this attempt

    async def _check_pending(
        self, watch: ReconcileWatch, attempt: AttemptRecord, payment: PaymentRecord
    ) -> None:
        if payment.status != PaymentStatus.PROCESSING or payment.connector != attempt.connector:
            # Settled some other way (webhook, restart recovery): keep an eye on the attempt only.
            watch.kind = "late_auth"
            if (
                attempt.status in _HOLDS
                and payment.connector_reference == attempt.connector_reference
            ):
                watch.state = "resolved"
            self._reschedule(watch, 0.0, f"payment is {payment.status}")
            return
        result = await self._sync(attempt)
        if result is None:
            self._reschedule(watch, self.config.pending_check_s, "connector not configured")
            return
        if (
            result.status is AttemptStatus.FAILED
            and result.ambiguous
            or result.status in (AttemptStatus.PENDING, AttemptStatus.REQUIRES_ACTION)
        ):
            self._reschedule(watch, self.config.pending_check_s, f"sync: {result.status}")
            return
        before = payment.status
        record_attempt_result(attempt, result)
        outcome = authorization_outcome(result)
        if result.status in _HOLDS:
            attempt.next_action = "reconciled:authorized"
            change = apply_authorization(payment, attempt, result, Operation.SYNC)
            watch.state = "resolved"
        else:
            not_found = outcome is Outcome.NOT_FOUND
            if not_found:
                settle_attempt(attempt, AttemptStatus.FAILED)
            attempt.next_action = f"reconciled:{result.status}"
            error = declined_error(result)
            if not_found:
                error.update(
                    type="api_error",
                    code=result.normalized_code or "not_processed",
                    message="The PSP has no approved payment for this attempt.",
                )
            change = fail_payment(payment, outcome, error, Operation.SYNC, attempt.connector)
            # A not-found can be a lagging index: keep watching so a late authorization is voided.
            watch.kind = "late_auth"
        attempts = [
            attempt if a.id == attempt.id else a for a in await self.store.list_attempts(payment.id)
        ]
        status, body = self.answers.payment(payment.front, payment, attempts)
        try:
            await self.store.transition_payment(
                payment,
                (before,),
                [
                    event(
                        payment,
                        "payment.reconciled",
                        change=change,
                        attempt_id=attempt.id,
                        data={"sync": str(result.status), "reason": attempt.next_action},
                    )
                ],
                # The request that created the payment was answered "processing" (202): its
                # key now replays the final state, committed with it.
                payment_answer(payment, (status, body)),
            )
        except Conflict:
            self._reschedule(watch, 0.0, "payment changed meanwhile")
            return
        await self.store.finish_attempt(attempt, None, [])
        log(
            "payment_reconciled",
            payment_id=payment.id,
            attempt_id=attempt.id,
            connector=attempt.connector,
            outcome=str(result.status),
            to_status=payment.status,
        )
        self._reschedule(watch, self.config.late_auth_check_s, f"sync: {result.status}")

    # kind "late_auth": the payment does not rely on this attempt

    async def _check_late(
        self, watch: ReconcileWatch, attempt: AttemptRecord, payment: PaymentRecord
    ) -> None:
        if (
            payment.connector_reference is not None
            and payment.connector_reference == attempt.connector_reference
            and payment.connector == attempt.connector
        ):
            watch.state = "resolved"  # this attempt is the payment's own authorization
            self._reschedule(watch, 0.0, "the payment's own authorization")
            return
        result = await self._sync(attempt)
        if result is None:
            self._reschedule(watch, self.config.late_auth_check_s, "connector not configured")
            return
        if result.status in (AttemptStatus.VOIDED, AttemptStatus.REFUNDED) and (
            watch.note or ""
        ).startswith("release failed"):
            # Our void (or refund) went through although its answer did not come back.
            await self._record_release(
                watch, attempt, payment, result, result.status is AttemptStatus.REFUNDED
            )
            return
        if result.status in (AttemptStatus.VOIDED, AttemptStatus.DECLINED, AttemptStatus.REFUNDED):
            watch.state = "resolved"
            self._reschedule(watch, 0.0, f"sync: {result.status}")
            return
        if result.status not in _HOLDS:
            # Back off: an outage leaves many such attempts, and most never surface.
            delay = min(
                self.config.late_auth_check_s * 2 ** min(watch.checks, 16),
                _LATE_AUTH_MAX_INTERVAL_S,
            )
            self._reschedule(watch, delay, f"sync: {result.status}")
            return
        await self._release(watch, attempt, payment, result)

    async def _release(
        self,
        watch: ReconcileWatch,
        attempt: AttemptRecord,
        payment: PaymentRecord,
        found: ConnectorResult,
    ) -> None:
        connector = self.connectors[attempt.connector]
        reference = f"{attempt.reference}_release"  # idempotent across retries and workers
        connector_reference = found.connector_reference or attempt.connector_reference or ""
        amount = found.amount or attempt.amount
        captured = found.status is AttemptStatus.CAPTURED
        if captured:
            result = await connector.refund(
                RefundRequest(
                    reference=reference,
                    connector_reference=connector_reference,
                    amount=amount,
                    currency=attempt.currency,
                )
            )
            ok = result.status in (AttemptStatus.REFUNDED, AttemptStatus.PENDING)
        else:
            result = await connector.void(
                VoidRequest(
                    reference=reference,
                    connector_reference=connector_reference,
                    amount=amount,
                    currency=attempt.currency,
                )
            )
            ok = result.status in (AttemptStatus.VOIDED, AttemptStatus.PENDING)
        if not ok:
            delay = min(
                self.config.void_backoff_s * 2**watch.checks, self.config.void_backoff_max_s
            )
            log(
                "late_authorization_release_failed",
                logging.WARNING,
                payment_id=payment.id,
                attempt_id=attempt.id,
                connector=attempt.connector,
                outcome=str(result.status),
                retry_in_s=delay,
            )
            watch.until = max(watch.until, time.time() + delay + 1)  # never give up on funds held
            self._reschedule(watch, delay, f"release failed: {result.status}; retrying")
            return
        await self._record_release(
            watch, attempt, payment, result, captured, connector_reference, amount
        )

    async def _record_release(
        self,
        watch: ReconcileWatch,
        attempt: AttemptRecord,
        payment: PaymentRecord,
        result: ConnectorResult,
        captured: bool,
        connector_reference: str | None = None,
        amount: int | None = None,
    ) -> None:
        connector_reference = (
            connector_reference or result.connector_reference or attempt.connector_reference
        )
        amount = amount or attempt.amount
        reference = f"{attempt.reference}_release"
        kind = "late_capture_refunded" if captured else "late_authorization_voided"
        settle_attempt(attempt, AttemptStatus.REFUNDED if captured else AttemptStatus.VOIDED)
        attempt.connector_reference = connector_reference
        attempt.next_action = kind
        attempt.updated_at = time.time()
        await self.store.finish_attempt(
            attempt,
            None,
            [
                event(
                    payment,
                    f"attempt.{kind}",
                    attempt_id=attempt.id,
                    data={
                        "connector": attempt.connector,
                        "connector_reference": connector_reference,
                        "amount": amount,
                        "payment_status": payment.status,
                        "release_reference": reference,
                    },
                )
            ],
        )
        log(
            kind,
            payment_id=payment.id,
            attempt_id=attempt.id,
            connector=attempt.connector,
            amount=amount,
        )
        watch.state = "voided"
        self._reschedule(watch, 0.0, kind)
