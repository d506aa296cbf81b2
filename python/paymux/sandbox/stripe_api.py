"""The Stripe dialect: PaymentIntents and Refunds (v1, form-encoded), as the `stripe` SDK calls them."""

from __future__ import annotations

import base64
import re
import time
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from paymux.domain.money import CURRENCY_EXPONENTS
from paymux.sandbox import cards
from paymux.sandbox.engine import Decision, Payment, PspState, Sandbox
from paymux.sandbox.http import Dialect, json_response

_KEY = re.compile(r"\[([^\]]*)\]")

CREATE_PARAMS = frozenset(
    [
        "amount",
        "currency",
        "confirm",
        "capture_method",
        "payment_method",
        "payment_method_data",
        "payment_method_types",
        "metadata",
        "description",
        "return_url",
        "expand",
        "customer",
        "receipt_email",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "setup_future_usage",
        "off_session",
        "payment_method_options",
        "automatic_payment_methods",
        "confirmation_method",
        "error_on_requires_action",
        "use_stripe_sdk",
        "shipping",
        "on_behalf_of",
        "transfer_group",
        "application_fee_amount",
        "mandate_data",
        "radar_options",
        "payment_method_configuration",
        "excluded_payment_method_types",
    ]
)
CONFIRM_PARAMS = frozenset(
    [
        "payment_method",
        "payment_method_data",
        "return_url",
        "expand",
        "receipt_email",
        "setup_future_usage",
        "off_session",
        "payment_method_options",
        "error_on_requires_action",
        "use_stripe_sdk",
        "shipping",
        "mandate_data",
        "radar_options",
        "capture_method",
        "payment_method_types",
    ]
)
CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation",
              "requires_action", "processing")  # fmt: skip


class StripeError(Exception):
    def __init__(self, status: int, error: dict[str, Any]) -> None:
        self.status, self.error = status, error


