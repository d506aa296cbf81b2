"""Stripe: PaymentIntents over form-encoded HTTP, mapped to and from paymux's contract.

Wire format (https://docs.stripe.com/api/payment_intents): ``POST /v1/payment_intents`` with
``confirm=true``, ``capture_method`` manual/automatic and raw card data in
``payment_method_data[card][...]``; ``/capture`` with ``amount_to_capture``; ``/cancel``;
``POST /v1/refunds``; ``GET /v1/payment_intents/{id}``; ``GET /v1/payment_intents/search``;
``GET /v1/refunds/{id}`` and ``GET /v1/refunds?payment_intent=``.
paymux's attempt reference goes out as the ``Idempotency-Key`` and as
``metadata[paymux_reference]`` so ``sync`` can find the PaymentIntent when the answer was lost;
a refund's reference goes out the same two ways so ``sync_operation`` can find the refund.

``sync_operation``: a PaymentIntent is captured or canceled at most once, so its status tells
whether a capture or a void was applied (``GET /v1/payment_intents/{id}``); a refund is its own
object, found by id when known, else in the PaymentIntent's refund list by its metadata.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

import orjson

from paymux.connectors.base import (
    AuthorizeRequest,
    Capabilities,
    CaptureRequest,
    CardFields,
    ConnectorResult,
    OperationSyncRequest,
    RefundRequest,
    SyncRequest,
    VoidRequest,
    WebhookError,
    WebhookEvent,
)
from paymux.connectors.http import (
    HttpConnector,
    Reply,
    TransportFailure,
    as_dict,
    as_int,
    as_str,
    cannot_tell,
    header,
    unknown_operation,
)
from paymux.domain.outcomes import AttemptStatus, DeclineClass

REFERENCE_KEY = "paymux_reference"
# The calls that authorize: creating a PaymentIntent (confirm=true or not) and confirming one.
_PASSTHROUGH_AUTHORIZE = re.compile(r"/v1/payment_intents(?:/[A-Za-z0-9_]+/confirm)?")
WEBHOOK_TOLERANCE_S = 300

# PaymentIntent.status -> paymux. requires_payment_method is handled apart (declined or pending).
_PI_STATUS = {
    "succeeded": AttemptStatus.CAPTURED,
    "requires_capture": AttemptStatus.AUTHORIZED,
    "requires_action": AttemptStatus.REQUIRES_ACTION,
    "canceled": AttemptStatus.VOIDED,
    "processing": AttemptStatus.PENDING,
    "requires_confirmation": AttemptStatus.PENDING,
}
_REFUND_STATUS = {
    "succeeded": AttemptStatus.REFUNDED,
    "pending": AttemptStatus.PENDING,
    "requires_action": AttemptStatus.PENDING,
    "failed": AttemptStatus.DECLINED,
    "canceled": AttemptStatus.DECLINED,
}
# What a PaymentIntent's status says about one capture / void of it (sync_operation). A status
# not listed is PENDING (cannot tell yet).
_CAPTURE_BY_PI_STATUS = {
    "succeeded": AttemptStatus.CAPTURED,  # captured: amount_received is what was captured
    "requires_capture": AttemptStatus.NOT_FOUND,  # still capturable: no capture happened
    "canceled": AttemptStatus.DECLINED,  # canceled (voided, expired): a capture can never apply
    "requires_payment_method": AttemptStatus.DECLINED,  # never authorized: nothing to capture
    "processing": AttemptStatus.PENDING,
}
_VOID_BY_PI_STATUS = {
    "canceled": AttemptStatus.VOIDED,
    "requires_capture": AttemptStatus.NOT_FOUND,  # still authorized: the cancel never happened
    "requires_payment_method": AttemptStatus.NOT_FOUND,  # cancelable, not canceled
    "requires_confirmation": AttemptStatus.NOT_FOUND,
    "requires_action": AttemptStatus.NOT_FOUND,
    "succeeded": AttemptStatus.DECLINED,  # captured: it can no longer be canceled
    "processing": AttemptStatus.PENDING,
}
#: Pages of ``GET /v1/refunds?payment_intent=`` read before giving up ("cannot tell").
REFUND_LIST_PAGES = 10


def encode_form(params: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's bracket notation: {"card": {"number": "4"}} -> [("card[number]", "4")]."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if value is None:
            continue
        if isinstance(value, Mapping):
            pairs.extend(encode_form(value, name))
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    pairs.extend(encode_form(item, f"{name}[{i}]"))
                else:
                    pairs.append((f"{name}[{i}]", _form_scalar(item)))
        else:
            pairs.append((name, _form_scalar(value)))
    return pairs


# What quote_plus leaves as it is: such a value (an amount, a currency, an id) goes out unquoted.
_FORM_SAFE = re.compile(r"[A-Za-z0-9_.~-]*")


@lru_cache(maxsize=512)
def _form_name(name: str) -> str:
    return quote_plus(name)  # the same few bracketed names on every request


def form_body(pairs: list[tuple[str, str]]) -> str:
    """``urllib.parse.urlencode(pairs)``, byte for byte, without quoting what needs none."""
    return "&".join(
        f"{_form_name(name)}={value if _FORM_SAFE.fullmatch(value) else quote_plus(value)}"
        for name, value in pairs
    )


def _form_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class StripeConnector(HttpConnector):
    """Stripe PaymentIntents (card, raw PAN via payment_method_data)."""

    kind = "stripe"
    table_name = "stripe"
    capabilities = Capabilities(
        payment_methods=frozenset({"card"}),
        brands=frozenset({"visa", "mastercard", "amex", "discover", "diners", "jcb", "unionpay"}),
        currencies=None,
        partial_capture=True,
        multiple_refunds=True,
        three_ds=True,
    )

    # -- the transparent pass-through -------------------------------------------------------------

    passthrough_encoding = "form"
    card_fields = (
        CardFields(
            number=("payment_method_data[card][number]",),
            exp_month=("payment_method_data[card][exp_month]",),
            exp_year=("payment_method_data[card][exp_year]",),
        ),
        CardFields(  # POST /v1/payment_methods, /v1/tokens
            number=("card[number]",), exp_month=("card[exp_month]",), exp_year=("card[exp_year]",)
        ),
    )

    def merchant_credential(self, headers: Mapping[str, str]) -> str | None:
        scheme, _, value = (header(headers, "Authorization") or "").partition(" ")
        if scheme.lower() == "bearer":
            return value.strip() or None
        if scheme.lower() == "basic":
            try:
                return base64.b64decode(value.strip(), validate=True).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                return None
        return None

    def parse_passthrough(
        self,
        method: str,
        path: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        latency_ms: float,
    ) -> ConnectorResult | None:
        if method != "POST" or not _PASSTHROUGH_AUTHORIZE.fullmatch(path):
            return None
        reply = Reply(status, body, headers, latency_ms)
        return self._payment_intent_result(reply, operation="passthrough")

    def _auth_headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.config.api_key}", "Accept": "application/json"}
        if version := self.config.extra.get("stripe_version"):
            headers["Stripe-Version"] = version
        return headers

    # -- calls -----------------------------------------------------------------------------------

    async def authorize(self, request: AuthorizeRequest) -> ConnectorResult:
        card = request.card
        params: dict[str, Any] = {
            "amount": request.amount,
            "currency": request.currency.lower(),
            "confirm": True,
            "capture_method": "automatic" if request.capture else "manual",
            "payment_method_types": ["card"],
            "payment_method_data": {
                "type": "card",
                "card": {
                    "number": card.number,
                    "exp_month": card.exp_month,
                    "exp_year": card.exp_year,
                    "cvc": card.cvc,
                },
                "billing_details": {"name": card.holder_name} if card.holder_name else None,
            },
            "description": request.description,
            "metadata": {
                **request.metadata,
                REFERENCE_KEY: request.reference,
                "paymux_payment_id": request.payment_id,
                **(
                    {"merchant_reference": request.merchant_reference}
                    if request.merchant_reference
                    else {}
                ),
            },
        }
        reply = await self._post("/v1/payment_intents", params, request.reference)
        return self._payment_intent_result(reply, operation="authorize")

    async def capture(self, request: CaptureRequest) -> ConnectorResult:
        path = f"/v1/payment_intents/{quote(request.connector_reference, safe='')}/capture"
        reply = await self._post(path, {"amount_to_capture": request.amount}, request.reference)
        return self._payment_intent_result(reply, operation="capture")

    async def void(self, request: VoidRequest) -> ConnectorResult:
        path = f"/v1/payment_intents/{quote(request.connector_reference, safe='')}/cancel"
        reply = await self._post(path, {}, request.reference)
        return self._payment_intent_result(reply, operation="void")

    async def refund(self, request: RefundRequest) -> ConnectorResult:
        params = {
            "payment_intent": request.connector_reference,
            "amount": request.amount,
            "metadata": {REFERENCE_KEY: request.reference},
        }
        reply = await self._post("/v1/refunds", params, request.reference)
        got = self._read(reply, operation="refund")
        if isinstance(got, ConnectorResult):
            return got
        reply, body = got
        if reply.status >= 400 or "error" in body:
            return self._error_result(reply, body, operation="refund")
        if body.get("object") not in (None, "refund") or "status" not in body:
            return self._technical(reply, "invalid_response", operation="refund", ambiguous=True)
        return self._from_refund(reply, body)

    def _from_refund(self, reply: Reply, refund: dict[str, Any]) -> ConnectorResult:
        status = _REFUND_STATUS.get(str(refund.get("status")), AttemptStatus.PENDING)
        if status is AttemptStatus.DECLINED:
            return self._declined(
                reply,
                as_str(refund.get("failure_reason")) or "refund_failed",
                connector_reference=as_str(refund.get("id")),
                amount=as_int(refund.get("amount")),
            )
        return ConnectorResult(
            status=status,
            connector_reference=as_str(refund.get("id")),
            amount=as_int(refund.get("amount")),
            raw_code=as_str(refund.get("status")),
            http_status=reply.status,
            latency_ms=reply.latency_ms,
        )

    async def sync(self, request: SyncRequest) -> ConnectorResult:
        if request.connector_reference:
            path = f"/v1/payment_intents/{quote(request.connector_reference, safe='')}"
            reply = await self._request("GET", path)
            if isinstance(reply, Reply) and reply.status == 404:
                return self._not_found(reply)
            return self._payment_intent_result(reply, operation="sync")
        # Search is Stripe's documented way to find an object by metadata. Stripe notes search
        # results can lag writes by up to a minute; a NOT_FOUND right after a timeout is therefore
        # "not yet visible", which the gateway treats like any other not-found (sync again later
        # before reusing the card elsewhere is the gateway's policy).
        escaped = request.reference.replace("\\", "\\\\").replace("'", "\\'")
        query = f"metadata['{REFERENCE_KEY}']:'{escaped}'"
        reply = await self._request("GET", "/v1/payment_intents/search", params={"query": query})
        got = self._read(reply, operation="sync")
        if isinstance(got, ConnectorResult):
            return got
        reply, body = got
        if reply.status >= 400 or "error" in body:
            return self._error_result(reply, body, operation="sync")
        data = body.get("data")
        if not isinstance(data, list) or not data:
            return self._not_found(reply)
        # Newest first; there is one PaymentIntent per reference because the reference is also
        # the Idempotency-Key, but prefer one that holds funds if a duplicate ever exists.
        intents = [pi for pi in data if isinstance(pi, dict)]
        intents.sort(
            key=lambda pi: pi.get("status") in ("succeeded", "requires_capture"), reverse=True
        )
        return self._from_payment_intent(reply, intents[0])

    async def sync_operation(self, request: OperationSyncRequest) -> ConnectorResult:
        unknown = unknown_operation(request)
        if unknown is not None:
            return unknown
        if request.operation == "refund":
            return cannot_tell(await self._sync_refund(request))
        return cannot_tell(await self._sync_intent_operation(request))

    async def _sync_intent_operation(self, request: OperationSyncRequest) -> ConnectorResult:
        """A capture or void, told by the PaymentIntent's status: Stripe captures or cancels a
        PaymentIntent at most once, so the status says whether ours was applied."""
        operation = f"sync_{request.operation}"
        path = f"/v1/payment_intents/{quote(request.connector_reference, safe='')}"
        got = self._read(await self._request("GET", path), operation=operation)
        if isinstance(got, ConnectorResult):
            return got
        reply, pi = got
        if reply.status >= 400 or "error" in pi:
            return self._error_result(reply, pi, operation=operation)
        status_text = as_str(pi.get("status"))
        if pi.get("object") not in (None, "payment_intent") or status_text is None:
            return self._technical(reply, "invalid_response", operation=operation, ambiguous=True)
        table = _CAPTURE_BY_PI_STATUS if request.operation == "capture" else _VOID_BY_PI_STATUS
        status = table.get(status_text, AttemptStatus.PENDING)
        if status is AttemptStatus.CAPTURED:
            amount = as_int(pi.get("amount_received"))
        elif status is AttemptStatus.VOIDED:
            amount = request.amount
        else:
            amount = None
        return ConnectorResult(
            status=status,
            connector_reference=as_str(pi.get("id")) or request.connector_reference,
            amount=amount,
            raw_code=status_text,
            http_status=reply.status,
            latency_ms=reply.latency_ms,
        )

    async def _sync_refund(self, request: OperationSyncRequest) -> ConnectorResult:
        """A refund by its id when we learned it, else the PaymentIntent's refund whose
        ``metadata[paymux_reference]`` is ours (``GET /v1/refunds?payment_intent=``, paged)."""
        if request.operation_reference:
            path = f"/v1/refunds/{quote(request.operation_reference, safe='')}"
            got = self._read(await self._request("GET", path), operation="sync_refund")
            if isinstance(got, ConnectorResult):
                return got
            reply, refund = got
            if reply.status != 404:  # an id that Stripe does not know: look by reference
                if reply.status >= 400 or "error" in refund:
                    return self._error_result(reply, refund, operation="sync_refund")
                if refund.get("object") not in (None, "refund") or "status" not in refund:
                    return self._technical(
                        reply, "invalid_response", operation="sync_refund", ambiguous=True
                    )
                return self._from_refund(reply, refund)
        params = {"payment_intent": request.connector_reference, "limit": "100"}
        for _ in range(REFUND_LIST_PAGES):
            got = self._read(
                await self._request("GET", "/v1/refunds", params=params), operation="sync_refund"
            )
            if isinstance(got, ConnectorResult):
                return got
            reply, page = got
            if reply.status >= 400 or "error" in page:
                return self._error_result(reply, page, operation="sync_refund")
            data = page.get("data")
            if page.get("object") not in (None, "list") or not isinstance(data, list):
                return self._technical(
                    reply, "invalid_response", operation="sync_refund", ambiguous=True
                )
            refunds = [r for r in data if isinstance(r, dict)]
            ours = [
                r
                for r in refunds
                if as_dict(r.get("metadata")).get(REFERENCE_KEY) == request.reference
            ]
            if ours:
                # One refund per reference (it is also the Idempotency-Key); should a duplicate
                # ever exist, report the one that moved money.
                ours.sort(key=lambda r: r.get("status") == "succeeded", reverse=True)
                return self._from_refund(reply, ours[0])
            if page.get("has_more") is not True or not refunds:
                return self._not_found(reply)
            last = as_str(refunds[-1].get("id"))
            if last is None:
                break
            params = {**params, "starting_after": last}
        return ConnectorResult(
            status=AttemptStatus.PENDING,
            normalized_code="status_unknown",
            http_status=reply.status,
            latency_ms=reply.latency_ms,
            detail=f"more than {REFUND_LIST_PAGES * 100} refunds on the PaymentIntent",
        )

    # -- webhooks --------------------------------------------------------------------------------

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        secret = self.config.webhook_secret
        if not secret:
            raise WebhookError("stripe webhook secret is not configured")
        sig_header = header(headers, "Stripe-Signature")
        if not sig_header:
            raise WebhookError("missing Stripe-Signature header")
        timestamp, signatures = _parse_stripe_signature(sig_header)
        if timestamp is None or not signatures:
            raise WebhookError("malformed Stripe-Signature header")
        signed = f"{timestamp}.".encode() + body
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if not any(hmac.compare_digest(expected, sig) for sig in signatures):
            raise WebhookError("Stripe-Signature does not match")
        tolerance = int(self.config.extra.get("webhook_tolerance_s", WEBHOOK_TOLERANCE_S))
        if tolerance > 0 and abs(time.time() - timestamp) > tolerance:
            raise WebhookError("Stripe-Signature timestamp outside tolerance")
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise WebhookError("webhook body is not JSON") from None
        if not isinstance(event, dict):
            raise WebhookError("webhook body is not a JSON object")
        obj = (
            (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) else None
        )
        if not isinstance(obj, dict):
            raise WebhookError("webhook has no data.object")
        return [self._webhook_event(str(event.get("type", "")), obj)]

    def _webhook_event(self, event_type: str, obj: dict[str, Any]) -> WebhookEvent:
        kind = obj.get("object")
        metadata = as_dict(obj.get("metadata"))
        if kind == "payment_intent":
            status = self._pi_status(obj)
            err = as_dict(obj.get("last_payment_error"))
            amount = (
                as_int(obj.get("amount_received"))
                if status is AttemptStatus.CAPTURED
                else as_int(obj.get("amount"))
            )
            return WebhookEvent(
                connector_reference=str(obj.get("id", "")),
                reference=as_str(metadata.get(REFERENCE_KEY)),
                event_type=event_type,
                status=status,
                amount=amount,
                raw_code=as_str(err.get("decline_code") or err.get("code")),
            )
        if kind == "refund":
            return WebhookEvent(
                connector_reference=str(obj.get("payment_intent") or obj.get("id", "")),
                reference=as_str(metadata.get(REFERENCE_KEY)),
                event_type=event_type,
                status=_REFUND_STATUS.get(str(obj.get("status")), AttemptStatus.PENDING),
                amount=as_int(obj.get("amount")),
                raw_code=as_str(obj.get("failure_reason")),
            )
        if kind == "charge":
            if obj.get("refunded") or event_type.startswith("charge.refund"):
                status, amount = AttemptStatus.REFUNDED, as_int(obj.get("amount_refunded"))
            elif obj.get("status") == "failed":
                status, amount = AttemptStatus.DECLINED, as_int(obj.get("amount"))
            elif obj.get("captured"):
                status, amount = AttemptStatus.CAPTURED, as_int(obj.get("amount_captured"))
            elif obj.get("status") == "succeeded":
                status, amount = AttemptStatus.AUTHORIZED, as_int(obj.get("amount"))
            else:
                status, amount = AttemptStatus.PENDING, as_int(obj.get("amount"))
            return WebhookEvent(
                connector_reference=str(obj.get("payment_intent") or obj.get("id", "")),
                reference=as_str(metadata.get(REFERENCE_KEY)),
                event_type=event_type,
                status=status,
                amount=amount,
                raw_code=as_str(obj.get("failure_code")),
            )
        return WebhookEvent(
            connector_reference=str(obj.get("id", "")),
            reference=as_str(metadata.get(REFERENCE_KEY)),
            event_type=event_type,
            status=AttemptStatus.PENDING,
        )

    # -- parsing (ActiveMerchant's parse/commit/success_from, in Python) --------------------------

    async def _post(
        self, path: str, params: Mapping[str, Any], idempotency_key: str
    ) -> Reply | TransportFailure:
        return await self._request(
            "POST",
            path,
            form=form_body(encode_form(params)),
            idempotency_header="Idempotency-Key",
            idempotency_key=idempotency_key,
        )

    def _payment_intent_result(
        self, reply: Reply | TransportFailure, *, operation: str
    ) -> ConnectorResult:
        got = self._read(reply, operation=operation)
        if isinstance(got, ConnectorResult):
            return got
        reply, body = got
        if reply.status >= 400 or "error" in body:
            return self._error_result(reply, body, operation=operation)
        if body.get("object") not in (None, "payment_intent") or "status" not in body:
            return self._technical(reply, "invalid_response", operation=operation, ambiguous=True)
        return self._from_payment_intent(reply, body)

    @staticmethod
    def _pi_status(pi: dict[str, Any]) -> AttemptStatus:
        status = str(pi.get("status"))
        if status == "requires_payment_method":
            # A confirmed intent back at requires_payment_method was declined; an unconfirmed one
            # has simply not been tried: neither a success nor a failure.
            return AttemptStatus.DECLINED if pi.get("last_payment_error") else AttemptStatus.PENDING
        return _PI_STATUS.get(status, AttemptStatus.PENDING)

    def _from_payment_intent(self, reply: Reply, pi: dict[str, Any]) -> ConnectorResult:
        status = self._pi_status(pi)
        pi_id = as_str(pi.get("id"))
        if status is AttemptStatus.DECLINED:
            err = pi["last_payment_error"] if isinstance(pi.get("last_payment_error"), dict) else {}
            return self._declined(
                reply,
                _stripe_raw_code(err),
                raw_message=as_str(err.get("message")),
                advice_code=_stripe_advice(err),
                connector_reference=pi_id,
                amount=as_int(pi.get("amount")),
            )
        if status is AttemptStatus.CAPTURED:
            amount = as_int(pi.get("amount_received"))
        elif status is AttemptStatus.AUTHORIZED:
            amount = as_int(pi.get("amount_capturable")) or as_int(pi.get("amount"))
        else:
            amount = as_int(pi.get("amount"))
        return ConnectorResult(
            status=status,
            connector_reference=pi_id,
            amount=amount,
            raw_code=as_str(pi.get("status")),
            http_status=reply.status,
            latency_ms=reply.latency_ms,
        )

    def _error_result(
        self, reply: Reply, body: dict[str, Any], *, operation: str
    ) -> ConnectorResult:
        err = as_dict(body.get("error"))
        err_type = as_str(err.get("type"))
        raw = _stripe_raw_code(err) or err_type
        message = as_str(err.get("message"))
        pi = as_dict(err.get("payment_intent"))
        pi_id = as_str(pi.get("id"))
        if err_type == "card_error" or reply.status == 402:
            return self._declined(
                reply,
                raw,
                raw_message=message,
                advice_code=_stripe_advice(err),
                connector_reference=pi_id,
                amount=as_int(pi.get("amount")),
            )
        if reply.status == 404 and operation.startswith("sync"):
            return self._not_found(reply)
        failure = self._status_failure(
            reply, operation=operation, raw_code=raw, raw_message=message, connector_reference=pi_id
        )
        if failure is not None:
            return failure
        code, cls = self.table.error(raw)
        if cls is not DeclineClass.TECHNICAL:
            # An API error the table says is about the card data (amount too large, ...).
            return self._declined(
                reply, raw, raw_message=message, connector_reference=pi_id, error=True
            )
        return self._technical(
            reply,
            code,
            operation=operation,
            ambiguous=False,
            raw_code=raw,
            raw_message=message,
            connector_reference=pi_id,
        )


def _stripe_raw_code(err: Mapping[str, Any]) -> str | None:
    # decline_code is the issuer's reason; code is Stripe's (card_declined, expired_card, ...).
    return as_str(err.get("decline_code")) or as_str(err.get("code"))


def _stripe_advice(err: Mapping[str, Any]) -> str | None:
    return as_str(err.get("network_advice_code")) or as_str(err.get("advice_code"))


def _parse_stripe_signature(header: str) -> tuple[int | None, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    return timestamp, signatures


def sign_webhook(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header value for ``body`` (for tests and the sandbox)."""
    ts = int(time.time()) if timestamp is None else timestamp
    sig = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={sig}"
