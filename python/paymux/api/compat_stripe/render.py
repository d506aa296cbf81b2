"""paymux's records in Stripe's shapes (PaymentIntent, PaymentMethod, Refund, list, error).

``StripeAnswers`` is the Stripe front's rendering for the flow's Answers port: the flow stores
these bytes as the Idempotency-Key's answer, whoever settles the payment (the request, the
reconciler, crash recovery), so a replay answers in Stripe's shape too. Fields Stripe has and
paymux does not keep are present and null, as Stripe sends them; what paymux knows beyond
Stripe (the connector that served the payment, every attempt with its normalized decline code
and class) goes in one extra ``paymux`` object, which the SDK keeps as a plain attribute.
"""

from __future__ import annotations

from typing import Any

import orjson

from paymux.api.compat_stripe import ids
from paymux.api.compat_stripe.errors import StripeError
from paymux.domain.errors import Refusal, RefusalKind
from paymux.domain.records import (
    RESERVED_METADATA_PREFIX,
    AttemptRecord,
    PaymentRecord,
    PaymentStatus,
    RefundRecord,
    TokenRecord,
    merchant_metadata,
)

Answer = tuple[int, bytes]

#: Metadata keys the Stripe front keeps for itself in a payment's metadata (PaymentRecord has no
#: field for them): never shown in the merchant's ``metadata``, refused when a merchant sends them.
RESERVED = RESERVED_METADATA_PREFIX
LIVEMODE = "paymux_livemode"
STATEMENT_DESCRIPTOR = "paymux_statement_descriptor"
RETURN_URL = "paymux_return_url"
CANCELLATION_REASON = "paymux_cancellation_reason"
#: ``paymux_refund_<re id>``: a refund's metadata (RefundRecord has none), as JSON.
REFUND_METADATA = "paymux_refund_"


def reserved_metadata(metadata: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in metadata.items() if k.startswith(RESERVED)}


def refund_metadata(payment: PaymentRecord | None, refund_id: str) -> dict[str, str]:
    raw = payment.metadata.get(REFUND_METADATA + refund_id) if payment is not None else None
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def is_live(payment: PaymentRecord | None) -> bool:
    return payment is not None and payment.metadata.get(LIVEMODE) == "true"


# paymux status -> PaymentIntent.status. Stripe has no in-flight capture or cancel states: the
# intent reads "processing" until the PSP's answer is known.
_STATUS = {
    PaymentStatus.PROCESSING: "processing",
    PaymentStatus.REQUIRES_ACTION: "requires_action",
    PaymentStatus.REQUIRES_CAPTURE: "requires_capture",
    PaymentStatus.CAPTURING: "processing",
    PaymentStatus.CANCELING: "processing",
    PaymentStatus.SUCCEEDED: "succeeded",
    PaymentStatus.FAILED: "requires_payment_method",  # Stripe: declined, try another method
    PaymentStatus.CANCELED: "canceled",
}

# paymux's normalized decline codes whose Stripe `code` is not `card_declined`.
_CARD_CODE = {
    "expired_card": "expired_card",
    "incorrect_cvc": "incorrect_cvc",
    "invalid_card_number": "incorrect_number",
    "invalid_expiry_date": "invalid_expiry_year",
    "processing_error": "processing_error",
    "incorrect_zip": "incorrect_zip",
    "authentication_required": "authentication_required",
}
# Technical endings (every PSP timed out or failed): Stripe's processing_error.
_TECHNICAL = "technical"
_DECLINE_CODE = {"unknown_decline": "generic_decline"}

# A card the flow cannot use (RefusalKind.CARD), by paymux code: Stripe's code and param.
_CARD_REFUSAL = {
    "invalid_number": ("incorrect_number", "number"),
    "card_brand_unsupported": ("card_declined", "number"),
    "invalid_expiry": ("invalid_expiry_year", "exp_year"),
    "expired_card": ("expired_card", "exp_month"),
    "invalid_card": ("card_declined", None),
}

#: paymux's parameter names (dotted, /v1) -> Stripe's, for the errors the flow raises.
PARAMS = {
    "payment_method": "payment_method",
    "payment_method.token": "payment_method",
    "payment_method.card": "payment_method_data[card]",
    "payment_method.card.number": "payment_method_data[card][number]",
    "payment_id": "payment_intent",
    "currency": "currency",
    "amount": "amount",
    "id": "intent",
}


def _encode(value: Any) -> bytes:
    return orjson.dumps(value)


def _attempt_view(a: AttemptRecord) -> dict[str, Any]:
    return {
        "id": a.id,
        "connector": a.connector,
        "outcome": a.status,
        "raw_code": a.raw_code,
        "normalized_code": a.normalized_code,
        "decline_class": a.decline_class,
        "latency_ms": a.latency_ms,
        "connector_reference": a.connector_reference,
    }


