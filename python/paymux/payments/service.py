"""The payment flow: vault, route, attempt (persisted first), decide, record. One class, one job.

Every method takes an authenticated merchant id and returns the HTTP status and a response Struct;
every bad request raises ApiError before anything is written.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paymux.api import schemas
from paymux.api.errors import ApiError, invalid, not_found
from paymux.api.schemas import encode_body
from paymux.config import GatewayConfig
from paymux.connectors.base import (
    AuthorizeRequest,
    CaptureRequest,
    CardDetails,
    Connector,
    ConnectorResult,
    RefundRequest,
    SyncRequest,
    VoidRequest,
)
from paymux.failover.policy import AttemptContext, FailoverPolicy
from paymux.observability import metrics
from paymux.routing.router import Router

if TYPE_CHECKING:
    from paymux.payments.reconciler import Reconciler
from paymux.domain.ids import new_id
from paymux.domain.money import is_known_currency
from paymux.domain.outcomes import AttemptStatus, DeclineClass
from paymux.domain.records import (
    AttemptRecord,
    Conflict,
    EventRecord,
    IdempotencyClaim,
    IdempotentResponse,
    PaymentFilter,
    PaymentRecord,
    PaymentStatus,
    RefundRecord,
    TokenRecord,
)
from paymux.observability.logs import log
from paymux.store.base import Store

TERMINAL = frozenset({PaymentStatus.FAILED, PaymentStatus.CANCELED})

# Why a card in our hands cannot be used, by the Rust core's error code.
_CARD_ERRORS = {
    "invalid_number": ("invalid_number", "The card number is not a valid card number."),
    "luhn_failed": ("invalid_number", "The card number is not a valid card number."),
    "unsupported_brand": ("card_brand_unsupported", "The card brand is not supported."),
    "invalid_length_for_brand": ("invalid_number", "The card number has the wrong length."),
    "invalid_expiry": ("invalid_expiry", "The card's expiry date is invalid."),
    "expired_card": ("expired_card", "The card has expired."),
}


def _card_error(exc: Exception, param: str) -> ApiError:
    code, message = _CARD_ERRORS.get(getattr(exc, "code", ""), ("invalid_card", "Invalid card."))
    return ApiError(400, "card_error", code, message, param)


def _event(payment: PaymentRecord, type_: str, now: float, **kw: Any) -> EventRecord:
    return EventRecord(
        payment_id=payment.id, merchant_id=payment.merchant_id, type=type_, created_at=now, **kw
    )


@dataclass(slots=True)
class _Outcome:
    """How a payment's attempts ended: the attempts made, the event of the payment's final
    state, and what the reconciler should keep watching on the last attempt, if anything."""

    attempts: list[AttemptRecord]
    event: str
    watch: str | None = None
    watch_note: str | None = None


class PaymentService:
    def __init__(
        self,
        config: GatewayConfig,
        store: Store,
        vault: Any,
        connectors: dict[str, Connector],
        router: Router,
        policy: FailoverPolicy,
    ) -> None:
        self.config = config
        self.store = store
        self.vault = vault
        self.connectors = connectors
        self.router = router
        self.policy = policy
        self.reconciler: Reconciler | None = None  # set by the app when it runs one

    # tokens

    def _tokenize(self, merchant_id: str, card: schemas.CardInput, param: str) -> Any:
        today = dt.date.today()
        try:
            return self.vault.tokenize(
                merchant_id, card.number, card.exp_month, card.exp_year, today.year, today.month
            )
        except ValueError as exc:
            raise _card_error(exc, param) from None

    def _token_record(self, merchant_id: str, tok: Any, now: float) -> TokenRecord:
        return TokenRecord(
            id=tok.token_id,
            merchant_id=merchant_id,
            fingerprint=tok.fingerprint,
            ciphertext=tok.ciphertext,
            key_version=tok.key_version,
            brand=tok.brand,
            bin=tok.bin,
            last4=tok.last4,
            exp_month=tok.exp_month,
            exp_year=tok.exp_year,
            created_at=now,
        )

    async def create_token(self, merchant_id: str, body: schemas.CreateToken) -> tuple[int, Any]:
        now = time.time()
        record = self._token_record(
            merchant_id, self._tokenize(merchant_id, body.card, "card.number"), now
        )
        await self.store.insert_token(record)
        return 200, token_view(record)

    async def delete_token(self, merchant_id: str, token_id: str) -> tuple[int, Any]:
        if not await self.store.delete_token(merchant_id, token_id, time.time()):
            raise not_found("token", "id")
        return 200, schemas.DeletedView(id=token_id, object="token", deleted=True)

    # payments

    async def create_payment(
        self, merchant_id: str, body: schemas.CreatePayment, claim: IdempotencyClaim | None
    ) -> tuple[int, bytes]:
        """Authorize (and capture) a new payment; returns the HTTP status and the JSON answer.

        With ``claim``, the Idempotency-Key is claimed in the transaction that creates the
        payment (IdempotencyTaken if it is bound already, with nothing written) and completed
        with the answer in the one that writes its final state."""
        if not is_known_currency(body.currency):
            raise invalid("invalid_currency", f"Unknown currency {body.currency}", "currency")
        method = body.payment_method
        if (method.card is None) == (method.token is None):
            raise invalid(
                "parameter_invalid",
                "payment_method needs exactly one of `card` or `token`",
                "payment_method",
            )
        if body.connector is not None and body.connector not in self.connectors:
            raise invalid("unknown_connector", f"No connector named {body.connector}", "connector")
        now = time.time()
        new_token: TokenRecord | None = None
        cvc: str | None = None
        if method.card is not None:
            tok = self._tokenize(merchant_id, method.card, "payment_method.card.number")
            new_token = self._token_record(merchant_id, tok, now)
            token = new_token
            cvc = method.card.cvc  # in memory for this request only; never stored
            holder = method.card.holder_name
        else:
            assert method.token is not None
            found = await self.store.get_token(merchant_id, method.token)
            if found is None:
                raise not_found("token", "payment_method.token")
            token = found
            holder = None
            today = dt.date.today()
            if (token.exp_year, token.exp_month) < (today.year, today.month):
                raise ApiError(
                    400,
                    "card_error",
                    "expired_card",
                    "The card has expired.",
                    "payment_method.token",
                )
        country = body.billing.country if body.billing else None
        payment = PaymentRecord(
            id=new_id("pay"),
            merchant_id=merchant_id,
            status=PaymentStatus.PROCESSING,
            amount=body.amount,
            currency=body.currency,
            capture_method=body.capture_method,
            token_id=token.id,
            card_brand=token.brand,
            card_bin=token.bin,
            card_last4=token.last4,
            card_exp_month=token.exp_month,
            card_exp_year=token.exp_year,
            billing_country=country,
            reference=body.reference,
            metadata=body.metadata,
            created_at=now,
            updated_at=now,
        )
        plan = self.router.plan(payment, pinned=body.connector)
        if not plan.connectors:
            raise invalid(
                "no_eligible_connector",
                "No connector supports this payment (currency, brand, country)",
                "payment_method",
            )
        payment.routing = self.router.record(plan)  # rule, strategy, order, estimates, version
        # The first attempt is persisted with the payment, in one commit, before the PSP call.
        first = self._new_attempt(payment, plan.connectors[0], 1)
        await self.store.create_payment(
            payment,
            new_token,
            [
                _event(
                    payment, "payment.created", now, to_status=payment.status, data=payment.routing
                )
            ],
            first_attempt=first,
            claim=claim,
        )
        revealed = self.vault.reveal(merchant_id, token.id, token.ciphertext)
        card = CardDetails(revealed.number, revealed.exp_month, revealed.exp_year, cvc, holder)
        del revealed
        try:
            outcome = await self._run_attempts(
                payment, card, plan.connectors, body.description, first[0]
            )
        finally:
            card.number = ""
            card.cvc = None
        # The attempts, in seq order, are what reading them back would return.
        status = 402 if payment.status == PaymentStatus.FAILED else 200
        answer = encode_body(payment_view(payment, outcome.attempts))
        completion = None
        if claim is not None:
            completion = IdempotentResponse(
                merchant_id=merchant_id, key=claim.key, status=status, body=answer
            )
        last = outcome.attempts[-1]
        # The payment's final state, its event and the idempotent answer: one transaction.
        await self._finish(payment, last, outcome.event, completion)
        if outcome.watch is not None and self.reconciler is not None:
            await self.reconciler.watch(last, outcome.watch, outcome.watch_note)
        return status, answer

    async def _run_attempts(
        self,
        payment: PaymentRecord,
        card: CardDetails,
        order: list[str],
        description: str | None,
        first: AttemptRecord,
    ) -> _Outcome:
        """Attempt the candidates in order, starting with ``first`` (already persisted), until
        one settles the payment. Every attempt but the last is persisted finished; the last one
        and the payment's final state are left for the caller to write (``_finish``)."""
        started = time.monotonic()
        budget = self.config.payments
        remaining = list(order)
        seq = 0
        attempts: list[AttemptRecord] = []
        while True:
            name = remaining.pop(0)
            seq += 1
            connector = self.connectors[name]
            if seq == 1:
                attempt = first
            else:
                attempt, started_event = self._new_attempt(payment, name, seq)
                # Persisted before the PSP call: a crash after this is found and synced on restart.
                await self.store.start_attempt(attempt, started_event)
            result, reached_psp = await self._attempt(
                payment, connector, card, attempt, description
            )
            attempts.append(attempt)
            status = result.status
            if status in (AttemptStatus.AUTHORIZED, AttemptStatus.CAPTURED):
                attempt.next_action = "done"
                self._apply_authorization(payment, attempt, result)
                return _Outcome(attempts, "payment.authorized")
            if status in (AttemptStatus.PENDING, AttemptStatus.REQUIRES_ACTION) or (
                status is AttemptStatus.FAILED and result.ambiguous
            ):
                # Unknown or waiting at this PSP: going elsewhere could charge twice.
                attempt.next_action = "await_psp"
                payment.status = (
                    PaymentStatus.REQUIRES_ACTION
                    if status is AttemptStatus.REQUIRES_ACTION
                    else PaymentStatus.PROCESSING
                )
                payment.connector = name
                payment.connector_reference = result.connector_reference
                # A 3DS challenge waits for the customer; anything else is synced until settled.
                watch = None if status is AttemptStatus.REQUIRES_ACTION else "pending"
                return _Outcome(attempts, "payment.pending", watch)
            decision = await self.policy.decide(
                status,
                result.decline_class,
                result.advice_code,
                AttemptContext(
                    payment_id=payment.id,
                    attempt_number=seq,
                    max_attempts=budget.max_attempts,
                    elapsed_s=time.monotonic() - started,
                    deadline_s=budget.deadline_s,
                    remaining_candidates=list(remaining),
                    connector=name,
                    normalized_code=result.normalized_code,
                    amount=payment.amount,
                    currency=payment.currency,
                ),
            )
            attempt.next_action = decision.reason
            if decision.cascade and not remaining:  # a policy cannot cascade to nobody
                attempt.next_action = "no_candidates_left"
            if not decision.cascade or not remaining:
                payment.status = PaymentStatus.FAILED
                payment.connector = name
                payment.error = {
                    "type": "card_error" if status is AttemptStatus.DECLINED else "api_error",
                    "code": result.normalized_code or "declined",
                    "decline_class": result.decline_class,
                    "message": result.raw_message or "The payment was declined.",
                    "raw_code": result.raw_code,
                }
                if reached_psp:  # should it surface at the PSP after all, it is voided
                    return _Outcome(attempts, "payment.failed", "late_auth", "sync said not found")
                return _Outcome(attempts, "payment.failed")
            if decision.next_connector is not None and decision.next_connector in remaining:
                remaining.remove(decision.next_connector)
                remaining.insert(0, decision.next_connector)
            metrics.cascaded(name, remaining[0] if remaining else None, result.decline_class)
            await self.store.finish_attempt(
                attempt,
                None,
                [
                    _event(
                        payment,
                        "attempt.cascaded",
                        time.time(),
                        attempt_id=attempt.id,
                        data={
                            "reason": decision.reason,
                            "outcome": str(status),
                            "decline_class": result.decline_class,
                            "normalized_code": result.normalized_code,
                            "next_connector": remaining[0] if remaining else None,
                            "policy": getattr(self.policy, "name", type(self.policy).__name__),
                        },
                    )
                ],
            )
            if reached_psp and self.reconciler is not None:
                # The PSP said it never saw this attempt, but the request did go out: if an
                # authorization surfaces later, the reconciler voids it.
                await self.reconciler.watch(attempt, "late_auth", "sync said not found")
            if decision.delay_s > 0:
                await asyncio.sleep(decision.delay_s)

    def _new_attempt(
        self, payment: PaymentRecord, connector: str, seq: int
    ) -> tuple[AttemptRecord, EventRecord]:
        """An attempt record and its ``attempt.started`` event, to persist before the PSP call."""
        now = time.time()
        attempt = AttemptRecord(
            id=new_id("att"),
            payment_id=payment.id,
            merchant_id=payment.merchant_id,
            seq=seq,
            connector=connector,
            reference="",
            status="started",
            amount=payment.amount,
            currency=payment.currency,
            card_brand=payment.card_brand,
            card_bin=payment.card_bin,
            billing_country=payment.billing_country,
            fee=self.router.fee(connector, payment),
            created_at=now,
            updated_at=now,
        )
        attempt.reference = attempt.id  # the PSP's idempotency key: unique per attempt
        return attempt, _event(
            payment,
            "attempt.started",
            now,
            attempt_id=attempt.id,
            data={"connector": connector, "seq": seq},
        )

    async def _attempt(
        self,
        payment: PaymentRecord,
        connector: Connector,
        card: CardDetails,
        attempt: AttemptRecord,
        description: str | None,
    ) -> tuple[ConnectorResult, bool]:
        """One attempt, already persisted; the flag says the request may have reached the PSP
        although the final result says it did not (an ambiguous answer that sync resolved as not
        found)."""
        request = AuthorizeRequest(
            reference=attempt.reference,
            payment_id=payment.id,
            amount=payment.amount,
            currency=payment.currency,
            card=card,
            capture=payment.capture_method == "automatic",
            merchant_reference=payment.reference,
            billing_country=payment.billing_country,
            description=description,
            metadata=payment.metadata,
        )
        result = await connector.authorize(request)
        reached_psp = False
        health_outcome = None
        if result.status is AttemptStatus.FAILED and result.ambiguous:
            # For health, the attempt is what the PSP did to us (a timeout, a 5xx) even when
            # sync then finds it approved: a PSP that answers too late is degraded.
            health_outcome = "timeout" if result.normalized_code == "timeout" else "technical"
            result = await self._sync_after_ambiguity(connector, attempt, result, request)
            reached_psp = result.status is AttemptStatus.FAILED and not result.ambiguous
        self._record_result(attempt, result)
        self.router.observe(attempt, payment, health_outcome)
        metrics.attempt_finished(
            connector.name,
            attempt.status,
            attempt.normalized_code,
            attempt.decline_class,
            attempt.latency_ms,
        )
        log(
            "attempt",
            payment_id=payment.id,
            attempt_id=attempt.id,
            connector=connector.name,
            seq=attempt.seq,
            outcome=attempt.status,
            normalized_code=attempt.normalized_code,
            decline_class=attempt.decline_class,
            raw_code=attempt.raw_code,
            latency_ms=attempt.latency_ms,
            ambiguous=attempt.ambiguous,
        )
        return result, reached_psp

    async def _sync_after_ambiguity(
        self,
        connector: Connector,
        attempt: AttemptRecord,
        first: ConnectorResult,
        original: AuthorizeRequest,
    ) -> ConnectorResult:
        """Ask the PSP what happened to our reference before going anywhere else."""
        request = SyncRequest(
            reference=attempt.reference,
            connector_reference=first.connector_reference,
            amount=attempt.amount,
            currency=attempt.currency,
            original=original,
        )
        try:
            found = await asyncio.wait_for(
                connector.sync(request), timeout=self.config.payments.sync_timeout_s
            )
        except TimeoutError:
            return first
        if found.status is AttemptStatus.NOT_FOUND:
            # The PSP never saw it: the attempt failed cleanly and may cascade.
            first.ambiguous = False
            first.detail = f"{first.detail or ''} (sync: not found)".strip()
            return first
        if found.status is AttemptStatus.FAILED and found.ambiguous:
            return first  # still unknown: stay put
        found.latency_ms = first.latency_ms
        return found

    @staticmethod
    def _record_result(attempt: AttemptRecord, result: ConnectorResult) -> None:
        attempt.status = result.status
        attempt.connector_reference = result.connector_reference
        attempt.raw_code = result.raw_code
        attempt.raw_message = result.raw_message
        attempt.normalized_code = result.normalized_code
        attempt.decline_class = result.decline_class
        attempt.advice_code = result.advice_code
        attempt.latency_ms = round(result.latency_ms, 3)
        attempt.ambiguous = result.ambiguous
        attempt.updated_at = time.time()

    @staticmethod
    def _apply_authorization(
        payment: PaymentRecord, attempt: AttemptRecord, result: ConnectorResult
    ) -> None:
        payment.connector = attempt.connector
        payment.connector_reference = result.connector_reference
        payment.error = None
        if result.status is AttemptStatus.CAPTURED:
            payment.status = PaymentStatus.SUCCEEDED
            payment.amount_received = payment.amount
            payment.amount_capturable = 0
        else:
            payment.status = PaymentStatus.REQUIRES_CAPTURE
            payment.amount_capturable = payment.amount

    async def _finish(
        self,
        payment: PaymentRecord,
        attempt: AttemptRecord,
        event: str,
        idempotent_response: IdempotentResponse | None = None,
    ) -> None:
        now = time.time()
        payment.updated_at = now
        metrics.payment_finished(payment, attempt, event)
        await self.store.finish_attempt(
            attempt,
            payment,
            [
                _event(
                    payment,
                    event,
                    now,
                    to_status=payment.status,
                    attempt_id=attempt.id,
                    data={"reason": attempt.next_action},
                )
            ],
            idempotent_response,
        )

    async def _payment_response(self, payment: PaymentRecord) -> tuple[int, Any]:
        view = payment_view(payment, await self.store.list_attempts(payment.id))
        return (402 if payment.status == PaymentStatus.FAILED else 200), view

    async def get_payment(self, merchant_id: str, payment_id: str) -> tuple[int, Any]:
        payment = await self.store.get_payment(merchant_id, payment_id)
        if payment is None:
            raise not_found("payment", "id")
        return 200, payment_view(payment, await self.store.list_attempts(payment.id))

    async def list_payments(self, merchant_id: str, flt: PaymentFilter) -> tuple[int, Any]:
        limit = flt.limit
        flt.limit = limit + 1
        rows = await self.store.list_payments(merchant_id, flt)
        has_more = len(rows) > limit
        rows = rows[:limit]
        data = [payment_view(p, await self.store.list_attempts(p.id)) for p in rows]
        return 200, schemas.PaymentList(
            object="list",
            data=data,
            has_more=has_more,
            next_cursor=rows[-1].id if has_more else None,
        )

    async def _load_for_update(self, merchant_id: str, payment_id: str) -> PaymentRecord:
        payment = await self.store.get_payment(merchant_id, payment_id)
        if payment is None:
            raise not_found("payment", "id")
        return payment

    async def capture(
        self, merchant_id: str, payment_id: str, body: schemas.CapturePayment
    ) -> tuple[int, Any]:
        payment = await self._load_for_update(merchant_id, payment_id)
        if payment.status != PaymentStatus.REQUIRES_CAPTURE:
            raise invalid(
                "payment_unexpected_state",
                f"This payment is {payment.status}; only a payment in requires_capture can be "
                "captured",
                status=409,
            )
        amount = payment.amount_capturable if body.amount is None else body.amount
        if amount > payment.amount_capturable:
            raise invalid(
                "amount_too_large",
                f"Cannot capture {amount}: only {payment.amount_capturable} is capturable",
                "amount",
            )
        return await self._modify(payment, "capture", amount)

    async def cancel(self, merchant_id: str, payment_id: str) -> tuple[int, Any]:
        payment = await self._load_for_update(merchant_id, payment_id)
        if payment.status != PaymentStatus.REQUIRES_CAPTURE:
            raise invalid(
                "payment_unexpected_state",
                f"This payment is {payment.status}; only an uncaptured authorization "
                "(requires_capture) can be canceled",
                status=409,
            )
        return await self._modify(payment, "void", payment.amount_capturable)

    async def _modify(self, payment: PaymentRecord, action: str, amount: int) -> tuple[int, Any]:
        """Capture or void: claim the payment (so a concurrent call can't), call the PSP, record."""
        before = payment.status
        now = time.time()
        payment.status = PaymentStatus.PROCESSING
        payment.updated_at = now
        try:
            await self.store.transition_payment(
                payment,
                (before,),
                [
                    _event(
                        payment,
                        f"payment.{action}_started",
                        now,
                        from_status=before,
                        to_status=payment.status,
                    )
                ],
            )
        except Conflict as exc:
            raise invalid(exc.code, exc.message, status=409) from None
        connector = self.connectors[payment.connector or ""]
        assert payment.connector_reference is not None
        reference = new_id("cap" if action == "capture" else "vd")
        if action == "capture":
            result = await connector.capture(
                CaptureRequest(
                    reference=reference,
                    connector_reference=payment.connector_reference,
                    amount=amount,
                    currency=payment.currency,
                )
            )
            ok = result.status in (AttemptStatus.CAPTURED, AttemptStatus.PENDING)
        else:
            result = await connector.void(
                VoidRequest(
                    reference=reference,
                    connector_reference=payment.connector_reference,
                    amount=amount,
                    currency=payment.currency,
                )
            )
            ok = result.status in (AttemptStatus.VOIDED, AttemptStatus.PENDING)
        now = time.time()
        if ok and action == "capture":
            payment.status = PaymentStatus.SUCCEEDED
            payment.amount_received = amount
            payment.amount_capturable = 0  # a partial capture releases the rest, as Stripe does
        elif ok:
            payment.status = PaymentStatus.CANCELED
            payment.amount_capturable = 0
        else:
            payment.status = before  # the authorization still stands; the client may retry
        payment.updated_at = now
        await self.store.transition_payment(
            payment,
            (PaymentStatus.PROCESSING,),
            [
                _event(
                    payment,
                    f"payment.{action}_{'succeeded' if ok else 'failed'}",
                    now,
                    from_status=PaymentStatus.PROCESSING,
                    to_status=payment.status,
                    data={
                        "amount": amount,
                        "raw_code": result.raw_code,
                        "connector_reference": result.connector_reference,
                    },
                )
            ],
        )
        if not ok:
            raise ApiError(
                502 if result.decline_class == DeclineClass.TECHNICAL else 402,
                "api_error" if result.decline_class == DeclineClass.TECHNICAL else "psp_error",
                f"{action}_failed",
                f"The PSP did not accept the {action}: {result.normalized_code or result.status}",
            )
        return await self._payment_response(payment)

    # refunds

    async def create_refund(self, merchant_id: str, body: schemas.CreateRefund) -> tuple[int, Any]:
        payment = await self.store.get_payment(merchant_id, body.payment_id)
        if payment is None:
            raise not_found("payment", "payment_id")
        if payment.status != PaymentStatus.SUCCEEDED:
            raise invalid(
                "payment_not_refundable",
                f"A payment in status {payment.status} has nothing captured to refund",
                "payment_id",
            )
        amount = body.amount
        if amount is None:
            amount = payment.amount_received - payment.amount_refunded
            if amount <= 0:
                raise invalid(
                    "charge_already_refunded", "This payment is fully refunded", status=409
                )
        now = time.time()
        refund = RefundRecord(
            id=new_id("re"),
            payment_id=payment.id,
            merchant_id=merchant_id,
            amount=amount,
            currency=payment.currency,
            status="pending",
            connector=payment.connector or "",
            reference="",
            reason=body.reason,
            created_at=now,
            updated_at=now,
        )
        refund.reference = refund.id
        try:
            await self.store.reserve_refund(
                refund,
                _event(
                    payment, "refund.created", now, data={"refund_id": refund.id, "amount": amount}
                ),
            )
        except Conflict as exc:
            param = "amount" if exc.code == "refund_exceeds_captured" else "payment_id"
            raise invalid(exc.code, exc.message, param, status=400) from None
        connector = self.connectors[refund.connector]
        assert payment.connector_reference is not None
        result = await connector.refund(
            RefundRequest(
                reference=refund.reference,
                connector_reference=payment.connector_reference,
                amount=amount,
                currency=payment.currency,
            )
        )
        refund.connector_reference = result.connector_reference
        refund.raw_code = result.raw_code
        refund.updated_at = time.time()
        if result.status is AttemptStatus.REFUNDED:
            refund.status = "succeeded"
        elif result.status is AttemptStatus.PENDING or (
            result.status is AttemptStatus.FAILED and result.ambiguous
        ):
            refund.status = "pending"  # it may have gone through; it stays reserved
        else:
            refund.status = "failed"
        await self.store.finish_refund(
            refund,
            _event(
                payment,
                f"refund.{refund.status}",
                refund.updated_at,
                data={"refund_id": refund.id, "amount": amount},
            ),
        )
        if refund.status == "failed":
            raise ApiError(
                402,
                "psp_error",
                "refund_failed",
                f"The PSP refused the refund: {result.normalized_code or result.raw_code}",
            )
        return 200, refund_view(refund)

    async def get_refund(self, merchant_id: str, refund_id: str) -> tuple[int, Any]:
        refund = await self.store.get_refund(merchant_id, refund_id)
        if refund is None:
            raise not_found("refund", "id")
        return 200, refund_view(refund)

    # crash recovery

    async def recover(self) -> int:
        """Resolve attempts whose PSP answer never arrived (the process died mid-call)."""
        resolved = 0
        for attempt in await self.store.unfinished_attempts():
            connector = self.connectors.get(attempt.connector)
            payment = await self.store.get_payment(attempt.merchant_id, attempt.payment_id)
            if connector is None or payment is None:
                continue
            result = await connector.sync(
                SyncRequest(
                    reference=attempt.reference, amount=attempt.amount, currency=attempt.currency
                )
            )
            if result.status is AttemptStatus.FAILED and result.ambiguous:
                continue  # PSP still unreachable: try again on the next start
            self._record_result(attempt, result)
            attempt.next_action = "recovered_after_restart"
            if result.status in (AttemptStatus.AUTHORIZED, AttemptStatus.CAPTURED):
                self._apply_authorization(payment, attempt, result)
            elif result.status in (AttemptStatus.PENDING, AttemptStatus.REQUIRES_ACTION):
                payment.connector = attempt.connector
                payment.connector_reference = result.connector_reference
            elif result.status is AttemptStatus.NOT_FOUND:
                # The PSP never saw it (the gateway stopped before or while sending): nothing was
                # charged, so the client's retry with the same Idempotency-Key is processed
                # afresh, and should this attempt surface at the PSP after all, it is voided.
                attempt.status = AttemptStatus.FAILED
                payment.status = PaymentStatus.FAILED
                payment.connector = attempt.connector
                payment.error = _interrupted_error()
                if self.reconciler is not None:
                    await self.reconciler.watch(attempt, "late_auth", "not found after restart")
            else:
                attempt.status = result.status
                payment.status = PaymentStatus.FAILED
                payment.connector = attempt.connector
                payment.error = {
                    "type": "api_error",
                    "code": result.normalized_code or "not_processed",
                    "decline_class": result.decline_class,
                    "message": "The gateway restarted before the PSP's answer was recorded; the "
                    "PSP did not approve this attempt.",
                    "raw_code": result.raw_code,
                }
            await self._finish(payment, attempt, "payment.recovered")
            resolved += 1
        await self._fail_interrupted_payments()
        await self._complete_stale_idempotency()
        return resolved

    async def _fail_interrupted_payments(self) -> None:
        """Payments left processing with nothing outstanding at any PSP: the gateway stopped
        before an attempt went out (or between a decline and the next cascade)."""
        for payment in await self.store.payments_in_status(PaymentStatus.PROCESSING):
            attempts = await self.store.list_attempts(payment.id)
            if any(
                a.status in (AttemptStatus.PENDING, AttemptStatus.REQUIRES_ACTION, "started")
                or (a.status == AttemptStatus.FAILED and a.ambiguous)
                for a in attempts
            ):
                continue  # the PSP may still act on it: leave it for sync and webhooks
            before = payment.status
            payment.status = PaymentStatus.FAILED
            payment.error = _interrupted_error()
            payment.updated_at = time.time()
            await self.store.transition_payment(
                payment,
                (before,),
                [
                    _event(
                        payment,
                        "payment.interrupted",
                        payment.updated_at,
                        from_status=before,
                        to_status=payment.status,
                    )
                ],
            )

    async def _complete_stale_idempotency(self) -> None:
        """Keys whose first request never got its answer out: replay the payment's state if it
        reached a PSP, otherwise forget the key so the client's retry is processed afresh."""
        for record in await self.store.stale_idempotency_records():
            payment = None
            if record.payment_id is not None:
                payment = await self.store.get_payment(record.merchant_id, record.payment_id)
            if payment is None or (payment.error or {}).get("code") == "processing_interrupted":
                await self.store.forget_idempotent(record.merchant_id, record.key)
                continue
            status, view = await self._payment_response(payment)
            await self.store.complete_idempotent(
                record.merchant_id, record.key, status, encode_body(view)
            )


