"""The payment flow: vault, route, attempt (persisted first), decide, record. One class, one job.

Every method takes an authenticated merchant id and returns domain records, or the answer the
API layer rendered for an Idempotency-Key (``Answers``), stored in the same transaction as the
state it answers for. A bad request raises ``Refusal`` before anything is written; every status
change goes through the lifecycle table (python/paymux/domain/lifecycle.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paymux.config import GatewayConfig
from paymux.connectors.base import (
    AuthorizeRequest,
    CardDetails,
    Connector,
    ConnectorResult,
    SyncRequest,
)
from paymux.domain import commands
from paymux.domain.errors import Refusal, RefusalKind, conflict, invalid, not_found
from paymux.domain.ids import new_id
from paymux.domain.lifecycle import Operation, Outcome, transition
from paymux.domain.money import is_known_currency
from paymux.domain.outcomes import AttemptStatus, DeclineClass
from paymux.domain.records import (
    AttemptRecord,
    Conflict,
    EventRecord,
    IdempotencyClaim,
    PaymentFilter,
    PaymentRecord,
    PaymentStatus,
    RefundRecord,
    StoredAnswer,
    TokenRecord,
    merchant_metadata,
)
from paymux.failover.policy import AttemptContext, FailoverPolicy
from paymux.observability import metrics
from paymux.observability.logs import log
from paymux.payments import crashpoints
from paymux.payments.answers import Answer, Answers
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
from paymux.routing.router import Router
from paymux.store.base import Store

if TYPE_CHECKING:
    from paymux.payments.reconciler import Reconciler

# Why a card in our hands cannot be used, by the Rust core's error code.
_CARD_ERRORS = {
    "invalid_number": ("invalid_number", "The card number is not a valid card number."),
    "luhn_failed": ("invalid_number", "The card number is not a valid card number."),
    "unsupported_brand": ("card_brand_unsupported", "The card brand is not supported."),
    "invalid_length_for_brand": ("invalid_number", "The card number has the wrong length."),
    "invalid_expiry": ("invalid_expiry", "The card's expiry date is invalid."),
    "expired_card": ("expired_card", "The card has expired."),
}


def _card_error(exc: Exception, param: str) -> Refusal:
    code, message = _CARD_ERRORS.get(getattr(exc, "code", ""), ("invalid_card", "Invalid card."))
    return Refusal(RefusalKind.CARD, code, message, param)


@dataclass(slots=True)
class _Card:
    """The card a payment will use: its token, the token to insert if it was vaulted just now,
    and what lives in memory for this request only (never stored)."""

    token: TokenRecord
    new_token: TokenRecord | None
    cvc: str | None
    holder: str | None


def _set_card(payment: PaymentRecord, token: TokenRecord) -> None:
    payment.token_id = token.id
    payment.card_brand = token.brand
    payment.card_bin = token.bin
    payment.card_last4 = token.last4
    payment.card_exp_month = token.exp_month
    payment.card_exp_year = token.exp_year


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
        answers: Answers,
    ) -> None:
        self.config = config
        self.answers = answers
        self.operations = OperationFlow(config, store, connectors, answers)
        self.store = store
        self.vault = vault
        self.connectors = connectors
        self.router = router
        self.policy = policy
        self.reconciler: Reconciler | None = None  # set by the app when it runs one

    # tokens

    def _tokenize(self, merchant_id: str, card: commands.CardInput, param: str) -> Any:
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

    async def create_token(self, merchant_id: str, body: commands.CreateToken) -> TokenRecord:
        now = time.time()
        record = self._token_record(
            merchant_id, self._tokenize(merchant_id, body.card, "card.number"), now
        )
        await self.store.insert_token(record)
        return record

    async def delete_token(self, merchant_id: str, token_id: str) -> None:
        if not await self.store.delete_token(merchant_id, token_id, time.time()):
            raise not_found("token", "id")

    # payments

    async def create_payment(
        self,
        merchant_id: str,
        body: commands.CreatePayment,
        claim: IdempotencyClaim | None,
        front: str = "v1",
        confirm: bool = True,
    ) -> Answer:
        """Authorize (and capture) a new payment; returns its answer, rendered for ``front``.

        With ``claim``, the Idempotency-Key is claimed in the transaction that creates the
        payment (IdempotencyTaken if it is bound already, with nothing written) and completed
        with the answer in the one that writes its final state. With ``confirm=False`` (a
        drop-in front's unconfirmed intent) the payment is only stored, ``requires_confirmation``,
        and ``confirm_payment`` sends it later; its payment method is then optional."""
        if not is_known_currency(body.currency):
            raise invalid("invalid_currency", f"Unknown currency {body.currency}", "currency")
        method = body.payment_method
        has_method = method.card is not None or method.token is not None
        if (method.card is not None and method.token is not None) or (confirm and not has_method):
            raise invalid(
                "parameter_invalid",
                "payment_method needs exactly one of `card` or `token`",
                "payment_method",
            )
        if body.connector is not None and body.connector not in self.connectors:
            raise invalid("unknown_connector", f"No connector named {body.connector}", "connector")
        now = time.time()
        card = await self._card_of(merchant_id, method, now) if has_method else None
        payment = PaymentRecord(
            id=new_id("pay"),
            merchant_id=merchant_id,
            status=PaymentStatus.PROCESSING if confirm else PaymentStatus.REQUIRES_CONFIRMATION,
            amount=body.amount,
            currency=body.currency,
            capture_method=body.capture_method,
            billing_country=body.billing.country if body.billing else None,
            reference=body.reference,
            description=body.description,
            metadata=body.metadata,
            front=front,
            created_at=now,
            updated_at=now,
        )
        if card is not None:
            _set_card(payment, card.token)
        created = event(payment, "payment.created", now, to_status=payment.status)
        if not confirm:
            answer = self.answers.payment(front, payment, [])
            await self.store.create_payment(
                payment,
                card.new_token if card else None,
                [created],
                claim=claim,
                answer=payment_answer(payment, answer),
            )
            return answer
        assert card is not None
        plan, first = self._plan(payment, body.connector)
        created.data = payment.routing or {}
        # The first attempt is persisted with the payment, in one commit, before the PSP call.
        await self.store.create_payment(
            payment, card.new_token, [created], first_attempt=first, claim=claim
        )
        return await self._authorize(payment, card, plan.connectors, first[0])

    async def confirm_payment(
        self,
        merchant_id: str,
        payment_id: str,
        method: commands.PaymentMethodInput | None,
        claim: IdempotencyClaim | None,
        front: str = "v1",
    ) -> Answer:
        """Send a payment created unconfirmed: the same flow as ``create_payment`` from there."""
        payment = await self._load(merchant_id, payment_id)
        if payment.status != PaymentStatus.REQUIRES_CONFIRMATION:
            raise conflict(
                "payment_unexpected_state",
                f"This payment is {payment.status}; only a payment in requires_confirmation can "
                "be confirmed",
            )
        now = time.time()
        if method is not None and (method.card is not None or method.token is not None):
            if method.card is not None and method.token is not None:
                raise invalid(
                    "parameter_invalid",
                    "payment_method needs exactly one of `card` or `token`",
                    "payment_method",
                )
            card = await self._card_of(merchant_id, method, now)
            _set_card(payment, card.token)
        elif payment.token_id is not None:
            card = await self._card_of(
                merchant_id, commands.PaymentMethodInput(token=payment.token_id), now
            )
        else:
            raise invalid(
                "parameter_missing", "A payment method is needed to confirm", "payment_method"
            )
        change = transition(payment, Operation.CONFIRM, Outcome.STARTED, now=now)
        plan, first = self._plan(payment, None)
        try:
            await self.store.confirm_payment(
                payment,
                (change.from_status,),
                card.new_token,
                [event(payment, "payment.confirmed", now, change, data=payment.routing or {})],
                first,
                claim,
            )
        except Conflict:
            raise conflict(
                "payment_unexpected_state", "The payment changed state meanwhile; retry"
            ) from None
        return await self._authorize(payment, card, plan.connectors, first[0])

    async def update_payment(
        self,
        merchant_id: str,
        payment_id: str,
        metadata: dict[str, str] | None = None,
        description: str | None = None,
    ) -> PaymentRecord:
        """Replace a payment's metadata and/or description (merchant-side details only)."""
        payment = await self._load(merchant_id, payment_id)
        if metadata is not None:
            payment.metadata = metadata
        if description is not None:
            payment.description = description
        payment.updated_at = time.time()
        await self.store.update_payment_details(
            payment,
            event(
                payment,
                "payment.updated",
                payment.updated_at,
                data={"metadata": metadata is not None, "description": description is not None},
            ),
        )
        return payment

    async def record_passthrough(
        self, payment: PaymentRecord, attempt: AttemptRecord, result: ConnectorResult
    ) -> bool:
        """Store an authorization the merchant made at its PSP through the pass-through, so that
        analytics and reports count it like a /v1 attempt (its payment's ``front`` says which
        pass-through). Only settled answers are kept: paymux never acts on such a payment (no
        capture, void, refund or sync: the merchant drives its PSP), so one whose outcome is
        unknown would have nobody to settle it. Returns whether it was stored."""
        outcome = authorization_outcome(result)
        if (
            payment.amount <= 0
            or len(payment.currency) != 3
            or outcome
            not in (
                Outcome.AUTHORIZED,
                Outcome.CAPTURED,
                Outcome.DECLINED,
            )
        ):
            return False
        attempt.reference = attempt.id
        attempt.next_action = "passthrough"
        if outcome is Outcome.DECLINED:
            change = fail_payment(
                payment, outcome, declined_error(result), connector=attempt.connector
            )
        else:
            change = apply_authorization(payment, attempt, result)
        started = event(payment, "attempt.started", payment.created_at, attempt_id=attempt.id)
        await self.store.create_payment(
            payment,
            None,
            [event(payment, "payment.passthrough", change=change, attempt_id=attempt.id)],
            first_attempt=(attempt, started),
        )
        return True

    async def _card_of(
        self, merchant_id: str, method: commands.PaymentMethodInput, now: float
    ) -> _Card:
        """The token a payment method names (vaulting a raw card first), with the CVC and holder
        that live in memory for this request only."""
        if method.card is not None:
            tok = self._tokenize(merchant_id, method.card, "payment_method.card.number")
            new_token = self._token_record(merchant_id, tok, now)
            return _Card(new_token, new_token, method.card.cvc, method.card.holder_name)
        assert method.token is not None
        found = await self.store.get_token(merchant_id, method.token)
        if found is None:
            raise not_found("token", "payment_method.token")
        today = dt.date.today()
        if (found.exp_year, found.exp_month) < (today.year, today.month):
            raise Refusal(
                RefusalKind.CARD, "expired_card", "The card has expired.", "payment_method.token"
            )
        return _Card(found, None, None, None)

    def _plan(
        self, payment: PaymentRecord, pinned: str | None
    ) -> tuple[Any, tuple[AttemptRecord, EventRecord]]:
        plan = self.router.plan(payment, pinned=pinned)
        if not plan.connectors:
            raise invalid(
                "no_eligible_connector",
                "No connector supports this payment (currency, brand, country)",
                "payment_method",
            )
        payment.routing = self.router.record(plan)  # rule, strategy, order, estimates, version
        return plan, self._new_attempt(payment, plan.connectors[0], 1)

    async def _authorize(
        self, payment: PaymentRecord, card_of: _Card, order: list[str], first: AttemptRecord
    ) -> Answer:
        """The payment and its first attempt are persisted: reveal the card, run the attempts,
        write the final state with its answer."""
        crashpoints.reached("authorize.before_psp")
        token = card_of.token
        revealed = self.vault.reveal(payment.merchant_id, token.id, token.ciphertext)
        card = CardDetails(
            revealed.number, revealed.exp_month, revealed.exp_year, card_of.cvc, card_of.holder
        )
        del revealed
        try:
            outcome = await self._run_attempts(payment, card, order, payment.description, first)
        finally:
            card.number = ""
            card.cvc = None
        crashpoints.reached("authorize.after_psp")
        # The attempts, in seq order, are what reading them back would return.
        answer = self.answers.payment(payment.front, payment, outcome.attempts)
        last = outcome.attempts[-1]
        # The payment's final state, its event and the idempotent answer: one transaction.
        await self._finish(payment, last, outcome.event, payment_answer(payment, answer))
        crashpoints.reached("authorize.after_commit")
        if outcome.watch is not None and self.reconciler is not None:
            await self.reconciler.watch(last, outcome.watch, outcome.watch_note)
        return answer

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
                apply_authorization(payment, attempt, result)
                return _Outcome(attempts, "payment.authorized")
            if status in (AttemptStatus.PENDING, AttemptStatus.REQUIRES_ACTION) or (
                status is AttemptStatus.FAILED and result.ambiguous
            ):
                # Unknown or waiting at this PSP: going elsewhere could charge twice.
                attempt.next_action = "await_psp"
                apply_authorization(payment, attempt, result)
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
                fail_payment(payment, Outcome.DECLINED, declined_error(result), connector=name)
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
                    event(
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
        return attempt, event(
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
            metadata=merchant_metadata(payment.metadata),
        )
        crashpoints.reached("authorize.during_psp")
        self.router.attempt_started(connector.name)
        try:
            result = await connector.authorize(request)
        except BaseException:
            self.router.engine.attempt_finished(connector.name)
            raise
        reached_psp = False
        if result.status is AttemptStatus.REQUIRES_ACTION and not connector.capabilities.three_ds:
            # A challenge through a connector that declares no 3-D Secure cannot be completed
            # here: nothing is held, so another PSP may try (a late authorization is voided).
            result = ConnectorResult(
                status=AttemptStatus.DECLINED,
                connector_reference=result.connector_reference,
                raw_code=result.raw_code,
                normalized_code="three_ds_unsupported",
                decline_class=DeclineClass.SOFT_ROUTE,
                latency_ms=result.latency_ms,
                detail=f"{connector.name} asked for 3-D Secure but does not declare it",
            )
            reached_psp = True
        health_outcome = None
        if result.status is AttemptStatus.FAILED and result.ambiguous:
            # For health, the attempt is what the PSP did to us (a timeout, a 5xx) even when
            # sync then finds it approved: a PSP that answers too late is degraded.
            health_outcome = "timeout" if result.normalized_code == "timeout" else "technical"
            result = await self._sync_after_ambiguity(connector, attempt, result, request)
            reached_psp = result.status is AttemptStatus.FAILED and not result.ambiguous
        record_attempt_result(attempt, result)
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

    async def _finish(
        self,
        payment: PaymentRecord,
        attempt: AttemptRecord,
        event_type: str,
        answer: StoredAnswer | None = None,
    ) -> None:
        now = time.time()
        payment.updated_at = now
        metrics.payment_finished(payment, attempt, event_type)
        await self.store.finish_attempt(
            attempt,
            payment,
            [
                event(
                    payment,
                    event_type,
                    now,
                    to_status=payment.status,
                    attempt_id=attempt.id,
                    data={"reason": attempt.next_action},
                )
            ],
            answer,
        )

    async def get_payment(
        self, merchant_id: str, payment_id: str
    ) -> tuple[PaymentRecord, list[AttemptRecord]]:
        payment = await self.store.get_payment(merchant_id, payment_id)
        if payment is None:
            raise not_found("payment", "id")
        return payment, await self.store.list_attempts(payment.id)

    async def list_payments(
        self, merchant_id: str, flt: PaymentFilter
    ) -> tuple[list[tuple[PaymentRecord, list[AttemptRecord]]], bool]:
        """A page of payments with their attempts (two queries), and whether more follow."""
        limit = flt.limit
        flt.limit = limit + 1
        rows = await self.store.list_payments(merchant_id, flt)
        has_more = len(rows) > limit
        rows = rows[:limit]
        attempts = await self.store.list_attempts_of([p.id for p in rows])
        return [(p, attempts[p.id]) for p in rows], has_more

    async def _load(self, merchant_id: str, payment_id: str, param: str = "id") -> PaymentRecord:
        payment = await self.store.get_payment(merchant_id, payment_id)
        if payment is None:
            raise not_found("payment", param)
        return payment

    # captures, voids and refunds: python/paymux/payments/operations.py

    async def capture(
        self,
        merchant_id: str,
        payment_id: str,
        body: commands.CapturePayment,
        claim: IdempotencyClaim | None,
        front: str = "v1",
    ) -> Answer:
        payment = await self._load(merchant_id, payment_id)
        return await self.operations.capture(payment, body.amount, claim, front)

    async def cancel(
        self,
        merchant_id: str,
        payment_id: str,
        claim: IdempotencyClaim | None,
        front: str = "v1",
    ) -> Answer:
        payment = await self._load(merchant_id, payment_id)
        return await self.operations.void(payment, claim, front)

    async def create_refund(
        self,
        merchant_id: str,
        body: commands.CreateRefund,
        claim: IdempotencyClaim | None,
        front: str = "v1",
    ) -> Answer:
        payment = await self._load(merchant_id, body.payment_id, "payment_id")
        return await self.operations.refund(payment, body.amount, body.reason, claim, front)

    async def get_refund(self, merchant_id: str, refund_id: str) -> RefundRecord:
        refund = await self.store.get_refund(merchant_id, refund_id)
        if refund is None:
            raise not_found("refund", "id")
        return refund
