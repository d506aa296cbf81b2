"""Checkout.com: the unified payments API (JSON), mapped to and from paymux's contract.

Wire format: ``POST /payments`` (source card, amount, currency, reference, capture),
``/payments/{id}/captures|voids|refunds`` (202 with an ``action_id``), ``GET /payments/{id}`` and
``GET /payments?reference=``. Auth is ``Authorization: Bearer <secret key>``; paymux's attempt
reference is the ``Cko-Idempotency-Key`` and ``reference``.

``response_code`` 10xxx is an approval, 20xxx a soft decline, 30xxx a hard decline, 4xxxx a risk
block, 5xxxx a technical failure; unlisted codes fall back by those prefixes (tables/checkout.toml).
A 202 on a capture, void or refund means accepted for processing: paymux reports the requested
state (CAPTURED, VOIDED, REFUNDED) with ``raw_code="accepted"``; a later ``payment_capture_declined``
/ ``payment_refund_declined`` webhook is the correction.

Every capture, void and refund sends paymux's operation reference as ``reference`` (and as the
``Cko-Idempotency-Key``); Checkout.com keeps it on the payment's action, so ``sync_operation``
reads ``GET /payments/{id}/actions`` and looks for the action of that type with our reference:
``approved: true`` is applied, ``approved: false`` refused, no such action not found.

At the action endpoints Checkout.com documents 403 as "Capture / Void / Refund not allowed" (the
payment is in the wrong state), not as an authentication failure (that is a 401): there, and
only there, a 403 is the PSP error ``action_not_allowed`` from the decline table.
"""

from __future__ import annotations

import hashlib
import hmac
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
    OPERATION_DONE,
    HttpConnector,
    Reply,
    TransportFailure,
    as_dict,
    as_int,
    as_list,
    as_str,
    cannot_tell,
    header,
    unknown_operation,
)
from paymux.domain.outcomes import AttemptStatus, DeclineClass

# Payment.status (details, and the POST /payments answer) -> paymux.
_STATUS = {
    "Authorized": AttemptStatus.AUTHORIZED,
    "Card Verified": AttemptStatus.AUTHORIZED,
    "Captured": AttemptStatus.CAPTURED,
    "Partially Captured": AttemptStatus.CAPTURED,
    "Paid": AttemptStatus.CAPTURED,
    "Declined": AttemptStatus.DECLINED,
    "Voided": AttemptStatus.VOIDED,
    "Canceled": AttemptStatus.VOIDED,
    "Expired": AttemptStatus.VOIDED,
    "Refunded": AttemptStatus.REFUNDED,
    "Partially Refunded": AttemptStatus.REFUNDED,
    "Pending": AttemptStatus.PENDING,
    "Retry Scheduled": AttemptStatus.PENDING,
}

#: paymux's operation -> the type of the payment action Checkout.com records for it.
_ACTION_TYPE = {"capture": "Capture", "void": "Void", "refund": "Refund"}
#: Statuses at which Checkout.com answers with an empty body.
_EMPTY_OK = (202, 204, 401, 403, 404)

_WEBHOOK_STATUS = {
    "payment_approved": AttemptStatus.AUTHORIZED,
    "payment_authorized": AttemptStatus.AUTHORIZED,
    "payment_captured": AttemptStatus.CAPTURED,
    "payment_paid": AttemptStatus.CAPTURED,
    "payment_declined": AttemptStatus.DECLINED,
    "payment_authentication_failed": AttemptStatus.DECLINED,
    "payment_capture_declined": AttemptStatus.DECLINED,
    "payment_void_declined": AttemptStatus.DECLINED,
    "payment_refund_declined": AttemptStatus.DECLINED,
    "payment_voided": AttemptStatus.VOIDED,
    "payment_canceled": AttemptStatus.VOIDED,
    "payment_expired": AttemptStatus.VOIDED,
    "payment_refunded": AttemptStatus.REFUNDED,
    "payment_pending": AttemptStatus.PENDING,
    "payment_capture_pending": AttemptStatus.PENDING,
    "payment_refund_pending": AttemptStatus.PENDING,
}


