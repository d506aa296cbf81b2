"""What the API shows of the flow's records, and the HTTP status each state answers with.

``HttpAnswers`` is the flow's ``Answers`` port: the flow stores what it renders as an
Idempotency-Key's answer, in the same transaction as the state, without knowing HTTP.
"""

from __future__ import annotations

from typing import Protocol

from paymux.api import schemas
from paymux.api.errors import ErrorEnvelope, from_refusal
from paymux.api.schemas import encode_body
from paymux.domain.errors import Refusal
from paymux.domain.lifecycle import IN_FLIGHT
from paymux.domain.records import (
    AttemptRecord,
    PaymentRecord,
    PaymentStatus,
    RefundRecord,
    TokenRecord,
    merchant_metadata,
)
from paymux.payments.answers import Answer


def payment_http_status(payment: PaymentRecord) -> int:
    """402 for a failed payment (its error says why), 202 while a PSP call of its own is
    unresolved (the reconciler will finish it: poll, or retry with the same key), else 200."""
    if payment.status == PaymentStatus.FAILED:
        return 402
    if payment.status in IN_FLIGHT:
        return 202
    return 200


class V1Answers:
    """The `/v1` API's answers."""

    def payment(self, payment: PaymentRecord, attempts: list[AttemptRecord]) -> Answer:
        return payment_http_status(payment), encode_body(payment_view(payment, attempts))

    def refund(self, refund: RefundRecord) -> Answer:
        return (202 if refund.status == "pending" else 200), encode_body(refund_view(refund))

    def refusal(self, refusal: Refusal) -> Answer:
        error = from_refusal(refusal)
        return error.status, encode_body(ErrorEnvelope(error=error.body))


class FrontAnswers(Protocol):
    """One API's renderings (`/v1`'s, a drop-in front's)."""

    def payment(self, payment: PaymentRecord, attempts: list[AttemptRecord]) -> Answer: ...

    def refund(self, refund: RefundRecord) -> Answer: ...

    def refusal(self, refusal: Refusal) -> Answer: ...


class HttpAnswers:
    """The flow's Answers port: each record is answered in the shape of the API (``front``) it
    came through. A drop-in front registers its renderings with ``register``."""

    def __init__(self) -> None:
        self.fronts: dict[str, FrontAnswers] = {"v1": V1Answers()}

    def register(self, front: str, answers: FrontAnswers) -> None:
        self.fronts[front] = answers

    def _of(self, front: str) -> FrontAnswers:
        return self.fronts.get(front) or self.fronts["v1"]

    def payment(self, front: str, payment: PaymentRecord, attempts: list[AttemptRecord]) -> Answer:
        return self._of(front).payment(payment, attempts)

    def refund(self, front: str, refund: RefundRecord) -> Answer:
        return self._of(front).refund(refund)

    def refusal(self, front: str, refusal: Refusal) -> Answer:
        return self._of(front).refusal(refusal)


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
        metadata=merchant_metadata(payment.metadata),
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
