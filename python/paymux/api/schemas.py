"""The `/v1` API's request and response bodies, as msgspec Structs (also the OpenAPI source)."""

from __future__ import annotations

from typing import Literal

import msgspec

# The request bodies are the domain's commands, re-exported: the API decodes them.
from paymux.domain.commands import (
    Amount,
    BillingInput,
    CancelPayment,
    CapturePayment,
    CardInput,
    Country,
    CreatePayment,
    CreateRefund,
    CreateToken,
    Currency,
    Metadata,
    MetadataKey,
    MetadataValue,
    PaymentMethodInput,
    ShortText,
)

_encoder = msgspec.json.Encoder()


def encode_body(value: object) -> bytes:
    """A response body as JSON: the bytes sent, and the bytes an idempotent replay sends."""
    return _encoder.encode(value)


class CardView(msgspec.Struct):
    brand: str
    bin: str
    last4: str
    exp_month: int
    exp_year: int


class AttemptView(msgspec.Struct):
    id: str
    connector: str
    outcome: str
    raw_code: str | None
    normalized_code: str | None
    decline_class: str | None
    latency_ms: float | None
    connector_reference: str | None
    next_action: str | None


class PaymentError(msgspec.Struct):
    type: str
    code: str
    decline_class: str | None
    message: str
    raw_code: str | None


class PaymentView(msgspec.Struct):
    id: str
    object: Literal["payment"]
    status: str
    amount: int
    amount_capturable: int
    amount_received: int
    amount_refunded: int
    currency: str
    capture_method: str
    connector: str | None
    connector_reference: str | None
    card: CardView | None
    reference: str | None
    metadata: dict[str, str]
    attempts: list[AttemptView]
    error: PaymentError | None
    created: int


class PaymentList(msgspec.Struct):
    object: Literal["list"]
    data: list[PaymentView]
    has_more: bool
    next_cursor: str | None


class RefundView(msgspec.Struct):
    id: str
    object: Literal["refund"]
    payment_id: str
    amount: int
    currency: str
    status: str
    connector: str
    connector_reference: str | None
    reason: str | None
    created: int


class TokenView(msgspec.Struct):
    id: str
    object: Literal["token"]
    card: CardView
    fingerprint: str
    created: int


class DeletedView(msgspec.Struct):
    id: str
    object: str
    deleted: bool


__all__ = [
    "Amount",
    "AttemptView",
    "BillingInput",
    "CancelPayment",
    "CapturePayment",
    "CardInput",
    "CardView",
    "Country",
    "CreatePayment",
    "CreateRefund",
    "CreateToken",
    "Currency",
    "DeletedView",
    "Metadata",
    "MetadataKey",
    "MetadataValue",
    "PaymentError",
    "PaymentList",
    "PaymentMethodInput",
    "PaymentView",
    "RefundView",
    "ShortText",
    "TokenView",
    "encode_body",
]