class CheckoutConnector(HttpConnector):
    """Checkout.com unified payments API, card payments with raw card data."""

    kind = "checkout"
    table_name = "checkout"
    capabilities = Capabilities(
        payment_methods=frozenset({"card"}),
        brands=frozenset({"visa", "mastercard", "amex", "discover", "diners", "jcb"}),
        currencies=None,
        partial_capture=True,
        multiple_refunds=True,
        three_ds=True,
    )

    # -- the transparent pass-through -------------------------------------------------------------

    card_fields = (
        CardFields(
            number=("source", "number"),
            exp_month=("source", "expiry_month"),
            exp_year=("source", "expiry_year"),
        ),
    )

    def merchant_credential(self, headers: Mapping[str, str]) -> str | None:
        # checkout-sdk sends a secret key bare (`Authorization: sk_...`), OAuth tokens as Bearer.
        value = (header(headers, "Authorization") or "").strip()
        scheme, _, rest = value.partition(" ")
        if scheme.lower() == "bearer":
            return rest.strip() or None
        return value or None

    def passthrough_defaults(self, method: str, path: str, body: dict[str, Any]) -> None:
        if method == "POST" and path == "/payments" and self.config.merchant_account:
            body["processing_channel_id"] = self.config.merchant_account

    def parse_passthrough(
        self,
        method: str,
        path: str,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        latency_ms: float,
    ) -> ConnectorResult | None:
        if method != "POST" or path != "/payments":
            return None
        reply = Reply(status, body, headers, latency_ms)
        return self._payment_result(reply, capture=False, operation="passthrough")

    def passthrough_error(self, error: PassthroughError) -> tuple[bytes, str]:
        if error.status == 401:
            return b"", "application/json"  # Checkout.com answers 401 with an empty body
        body = {"request_id": "", "error_type": "request_invalid" if error.status == 422
                else "resource_not_found" if error.status == 404 else "request_invalid",
                "error_codes": [error.code]}  # fmt: skip
        return orjson.dumps(body), "application/json"

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.api_key}", "Accept": "application/json"}

    # -- calls -----------------------------------------------------------------------------------

    async def authorize(self, request: AuthorizeRequest) -> ConnectorResult:
        card = request.card
        source: dict[str, Any] = {
            "type": "card",
            "number": card.number,
            "expiry_month": card.exp_month,
            "expiry_year": card.exp_year,
        }
        if card.cvc:
            source["cvv"] = card.cvc
        if card.holder_name:
            source["name"] = card.holder_name
        body: dict[str, Any] = {
            "source": source,
            "amount": request.amount,
            "currency": request.currency.upper(),
            "reference": request.reference,
            "capture": request.capture,
            "payment_type": "Regular",
            "metadata": {**request.metadata, "paymux_payment_id": request.payment_id},
        }
        if self.config.merchant_account:
            body["processing_channel_id"] = self.config.merchant_account
        if request.description:
            body["description"] = request.description
        if request.merchant_reference:
            body["metadata"]["merchant_reference"] = request.merchant_reference
        reply = await self._post("/payments", body, request.reference)
        return self._payment_result(reply, capture=request.capture, operation="authorize")

    async def capture(self, request: CaptureRequest) -> ConnectorResult:
        body = {"amount": request.amount, "reference": request.reference}
        return await self._action(request.connector_reference, "captures", body, request.reference)

    async def void(self, request: VoidRequest) -> ConnectorResult:
        return await self._action(
            request.connector_reference,
            "voids",
            {"reference": request.reference},
            request.reference,
        )

    async def refund(self, request: RefundRequest) -> ConnectorResult:
        body = {"amount": request.amount, "reference": request.reference}
        return await self._action(request.connector_reference, "refunds", body, request.reference)

    async def sync(self, request: SyncRequest) -> ConnectorResult:
        capture = bool(request.original and request.original.capture)
        if request.connector_reference:
            reply = await self._request(
                "GET", f"/payments/{quote(request.connector_reference, safe='')}"
            )
            if isinstance(reply, Reply) and reply.status == 404:
                return self._not_found(reply)
            return self._payment_result(reply, capture=capture, operation="sync")
        reply = await self._request(
            "GET", "/payments", params={"reference": request.reference, "limit": "10"}
        )
        got = self._read(reply, operation="sync", empty_ok=_EMPTY_OK)
        if isinstance(got, ConnectorResult):
            return got
        reply, doc = got
        if reply.status == 404:
            return self._not_found(reply)
        if reply.status >= 400:
            return self._api_error(reply, doc, operation="sync")
        data = doc.get("data")
        if not isinstance(data, list):
            return self._technical(reply, "invalid_response", operation="sync", ambiguous=True)
        payments = [
            p
            for p in data
            if isinstance(p, dict) and p.get("reference") in (None, request.reference)
        ]
        if not payments:
            return self._not_found(reply)
        # One payment per reference (the reference is also the idempotency key); if ever more,
        # prefer the one that holds funds.
        payments.sort(
            key=lambda p: (
                _STATUS.get(str(p.get("status")))
                in (AttemptStatus.AUTHORIZED, AttemptStatus.CAPTURED)
            ),
            reverse=True,
        )
        return self._from_payment(reply, payments[0], capture=capture)

    async def sync_operation(self, request: OperationSyncRequest) -> ConnectorResult:
        """The payment's action of the operation's type whose ``reference`` is ours."""
        unknown = unknown_operation(request)
        if unknown is not None:
            return unknown
        return cannot_tell(await self._sync_action(request))

    async def _sync_action(self, request: OperationSyncRequest) -> ConnectorResult:
        operation = f"sync_{request.operation}"
        path = f"/payments/{quote(request.connector_reference, safe='')}/actions"
        # The actions are a JSON list; an error answer is an object (or empty).
        got = self._read(
            await self._request("GET", path),
            operation=operation,
            shape=(list, dict),
            empty_ok=_EMPTY_OK,
        )
        if isinstance(got, ConnectorResult):
            return got
        reply, actions = got
        if reply.status == 404:  # no such payment: no such operation either
            return self._not_found(reply)
        if reply.status >= 400:
            return self._api_error(reply, as_dict(actions), operation=operation)
        if not isinstance(actions, list) or reply.status >= 300:
            return self._technical(reply, "invalid_response", operation=operation, ambiguous=True)
        kind = _ACTION_TYPE[request.operation]
        ours = [
            a
            for a in actions
            if isinstance(a, dict)
            and a.get("type") == kind
            and a.get("reference") == request.reference
        ]
        if not ours:
            return self._not_found(reply)
        # One action per reference (it is also the idempotency key); should there ever be more,
        # report the approved one.
        ours.sort(key=lambda a: a.get("approved") is True, reverse=True)
        action = ours[0]
        approved = action.get("approved")
        action_id = as_str(action.get("id"))
        payment_id = request.connector_reference
        reference = action_id if request.operation == "refund" and action_id else payment_id
        if approved is False:
            return self._declined(
                reply,
                as_str(action.get("response_code")) or "action_declined",
                raw_message=as_str(action.get("response_summary")),
                connector_reference=reference,
                amount=as_int(action.get("amount")),
            )
        return ConnectorResult(
            status=OPERATION_DONE[request.operation] if approved is True else AttemptStatus.PENDING,
            connector_reference=reference,
            amount=as_int(action.get("amount")),
            raw_code=as_str(action.get("response_code")) or ("approved" if approved else None),
            raw_message=as_str(action.get("response_summary")),
            http_status=reply.status,
            latency_ms=reply.latency_ms,
        )

    # -- webhooks --------------------------------------------------------------------------------

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[WebhookEvent]:
        secret = self.config.webhook_secret
        if not secret:
            raise WebhookError("checkout.com webhook secret is not configured")
        given = header(headers, "Cko-Signature")
        if not given:
            raise WebhookError("missing Cko-Signature header")
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        # compare_digest refuses a str with non-ASCII characters (TypeError): compare bytes, so a
        # hostile header is just a signature that does not match.
        given_bytes = given.strip().lower().encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(expected.encode(), given_bytes):
            raise WebhookError("Cko-Signature does not match")
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise WebhookError("webhook body is not JSON") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
            raise WebhookError("webhook has no data object")
        data = doc["data"]
        event_type = str(doc.get("type", ""))
        return [
            WebhookEvent(
                connector_reference=str(data.get("id", "")),
                reference=as_str(data.get("reference")),
                event_type=event_type,
                status=_WEBHOOK_STATUS.get(event_type, AttemptStatus.PENDING),
                amount=as_int(data.get("amount")),
                raw_code=as_str(data.get("response_code")),
            )
        ]

    # -- parsing ---------------------------------------------------------------------------------

    async def _post(self, path: str, body: dict[str, Any], key: str) -> Reply | TransportFailure:
        return await self._request(
            "POST", path, json=body, idempotency_header="Cko-Idempotency-Key", idempotency_key=key
        )

    async def _action(
        self, payment_id: str, action: str, body: dict[str, Any], key: str
    ) -> ConnectorResult:
        operation = {"captures": "capture", "voids": "void", "refunds": "refund"}[action]
        reply = await self._post(f"/payments/{quote(payment_id, safe='')}/{action}", body, key)
        got = self._read(reply, operation=operation, empty_ok=_EMPTY_OK)
        if isinstance(got, ConnectorResult):
            return got
        reply, doc = got
        if reply.status >= 400:
            return self._api_error(reply, doc, operation=operation)
        requested = {
            "captures": AttemptStatus.CAPTURED,
            "voids": AttemptStatus.VOIDED,
            "refunds": AttemptStatus.REFUNDED,
        }[action]
        action_id = as_str(doc.get("action_id"))
        return ConnectorResult(
            status=requested if reply.status in (200, 201, 202) else AttemptStatus.PENDING,
            # capture/void: the payment's id; refund: the refund action's id.
            connector_reference=action_id if action == "refunds" and action_id else payment_id,
            amount=as_int(body.get("amount")),
            raw_code="accepted" if reply.status == 202 else str(reply.status),
            http_status=reply.status,
            latency_ms=reply.latency_ms,
        )

    def _payment_result(
        self, reply: Reply | TransportFailure, *, capture: bool, operation: str
    ) -> ConnectorResult:
        got = self._read(reply, operation=operation, empty_ok=(401, 403, 404))
        if isinstance(got, ConnectorResult):
            return got
        reply, doc = got
        if reply.status >= 400:
            return self._api_error(reply, doc, operation=operation)
        if "status" not in doc and "approved" not in doc:
            return self._technical(reply, "invalid_response", operation=operation, ambiguous=True)
        return self._from_payment(reply, doc, capture=capture)

    def _from_payment(self, reply: Reply, doc: dict[str, Any], *, capture: bool) -> ConnectorResult:
        pay_id = as_str(doc.get("id"))
        amount = as_int(doc.get("amount"))
        status_text = as_str(doc.get("status"))
        response_code = as_str(doc.get("response_code"))
        status = _STATUS.get(status_text or "", AttemptStatus.PENDING)
        approved = doc.get("approved")
        links = as_dict(doc.get("_links"))
        if status is AttemptStatus.PENDING and "redirect" in links:
            status = AttemptStatus.REQUIRES_ACTION
        if approved is False or status is AttemptStatus.DECLINED:
            processing = as_dict(doc.get("processing"))
            result = self._declined(
                reply,
                response_code,
                raw_message=as_str(doc.get("response_summary")),
                advice_code=as_str(processing.get("partner_merchant_advice_code"))
                or as_str(processing.get("merchant_advice_code")),
                connector_reference=pay_id,
                amount=amount,
            )
            if (
                response_code
                and response_code.startswith("5")
                and result.decline_class is DeclineClass.TECHNICAL
            ):
                result.status = AttemptStatus.FAILED
            return result
        if status is AttemptStatus.AUTHORIZED and capture and approved is True:
            # capture=true: Checkout.com captures right after authorising.
            status = AttemptStatus.CAPTURED
        return ConnectorResult(
            status=status,
            connector_reference=pay_id,
            amount=amount,
            raw_code=response_code or status_text,
            raw_message=as_str(doc.get("response_summary")),
            http_status=reply.status,
            latency_ms=reply.latency_ms,
        )

    def _api_error(self, reply: Reply, doc: dict[str, Any], *, operation: str) -> ConnectorResult:
        codes = as_list(doc.get("error_codes"))
        raw = as_str(codes[0]) if codes else as_str(doc.get("error_type"))
        message = ", ".join(str(c) for c in codes) or as_str(doc.get("error_type"))
        if reply.status == 403 and operation in _ACTION_TYPE:
            # Checkout.com's "Capture / Void / Refund not allowed" (see the module docstring).
            raw = raw or "action_not_allowed"
        elif reply.status == 404:
            if operation.startswith("sync"):
                return self._not_found(reply)
            raw = raw or "payment_not_found"
        else:
            failure = self._status_failure(
                reply, operation=operation, raw_code=raw or str(reply.status), raw_message=message
            )
            if failure is not None:
                return failure
        code, cls = self.table.error(raw)
        if cls is not DeclineClass.TECHNICAL:
            return self._declined(reply, raw, raw_message=message, error=True)
        return self._technical(
            reply,
            code,
            operation=operation,
            ambiguous=False,
            raw_code=raw or str(reply.status),
            raw_message=message,
        )


def sign_webhook(body: bytes, secret: str) -> str:
    """The ``Cko-Signature`` header value for ``body`` (for tests and the sandbox)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
