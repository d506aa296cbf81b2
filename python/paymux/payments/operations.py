"""Captures, voids and refunds: each as safe as an authorization.

Every operation is persisted before its PSP call, with the payment in its in-flight state
(``capturing``, ``canceling``; a refund ``pending``) and its own reference, which the PSP gets as
the operation's idempotency key. The PSP's answer then settles it through the lifecycle table:

- applied (or accepted for settlement) -> the new state;
- refused by the PSP -> back where it was, and that refusal is the key's stored answer;
- surely not done (the PSP says it has no such operation, or the call never left) -> back where
  it was, and the key is released so the client's retry runs afresh;
- unknown (timeout, reset, 5xx, garbage) -> the PSP is asked about that reference at once
  (bounded by ``sync_timeout_s``); still unknown -> the payment is answered in its in-flight
  state and the reconciler keeps asking until the PSP says. Never "failed" on a guess.

The final state, its event row and the Idempotency-Key's stored answer are one transaction, so a
client's retry after a crash at any point gets the answer of the state that was committed.
``settle_pending`` is what the reconciler and crash recovery call for an operation still
pending: the same code as the inline path, so the two cannot drift apart.
"""

from __future__ import annotations

import asyncio
import time

from paymux.config import GatewayConfig
from paymux.connectors.base import (
    CaptureRequest,
    Connector,
    ConnectorResult,
    OperationSyncRequest,
    RefundRequest,
    VoidRequest,
)
from paymux.domain.errors import Refusal, RefusalKind, conflict, invalid
from paymux.domain.ids import new_id
from paymux.domain.lifecycle import (
    IllegalTransition,
    Operation,
    Outcome,
    RefundStatus,
    settle_operation,
    transition,
    transition_refund,
)
from paymux.domain.outcomes import AttemptStatus
from paymux.domain.records import (
    Conflict,
    IdempotencyClaim,
    OperationRecord,
    PaymentRecord,
    PaymentStatus,
    RefundRecord,
    StoredAnswer,
)
from paymux.observability.logs import log
from paymux.payments import crashpoints
from paymux.payments.answers import Answer, Answers
from paymux.payments.effects import event, operation_outcome, payment_answer
from paymux.store.base import Store

_OPERATION_OF = {"capture": Operation.CAPTURE, "void": Operation.VOID}


