"""The Adyen dialect: Checkout API v72 (`/payments`, modifications), as the `Adyen` SDK calls it."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from paymux.domain.money import CURRENCY_EXPONENTS
from paymux.sandbox import cards, declines
from paymux.sandbox.engine import Decision, Payment, PspState, Sandbox
from paymux.sandbox.http import Dialect, json_response

VERSION = "v72"
_REF_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_BRANDS = {"visa": "visa", "mastercard": "mc", "amex": "amex", "discover": "discover",
           "jcb": "jcb", "diners": "diners", "unionpay": "cup", "unknown": "scheme"}  # fmt: skip

#: Adyen's test trick: these holder names force a refusal at Adyen (not at the issuer).
HOLDER_NAME_REFUSALS = {
    "REFUSED": "generic_decline",
    "DECLINED": "generic_decline",
    "ACQUIRER_ERROR": "processing_error",
    "ISSUER_UNAVAILABLE": "issuer_unavailable",
    "NOT_SUPPORTED": "card_not_supported",
    "DECLINED_NON_GENERIC": "try_again_later",
}


class AdyenError(Exception):
    def __init__(self, status: int, code: str, message: str, error_type: str = "validation"):
        self.status, self.code, self.message, self.error_type = status, code, message, error_type


def _required(field: str) -> AdyenError:
    return AdyenError(422, "100" if field == "amount" else "702",
                      f"Required field '{field}' is not provided.")  # fmt: skip


class AdyenApi(Dialect):
    """Handlers for one Adyen-speaking PSP instance."""

    error_types = (AdyenError,)

    def __init__(self, sandbox: Sandbox, name: str) -> None:
        super().__init__(sandbox, name)

    def routes(self, mount: str) -> list[web.RouteDef]:
        p = f"{mount}/{VERSION}"
        return [
            web.post(p + "/payments", self.wrap(self.payments)),
            web.post(p + "/payments/details", self.wrap(self.payments_details)),
            web.post(p + "/payments/{ref}/captures", self.wrap(self.capture)),
            web.post(p + "/payments/{ref}/cancels", self.wrap(self.cancel)),
            web.post(p + "/payments/{ref}/refunds", self.wrap(self.refund)),
            web.post(p + "/payments/{ref}/reversals", self.wrap(self.reversal)),
            web.post(p + "/cancels", self.wrap(self.cancel_by_reference)),
            web.get(p + "/_sandbox/payments", self.wrap(self.lookup)),
        ]

    # --- plumbing -------------------------------------------------------------------------------

    def authenticate(self, request: web.Request, psp: PspState) -> web.Response | None:
        if request.headers.get("X-API-Key", "") != psp.config.api_key:
            return self.error_response(
                AdyenError(401, "000", "HTTP Status Response - Unauthorized", "security")
            )
        return None

    def parse(self, request: web.Request, body: bytes) -> dict[str, Any]:
        if request.method != "POST":
            return dict(request.query)
        try:
            params = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError:
            raise AdyenError(400, "702", "Unexpected input: malformed JSON") from None
        if not isinstance(params, dict):
            raise AdyenError(400, "702", "Unexpected input: expected a JSON object")
        return params

    def error_response(self, exc: AdyenError) -> web.Response:  # type: ignore[override]
        body = {"status": exc.status, "errorCode": exc.code, "message": exc.message,
                "errorType": exc.error_type}  # fmt: skip
        if exc.status not in (400, 401):
            body["pspReference"] = self.psp.new_id("", 16, _REF_ALPHABET)
        return json_response(exc.status, body)

    def idempotency_mismatch(self, key: str) -> web.Response:
        return self.error_response(AdyenError(
            422, "704", "request already processed or in progress: the idempotency key was used "
            "with a different request"))  # fmt: skip

    def key_headers(self, key: str) -> dict[str, str]:
        return {"Idempotency-Key": key}

    def internal_error(self) -> web.Response:
        return self.error_response(
            AdyenError(500, "905", "Internal error: please retry", "internal")
        )

    server_error = internal_error

    def check_merchant(self, params: dict[str, Any], psp: PspState) -> None:
        account = params.get("merchantAccount")
        if not account:
            raise _required("merchantAccount")
        if account != psp.config.merchant_account:
            raise AdyenError(403, "901", "Invalid Merchant Account", "security")

    @staticmethod
    def amount(params: dict[str, Any]) -> tuple[int, str]:
        amount = params.get("amount")
        if not isinstance(amount, dict) or "value" not in amount:
            raise _required("amount")
        value, currency = amount.get("value"), amount.get("currency")
        if not currency:
            raise _required("amount.currency")
        if currency not in CURRENCY_EXPONENTS:
            raise AdyenError(422, "138", "Unsupported currency specified")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise AdyenError(422, "137", "Invalid amount specified")
        return value, currency

    # --- /payments ------------------------------------------------------------------------------

    def card(self, method: Any) -> tuple[cards.Card, str]:
        if not isinstance(method, dict):
            raise _required("paymentMethod")
        if method.get("type", "scheme") not in ("scheme", "card"):
            raise AdyenError(422, "905", "Payment details are not supported", "configuration")

        def field(plain: str, encrypted: str) -> str:
            value = method.get(plain)
            if value is None and method.get(encrypted) is not None:
                value = str(method[encrypted])
                # Adyen's test environment takes "test_" + the clear value instead of ciphertext.
                if not value.startswith("test_"):
                    raise AdyenError(422, "174", "Unable to decrypt data")
                value = value[5:]
            return "" if value is None else str(value)

        number = field("number", "encryptedCardNumber").replace(" ", "")
        if not number:
            raise _required("paymentMethod.number")
        if not cards.luhn_ok(number):
            raise AdyenError(422, "101", "Invalid card number")
        try:
            month = int(field("expiryMonth", "encryptedExpiryMonth"))
            year = int(field("expiryYear", "encryptedExpiryYear"))
        except ValueError:
            raise AdyenError(422, "129", "Expiry Date Invalid") from None
        if not 1 <= month <= 12 or year < 2000:
            raise AdyenError(422, "129", "Expiry Date Invalid")
        cvc = field("cvc", "encryptedSecurityCode")
        if cvc and not (cvc.isdigit() and 3 <= len(cvc) <= 4):
            raise AdyenError(422, "103", "CVC is not the right length")
        return self.sandbox.card(number, month, year), str(method.get("holderName") or "")

    def payments(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        self.check_merchant(params, psp)
        value, currency = self.amount(params)
        reference = params.get("reference")
        if not reference:
            raise _required("reference")
        card, holder = self.card(params.get("paymentMethod"))
        additional = params.get("additionalData") or {}
        manual = str(additional.get("manualCapture", "")).lower() == "true" or (
            int(params.get("captureDelayHours") or 0) > 0
        )
        forced = HOLDER_NAME_REFUSALS.get(holder.upper())
        decision = psp.decide(card, value, currency,
                              psp_forced=declines.NORMALIZED[forced] if forced else None)  # fmt: skip
        if decision.outcome in ("error", "none"):
            return self.internal_error(), decision
        payment = Payment(
            id=psp.new_id("", 16, _REF_ALPHABET), psp=psp.name, wire="adyen", amount=value,
            currency=currency, status="created", auto_capture=not manual, reference=str(reference),
            idempotency_key=key, created=time.time(), created_s=psp.sandbox.now_s(), card=card,
            metadata={str(k): str(v) for k, v in (params.get("metadata") or {}).items()},
        )  # fmt: skip
        payment.extra = {"returnUrl": params.get("returnUrl")}
        psp.add_payment(payment)
        psp.record_decision(payment, decision)
        if decision.outcome == "challenge":
            origin = f"{request.scheme}://{request.host}"
            body = {
                "resultCode": "RedirectShopper",
                "pspReference": payment.id,
                "merchantReference": payment.reference,
                "action": {
                    "paymentMethodType": "scheme",
                    "url": f"{origin}/_sandbox/3ds/{psp.name}/{payment.id}",
                    "method": "GET",
                    "type": "redirect",
                },
            }
            return json_response(200, body), decision
        return json_response(200, self.result(payment)), decision

    def result(self, p: Payment) -> dict[str, Any]:
        card = p.card
        assert card is not None
        body: dict[str, Any] = {
            "additionalData": {
                "cardSummary": card.last4,
                "cardBin": card.bin6,
                "paymentMethod": _BRANDS[card.brand],
                "cardIssuingCountry": card.country,
            },
            "pspReference": p.id,
            "merchantReference": p.reference,
            "amount": {"currency": p.currency, "value": p.amount},
        }
        if p.status in ("authorized", "captured"):
            body["additionalData"].update(
                authCode=p.extra.setdefault("authCode", str(100000 + self.psp.ids % 900000)),
                refusalReasonRaw="AUTHORISED",
            )
            body["resultCode"] = "Authorised"
            body["paymentMethod"] = {"brand": _BRANDS[card.brand], "type": "scheme"}
        elif p.status == "declined":
            d = p.decline
            assert d is not None
            body["additionalData"]["refusalReasonRaw"] = d.adyen_raw
            body.update(resultCode=d.adyen_result, refusalReason=d.adyen_reason,
                        refusalReasonCode=d.adyen_code)  # fmt: skip
        else:
            body["resultCode"] = "Pending"
        return body

    def payments_details(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        details = params.get("details")
        if not isinstance(details, dict) or not details.get("redirectResult"):
            raise _required("details.redirectResult")
        payment = psp.payments.get(str(details["redirectResult"]))
        if payment is None:
            raise AdyenError(422, "14_002", "Invalid payload provided")
        if payment.status == "challenged":
            self.complete_challenge(payment, authenticated=True)
        return json_response(200, self.result(payment)), None

    def complete_challenge(self, payment: Payment, authenticated: bool) -> None:
        psp = self.psp
        if authenticated:
            assert payment.card is not None  # a challenged payment was made with a card
            outcome, decline, source = psp.authorize_outcome(
                payment.card, payment.amount, payment.currency
            )
        else:
            outcome, decline, source = "declined", declines.NORMALIZED["generic_decline"]._replace(
                adyen_code="11", adyen_reason="3D Not Authenticated", adyen_raw="3D Not Authenticated"
            ), "3ds"  # fmt: skip
        psp.record_decision(payment, Decision(outcome, decline, "normal", 0, 0, "late", source))

    # --- modifications --------------------------------------------------------------------------

    def target(self, request: web.Request, psp: PspState, params: dict[str, Any]) -> Payment:
        self.check_merchant(params, psp)
        payment = psp.payments.get(request.match_info["ref"])
        if payment is None:
            raise AdyenError(422, "167", "Original pspReference required for this operation")
        return payment

    def modification(self, psp: PspState, p: Payment, params: dict[str, Any], extra: dict):
        body = {"merchantAccount": psp.config.merchant_account, "paymentPspReference": p.id,
                "pspReference": psp.new_id("", 16, _REF_ALPHABET), "status": "received", **extra}  # fmt: skip
        if params.get("reference"):
            body["reference"] = params["reference"]
        return json_response(201, body)

    def capture(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        payment = self.target(request, psp, params)
        value, currency = self.amount(params)
        if currency != payment.currency:
            raise AdyenError(422, "137", "Invalid amount specified: currency does not match")
        capturable = payment.capturable
        if capturable == 0:
            raise AdyenError(422, "000", f"Payment cannot be captured: it is {payment.status}")
        if value < 1 or value > capturable:
            raise AdyenError(422, "137", f"Invalid amount specified: at most {capturable} can be "
                             "captured")  # fmt: skip
        decision = psp.decide(payment.card, value, currency, authorizing=False, operation="capture")
        if decision.outcome != "approved":
            return self.internal_error(), decision
        response = self.modification(psp, payment, params, {"amount": params["amount"]})
        payment.captured += value
        # Adyen's default (multiple partial captures are an account setting we do not emulate):
        # "any unclaimed amount after a partial capture gets cancelled".
        payment.released += capturable - value
        payment.status = "captured"
        psp.stats["captures"] += 1
        psp.event(payment, "capture", value, id=response_ref(response), idempotency_key=key,
                  reference=params.get("reference"), delivery=decision.delivery)  # fmt: skip
        return response, decision

    def _void(self, psp: PspState, payment: Payment, key: str | None, response,
              decision: Decision, reference: Any = None) -> None:  # fmt: skip
        psp.stats["voids"] += 1
        psp.event(payment, "void", payment.capturable, id=response_ref(response),
                  idempotency_key=key, reference=reference,
                  delivery=decision.delivery)  # fmt: skip
        payment.voided = True
        payment.status = "voided"

    def cancel(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        payment = self.target(request, psp, params)
        if payment.status != "authorized":
            raise AdyenError(422, "000", f"Payment cannot be cancelled: it is {payment.status}")
        decision = psp.decide(payment.card, payment.amount, payment.currency, authorizing=False,
                              operation="void")  # fmt: skip
        if decision.outcome != "approved":
            return self.internal_error(), decision
        response = self.modification(psp, payment, params, {})
        self._void(psp, payment, key, response, decision, params.get("reference"))
        return response, decision

    def cancel_by_reference(self, request, psp: PspState, params: dict[str, Any], key):
        self.check_merchant(params, psp)
        reference = params.get("paymentReference")
        if not reference:
            raise _required("paymentReference")
        decision = psp.decide(None, 0, "", authorizing=False, operation="void")
        if decision.outcome != "approved":
            return self.internal_error(), decision
        body = {"merchantAccount": psp.config.merchant_account, "paymentReference": reference,
                "pspReference": psp.new_id("", 16, _REF_ALPHABET), "status": "received"}  # fmt: skip
        if params.get("reference"):
            body["reference"] = params["reference"]
        response = json_response(201, body)
        # Asynchronous at Adyen: whatever is still cancellable under that reference is cancelled.
        for payment in psp.find_by_reference(str(reference)):
            if payment.status == "authorized":
                self._void(psp, payment, key, response, decision, params.get("reference"))
        return response, decision

    def refund(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        payment = self.target(request, psp, params)
        value, currency = self.amount(params)
        if currency != payment.currency:
            raise AdyenError(422, "137", "Invalid amount specified: currency does not match")
        remaining = payment.captured - payment.refunded
        if remaining == 0:
            raise AdyenError(422, "000", "Payment cannot be refunded: nothing captured remains")
        if value < 1 or value > remaining:
            raise AdyenError(422, "137", f"Invalid amount specified: at most {remaining} can be "
                             "refunded")  # fmt: skip
        decision = psp.decide(payment.card, value, currency, authorizing=False, operation="refund")
        if decision.outcome != "approved":
            return self.internal_error(), decision
        response = self.modification(psp, payment, params, {"amount": params["amount"]})
        self._refund(psp, payment, value, key, response, decision, params.get("reference"))
        return response, decision

    def _refund(self, psp: PspState, payment: Payment, value: int, key, response,
                decision: Decision, reference: Any = None) -> None:  # fmt: skip
        payment.refunded += value
        if payment.refunded == payment.captured:
            payment.status = "refunded"
        psp.stats["refunds"] += 1
        psp.event(payment, "refund", value, id=response_ref(response), idempotency_key=key,
                  reference=reference, delivery=decision.delivery)  # fmt: skip

    def reversal(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        payment = self.target(request, psp, params)
        if payment.status not in ("authorized", "captured"):
            raise AdyenError(422, "000", f"Payment cannot be reversed: it is {payment.status}")
        operation = "refund" if payment.captured else "void"
        decision = psp.decide(payment.card, payment.amount, payment.currency, authorizing=False,
                              operation=operation)  # fmt: skip
        if decision.outcome != "approved":
            return self.internal_error(), decision
        response = self.modification(psp, payment, params, {})
        reference = params.get("reference")
        if payment.captured:
            self._refund(psp, payment, payment.captured - payment.refunded, key, response,
                         decision, reference)  # fmt: skip
        else:
            self._void(psp, payment, key, response, decision, reference)
        return response, decision

    # --- sandbox-only lookup --------------------------------------------------------------------

    def lookup(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        """Adyen's Checkout API cannot fetch a payment; real integrations learn from webhooks.

        This sandbox-only endpoint stands in for that so a connector can resolve an ambiguous
        attempt by its merchant reference. It does not exist at Adyen.
        """
        reference = params.get("reference")
        if not reference:
            raise _required("reference")
        found = []
        for p in psp.find_by_reference(reference):
            item = self.result(p) if p.card is not None else {}
            item.update(
                status=p.status,
                capturedAmount={"currency": p.currency, "value": p.captured},
                refundedAmount={"currency": p.currency, "value": p.refunded},
                cancelled=p.voided,
            )
            found.append(item)
        return json_response(200, {"payments": found}), None


def response_ref(response: web.Response) -> str:
    return orjson.loads(response.body)["pspReference"]  # type: ignore[arg-type]
