"""The Checkout.com dialect: the unified payments API, as `checkout-sdk` calls it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from paymux.domain.money import CURRENCY_EXPONENTS
from paymux.sandbox import cards
from paymux.sandbox.engine import Decision, Payment, PspState, Sandbox
from paymux.sandbox.http import Dialect, json_response

_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_SCHEMES = {"visa": "Visa", "mastercard": "Mastercard", "amex": "Amex", "discover": "Discover",
            "jcb": "JCB", "diners": "Diners Club International", "unionpay": "China UnionPay",
            "unknown": "Unknown"}  # fmt: skip


class CkoError(Exception):
    def __init__(self, status: int, codes: list[str] | None = None,
                 error_type: str = "request_invalid") -> None:  # fmt: skip
        self.status, self.codes, self.error_type = status, codes, error_type


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class CheckoutApi(Dialect):
    """Handlers for one Checkout.com-speaking PSP instance."""

    idempotency_header = "Cko-Idempotency-Key"
    error_types = (CkoError,)

    def __init__(self, sandbox: Sandbox, name: str) -> None:
        super().__init__(sandbox, name)

    def routes(self, mount: str) -> list[web.RouteDef]:
        p = mount + "/payments"
        return [
            web.post(p, self.wrap(self.request_payment)),
            web.get(p, self.wrap(self.list_payments)),
            web.get(p + "/{id}", self.wrap(self.get_payment)),
            web.get(p + "/{id}/actions", self.wrap(self.get_actions)),
            web.post(p + "/{id}/captures", self.wrap(self.capture)),
            web.post(p + "/{id}/voids", self.wrap(self.void)),
            web.post(p + "/{id}/refunds", self.wrap(self.refund)),
        ]

    # --- plumbing -------------------------------------------------------------------------------

    def authenticate(self, request: web.Request, psp: PspState) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        key = header[7:].strip() if header.startswith("Bearer ") else header.strip()
        if key != psp.config.api_key:
            return web.Response(status=401, headers={"Cko-Request-Id": psp.new_id("", 26, _B32)})
        return None

    def parse(self, request: web.Request, body: bytes) -> dict[str, Any]:
        if request.method != "POST":
            return dict(request.query)
        if not body:
            return {}
        try:
            params = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise CkoError(422, ["request_body_malformed"]) from None
        if params is None:
            return {}
        if not isinstance(params, dict):
            raise CkoError(422, ["request_body_malformed"])
        return params

    def error_response(self, exc: CkoError) -> web.Response:  # type: ignore[override]
        request_id = self.psp.new_id("", 26, _B32)
        if exc.codes is None:
            return web.Response(status=exc.status, headers={"Cko-Request-Id": request_id})
        body = {"request_id": request_id, "error_type": exc.error_type, "error_codes": exc.codes}
        return json_response(exc.status, body, {"Cko-Request-Id": request_id})

    def idempotency_mismatch(self, key: str) -> web.Response:
        return self.error_response(CkoError(409, ["idempotency_key_reused_with_different_request"],
                                            "request_conflict"))  # fmt: skip

    def server_error(self) -> web.Response:
        return web.Response(status=502, headers={"Cko-Request-Id": self.psp.new_id("", 26, _B32)})

    def payment(self, psp: PspState, payment_id: str) -> Payment:
        payment = psp.payments.get(payment_id)
        if payment is None:
            raise CkoError(404)
        return payment

    # --- rendering ------------------------------------------------------------------------------

    def links(self, request: web.Request, p: Payment) -> dict[str, Any]:
        base = f"{request.scheme}://{request.host}{self.psp.config.mount}/payments/{p.id}"
        links: dict[str, Any] = {"self": {"href": base}, "actions": {"href": base + "/actions"}}
        if p.capturable:
            links["capture"] = {"href": base + "/captures"}
            if not p.captured:
                links["void"] = {"href": base + "/voids"}
        if p.captured > p.refunded:
            links["refund"] = {"href": base + "/refunds"}
        if p.status == "challenged":
            origin = f"{request.scheme}://{request.host}"
            links["redirect"] = {"href": f"{origin}/_sandbox/3ds/{self.name}/{p.id}"}
        return links

    @staticmethod
    def status(p: Payment) -> str:
        if p.status == "challenged":
            return "Pending"
        if p.status == "declined":
            return "Declined"
        if p.extra.get("verification"):
            return "Card Verified"
        if p.voided:
            return "Voided"
        if p.refunded:
            return "Refunded" if p.refunded == p.captured else "Partially Refunded"
        if p.captured:
            return "Partially Captured" if p.capturable else "Captured"
        return "Authorized"

    @staticmethod
    def source(p: Payment) -> dict[str, Any]:
        card = p.card
        assert card is not None
        return {
            "id": p.extra["source_id"],
            "type": "card",
            "expiry_month": card.exp_month,
            "expiry_year": card.exp_year,
            "scheme": _SCHEMES[card.brand],
            "last4": card.last4,
            "fingerprint": p.extra["fingerprint"],
            "bin": card.bin6,
            "card_type": "CREDIT",
            "card_category": "CONSUMER",
            "issuer_country": card.country,
            "avs_check": "G",
            "cvv_check": "Y",
        }

    def details(self, request: web.Request, p: Payment) -> dict[str, Any]:
        return {
            "id": p.id,
            "requested_on": _iso(p.created),
            "source": self.source(p),
            "amount": p.amount,
            "currency": p.currency,
            "payment_type": "Regular",
            "reference": p.reference,
            "status": self.status(p),
            "approved": p.status not in ("declined", "challenged"),
            "balances": {
                "total_authorized": p.authorized,
                "total_voided": p.authorized - p.captured - p.released if p.voided else 0,
                "available_to_void": 0 if p.captured else p.capturable,
                "total_captured": p.captured,
                "available_to_capture": p.capturable,
                "total_refunded": p.refunded,
                "available_to_refund": p.captured - p.refunded,
            },
            "risk": {"flagged": False},
            "metadata": p.metadata,
            "scheme_id": p.extra["scheme_id"],
            "_links": self.links(request, p),
        }

    def outcome(self, request: web.Request, p: Payment) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": p.id,
            "action_id": p.extra["action_id"],
            "amount": p.amount,
            "currency": p.currency,
            "approved": p.status in ("authorized", "captured"),
            "reference": p.reference,
            "processed_on": _iso(p.created),
            "risk": {"flagged": False},
            "source": self.source(p),
            "scheme_id": p.extra["scheme_id"],
            "_links": self.links(request, p),
        }
        if p.status == "challenged":
            body.update(status="Pending", **{"3ds": {"downgraded": False, "enrolled": "Y"}})
            return body
        if p.status == "declined":
            d = p.decline
            assert d is not None
            body.update(status="Declined", response_code=d.cko_code, response_summary=d.cko_summary)
            return body
        # Checkout captures asynchronously: the answer says Authorized even when capture=true.
        body.update(
            status="Card Verified" if p.extra.get("verification") else "Authorized",
            auth_code=p.extra["auth_code"],
            response_code="10000",
            response_summary="Approved",
            expires_on=_iso(p.created + 7 * 86400),
            balances={"total_authorized": p.authorized, "available_to_capture": p.capturable},
            processing={
                "acquirer_transaction_id": p.extra["scheme_id"],
                "retrieval_reference_number": p.extra["scheme_id"][:12],
            },
        )
        return body

    # --- payments -------------------------------------------------------------------------------

    def card(self, source: Any) -> cards.Card:
        if not isinstance(source, dict):
            raise CkoError(422, ["payment_source_required"])
        if source.get("type") != "card":
            raise CkoError(422, ["payment_source_type_invalid"])
        number = str(source.get("number") or "").replace(" ", "")
        codes = []
        if not number:
            codes.append("card_number_required")
        elif not cards.luhn_ok(number):
            codes.append("card_number_invalid")
        month, year = source.get("expiry_month"), source.get("expiry_year")
        if month is None:
            codes.append("card_expiry_month_required")
        elif not isinstance(month, int) or not 1 <= month <= 12:
            codes.append("card_expiry_month_invalid")
        if year is None:
            codes.append("card_expiry_year_required")
        elif not isinstance(year, int) or year < 2000:
            codes.append("card_expiry_year_invalid")
        cvv = source.get("cvv")
        if cvv is not None and not (str(cvv).isdigit() and 3 <= len(str(cvv)) <= 4):
            codes.append("cvv_invalid")
        if not codes:
            now = time.gmtime()
            if (year, month) < (now.tm_year, now.tm_mon):
                codes.append("card_expired")
        if codes:
            raise CkoError(422, codes)
        return self.sandbox.card(number, month, year)  # type: ignore[arg-type]

    def request_payment(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        codes = []
        currency = params.get("currency")
        if not currency:
            codes.append("currency_required")
        elif currency not in CURRENCY_EXPONENTS:
            codes.append("currency_invalid")
        amount = params.get("amount", 0)
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            codes.append("amount_invalid")
        reference = params.get("reference")
        if reference is not None and (not isinstance(reference, str) or len(reference) > 80):
            codes.append("reference_invalid")
        if codes:
            raise CkoError(422, codes)
        assert isinstance(currency, str)  # checked above
        card = self.card(params.get("source"))
        capture = params.get("capture", True) is not False
        decision = psp.decide(card, amount, currency)
        if decision.outcome in ("error", "none"):
            return self.server_error(), decision
        metadata = params.get("metadata") if isinstance(params.get("metadata"), dict) else {}
        payment = Payment(
            id=psp.new_id("pay_", 26, _B32), psp=psp.name, wire="checkout", amount=amount,
            currency=currency, status="created", auto_capture=capture and amount > 0,
            reference=reference, idempotency_key=key, created=time.time(),
            created_s=psp.sandbox.now_s(), card=card, metadata=metadata,
        )  # fmt: skip
        payment.extra = {
            "action_id": psp.new_id("act_", 26, _B32),
            "source_id": psp.new_id("src_", 26, _B32),
            "fingerprint": psp.new_id("", 40, "0123456789ABCDEF"),
            "scheme_id": psp.new_id("", 15, "0123456789"),
            "auth_code": psp.new_id("", 6, "0123456789"),
            "verification": amount == 0,
            "actions": [],
        }
        psp.add_payment(payment)
        psp.record_decision(payment, decision)
        action = "Card Verification" if amount == 0 else "Authorization"
        self.action(payment, payment.extra["action_id"], action, amount, reference,
                    approved=payment.status != "declined")  # fmt: skip
        if payment.extra["verification"] and payment.status == "authorized":
            payment.authorized = 0
        if payment.auto_capture and payment.status == "captured":
            self.action(payment, psp.new_id("act_", 26, _B32), "Capture", amount, reference)
        headers = {"Cko-Request-Id": psp.new_id("", 26, _B32)}
        if decision.outcome == "challenge":
            return json_response(202, self.outcome(request, payment), headers), decision
        return json_response(201, self.outcome(request, payment), headers), decision

    @staticmethod
    def action(p: Payment, action_id: str, kind: str, amount: int, reference: Any,
               approved: bool = True) -> None:  # fmt: skip
        entry: dict[str, Any] = {"id": action_id, "type": kind, "processed_on": _iso(time.time()),
                                 "amount": amount, "approved": approved}  # fmt: skip
        if approved:
            entry.update(response_code="10000", response_summary="Approved")
        elif p.decline is not None:
            entry.update(response_code=p.decline.cko_code, response_summary=p.decline.cko_summary)
        if reference:
            entry["reference"] = reference
        p.extra["actions"].insert(0, entry)

    def complete_challenge(self, payment: Payment, authenticated: bool) -> None:
        psp = self.psp
        if authenticated:
            assert payment.card is not None  # a challenged payment was made with a card
            outcome, decline, source = psp.authorize_outcome(
                payment.card, payment.amount, payment.currency
            )
        else:
            from paymux.sandbox.declines import NORMALIZED

            outcome, decline, source = "declined", NORMALIZED["generic_decline"]._replace(
                cko_code="20150", cko_summary="Card not 3D Secure enabled / authentication failed"
            ), "3ds"  # fmt: skip
        psp.record_decision(payment, Decision(outcome, decline, "normal", 0, 0, "late", source))
        self.action(payment, psp.new_id("act_", 26, _B32), "Authorization", payment.amount,
                    payment.reference, approved=payment.status != "declined")  # fmt: skip

    def get_payment(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        payment = self.payment(psp, request.match_info["id"])
        return json_response(200, self.details(request, payment)), None

    def get_actions(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        payment = self.payment(psp, request.match_info["id"])
        return json_response(200, payment.extra["actions"]), None

    def list_payments(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        reference = params.get("reference")
        if not reference:
            raise CkoError(422, ["reference_required"])
        try:
            limit = int(params.get("limit", 10))
            skip = int(params.get("skip", 0))
        except ValueError:
            raise CkoError(422, ["paging_invalid"]) from None
        found = list(reversed(psp.find_by_reference(reference)))
        body = {"limit": limit, "skip": skip, "total_count": len(found),
                "data": [self.details(request, p) for p in found[skip : skip + limit]]}  # fmt: skip
        return json_response(200, body), None

    # --- actions --------------------------------------------------------------------------------

    def accepted(self, request, psp: PspState, p: Payment, params: dict[str, Any]):
        action_id = psp.new_id("act_", 26, _B32)
        base = f"{request.scheme}://{request.host}{psp.config.mount}/payments/{p.id}"
        body: dict[str, Any] = {"action_id": action_id, "_links": {"payment": {"href": base}}}
        if params.get("reference"):
            body["reference"] = params["reference"]
        return action_id, json_response(202, body, {"Cko-Request-Id": psp.new_id("", 26, _B32)})

    @staticmethod
    def requested_amount(params: dict[str, Any], default: int) -> int:
        amount = params.get("amount")
        if amount is None:
            return default
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
            raise CkoError(422, ["amount_invalid"])
        return amount

    def capture(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        payment = self.payment(psp, request.match_info["id"])
        capturable = payment.capturable
        if capturable == 0 or payment.extra.get("verification"):
            raise CkoError(403)  # "Capture not allowed"
        amount = self.requested_amount(params, capturable)
        if amount > capturable:
            raise CkoError(422, ["amount_exceeds_balance"])
        decision = psp.decide(payment.card, amount, payment.currency, authorizing=False,
                              operation="capture")  # fmt: skip
        if decision.outcome != "approved":
            return self.server_error(), decision
        action_id, response = self.accepted(request, psp, payment, params)
        payment.captured += amount
        if params.get("capture_type") != "NonFinal":
            payment.released += capturable - amount  # a final capture releases the rest
        payment.status = "captured"
        psp.stats["captures"] += 1
        psp.event(payment, "capture", amount, id=action_id, idempotency_key=key,
                  reference=params.get("reference"), delivery=decision.delivery)  # fmt: skip
        self.action(payment, action_id, "Capture", amount, params.get("reference"))
        return response, decision

    def void(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        payment = self.payment(psp, request.match_info["id"])
        if payment.status != "authorized" or payment.captured or not payment.capturable:
            raise CkoError(403)  # "Void not allowed"
        decision = psp.decide(payment.card, payment.amount, payment.currency, authorizing=False,
                              operation="void")  # fmt: skip
        if decision.outcome != "approved":
            return self.server_error(), decision
        action_id, response = self.accepted(request, psp, payment, params)
        psp.stats["voids"] += 1
        psp.event(payment, "void", payment.capturable, id=action_id, idempotency_key=key,
                  reference=params.get("reference"), delivery=decision.delivery)  # fmt: skip
        self.action(payment, action_id, "Void", payment.capturable, params.get("reference"))
        payment.voided = True
        payment.status = "voided"
        return response, decision

    def refund(self, request, psp: PspState, params: dict[str, Any], key: str | None):
        payment = self.payment(psp, request.match_info["id"])
        remaining = payment.captured - payment.refunded
        if remaining == 0:
            raise CkoError(403)  # "Refund not allowed"
        amount = self.requested_amount(params, remaining)
        if amount > remaining:
            raise CkoError(422, ["refund_amount_exceeds_balance"])
        decision = psp.decide(payment.card, amount, payment.currency, authorizing=False,
                              operation="refund")  # fmt: skip
        if decision.outcome != "approved":
            return self.server_error(), decision
        action_id, response = self.accepted(request, psp, payment, params)
        payment.refunded += amount
        if payment.refunded == payment.captured:
            payment.status = "refunded"
        psp.stats["refunds"] += 1
        psp.event(payment, "refund", amount, id=action_id, idempotency_key=key,
                  reference=params.get("reference"), delivery=decision.delivery)  # fmt: skip
        self.action(payment, action_id, "Refund", amount, params.get("reference"))
        return response, decision