def _decline(error: dict[str, Any]) -> tuple[str, str | None]:
    """(Stripe `code`, `decline_code`) of a declined payment's error."""
    normalized = str(error.get("code") or "card_declined")
    if error.get("decline_class") == _TECHNICAL or error.get("type") == "api_error":
        return "processing_error", None
    decline_code = _DECLINE_CODE.get(normalized, normalized)
    return _CARD_CODE.get(normalized, "card_declined"), decline_code


def last_payment_error(payment: PaymentRecord) -> dict[str, Any] | None:
    if payment.status != PaymentStatus.FAILED or not payment.error:
        return None
    code, decline_code = _decline(payment.error)
    out: dict[str, Any] = {
        "type": "card_error",
        "code": code,
        "message": payment.error.get("message") or "Your card was declined.",
        "charge": ids.charge_id(payment.id),
        "doc_url": f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}",
    }
    if decline_code is not None:
        out["decline_code"] = decline_code
    if payment.token_id:
        out["payment_method"] = {"id": ids.method_id(payment.token_id), "object": "payment_method",
                                 "type": "card"}  # fmt: skip
    return out


def payment_intent(payment: PaymentRecord, attempts: list[AttemptRecord]) -> dict[str, Any]:
    status = payment.status
    if status == PaymentStatus.REQUIRES_CONFIRMATION:
        stripe_status = "requires_confirmation" if payment.token_id else "requires_payment_method"
    else:
        stripe_status = _STATUS.get(PaymentStatus(status), status)
    approved = payment.connector is not None and status not in (PaymentStatus.FAILED,)
    error = payment.error or {}
    description = getattr(payment, "description", None)
    kept = payment.metadata
    canceled = status == PaymentStatus.CANCELED
    return {
        "id": ids.intent_id(payment.id),
        "object": "payment_intent",
        "amount": payment.amount,
        "amount_capturable": payment.amount_capturable,
        "amount_details": {"tip": {}},
        "amount_received": payment.amount_received,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": int(payment.updated_at) if status == PaymentStatus.CANCELED else None,
        "cancellation_reason": kept.get(CANCELLATION_REASON) if canceled else None,
        "capture_method": payment.capture_method,
        "client_secret": None,
        "confirmation_method": "automatic",
        "created": int(payment.created_at),
        "currency": payment.currency.lower(),
        "customer": None,
        "description": description,
        "invoice": None,
        "last_payment_error": last_payment_error(payment),
        "latest_charge": ids.charge_id(payment.id) if approved or payment.error else None,
        "livemode": kept.get(LIVEMODE) == "true",
        "metadata": merchant_metadata(kept),
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": ids.method_id(payment.token_id) if payment.token_id else None,
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "statement_descriptor": kept.get(STATEMENT_DESCRIPTOR),
        "statement_descriptor_suffix": None,
        "status": stripe_status,
        "transfer_data": None,
        "transfer_group": None,
        "paymux": {
            "payment_id": payment.id,
            "status": status,
            "connector": payment.connector,
            "connector_reference": payment.connector_reference,
            "amount_refunded": payment.amount_refunded,
            "reference": payment.reference,
            # Stripe keeps a confirmation's return_url without a field on the PaymentIntent (it
            # shows in next_action's redirect once 3-D Secure lands): paymux echoes it here.
            "return_url": kept.get(RETURN_URL),
            "normalized_code": error.get("code"),
            "decline_class": error.get("decline_class"),
            "raw_code": error.get("raw_code"),
            "attempts": [_attempt_view(a) for a in attempts],
        },
    }


def refund_object(
    refund: RefundRecord, metadata: dict[str, str] | None = None, livemode: bool = False
) -> dict[str, Any]:
    return {
        "id": ids.refund_id(refund.id),
        "object": "refund",
        "amount": refund.amount,
        "balance_transaction": None,
        "charge": ids.charge_id(refund.payment_id),
        "created": int(refund.created_at),
        "currency": refund.currency.lower(),
        "destination_details": None,
        "livemode": livemode,
        "metadata": dict(metadata or {}),
        "payment_intent": ids.intent_id(refund.payment_id),
        "reason": refund.reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": refund.status,
        "transfer_reversal": None,
        "paymux": {
            "connector": refund.connector,
            "connector_reference": refund.connector_reference,
            "raw_code": refund.raw_code,
        },
    }


def payment_method(token: TokenRecord, livemode: bool = False) -> dict[str, Any]:
    return {
        "id": ids.method_id(token.id),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": None,
            "name": None,
            "phone": None,
        },
        "card": {
            "brand": token.brand,
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": None,
            },
            "country": None,
            "display_brand": token.brand,
            "exp_month": token.exp_month,
            "exp_year": token.exp_year,
            "fingerprint": token.fingerprint[:16],
            "funding": "unknown",
            "generated_from": None,
            "last4": token.last4,
            "networks": {"available": [token.brand], "preferred": None},
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": int(token.created_at),
        "customer": None,
        "livemode": livemode,
        "metadata": {},
        "type": "card",
        "paymux": {"token": token.id, "bin": token.bin},
    }


