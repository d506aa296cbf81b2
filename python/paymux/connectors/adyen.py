"""Adyen: Checkout API v72 (JSON), mapped to and from paymux's contract.

Wire format: ``POST /v72/payments`` (amount, reference, paymentMethod scheme with raw card fields,
merchantAccount; manual capture via ``additionalData.manualCapture``, automatic via
``captureDelayHours: 0``), ``/v72/payments/{pspReference}/captures|cancels|refunds``. Auth is the
``X-API-Key`` header; paymux's attempt reference is the ``Idempotency-Key`` and ``reference``.

Modifications answer ``201 {"status": "received"}``: Adyen accepted the request and reports the
outcome later in a CAPTURE / CANCELLATION / REFUND webhook (``success=false`` on failure). Like
ActiveMerchant's Adyen gateway, paymux reports "received" as the requested state (CAPTURED,
VOIDED, REFUNDED) with ``raw_code="received"``; the webhook is the correction when Adyen later
fails it.

Sync: the Checkout API has no lookup of a payment by merchant reference. ``sync`` therefore
re-sends the identical ``/payments`` request with the same ``Idempotency-Key`` (Adyen replays the
original answer for an idempotent retry; if the first request never arrived, this one is the
payment, so either way exactly one payment exists for the reference). That needs the original
request, which the caller passes in ``SyncRequest.original`` while it still holds it; without it
``sync`` answers PENDING (wait for the AUTHORISATION webhook). When
``extra["lookup_path"]`` is configured (the paymux sandbox's test-only
``GET /v72/_sandbox/payments?reference=``, which does not exist at Adyen) sync uses it instead.

Sync of a capture, void or refund (``sync_operation``): Adyen has no lookup for modifications
either, so it re-sends the identical modification (same path, same body bytes, same
``Idempotency-Key`` = the operation's reference) and maps the answer exactly as the first call's.
Re-sending is safe because of the idempotency key: Adyen keeps the answer of a request under its
key and replays it for a retry with the same key and body, so a modification Adyen did process
is not processed again, and the replayed ``received`` says it was accepted. A modification Adyen
never processed (the first request never arrived, or failed before Adyen's idempotency layer
kept it) is processed now, which is what the client asked for in the first place. Either way
exactly one modification exists for the reference. ``received`` is reported as the operation's
done state (Adyen accepted it for settlement; the CAPTURE / CANCELLATION / REFUND webhook is the
final word); Adyen refusing the modification (a 4xx validation error such as "cannot be
captured") is DECLINED; anything else (5xx, garbage, timeout, an idempotency conflict because the
first request is still being processed) cannot tell yet. Adyen keeps idempotency keys for at least
7 days; a sync later than that would be processed as a new modification.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from paymux.connectors.base import (
    AuthorizeRequest,
    Capabilities,
    CaptureRequest,
    CardFields,
    ConnectorResult,
    OperationSyncRequest,
    PassthroughError,
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
    classify_status,
    header,
    unknown_operation,
)
from paymux.domain.outcomes import AttemptStatus, DeclineClass

API_VERSION = "v72"
# POST /v<N>/payments authorizes (any Checkout API version the merchant's SDK speaks).
_PASSTHROUGH_AUTHORIZE = re.compile(r"/v[0-9]{2}/payments")

#: paymux's operation -> the Checkout API's modification path segment.
_MODIFICATION_PATH = {"capture": "captures", "void": "cancels", "refund": "refunds"}

_PENDING_CODES = frozenset(
    {
        "Pending",
        "Received",
        "PresentToShopper",
        "AuthenticationFinished",
        "AuthenticationNotRequired",
    }
)
_ACTION_CODES = frozenset({"RedirectShopper", "IdentifyShopper", "ChallengeShopper"})
_APPROVED_CODES = frozenset({"Authorised", "PartiallyAuthorised", "Success"})

# Webhook eventCode -> status on success=true (and on success=false, where it differs).
_EVENT_OK = {
    "AUTHORISATION": AttemptStatus.AUTHORIZED,
    "CAPTURE": AttemptStatus.CAPTURED,
    "CANCELLATION": AttemptStatus.VOIDED,
    "CANCEL_OR_REFUND": AttemptStatus.VOIDED,
    "TECHNICAL_CANCEL": AttemptStatus.VOIDED,
    "REFUND": AttemptStatus.REFUNDED,
    "REFUND_FAILED": AttemptStatus.DECLINED,
    "CAPTURE_FAILED": AttemptStatus.DECLINED,
    "REFUNDED_REVERSED": AttemptStatus.DECLINED,
}


class AdyenConnector(HttpConnector):
    """Adyen Checkout API v72, card payments with raw card data."""

    kind = "adyen"
    table_name = "adyen"
    capabilities = Capabilities(
        payment_methods=frozenset({"card"}),
        brands=frozenset(
            {
                "visa",
                "mastercard",
                "amex",
                "discover",
                "diners",
                "jcb",
                "unionpay",
                "cartes_bancaires",
            }
        ),
        currencies=None,
        partial_capture=True,
        multiple_refunds=True,
        three_ds=True,
    )

    # -- the transparent pass-through -------------------------------------------------------------

    card_fields = (
        CardFields(
            number=("paymentMethod", "number"),
            exp_month=("paymentMethod", "expiryMonth"),
            exp_year=("paymentMethod", "expiryYear"),
            expiry_as_text=True,
        ),
    )

    def merchant_credential(self, headers: Mapping[str, str]) -> str | None:
        return (header(headers, "X-API-Key") or "").strip() or None

    def passthrough_defaults(self, method: str, path: str, body: dict[str, Any]) -> None:
        # Every Checkout API call with a body names the merchant account: the configured one.
        if self._merchant_account:
            body["merchantAccount"] = self._merchant_account

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
        return self._payment_result(reply, capture=False, operation="passthrough")

    def passthrough_error(self, error: PassthroughError) -> tuple[bytes, str]:
        # Adyen's ServiceError: status, errorCode, message, errorType.
        kind = "security" if error.status in (401, 403) else "validation"
        body = {"status": error.status, "errorCode": error.code, "message": error.message,
                "errorType": kind}  # fmt: skip
        return orjson.dumps(body), "application/json"

    def _auth_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.config.api_key, "Accept": "application/json"}

    @property
    def _merchant_account(self) -> str:
        return self.config.merchant_account or self.config.extra.get("merchant_account", "")

    # -- calls -----------------------------------------------------------------------------------

    def _payment_body(self, request: AuthorizeRequest) -> dict[str, Any]:
        card = request.card
        method: dict[str, Any] = {
            "type": "scheme",
            "number": card.number,
            "expiryMonth": f"{card.exp_month:02d}",
            "expiryYear": f"{card.exp_year:04d}",
        }
        if card.cvc:
            method["cvc"] = card.cvc
        if card.holder_name:
            method["holderName"] = card.holder_name
        body: dict[str, Any] = {
            "amount": {"value": request.amount, "currency": request.currency.upper()},
            "reference": request.reference,
            "merchantAccount": self._merchant_account,
            "paymentMethod": method,
            "shopperInteraction": "Ecommerce",
            "metadata": {**request.metadata, "paymux_payment_id": request.payment_id},
        }
        if request.capture:
            body["captureDelayHours"] = 0
        else:
            body["additionalData"] = {"manualCapture": "true"}
        if request.merchant_reference:
            body["merchantOrderReference"] = request.merchant_reference
        if request.billing_country:
            body["countryCode"] = request.billing_country
        if request.description:
            body["shopperStatement"] = request.description[:22]
        return body

    async def authorize(self, request: AuthorizeRequest) -> ConnectorResult:
        reply = await self._post(
            f"/{API_VERSION}/payments", self._payment_body(request), request.reference
        )
        return self._payment_result(reply, capture=request.capture, operation="authorize")

    def _modification_body(
        self, operation: str, reference: str, amount: int, currency: str
    ) -> dict[str, Any]:
        """The body of a capture / cancel / refund. ``sync_operation`` rebuilds it from the same
        inputs, so it must stay a pure function of them: Adyen replays an idempotent answer only
        for the identical body."""
        body: dict[str, Any] = {"merchantAccount": self._merchant_account}
        if operation != "void":
            body["amount"] = {"value": amount, "currency": currency.upper()}
        body["reference"] = reference
        return body

    async def capture(self, request: CaptureRequest) -> ConnectorResult:
        body = self._modification_body(
            "capture", request.reference, request.amount, request.currency
        )
        return await self._modify(request.connector_reference, "captures", body, request.reference)

    async def void(self, request: VoidRequest) -> ConnectorResult:
        body = self._modification_body("void", request.reference, request.amount, request.currency)
        return await self._modify(request.connector_reference, "cancels", body, request.reference)

    async def refund(self, request: RefundRequest) -> ConnectorResult:
        body = self._modification_body(
            "refund", request.reference, request.amount, request.currency
        )
        return await self._modify(request.connector_reference, "refunds", body, request.reference)

    async def sync_operation(self, request: OperationSyncRequest) -> ConnectorResult:
        """Re-send the identical modification with the same Idempotency-Key (see the module
        docstring for why that is safe) and read its answer as the first call's."""
        unknown = unknown_operation(request)
        if unknown is not None:
            return unknown
        body = self._modification_body(
            request.operation, request.reference, request.amount, request.currency
        )
        result = await self._modify(
            request.connector_reference,
            _MODIFICATION_PATH[request.operation],
            body,
            request.reference,
            sync=True,
        )
        return cannot_tell(result)

    async def sync(self, request: SyncRequest) -> ConnectorResult:
        lookup = self.config.extra.get("lookup_path")
        if lookup:
            return await self._lookup(lookup, request)
        if request.original is None:
            return ConnectorResult(
                status=AttemptStatus.PENDING,
                normalized_code="status_unknown",
                detail="Adyen has no payment lookup by reference and the original request is gone;"
                " the AUTHORISATION webhook will settle it",
            )
        original = request.original
        reply = await self._post(
            f"/{API_VERSION}/payments", self._payment_body(original), original.reference
        )
        return self._payment_result(reply, capture=original.capture, operation="sync")

    async def _lookup(self, path: str, request: SyncRequest) -> ConnectorResult:
        """The sandbox's test-only ``GET .../_sandbox/payments?reference=`` (not an Adyen API)."""
        reply = await self._request("GET", path, params={"reference": request.reference})
        got = self._read(reply, operation="sync", empty_ok=(404,))
        if isinstance(got, ConnectorResult):
            return got
        reply, doc = got
        if reply.status == 404:
            return self._not_found(reply)
        if reply.status >= 400:
            return self._service_error(reply, doc, operation="sync")
        payments = doc.get("payments")
        if not isinstance(payments, list):
            return self._technical(reply, "invalid_response", operation="sync", ambiguous=True)
        payments = [p for p in payments if isinstance(p, dict)]
        if request.connector_reference:
            payments = [
                p for p in payments if p.get("pspReference") == request.connector_reference
            ] or payments
        if not payments:
            return self._not_found(reply)
        holds = ("authorized", "captured")
        payments.sort(key=lambda p: p.get("status") in holds, reverse=True)
        item = payments[0]
        state = {
            "authorized": AttemptStatus.AUTHORIZED,
            "captured": AttemptStatus.CAPTURED,
            "voided": AttemptStatus.VOIDED,
            "refunded": AttemptStatus.REFUNDED,
        }.get(str(item.get("status")))
        result = self._parse_payment(reply, item, capture=False, operation="sync")
        if state is not None and result.status in (AttemptStatus.AUTHORIZED, AttemptStatus.PENDING):
            result.status = state
            captured = as_dict(item.get("capturedAmount"))
            if state is AttemptStatus.CAPTURED and as_int(captured.get("value")):
                result.amount = as_int(captured.get("value"))
        return result

    # -- webhooks --------------------------------------------------------------------------------

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        secret = self.config.webhook_secret
        if not secret:
            raise WebhookError("adyen webhook HMAC key is not configured")
        try:
            key = bytes.fromhex(secret)
        except ValueError:
            raise WebhookError("adyen webhook HMAC key is not hex") from None
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise WebhookError("webhook body is not JSON") from None
        items = doc.get("notificationItems") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise WebhookError("webhook has no notificationItems")
        events: list[WebhookEvent] = []
        for wrapper in items:
            item = wrapper.get("NotificationRequestItem") if isinstance(wrapper, dict) else None
            if not isinstance(item, dict):
                raise WebhookError("notification item is malformed")
            extra = as_dict(item.get("additionalData"))
            given = as_str(extra.get("hmacSignature"))
            if not given:
                raise WebhookError("notification item has no hmacSignature")
            expected = adyen_hmac(item, key)
            if not hmac.compare_digest(expected, given):
                raise WebhookError("notification item hmacSignature does not match")
            events.append(self._webhook_event(item, extra))
        return events

    def _webhook_event(self, item: dict[str, Any], extra: dict[str, Any]) -> WebhookEvent:
        code = str(item.get("eventCode", ""))
        success = str(item.get("success", "")).lower() == "true"
        if code in ("CAPTURE_FAILED", "REFUND_FAILED", "REFUNDED_REVERSED"):
            status = AttemptStatus.DECLINED
        elif success:
            status = _EVENT_OK.get(code, AttemptStatus.PENDING)
        elif code == "AUTHORISATION":
            status = AttemptStatus.DECLINED
        elif code in _EVENT_OK:
            # A modification Adyen refused (e.g. capture of an expired authorisation).
            status = AttemptStatus.DECLINED
        else:
            status = AttemptStatus.PENDING
        amount = as_dict(item.get("amount"))
        psp = as_str(item.get("originalReference")) or as_str(item.get("pspReference")) or ""
        return WebhookEvent(
            connector_reference=psp,
            reference=as_str(item.get("merchantReference")),
            event_type=code,
            status=status,
            amount=as_int(amount.get("value")),
            raw_code=as_str(extra.get("refusalReasonCode"))
            or (as_str(item.get("reason")) if not success else None),
        )

    # -- parsing ---------------------------------------------------------------------------------

    async def _post(
        self, path: str, body: dict[str, Any], idempotency_key: str
    ) -> Reply | TransportFailure:
        return await self._request(
            "POST",
            path,
            json=body,
            idempotency_header="Idempotency-Key",
            idempotency_key=idempotency_key,
        )

    async def _modify(
        self, psp_reference: str, action: str, body: dict[str, Any], key: str, sync: bool = False
    ) -> ConnectorResult:
        operation = {"captures": "capture", "cancels": "void", "refunds": "refund"}[action]
        if sync:
            operation = f"sync_{operation}"
        path = f"/{API_VERSION}/payments/{quote(psp_reference, safe='')}/{action}"
        got = self._read(await self._post(path, body, key), operation=operation)
        if isinstance(got, ConnectorResult):
            return got
        reply, doc = got
        if reply.status >= 400:
            result = self._service_error(reply, doc, operation=operation)
            if sync and classify_status(reply.status) is None and not result.ambiguous:
                # The re-sent modification was refused on its merits (a 4xx validation error):
                # Adyen did not apply it, and will not.
                result.status = AttemptStatus.DECLINED
            return result
        status = as_str(doc.get("status"))
        if status != "received":
            # Not an explicit success or failure: pending, never a failure.
            requested = AttemptStatus.PENDING
        else:
            requested = {
                "captures": AttemptStatus.CAPTURED,
                "cancels": AttemptStatus.VOIDED,
                "refunds": AttemptStatus.REFUNDED,
            }[action]
        amount = as_dict(doc.get("amount"))
        # capture/void: the payment's pspReference; refund: the refund's own pspReference.
        if action == "refunds":
            ref = as_str(doc.get("pspReference"))
        else:
            ref = as_str(doc.get("paymentPspReference")) or psp_reference
        return ConnectorResult(
            status=requested,
            connector_reference=ref,
            amount=as_int(amount.get("value"))
            if amount
            else as_int(body.get("amount", {}).get("value")),
            raw_code=status,
            http_status=reply.status,
            latency_ms=reply.latency_ms,
        )

    def _payment_result(
        self, reply: Reply | TransportFailure, *, capture: bool, operation: str
    ) -> ConnectorResult:
        got = self._read(reply, operation=operation)
        if isinstance(got, ConnectorResult):
            return got
        reply, doc = got
        if reply.status >= 400:
            return self._service_error(reply, doc, operation=operation)
        return self._parse_payment(reply, doc, capture=capture, operation=operation)

    def _parse_payment(
        self, reply: Reply, doc: dict[str, Any], *, capture: bool, operation: str
    ) -> ConnectorResult:
        result_code = as_str(doc.get("resultCode"))
        if result_code is None:
            return self._technical(reply, "invalid_response", operation=operation, ambiguous=True)
        psp = as_str(doc.get("pspReference"))
        amount_obj = as_dict(doc.get("amount"))
        amount = as_int(amount_obj.get("value"))
        extra = as_dict(doc.get("additionalData"))
        if result_code in _APPROVED_CODES:
            # captureDelayHours=0 means Adyen captures immediately after authorising.
            return ConnectorResult(
                status=AttemptStatus.CAPTURED if capture else AttemptStatus.AUTHORIZED,
                connector_reference=psp,
                amount=amount,
                raw_code=result_code,
                http_status=reply.status,
                latency_ms=reply.latency_ms,
            )
        if result_code in ("Refused", "Error", "Cancelled"):
            raw = as_str(doc.get("refusalReasonCode"))
            if raw is None and result_code == "Error":
                raw = "Error"
            result = self._declined(
                reply,
                raw,
                raw_message=_refusal_message(doc, extra),
                advice_code=as_str(extra.get("merchantAdviceCode")),
                connector_reference=psp,
                amount=amount,
            )
            if result_code == "Error" and result.decline_class is DeclineClass.TECHNICAL:
                result.status = AttemptStatus.FAILED
            return result
        status = (
            AttemptStatus.REQUIRES_ACTION if result_code in _ACTION_CODES else AttemptStatus.PENDING
        )
        return ConnectorResult(
            status=status,
            connector_reference=psp,
            amount=amount,
            raw_code=result_code,
            http_status=reply.status,
            latency_ms=reply.latency_ms,
        )

    def _service_error(
        self, reply: Reply, doc: dict[str, Any], *, operation: str
    ) -> ConnectorResult:
        raw = as_str(doc.get("errorCode"))
        message = as_str(doc.get("message"))
        psp = as_str(doc.get("pspReference"))
        failure = self._status_failure(
            reply, operation=operation, raw_code=raw, raw_message=message, connector_reference=psp
        )
        if failure is not None:
            return failure
        code, cls = self.table.error(raw)
        if cls is not DeclineClass.TECHNICAL:
            return self._declined(
                reply, raw, raw_message=message, connector_reference=psp, error=True
            )
        # 704: a request with this Idempotency-Key is already being processed: it reached Adyen.
        ambiguous = code == "idempotency_conflict"
        return self._technical(
            reply,
            code,
            operation=operation,
            ambiguous=ambiguous,
            raw_code=raw,
            raw_message=message,
            connector_reference=psp,
        )


def _refusal_message(doc: dict[str, Any], extra: dict[str, Any]) -> str | None:
    reason = as_str(doc.get("refusalReason"))
    raw = as_str(extra.get("refusalReasonRaw"))
    if reason and raw and raw != reason:
        return f"{reason} ({raw})"
    return reason or raw


def adyen_hmac(item: Mapping[str, Any], key: bytes) -> str:
    """Adyen's notification HMAC: base64(HMAC-SHA256(key, the eight fields joined by ':'))."""
    amount = as_dict(item.get("amount"))
    fields = [
        item.get("pspReference"),
        item.get("originalReference"),
        item.get("merchantAccountCode"),
        item.get("merchantReference"),
        amount.get("value"),
        amount.get("currency"),
        item.get("eventCode"),
        item.get("success"),
    ]
    payload = ":".join("" if f is None else str(f) for f in fields)
    return base64.b64encode(
        hmac.new(key, payload.encode("utf-8"), hashlib.sha256).digest()
    ).decode()