class OperationFlow:
    def __init__(
        self,
        config: GatewayConfig,
        store: Store,
        connectors: dict[str, Connector],
        answers: Answers,
    ) -> None:
        self.config = config
        self.store = store
        self.connectors = connectors
        self.answers = answers

    # -- captures and voids ---------------------------------------------------------------------

    async def capture(
        self,
        payment: PaymentRecord,
        amount: int | None,
        claim: IdempotencyClaim | None,
        front: str = "v1",
    ) -> Answer:
        if amount is None:
            amount = payment.amount_capturable
        connector = self._connector_of(payment)
        if (
            payment.status == PaymentStatus.REQUIRES_CAPTURE
            and amount < payment.amount_capturable
            and not connector.capabilities.partial_capture
        ):
            raise invalid(
                "partial_capture_unsupported",
                f"{payment.connector} cannot capture part of an authorization; capture "
                f"{payment.amount_capturable} or void it",
                "amount",
            )
        return await self._start(payment, "capture", amount, claim, front)

    async def void(
        self, payment: PaymentRecord, claim: IdempotencyClaim | None, front: str = "v1"
    ) -> Answer:
        if payment.status == PaymentStatus.REQUIRES_CONFIRMATION:
            return await self._cancel_unconfirmed(payment, claim, front)
        return await self._start(payment, "void", payment.amount_capturable, claim, front)

    async def _cancel_unconfirmed(
        self, payment: PaymentRecord, claim: IdempotencyClaim | None, front: str
    ) -> Answer:
        """Nothing was sent to any PSP yet: canceling it is a state change only."""
        change = transition(payment, Operation.VOID, Outcome.SUCCEEDED, now=time.time())
        answer = self.answers.payment(front, payment, [])
        try:
            await self.store.transition_payment(
                payment,
                (change.from_status,),
                [event(payment, "payment.void_succeeded", change=change)],
                payment_answer(payment, answer),
                claim,
            )
        except Conflict:
            raise conflict(
                "payment_unexpected_state", "The payment changed state meanwhile; retry"
            ) from None
        return answer

    async def _start(
        self,
        payment: PaymentRecord,
        kind: str,
        amount: int,
        claim: IdempotencyClaim | None,
        front: str,
    ) -> Answer:
        now = time.time()
        try:
            change = transition(
                payment, _OPERATION_OF[kind], Outcome.STARTED, amount=amount, now=now
            )
        except IllegalTransition as exc:
            raise _refusal_of(exc, kind) from None
        operation = OperationRecord(
            id=new_id("cap" if kind == "capture" else "vd"),
            payment_id=payment.id,
            merchant_id=payment.merchant_id,
            kind=kind,
            amount=amount,
            currency=payment.currency,
            connector=payment.connector or "",
            reference="",
            status="pending",
            front=front,
            created_at=now,
            updated_at=now,
        )
        operation.reference = operation.id  # the PSP's idempotency key for this operation
        try:
            await self.store.start_operation(
                payment,
                (change.from_status,),
                operation,
                [
                    event(
                        payment,
                        f"payment.{kind}_started",
                        now,
                        change,
                        operation_id=operation.id,
                        data={"amount": amount},
                    )
                ],
                claim,
            )
        except Conflict:
            raise conflict(
                "payment_unexpected_state", "The payment changed state meanwhile; retry"
            ) from None
        crashpoints.reached(f"{kind}.before_psp")
        connector = self._connector_of(payment)
        crashpoints.reached(f"{kind}.during_psp")
        result = await self._call(connector, payment, operation)
        crashpoints.reached(f"{kind}.after_psp")
        outcome = operation_outcome(kind, result)
        if outcome is Outcome.UNKNOWN:
            result = await self._sync(connector, payment, operation, result)
            outcome = operation_outcome(kind, result)
        return await self._settle(payment, operation, outcome, result, inline=True, claim=claim)

    async def _call(
        self, connector: Connector, payment: PaymentRecord, operation: OperationRecord
    ) -> ConnectorResult:
        assert payment.connector_reference is not None
        if operation.kind == "capture":
            return await connector.capture(
                CaptureRequest(
                    reference=operation.reference,
                    connector_reference=payment.connector_reference,
                    amount=operation.amount,
                    currency=payment.currency,
                )
            )
        return await connector.void(
            VoidRequest(
                reference=operation.reference,
                connector_reference=payment.connector_reference,
                amount=operation.amount,
                currency=payment.currency,
            )
        )

    async def _settle(
        self,
        payment: PaymentRecord,
        operation: OperationRecord,
        outcome: Outcome,
        result: ConnectorResult,
        *,
        inline: bool,
        claim: IdempotencyClaim | None = None,
    ) -> Answer:
        kind = operation.kind
        now = time.time()
        operation.connector_reference = result.connector_reference or operation.connector_reference
        operation.raw_code = result.raw_code
        operation.normalized_code = result.normalized_code
        operation.ambiguous = result.ambiguous
        operation.checks += 0 if inline else 1
        if outcome is Outcome.UNKNOWN:
            operation.updated_at = now
            await self.store.update_operation(operation)
            provisional = self.answers.payment(
                operation.front, payment, await self.store.list_attempts(payment.id)
            )
            # Provisional: the payment in its in-flight state. The transaction that settles the
            # operation (here or in the reconciler) replaces it with the final answer.
            try:
                await self.store.transition_payment(
                    payment, (payment.status,), [], self._answer(payment, operation, provisional)
                )
            except Conflict:  # settled meanwhile by the reconciler
                return await self._committed_answer(claim, _psp_refusal(kind, outcome, result))
            log(
                f"{kind}_unknown",
                payment_id=payment.id,
                operation_id=operation.id,
                connector=operation.connector,
                normalized_code=result.normalized_code,
            )
            return provisional
        before = payment.status
        change = transition(
            payment,
            _OPERATION_OF[kind] if inline else Operation.SYNC,
            outcome,
            amount=operation.amount,
            now=now,
        )
        settle_operation(operation, outcome, now)
        refusal = _psp_refusal(kind, outcome, result)
        answer: Answer | None = None
        if outcome is Outcome.SUCCEEDED:
            answer = self.answers.payment(
                operation.front, payment, await self.store.list_attempts(payment.id)
            )
        elif outcome is Outcome.FAILED:
            answer = self.answers.refusal(operation.front, refusal)
        try:
            await self.store.finish_operation(
                payment,
                (before,),
                operation,
                [
                    event(
                        payment,
                        f"payment.{kind}_{operation.status}",
                        now,
                        change,
                        operation_id=operation.id,
                        data={
                            "amount": operation.amount,
                            "raw_code": result.raw_code,
                            "connector_reference": operation.connector_reference,
                            "via": "call" if inline else "sync",
                        },
                    )
                ],
                self._answer(payment, operation, answer) if answer is not None else None,
                release_claim=answer is None,
            )
        except Conflict:
            if not inline:
                raise
            return await self._committed_answer(claim, refusal)
        crashpoints.reached(f"{kind}.after_commit")
        log(
            f"{kind}_{operation.status}",
            payment_id=payment.id,
            operation_id=operation.id,
            connector=operation.connector,
            to_status=payment.status,
            raw_code=result.raw_code,
        )
        if answer is None:  # surely not done: nothing to replay, the client may retry
            raise refusal
        return answer

    @staticmethod
    def _answer(
        payment: PaymentRecord, operation: OperationRecord | RefundRecord, answer: Answer
    ) -> StoredAnswer:
        """The answer for the keys bound to ``operation``: provisional while it is pending."""
        return StoredAnswer(
            payment_id=payment.id,
            operation_id=operation.id,
            status=answer[0],
            body=answer[1],
            final=operation.status != "pending",
        )

    async def _sync(
        self,
        connector: Connector,
        payment: PaymentRecord,
        operation: OperationRecord | RefundRecord,
        first: ConnectorResult,
    ) -> ConnectorResult:
        """Ask the PSP about this operation's reference, bounded; ``first`` if it cannot tell."""
        kind = operation.kind if isinstance(operation, OperationRecord) else "refund"
        try:
            found = await asyncio.wait_for(
                connector.sync_operation(
                    OperationSyncRequest(
                        operation=kind,
                        reference=operation.reference,
                        connector_reference=payment.connector_reference or "",
                        amount=operation.amount,
                        currency=operation.currency,
                        operation_reference=operation.connector_reference,
                    )
                ),
                timeout=self.config.payments.sync_timeout_s,
            )
        except TimeoutError:
            return first
        if operation_outcome(kind, found) is Outcome.UNKNOWN:
            return first if found.status is AttemptStatus.FAILED else found
        return found

    # -- refunds --------------------------------------------------------------------------------

    async def refund(
        self,
        payment: PaymentRecord,
        amount: int | None,
        reason: str | None,
        claim: IdempotencyClaim | None,
        front: str = "v1",
    ) -> Answer:
        if payment.status != PaymentStatus.SUCCEEDED:
            raise invalid(
                "payment_not_refundable",
                f"A payment in status {payment.status} has nothing captured to refund",
                "payment_id",
            )
        connector = self._connector_of(payment)
        if amount is None:
            amount = payment.amount_received - payment.amount_refunded
            if amount <= 0:
                raise conflict("charge_already_refunded", "This payment is fully refunded")
        if not connector.capabilities.multiple_refunds and (
            await self.store.list_refunds(payment.id)
        ):
            raise invalid(
                "multiple_refunds_unsupported",
                f"{payment.connector} takes one refund per payment, and this one has one",
                "payment_id",
            )
        now = time.time()
        try:
            change = transition(payment, Operation.REFUND, Outcome.STARTED, amount=amount, now=now)
        except IllegalTransition as exc:
            raise _refusal_of(exc, "refund") from None
        refund = RefundRecord(
            id=new_id("re"),
            payment_id=payment.id,
            merchant_id=payment.merchant_id,
            amount=amount,
            currency=payment.currency,
            status=RefundStatus.PENDING,
            connector=payment.connector or "",
            reference="",
            reason=reason,
            front=front,
            created_at=now,
            updated_at=now,
        )
        refund.reference = refund.id  # the PSP's idempotency key for this refund
        try:
            payment = await self.store.reserve_refund(
                refund,
                [
                    event(
                        payment,
                        "refund.created",
                        now,
                        change,
                        operation_id=refund.id,
                        data={"refund_id": refund.id, "amount": amount},
                    )
                ],
                claim,
            )
        except Conflict as exc:
            param = "amount" if exc.code == "refund_exceeds_captured" else "payment_id"
            raise invalid(exc.code, exc.message, param) from None
        crashpoints.reached("refund.before_psp")
        crashpoints.reached("refund.during_psp")
        assert payment.connector_reference is not None
        result = await connector.refund(
            RefundRequest(
                reference=refund.reference,
                connector_reference=payment.connector_reference,
                amount=amount,
                currency=payment.currency,
            )
        )
        crashpoints.reached("refund.after_psp")
        outcome = operation_outcome("refund", result)
        if outcome is Outcome.UNKNOWN:
            result = await self._sync(connector, payment, refund, result)
            outcome = operation_outcome("refund", result)
        return await self._settle_refund(payment, refund, outcome, result, inline=True, claim=claim)

    async def _settle_refund(
        self,
        payment: PaymentRecord,
        refund: RefundRecord,
        outcome: Outcome,
        result: ConnectorResult,
        *,
        inline: bool,
        claim: IdempotencyClaim | None = None,
    ) -> Answer:
        now = time.time()
        refund.connector_reference = result.connector_reference or refund.connector_reference
        refund.raw_code = result.raw_code
        if outcome is Outcome.UNKNOWN:
            refund.updated_at = now
            await self.store.update_refund(refund)
            provisional = self.answers.refund(refund.front, refund)
            stored = await self.store.get_refund(refund.merchant_id, refund.id)
            if stored is None or stored.status != RefundStatus.PENDING:  # settled meanwhile
                return await self._committed_answer(claim, _psp_refusal("refund", outcome, result))
            await self.store.transition_payment(
                payment, (payment.status,), [], self._answer(payment, refund, provisional)
            )
            log("refund_unknown", payment_id=payment.id, refund_id=refund.id)
            return provisional
        transition_refund(refund, outcome, now=now)
        change = transition(payment, Operation.REFUND, outcome, amount=refund.amount, now=now)
        refusal = _psp_refusal("refund", outcome, result)
        answer: Answer | None = None
        if outcome is Outcome.SUCCEEDED:
            answer = self.answers.refund(refund.front, refund)
        elif outcome is Outcome.FAILED:
            answer = self.answers.refusal(refund.front, refusal)
        try:
            await self.store.finish_refund(
                refund,
                [
                    event(
                        payment,
                        f"refund.{refund.status}",
                        now,
                        change,
                        operation_id=refund.id,
                        data={
                            "refund_id": refund.id,
                            "amount": refund.amount,
                            "raw_code": result.raw_code,
                            "via": "call" if inline else "sync",
                        },
                    )
                ],
                self._answer(payment, refund, answer) if answer is not None else None,
                release_claim=answer is None,
            )
        except Conflict:
            if not inline:
                raise
            return await self._committed_answer(claim, refusal)
        crashpoints.reached("refund.after_commit")
        log(
            f"refund_{refund.status}",
            payment_id=payment.id,
            refund_id=refund.id,
            connector=refund.connector,
            raw_code=result.raw_code,
        )
        if answer is None:
            raise refusal
        return answer

    async def _committed_answer(self, claim: IdempotencyClaim | None, refusal: Refusal) -> Answer:
        """The request's operation was settled by someone else (the reconciler, or another node
        after a restart) while its own PSP call ran: answer what that settlement committed for
        its key, so the client sees exactly what a retry would replay."""
        if claim is not None:
            record = await self.store.get_idempotent(
                claim.merchant_id, claim.key, time.time(), claim.ttl_s
            )
            if record is not None and record.response_status is not None:
                assert record.response_body is not None
                return record.response_status, record.response_body
        raise Refusal(
            RefusalKind.UNAVAILABLE,
            refusal.code,
            "The operation was settled while this request waited for its PSP; read the payment "
            "for its state",
        )

    # -- what the reconciler and crash recovery call ---------------------------------------------

    async def settle_pending(self, operation: OperationRecord | RefundRecord) -> bool:
        """Ask the PSP about one pending operation and settle it if the PSP can tell; returns
        whether it is settled. Safe to run on several workers at once: the store settles an
        operation once, and the loser's write is a Conflict that changes nothing."""
        payment = await self.store.get_payment(operation.merchant_id, operation.payment_id)
        connector = self.connectors.get(operation.connector)
        if payment is None or connector is None:
            return False
        kind = operation.kind if isinstance(operation, OperationRecord) else "refund"
        unknown = ConnectorResult(status=AttemptStatus.FAILED, ambiguous=True)
        result = await self._sync(connector, payment, operation, unknown)
        outcome = operation_outcome(kind, result)
        try:
            if isinstance(operation, OperationRecord):
                if outcome is Outcome.UNKNOWN:
                    operation.checks += 1
                    operation.updated_at = time.time()
                    await self.store.update_operation(operation)
                    return False
                await self._settle(payment, operation, outcome, result, inline=False)
            else:
                if outcome is Outcome.UNKNOWN:
                    operation.updated_at = time.time()
                    await self.store.update_refund(operation)
                    return False
                await self._settle_refund(payment, operation, outcome, result, inline=False)
        except Conflict:
            return True  # another worker settled it first
        except Refusal:
            pass  # settled as "surely not done": the payment is back where it was
        return True

    def _connector_of(self, payment: PaymentRecord) -> Connector:
        if payment.front.startswith("proxy:"):
            raise conflict(
                "payment_managed_at_psp",
                "This payment was made through the pass-through: capture, void or refund it "
                "at its PSP the same way",
            )
        connector = self.connectors.get(payment.connector or "")
        if connector is None:
            raise Refusal(
                RefusalKind.UNAVAILABLE,
                "connector_unavailable",
                f"The PSP that holds this payment ({payment.connector}) is not configured",
            )
        return connector


def _refusal_of(exc: IllegalTransition, kind: str) -> Refusal:
    """An operation the state machine refused, as the client sees it."""
    if exc.code in ("amount_too_large", "amount_invalid", "refund_exceeds_captured"):
        return invalid(exc.code, exc.message, "amount")
    what = {"capture": "captured", "void": "canceled", "refund": "refunded"}[kind]
    return conflict("payment_unexpected_state", f"{exc.message}; it cannot be {what} in this state")


def _psp_refusal(kind: str, outcome: Outcome, result: ConnectorResult) -> Refusal:
    """Why an operation did not happen: the PSP's refusal (definitive), or 'not done, retry'."""
    if outcome is Outcome.FAILED:
        return Refusal(
            RefusalKind.DECLINED,
            f"{kind}_failed",
            f"The PSP refused the {kind}: {result.normalized_code or result.raw_code}",
            raw_code=result.raw_code,
            decline_class=result.decline_class,
        )
    return Refusal(
        RefusalKind.UNAVAILABLE,
        f"{kind}_failed",
        f"The PSP did not take the {kind} ({result.normalized_code or result.status}); nothing "
        "was changed, retry with the same Idempotency-Key",
        raw_code=result.raw_code,
        decline_class=result.decline_class,
    )
