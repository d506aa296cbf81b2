"""The commands a merchant sends (create a payment, capture, refund, vault a card): msgspec
Structs validated once at the edge, then carried unchanged through the flow. The API layer
decodes them and builds the OpenAPI document from them; the flow only reads them."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from paymux.domain.money import MAX_AMOUNT_MINOR

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