def _interrupted_error() -> dict[str, Any]:
    """The error of a payment the gateway stopped processing before any PSP acted on it."""
    return {
        "type": "api_error",
        "code": "processing_interrupted",
        "decline_class": None,
        "message": "The gateway stopped before this payment was completed; no PSP holds funds "
        "for it. Retry with the same Idempotency-Key.",
        "raw_code": None,
    }


def card_view_of(payment: PaymentRecord) -> schemas.CardView | None:
    if payment.card_brand is None:
        return None
    return schemas.CardView(
        brand=payment.card_brand,
        bin=payment.card_bin or "",
        last4=payment.card_last4 or "",
        exp_month=payment.card_exp_month or 0,
        exp_year=payment.card_exp_year or 0,
    )


def payment_view(payment: PaymentRecord, attempts: list[AttemptRecord]) -> schemas.PaymentView:
    error = None
    if payment.error:
        error = schemas.PaymentError(
            type=payment.error.get("type", "card_error"),
            code=payment.error.get("code", "declined"),
            decline_class=payment.error.get("decline_class"),
            message=payment.error.get("message", ""),
            raw_code=payment.error.get("raw_code"),
        )
    return schemas.PaymentView(
        id=payment.id,
        object="payment",
        status=payment.status,
        amount=payment.amount,
        amount_capturable=payment.amount_capturable,
        amount_received=payment.amount_received,
        amount_refunded=payment.amount_refunded,
        currency=payment.currency,
        capture_method=payment.capture_method,
        connector=payment.connector,
        connector_reference=payment.connector_reference,
        card=card_view_of(payment),
        reference=payment.reference,
        metadata=payment.metadata,
        attempts=[
            schemas.AttemptView(
                id=a.id,
                connector=a.connector,
                outcome=a.status,
                raw_code=a.raw_code,
                normalized_code=a.normalized_code,
                decline_class=a.decline_class,
                latency_ms=a.latency_ms,
                connector_reference=a.connector_reference,
                next_action=a.next_action,
            )
            for a in attempts
        ],
        error=error,
        created=int(payment.created_at),
    )


def refund_view(refund: RefundRecord) -> schemas.RefundView:
    return schemas.RefundView(
        id=refund.id,
        object="refund",
        payment_id=refund.payment_id,
        amount=refund.amount,
        currency=refund.currency,
        status=refund.status,
        connector=refund.connector,
        connector_reference=refund.connector_reference,
        reason=refund.reason,
        created=int(refund.created_at),
    )


def token_view(token: TokenRecord) -> schemas.TokenView:
    return schemas.TokenView(
        id=token.id,
        object="token",
        card=schemas.CardView(
            brand=token.brand,
            bin=token.bin,
            last4=token.last4,
            exp_month=token.exp_month,
            exp_year=token.exp_year,
        ),
        fingerprint=token.fingerprint,
        created=int(token.created_at),
    )