def invalid(message: str, param: str | None = None, code: str | None = None, status: int = 400):
    err: dict[str, Any] = {"type": "invalid_request_error", "message": message}
    if param:
        err["param"] = param
    if code:
        err["code"] = code
        err["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    return StripeError(status, err)


def parse_form(body: bytes) -> dict[str, Any]:
    """`a[b][c]=v` pairs into nested dicts (Stripe's bracket notation; list indexes are keys)."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        head, _, rest = key.partition("[")
        path = [head] + (_KEY.findall("[" + rest) if rest else [])
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value
    return out


def _int(params: dict[str, Any], name: str, required: bool = True) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise invalid(f"Missing required param: {name}.", name, "parameter_missing")
        return None
    if not isinstance(raw, str) or not raw.isdigit():
        raise invalid(f"Invalid integer: {raw}", name, "parameter_invalid_integer")
    return int(raw)


def _bool(params: dict[str, Any], name: str) -> bool:
    raw = params.get(name)
    if raw in (None, "", "false"):
        return False
    if raw == "true":
        return True
    raise invalid(f"Invalid boolean: {raw}", name, "parameter_invalid_boolean")


class StripeApi(Dialect):
    """Handlers for one Stripe-speaking PSP instance."""

    def __init__(self, sandbox: Sandbox, name: str) -> None:
        super().__init__(sandbox, name)
        self.payment_methods: dict[str, tuple[cards.Card, dict[str, Any]]] = {}
        # refund id -> its PaymentIntent's id; the refund objects live on the payment
        # (extra["refunds"], oldest first), so a sandbox reset forgets them with the payments.
        self.refunds: dict[str, str] = {}

    def routes(self, mount: str) -> list[web.RouteDef]:
        p = mount + "/v1"
        return [
            web.post(p + "/payment_intents", self.wrap(self.create_intent)),
            web.get(p + "/payment_intents/search", self.wrap(self.search_intents)),
            web.get(p + "/payment_intents/{id}", self.wrap(self.retrieve_intent)),
            web.post(p + "/payment_intents/{id}/confirm", self.wrap(self.confirm_intent)),
            web.post(p + "/payment_intents/{id}/capture", self.wrap(self.capture_intent)),
            web.post(p + "/payment_intents/{id}/cancel", self.wrap(self.cancel_intent)),
            web.post(p + "/refunds", self.wrap(self.create_refund)),
            web.get(p + "/refunds", self.wrap(self.list_refunds)),
            web.get(p + "/refunds/{id}", self.wrap(self.retrieve_refund)),
        ]

    # --- plumbing -------------------------------------------------------------------------------

    error_types = (StripeError,)

    def parse(self, request: web.Request, body: bytes) -> dict[str, Any]:
        return parse_form(body) if body else dict(request.query)

    def idempotency_mismatch(self, key: str) -> web.Response:
        exc = invalid(
            "Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. Try using a key other than '{key}' if you meant to execute a "
            "different request."
        )
        exc.error["type"] = "idempotency_error"
        return self.error_response(exc)

    def replay_headers(self, key: str) -> dict[str, str]:
        return {"Idempotent-Replayed": "true"}

    def authenticate(self, request: web.Request, psp: PspState) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        key = ""
        if header.startswith("Bearer "):
            key = header[7:].strip()
        elif header.startswith("Basic "):
            try:
                key = base64.b64decode(header[6:]).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            return self.error_response(
                invalid(
                    "You did not provide an API key. You need to provide your API key in the "
                    "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                    "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "
                    "or we can help at https://support.stripe.com/.",
                    status=401,
                )
            )
        if key != psp.config.api_key:
            shown = key[:8] + "*" * max(len(key) - 12, 0) + key[-4:] if len(key) > 12 else "****"
            return self.error_response(invalid(f"Invalid API Key provided: {shown}", status=401))
        return None

    def error_response(self, exc: StripeError) -> web.Response:  # type: ignore[override]
        error = dict(exc.error)
        error.setdefault("request_log_url", None)
        return json_response(exc.status, {"error": error}, self.headers())

    def headers(self) -> dict[str, str]:
        psp = self.psp
        return {"Request-Id": psp.new_id("req_", 14), "Stripe-Version": "2024-06-20"}

    def intent(self, psp: PspState, intent_id: str) -> Payment:
        payment = psp.payments.get(intent_id)
        if payment is None:
            raise invalid(f"No such payment_intent: '{intent_id}'", "intent", "resource_missing",
                          status=404)  # fmt: skip
        return payment

    # --- payment methods ------------------------------------------------------------------------

    def payment_method(self, params: dict[str, Any]) -> tuple[cards.Card, dict[str, Any]] | None:
        pm_id = params.get("payment_method")
        data = params.get("payment_method_data")
        if pm_id:
            known = self.payment_methods.get(pm_id)
            if known is not None:
                return known
            pan = cards.stripe_test_pan(pm_id)
            if pan is None:
                raise invalid(f"No such PaymentMethod: '{pm_id}'", "payment_method",
                              "resource_missing")  # fmt: skip
            card = self.sandbox.card(pan, 12, time.gmtime().tm_year + 3)
            return card, self.pm_object(pm_id, card)
        if isinstance(data, dict):
            if data.get("type") != "card":
                raise invalid("Missing required param: payment_method_data[type].",
                              "payment_method_data[type]", "parameter_missing")  # fmt: skip
            raw = data.get("card")
            if not isinstance(raw, dict) or not raw.get("number"):
                raise invalid("Missing required param: payment_method_data[card][number].",
                              "payment_method_data[card][number]", "parameter_missing")  # fmt: skip
            card = self.card_from_data(raw)
            pm_id = self.psp.new_id("pm_")
            pm = self.pm_object(pm_id, card)
            self.payment_methods[pm_id] = (card, pm)
            return card, pm
        return None

    def card_from_data(self, raw: dict[str, Any]) -> cards.Card:
        number = str(raw.get("number", "")).replace(" ", "")

        def card_error(code: str, message: str, param: str) -> StripeError:
            return StripeError(402, {"type": "card_error", "code": code, "message": message,
                                     "param": param})  # fmt: skip

        if not cards.luhn_ok(number):
            raise card_error("incorrect_number", "Your card number is incorrect.", "number")
        try:
            exp_month, exp_year = int(raw.get("exp_month", "")), int(raw.get("exp_year", ""))
        except ValueError:
            raise card_error("invalid_expiry_month", "Your card's expiration month is invalid.",
                             "exp_month") from None  # fmt: skip
        if not 1 <= exp_month <= 12:
            raise card_error("invalid_expiry_month", "Your card's expiration month is invalid.",
                             "exp_month")  # fmt: skip
        if exp_year < 100:
            exp_year += 2000
        now = time.gmtime()
        if (exp_year, exp_month) < (now.tm_year, now.tm_mon):
            raise card_error("invalid_expiry_year", "Your card's expiration year is invalid.",
                             "exp_year")  # fmt: skip
        cvc = str(raw.get("cvc", ""))
        if cvc and not (cvc.isdigit() and 3 <= len(cvc) <= 4):
            raise card_error("invalid_cvc", "Your card's security code is invalid.", "cvc")
        return self.sandbox.card(number, exp_month, exp_year)

    @staticmethod
    def pm_object(pm_id: str, card: cards.Card) -> dict[str, Any]:
        return {
            "id": pm_id,
            "object": "payment_method",
            "type": "card",
            "card": {
                "brand": card.brand,
                "country": card.country,
                "exp_month": card.exp_month,
                "exp_year": card.exp_year,
                "funding": "credit",
                "last4": card.last4,
                "networks": {"available": [card.brand], "preferred": None},
            },
            "created": int(time.time()),
            "customer": None,
            "livemode": False,
            "metadata": {},
        }

    # --- rendering ------------------------------------------------------------------------------

    @staticmethod
    def render(p: Payment) -> dict[str, Any]:
        x = p.extra
        status = x["status"]
        return {
            "id": p.id,
            "object": "payment_intent",
            "amount": p.amount,
            "amount_capturable": p.capturable if status == "requires_capture" else 0,
            "amount_details": {"tip": {}},
            "amount_received": p.captured,
            "application": None,
            "application_fee_amount": None,
            "automatic_payment_methods": None,
            "canceled_at": x.get("canceled_at"),
            "cancellation_reason": x.get("cancellation_reason"),
            "capture_method": x["capture_method"],
            "client_secret": x["client_secret"],
            "confirmation_method": "automatic",
            "created": x["created"],
            "currency": p.currency.lower(),
            "customer": None,
            "description": x.get("description"),
            "last_payment_error": x.get("last_payment_error"),
            "latest_charge": x.get("latest_charge"),
            "livemode": False,
            "metadata": p.metadata,
            "next_action": x.get("next_action"),
            "on_behalf_of": None,
            "payment_method": x["pm"]["id"] if x.get("pm") else None,
            "payment_method_configuration_details": None,
            "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
            "payment_method_types": ["card"],
            "processing": None,
            "receipt_email": None,
            "review": None,
            "setup_future_usage": None,
            "shipping": None,
            "source": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": status,
            "transfer_data": None,
            "transfer_group": None,
        }

    def ok(self, p: Payment, decision: Decision | None = None):
        return json_response(200, self.render(p), self.headers()), decision

    # --- PaymentIntents -------------------------------------------------------------------------

    def create_intent(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        unknown = sorted(set(params) - CREATE_PARAMS)
        if unknown:
            raise invalid(f"Received unknown parameter: {unknown[0]}", unknown[0])
        amount = _int(params, "amount")
        assert amount is not None
        if amount < 1:
            raise invalid("This value must be greater than or equal to 1.", "amount",
                          "parameter_invalid_integer")  # fmt: skip
        currency = str(params.get("currency") or "")
        if not currency:
            raise invalid("Missing required param: currency.", "currency", "parameter_missing")
        if currency.upper() not in CURRENCY_EXPONENTS:
            raise invalid(f"Invalid currency: {currency}. Stripe currently supports these "
                          "currencies: usd, eur, gbp, ...", "currency")  # fmt: skip
        capture_method = params.get("capture_method") or "automatic"
        if capture_method not in ("automatic", "automatic_async", "manual"):
            raise invalid("Invalid capture_method: must be one of automatic, automatic_async, "
                          "or manual", "capture_method")  # fmt: skip
        metadata = params.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise invalid("Invalid object", "metadata")
        confirm = _bool(params, "confirm")
        pm = self.payment_method(params)
        pi_id = psp.new_id("pi_")
        payment = Payment(
            id=pi_id, psp=psp.name, wire="stripe", amount=amount, currency=currency.upper(),
            status="created", auto_capture=capture_method != "manual",
            reference=metadata.get("paymux_reference") or metadata.get("reference"),
            idempotency_key=key, created=time.time(), created_s=psp.sandbox.now_s(),
            metadata={str(k): str(v) for k, v in metadata.items()},
        )  # fmt: skip
        payment.extra = {
            "status": "requires_payment_method" if pm is None else "requires_confirmation",
            "capture_method": capture_method,
            "client_secret": f"{pi_id}_secret_{psp.new_id('', 24)}",
            "created": int(payment.created),
            "description": params.get("description"),
            "return_url": params.get("return_url"),
        }
        if pm is not None:
            payment.card = pm[0]
            payment.extra["pm"] = pm[1]
        if not confirm:
            psp.add_payment(payment)
            return self.ok(payment)
        if pm is None:
            raise invalid("You cannot confirm this PaymentIntent because it's missing a payment "
                          "method. ...", "payment_method",
                          "payment_intent_unexpected_state")  # fmt: skip
        return self.confirm(request, psp, payment, key, new=True)

    def confirm_intent(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        payment = self.intent(psp, request.match_info["id"])
        unknown = sorted(set(params) - CONFIRM_PARAMS)
        if unknown:
            raise invalid(f"Received unknown parameter: {unknown[0]}", unknown[0])
        status = payment.extra["status"]
        if status not in ("requires_payment_method", "requires_confirmation"):
            raise self.unexpected_state(payment, "confirm", "requires_payment_method, "
                                        "requires_confirmation")  # fmt: skip
        pm = self.payment_method(params)
        if pm is not None:
            payment.card = pm[0]
            payment.extra["pm"] = pm[1]
        if payment.card is None:
            raise invalid("You cannot confirm this PaymentIntent because it's missing a payment "
                          "method.", "payment_method", "payment_intent_unexpected_state")  # fmt: skip
        if params.get("return_url"):
            payment.extra["return_url"] = params["return_url"]
        if params.get("capture_method") in ("automatic", "automatic_async", "manual"):
            payment.extra["capture_method"] = params["capture_method"]
            payment.auto_capture = params["capture_method"] != "manual"
        if key:
            payment.idempotency_key = payment.idempotency_key or key
        return self.confirm(request, psp, payment, key, new=False)

    def confirm(self, request, psp: PspState, payment: Payment, key: str | None, new: bool):
        decision = psp.decide(payment.card, payment.amount, payment.currency)
        if decision.outcome in ("error", "none"):
            if new and decision.outcome == "none":
                return json_response(500, {}), decision
            body = {"error": {"type": "api_error", "message": "An unknown error occurred",
                              "request_log_url": None}}  # fmt: skip
            return json_response(
                500, body, {**self.headers(), "Stripe-Should-Retry": "true"}
            ), decision
        if new:
            psp.add_payment(payment)
        x = payment.extra
        x["last_payment_error"] = None
        x["next_action"] = None
        psp.record_decision(payment, decision)
        if decision.outcome == "challenge":
            x["status"] = "requires_action"
            origin = f"{request.scheme}://{request.host}"
            x["next_action"] = {
                "type": "redirect_to_url",
                "redirect_to_url": {
                    "url": f"{origin}/_sandbox/3ds/{psp.name}/{payment.id}",
                    "return_url": x.get("return_url"),
                },
            }
            return self.ok(payment, decision)
        self.settle(psp, payment)
        if decision.outcome == "declined":
            error = dict(x["last_payment_error"])
            error["payment_intent"] = self.render(payment)
            return json_response(402, {"error": error}, self.headers()), decision
        return self.ok(payment, decision)

    def settle(self, psp: PspState, payment: Payment) -> None:
        """Set the Stripe-side status after an authorization outcome is in the ledger."""
        x = payment.extra
        x["latest_charge"] = psp.new_id("ch_")
        if payment.status == "declined":
            d = payment.decline
            assert d is not None
            error: dict[str, Any] = {
                "type": "card_error",
                "code": d.stripe_code,
                "message": d.stripe_message,
                "charge": x["latest_charge"],
                "doc_url": f"https://stripe.com/docs/error-codes/{d.stripe_code.replace('_', '-')}",
                "payment_method": x.get("pm"),
            }
            if d.stripe_decline_code:
                error["decline_code"] = d.stripe_decline_code
            if d.stripe_code == "incorrect_cvc":
                error["param"] = "cvc"
            x["last_payment_error"] = error
            x["status"] = "requires_payment_method"
        elif payment.status == "captured":
            x["status"] = "succeeded"
        elif payment.status == "authorized":
            x["status"] = "requires_capture"

    def complete_challenge(self, payment: Payment, authenticated: bool) -> None:
        """Called by the 3DS page: authenticate, then authorize with the issuer and acquirer."""
        psp = self.psp
        payment.extra["next_action"] = None
        if authenticated:
            assert payment.card is not None  # a challenged payment was made with a card
            outcome, decline, source = psp.authorize_outcome(
                payment.card, payment.amount, payment.currency
            )
        else:
            from paymux.sandbox.declines import NORMALIZED

            outcome, decline = "declined", NORMALIZED["generic_decline"]._replace(
                stripe_code="payment_intent_authentication_failure", stripe_decline_code=None,
                stripe_message="The provided PaymentMethod has failed authentication.")  # fmt: skip
            source = "3ds"
        psp.record_decision(payment, Decision(outcome, decline, "normal", 0, 0, "late", source))
        self.settle(psp, payment)

    def retrieve_intent(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        return self.ok(self.intent(psp, request.match_info["id"]))

    def unexpected_state(self, p: Payment, action: str, allowed: str) -> StripeError:
        verb = {"capture": "captured", "cancel": "canceled", "confirm": "confirmed"}[action]
        return invalid(
            f"This PaymentIntent could not be {verb} because it has a status of "
            f"{p.extra['status']}. Only a PaymentIntent with one of the following statuses may "
            f"be {verb}: {allowed}.",
            None,
            "payment_intent_unexpected_state",
        )

    def capture_intent(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        payment = self.intent(psp, request.match_info["id"])
        if payment.extra["status"] != "requires_capture":
            raise self.unexpected_state(payment, "capture", "requires_capture")
        amount = _int(params, "amount_to_capture", required=False)
        capturable = payment.capturable
        if amount is None:
            amount = capturable
        if amount < 1 or amount > capturable:
            raise invalid(f"The amount_to_capture ({amount}) must be greater than 0 and less than "
                          f"or equal to the amount_capturable ({capturable}).",
                          "amount_to_capture", "amount_too_large")  # fmt: skip
        decision = psp.decide(payment.card, amount, payment.currency, authorizing=False,
                              operation="capture")  # fmt: skip
        if decision.outcome != "approved":
            return self.api_error(), decision
        payment.captured = amount
        payment.released = capturable - amount  # Stripe releases what a capture leaves behind
        payment.status = "captured"
        psp.stats["captures"] += 1
        psp.event(payment, "capture", amount, idempotency_key=key, released=payment.released,
                  delivery=decision.delivery)  # fmt: skip
        payment.extra["status"] = "succeeded"
        return self.ok(payment, decision)

    def cancel_intent(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        payment = self.intent(psp, request.match_info["id"])
        if payment.extra["status"] not in CANCELABLE:
            raise self.unexpected_state(payment, "cancel", ", ".join(CANCELABLE))
        reason = params.get("cancellation_reason")
        decision = psp.decide(payment.card, payment.amount, payment.currency, authorizing=False,
                              operation="void")  # fmt: skip
        if decision.outcome != "approved":
            return self.api_error(), decision
        if payment.status == "authorized":
            psp.stats["voids"] += 1
            psp.event(payment, "void", payment.capturable, idempotency_key=key,
                      delivery=decision.delivery)  # fmt: skip
            payment.voided = True
        payment.status = "voided" if payment.status == "authorized" else "canceled"
        payment.extra.update(status="canceled", cancellation_reason=reason,
                             canceled_at=int(time.time()), next_action=None)  # fmt: skip
        return self.ok(payment, decision)

    def api_error(self) -> web.Response:
        body = {"error": {"type": "api_error", "message": "An unknown error occurred",
                          "request_log_url": None}}  # fmt: skip
        return json_response(500, body, {**self.headers(), "Stripe-Should-Retry": "true"})

    server_error = api_error

    # --- Refunds --------------------------------------------------------------------------------

    def create_refund(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        pi_id, charge = params.get("payment_intent"), params.get("charge")
        payment = None
        if pi_id:
            payment = psp.payments.get(pi_id)
            if payment is None:
                raise invalid(f"No such payment_intent: '{pi_id}'", "payment_intent",
                              "resource_missing")  # fmt: skip
        elif charge:
            payment = next((p for p in psp.payments.values()
                            if p.extra.get("latest_charge") == charge), None)  # fmt: skip
            if payment is None:
                raise invalid(f"No such charge: '{charge}'", "charge", "resource_missing")
        else:
            raise invalid("One of the following params should be provided for this request: "
                          "payment_intent or charge.", None, "parameter_missing")  # fmt: skip
        if payment.captured == 0:
            raise invalid(f"This PaymentIntent ({payment.id}) does not have a successful charge "
                          "to refund.", "payment_intent", "charge_not_refundable")  # fmt: skip
        remaining = payment.captured - payment.refunded
        if remaining == 0:
            raise invalid(f"Charge {payment.extra['latest_charge']} has already been refunded.",
                          "charge", "charge_already_refunded")  # fmt: skip
        amount = _int(params, "amount", required=False)
        if amount is None:
            amount = remaining
        if amount < 1 or amount > remaining:
            raise invalid(f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                          f"({remaining})", "amount", "amount_too_large")  # fmt: skip
        raw_metadata = params.get("metadata")
        metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
        decision = psp.decide(payment.card, amount, payment.currency, authorizing=False,
                              operation="refund")  # fmt: skip
        if decision.outcome != "approved":
            return self.api_error(), decision
        refund_id = psp.new_id("re_")
        payment.refunded += amount
        if payment.refunded == payment.captured:
            payment.status = "refunded"
        psp.stats["refunds"] += 1
        psp.event(payment, "refund", amount, id=refund_id, idempotency_key=key,
                  metadata=dict(metadata), delivery=decision.delivery)  # fmt: skip
        refund = {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "balance_transaction": None,
            "charge": payment.extra["latest_charge"],
            "created": int(time.time()),
            "currency": payment.currency.lower(),
            "destination_details": {"card": {"type": "refund"}, "type": "card"},
            "metadata": metadata,
            "payment_intent": payment.id,
            "reason": params.get("reason"),
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }
        payment.extra.setdefault("refunds", []).append(refund)
        self.refunds[refund_id] = payment.id
        return json_response(200, refund, self.headers()), decision

    def find_refund(self, psp: PspState, refund_id: str) -> dict[str, Any] | None:
        payment = psp.payments.get(self.refunds.get(refund_id, ""))
        refunds = payment.extra.get("refunds", []) if payment is not None else []
        return next((r for r in refunds if r["id"] == refund_id), None)

    def retrieve_refund(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        refund = self.find_refund(psp, request.match_info["id"])
        if refund is None:
            raise invalid(f"No such refund: '{request.match_info['id']}'", "id",
                          "resource_missing", status=404)  # fmt: skip
        return json_response(200, refund, self.headers()), None

    def list_refunds(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        """``GET /v1/refunds``: newest first, filtered by ``payment_intent`` or ``charge``, paged
        with ``limit`` (1-100, default 10), ``starting_after`` and ``ending_before``."""
        limit = _int(params, "limit", required=False)
        limit = 10 if limit is None else limit
        if not 1 <= limit <= 100:
            raise invalid("This value must be less than or equal to 100 (it currently is "
                          f"'{limit}').", "limit", "parameter_invalid_integer")  # fmt: skip
        pi_id, charge = params.get("payment_intent"), params.get("charge")
        if pi_id:
            payment = psp.payments.get(pi_id)
            if payment is None:
                raise invalid(f"No such payment_intent: '{pi_id}'", "payment_intent",
                              "resource_missing", status=404)  # fmt: skip
            payments = [payment]
        elif charge:
            payments = [p for p in psp.payments.values()
                        if p.extra.get("latest_charge") == charge]  # fmt: skip
            if not payments:
                raise invalid(f"No such charge: '{charge}'", "charge", "resource_missing",
                              status=404)  # fmt: skip
        else:
            payments = list(psp.payments.values())
        refunds = [r for p in payments for r in p.extra.get("refunds", [])]
        refunds.reverse()  # newest first, as Stripe lists
        ids = [r["id"] for r in refunds]
        after, before = params.get("starting_after"), params.get("ending_before")
        for name, cursor in (("starting_after", after), ("ending_before", before)):
            if cursor and cursor not in ids:
                raise invalid(f"No such refund: '{cursor}'", name, "resource_missing")
        if after:
            refunds = refunds[ids.index(after) + 1 :]
        elif before:
            refunds = refunds[: ids.index(before)][-limit:]
        return json_response(200, {
            "object": "list",
            "data": refunds[:limit],
            "has_more": len(refunds) > limit,
            "url": "/v1/refunds",
        }, self.headers()), None  # fmt: skip

    # --- Search ---------------------------------------------------------------------------------

    _CLAUSE = re.compile(
        r"""\s*(metadata\[(?P<q1>['"])(?P<mkey>.+?)(?P=q1)\]|status|currency|amount)"""
        r"""\s*:\s*(?:(?P<q2>['"])(?P<val>.*?)(?P=q2)|(?P<num>\d+))\s*""",
    )

    def search_intents(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        query = params.get("query")
        if not query:
            raise invalid("Missing required param: query.", "query", "parameter_missing")
        clauses = []
        for part in re.split(r"\s+AND\s+", query.strip()):
            m = self._CLAUSE.fullmatch(part)
            if m is None:
                raise invalid(f"The query `{query}` is invalid. The sandbox supports "
                              "metadata['k']:'v', status, currency and amount clauses joined by "
                              "AND.", "query")  # fmt: skip
            value = m.group("val") if m.group("val") is not None else m.group("num")
            clauses.append((m.group("mkey"), m.group(1), value))
        limit = _int(params, "limit", required=False) or 10
        found = []
        for payment in reversed(list(psp.payments.values())):
            if all(self._matches(payment, mkey, fld, value) for mkey, fld, value in clauses):
                found.append(self.render(payment))
        return json_response(200, {
            "object": "search_result",
            "data": found[:limit],
            "has_more": len(found) > limit,
            "next_page": None,
            "url": "/v1/payment_intents/search",
        }, self.headers()), None  # fmt: skip

    @staticmethod
    def _matches(p: Payment, mkey: str | None, field: str, value: str) -> bool:
        if mkey is not None:
            return p.metadata.get(mkey) == value
        if field == "status":
            return p.extra["status"] == value
        if field == "currency":
            return p.currency.lower() == value.lower()
        return str(p.amount) == value