def charge_object(intent: dict[str, Any]) -> dict[str, Any]:
    """The Charge of a rendered PaymentIntent (its approved or declined attempt), for
    ``expand[]=latest_charge``: built from the intent itself, no second read."""
    extra = intent.get("paymux") or {}
    error = intent.get("last_payment_error")
    failed = error is not None
    received = intent["amount_received"]
    refunded = extra.get("amount_refunded") or 0
    status = intent["status"]
    if failed:
        charge_status = "failed"
    elif status == "processing":
        charge_status = "pending"
    else:
        charge_status = "succeeded"
    decline_code = error.get("decline_code") if error else None
    return {
        "id": intent["latest_charge"],
        "object": "charge",
        "amount": intent["amount"],
        "amount_captured": received,
        "amount_refunded": refunded,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "balance_transaction": None,
        "billing_details": {"address": None, "email": None, "name": None, "phone": None},
        "calculated_statement_descriptor": intent.get("statement_descriptor"),
        "captured": received > 0,
        "created": intent["created"],
        "currency": intent["currency"],
        "customer": None,
        "description": intent.get("description"),
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": error.get("code") if error else None,
        "failure_message": error.get("message") if error else None,
        "fraud_details": {},
        "invoice": None,
        "livemode": intent["livemode"],
        "metadata": dict(intent.get("metadata") or {}),
        "on_behalf_of": None,
        "outcome": {
            "network_status": "declined_by_network" if failed else "approved_by_network",
            "reason": decline_code,
            "risk_level": "not_assessed",
            "seller_message": "The bank declined the payment." if failed else "Payment complete.",
            "type": "issuer_declined" if failed else "authorized",
        },
        "paid": not failed and charge_status == "succeeded",
        "payment_intent": intent["id"],
        "payment_method": _id_of(intent.get("payment_method")),
        "receipt_email": None,
        "receipt_url": None,
        "refunded": received > 0 and refunded >= received,
        "refunds": None,
        "review": None,
        "shipping": None,
        "statement_descriptor": intent.get("statement_descriptor"),
        "statement_descriptor_suffix": None,
        "status": charge_status,
        "transfer_data": None,
        "transfer_group": None,
        "paymux": {
            "connector": extra.get("connector"),
            "connector_reference": extra.get("connector_reference"),
            "normalized_code": extra.get("normalized_code"),
            "decline_class": extra.get("decline_class"),
        },
    }


def _id_of(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) else value


def list_object(url: str, data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def error_of_refusal(refusal: Refusal, params: dict[str, str] | None = None) -> StripeError:
    """The Stripe error for a refusal of the flow; ``params`` renames the flow's parameter
    names into the endpoint's own (a capture's ``amount`` is ``amount_to_capture``)."""
    names = {**PARAMS, **(params or {})}
    param = refusal.param
    if param is not None:
        param = names.get(param) or _bracketed(param)
    kind = refusal.kind
    if kind is RefusalKind.CARD:
        code, card_param = _CARD_REFUSAL.get(refusal.code, ("card_declined", None))
        return StripeError(402, "card_error", refusal.message, code, card_param or param)
    if kind is RefusalKind.NOT_FOUND:
        return StripeError(404, "invalid_request_error", refusal.message, "resource_missing", param)
    if kind is RefusalKind.DECLINED:
        return StripeError(
            402,
            "card_error",
            refusal.message,
            "card_declined",
            param,
            decline_code=refusal.raw_code,
            paymux={"code": refusal.code, "decline_class": refusal.decline_class},
        )
    if kind is RefusalKind.UNAVAILABLE:
        return StripeError(502, "api_error", refusal.message, refusal.code, param)
    code = refusal.code
    if code == "payment_unexpected_state":
        code = "payment_intent_unexpected_state"
    elif code == "charge_already_refunded":
        param = None
    return StripeError(400, "invalid_request_error", refusal.message, code, param)


def _bracketed(dotted: str) -> str:
    head, *rest = dotted.split(".")
    return head + "".join(f"[{p}]" for p in rest)


class StripeAnswers:
    """The Stripe front's renderings for the Answers port (``HttpAnswers.register``)."""

    def payment(self, payment: PaymentRecord, attempts: list[AttemptRecord]) -> Answer:
        intent = payment_intent(payment, attempts)
        if payment.status == PaymentStatus.FAILED and payment.error:
            code, decline_code = _decline(payment.error)
            error = StripeError(
                402,
                "card_error",
                payment.error.get("message") or "Your card was declined.",
                code,
                None,
                decline_code=decline_code,
                charge=ids.charge_id(payment.id),
                payment_intent=intent,
                payment_method=intent["last_payment_error"].get("payment_method")
                if intent["last_payment_error"]
                else None,
                paymux=intent["paymux"],
            )
            return error.http_status, error.encoded()
        return 200, _encode(intent)

    def refund(self, refund: RefundRecord) -> Answer:
        # Its metadata and livemode (kept in the payment's metadata) are filled in by the
        # handler, for the first answer and for replays alike (handlers._refund_answer).
        return 200, _encode(refund_object(refund))

    def refusal(self, refusal: Refusal) -> Answer:
        error = error_of_refusal(refusal)
        return error.http_status, error.encoded()
