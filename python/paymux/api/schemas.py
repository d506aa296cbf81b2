"""The `/v1` API's request and response bodies, as msgspec Structs (also the OpenAPI source)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from paymux.domain.money import MAX_AMOUNT_MINOR

_encoder = msgspec.json.Encoder()


def encode_body(value: object) -> bytes:
    """A response body as JSON: the bytes sent, and the bytes an idempotent replay sends."""
    return _encoder.encode(value)


Amount = Annotated[int, Meta(gt=0, le=MAX_AMOUNT_MINOR, description="integer, minor units")]
Currency = Annotated[str, Meta(pattern="^[A-Z]{3}$", description="ISO 4217 code, upper case")]
Country = Annotated[str, Meta(pattern="^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
ShortText = Annotated[str, Meta(min_length=1, max_length=255)]
MetadataKey = Annotated[str, Meta(min_length=1, max_length=40)]
MetadataValue = Annotated[str, Meta(max_length=500)]
Metadata = Annotated[dict[MetadataKey, MetadataValue], Meta(max_length=50)]


class CardInput(msgspec.Struct, forbid_unknown_fields=True):
    number: Annotated[str, Meta(min_length=1, max_length=23)]
    exp_month: Annotated[int, Meta(ge=1, le=12)]
    exp_year: Annotated[int, Meta(ge=0, le=9999)]
    cvc: Annotated[str, Meta(pattern="^[0-9]{3,4}$")] | None = None
    holder_name: Annotated[str, Meta(max_length=100)] | None = None

    def __repr__(self) -> str:  # never the PAN or CVC, even in a debugger or a traceback
        return "CardInput(<redacted>)"


class PaymentMethodInput(msgspec.Struct, forbid_unknown_fields=True):
    card: CardInput | None = None
    token: Annotated[str, Meta(pattern="^tok_[A-Za-z0-9]{1,64}$")] | None = None


class BillingInput(msgspec.Struct, forbid_unknown_fields=True):
    country: Country
    postal_code: Annotated[str, Meta(max_length=20)] | None = None


class CreatePayment(msgspec.Struct, forbid_unknown_fields=True):
    amount: Amount
    currency: Currency
    payment_method: PaymentMethodInput
    capture_method: Literal["automatic", "manual"] = "automatic"
    reference: ShortText | None = None
    billing: BillingInput | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)
    connector: ShortText | None = None
    description: ShortText | None = None


class CapturePayment(msgspec.Struct, forbid_unknown_fields=True):
    amount: Amount | None = None


class CancelPayment(msgspec.Struct, forbid_unknown_fields=True):
    reason: ShortText | None = None


class CreateRefund(msgspec.Struct, forbid_unknown_fields=True):
    payment_id: Annotated[str, Meta(pattern="^pay_[A-Za-z0-9]{1,64}$")]
    amount: Amount | None = None
    reason: ShortText | None = None


class CreateToken(msgspec.Struct, forbid_unknown_fields=True):
    card: CardInput


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
