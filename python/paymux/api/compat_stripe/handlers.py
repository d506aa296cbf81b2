"""The Stripe-compatible front: ``/compat/stripe/v1/...`` over the same PaymentService as /v1.

A merchant on Stripe's SDK changes its base URL to ``http://<paymux>/compat/stripe`` and its
secret key to a paymux key; its payments are then routed and failed over across every connector.
Handlers stay thin: read the form, check every parameter against the endpoint's spec, build the
domain command, call the service with ``front="stripe"`` (the service renders its answer through
``StripeAnswers`` and stores that answer for the Idempotency-Key), and answer Stripe's errors.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import orjson
from aiohttp import web
from multidict import CIMultiDict

from paymux.api.compat_stripe import form, ids, params, render
from paymux.api.compat_stripe.errors import StripeError
from paymux.api.compat_stripe.form import canonical, nest, parse_form, parse_pairs
from paymux.api.edge import RateLimited
from paymux.api.errors import ApiError, from_validation
from paymux.api.http import (
    IDEMPOTENCY_CLAIM,
    KEY_MODE,
    MERCHANT_ID,
    SERVICE,
    STORE,
    authenticate,
    idempotent_in_transaction,
)
from paymux.api.http import idempotent as idempotent_by_claim
from paymux.api.views import HttpAnswers
from paymux.domain import commands
from paymux.domain.errors import Refusal, RefusalKind
from paymux.domain.lifecycle import IllegalTransition
from paymux.domain.records import (
    IdempotencyRecord,
    IdempotencyState,
    PaymentFilter,
    PaymentRecord,
    PaymentStatus,
)
from paymux.payments.service import PaymentService

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PREFIX = "/compat/stripe"
FRONT = "stripe"
#: The API version answered when the client names none (Stripe answers its account's default).
STRIPE_VERSION = "2024-06-20"

#: Stripe's published test PaymentMethods: a Stripe integration's tests use them unchanged; the
#: Stripe front vaults the test card each stands for (published test numbers only).
TEST_PAYMENT_METHODS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_amex": "378282246310005",
    "pm_card_discover": "6011111111111117",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_threeDSecure2Required": "4000000000003220",
}
_CAPTURE_METHODS = {"automatic": "automatic", "automatic_async": "automatic", "manual": "manual"}
_CANCEL_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer", "abandoned"})
_REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})


# -- plumbing ---------------------------------------------------------------------------------


def _with_bearer(request: web.Request) -> web.Request:
    """Stripe also takes the key as HTTP Basic's user name (``curl -u sk_...:``): the request
    as if it came with ``Authorization: Bearer``, so the one authenticator reads it."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return request
    try:
        user = base64.b64decode(value.strip(), validate=True).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        user = ""
    headers = CIMultiDict(request.headers)
    if user:
        headers["Authorization"] = f"Bearer {user}"
    else:
        del headers["Authorization"]
    return request.clone(headers=headers)


def stripe_error_of(exc: Exception) -> StripeError:
    """Whatever the shared layers raise, in Stripe's error shape."""
    if isinstance(exc, StripeError):
        return exc
    if isinstance(exc, Refusal):
        return render.error_of_refusal(exc)
    if isinstance(exc, ApiError):
        body = exc.body
        if body.type == "authentication_error":
            message = (
                "You did not provide an API key. Provide it as `Authorization: Bearer sk_...`."
                if body.code in ("api_key_missing",)
                else "Invalid API Key provided."
            )
            return StripeError(401, "authentication_error", message, body.code)
        if exc.status == 429:
            return StripeError(429, "rate_limit_error", body.message, body.code)
        param = body.param
        if param == "Idempotency-Key":
            param = None
        if body.code == "idempotency_key_reused":  # the generic wrapper's 422: Stripe's 400
            return StripeError(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they "
                "were first used with.",
                body.code,
            )
        return StripeError(exc.status, body.type, body.message, body.code, param)
    if isinstance(exc, IllegalTransition):
        return StripeError.invalid("payment_intent_unexpected_state", exc.message, None)
    raise exc


def endpoint(handler: Handler) -> Handler:
    """Basic auth, Stripe's error shapes for everything below, ``Stripe-Version`` echoed."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        request = _with_bearer(request)
        try:
            try:
                response = await handler(request)
            finally:
                if form.pending():
                    await _forget_body(request)
        except web.HTTPRequestEntityTooLarge:
            response = StripeError(
                413, "invalid_request_error", "The request body is too large", "body_too_large"
            ).response()
        except (StripeError, Refusal, ApiError, IllegalTransition) as exc:
            response = stripe_error_of(exc).response()
            if isinstance(exc, RateLimited):
                response.headers["Retry-After"] = str(exc.retry_after)
                if exc.close:
                    response.force_close()
        response.headers["Stripe-Version"] = request.headers.get("Stripe-Version", STRIPE_VERSION)
        key = request.headers.get("Idempotency-Key")
        if key and key.isascii() and key.isprintable() and len(key) <= 255:
            response.headers["Idempotency-Key"] = key  # echoed, as Stripe does
        return response

    return wrapper


async def _forget_body(request: web.Request) -> None:
    """Drop this request's parsed body from the form cache (its handler did not take it)."""
    if not request.body_exists:
        return
    try:
        body = await request.read()  # cached: the idempotency layer read it
    except (web.HTTPException, ConnectionError, web.RequestPayloadError):
        return
    form.forget(body)


def _answer_bound(state: IdempotencyState, record: IdempotencyRecord) -> web.Response:
    """Stripe's answers for a key used before: a replay, or an ``idempotency_error``."""
    if state is IdempotencyState.MISMATCH:
        raise StripeError(
            400,
            "idempotency_error",
            "Keys for idempotent requests can only be used with the same parameters they were "
            f"first used with. Try using a key other than '{record.key}' if you meant to execute "
            "a different request.",
            "idempotency_key_reused",
        )
    if state is IdempotencyState.IN_PROGRESS:
        raise StripeError(
            409,
            "idempotency_error",
            "There is currently another in-progress request using this Stripe-compatible "
            "Idempotency-Key; retry later.",
            "idempotency_key_in_use",
        )
    assert record.response_status is not None
    return web.Response(
        status=record.response_status,
        body=record.response_body,
        content_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )


def idempotent(handler: Handler) -> Handler:
    """Stripe's Idempotency-Key semantics over the flow's in-transaction claims; ``expand[]``
    applied to the answer, the first one and replays alike (the stored answer is unexpanded)."""
    return endpoint(
        _expanding(
            idempotent_in_transaction(handler, answer_bound=_answer_bound, canonical_body=canonical)
        )
    )


def _refunding(handler: Handler) -> Handler:
    """A refund's answer with its metadata and livemode, kept in its payment's metadata (the
    stored answer has neither): the first answer and replays alike."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        response = await handler(request)
        if response.status != 200 or not isinstance(response, web.Response):
            return response
        assert isinstance(response.body, bytes)
        doc = orjson.loads(response.body)
        if doc.get("object") != "refund":
            return response
        merchant_id = await _merchant(request)
        payment_id = ids.payment_id(doc["payment_intent"]) or ""
        payment = await request.app[STORE].get_payment(merchant_id, payment_id)
        refund_id = doc["id"]
        found = await _body_params(request)
        given = found.get("metadata")
        if (
            isinstance(given, dict)
            and given
            and payment is not None
            and response.headers.get("Idempotent-Replayed") != "true"
            and render.REFUND_METADATA + refund_id not in payment.metadata
        ):
            kept = {**payment.metadata, render.REFUND_METADATA + refund_id: orjson.dumps(
                given).decode()}  # fmt: skip
            await _service(request).update_payment(merchant_id, payment_id, kept)
            payment.metadata = kept
        doc["metadata"] = render.refund_metadata(payment, refund_id)
        doc["livemode"] = render.is_live(payment)
        return _with_body(response, doc)

    return wrapper


def _with_body(response: web.Response, doc: dict[str, Any]) -> web.Response:
    out = _json(doc, response.status)
    for name in ("Idempotent-Replayed",):
        if name in response.headers:
            out.headers[name] = response.headers[name]
    return out


async def _body_params(request: web.Request) -> dict[str, Any]:
    """The request's parameters (body and query; the body is read once and cached by aiohttp);
    {} when unreadable (the handler answers that error)."""
    body = await request.read()
    try:
        found = parse_form(body) if body else {}
        found.update(_query(request))
    except StripeError:
        return {}
    return found


#: ``expand[]`` paths a PaymentIntent answers: inlined objects, or fields paymux always has null
#: (Stripe expands a null field to null).
_EXPANDABLE = frozenset({"latest_charge", "payment_method"})
_NULL_EXPANDABLE = frozenset(
    {"customer", "invoice", "review", "on_behalf_of", "application", "source"}
)


def _expand_paths(found: dict[str, Any], prefix: str = "") -> list[str]:
    wanted = found.get("expand") or []
    if not isinstance(wanted, list):
        return []
    paths = []
    for path in wanted:
        field = path.removeprefix(prefix) if prefix else path
        if prefix and not path.startswith(prefix):
            field = ""
        if field in _EXPANDABLE:
            paths.append(field)
        elif field not in _NULL_EXPANDABLE:
            raise StripeError.invalid(
                "parameter_invalid", f"This property cannot be expanded ({path}).", "expand"
            )
    return paths


async def _expand_intent(
    request: web.Request, merchant_id: str, intent: dict[str, Any], paths: list[str]
) -> dict[str, Any]:
    if "latest_charge" in paths and intent.get("latest_charge"):
        intent["latest_charge"] = render.charge_object(intent)
    method = intent.get("payment_method")
    if "payment_method" in paths and isinstance(method, str):
        token_id = ids.token_id(method)
        token = await request.app[STORE].get_token(merchant_id, token_id) if token_id else None
        if token is not None:
            intent["payment_method"] = render.payment_method(token, intent["livemode"])
    return intent


def _expanding(handler: Handler) -> Handler:
    """``expand[]`` for an idempotent PaymentIntent endpoint (checked before the handler runs,
    so an unknown path is a 400 that claims nothing)."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        paths: list[str] = []
        if b"expand" in await request.read() or "expand" in request.query_string:
            await authenticate(request)  # a bad key is a 401 before a bad parameter's 400
            paths = _expand_paths(await _body_params(request))
        response = await handler(request)
        if not paths or response.status != 200 or not isinstance(response, web.Response):
            return response
        assert isinstance(response.body, bytes)
        doc = orjson.loads(response.body)
        if doc.get("object") != "payment_intent":
            return response
        merchant_id = await _merchant(request)
        return _with_body(response, await _expand_intent(request, merchant_id, doc, paths))

    return wrapper


def _service(request: web.Request) -> PaymentService:
    return request.app[SERVICE]


async def _form(request: web.Request, spec: params.Spec) -> dict[str, Any]:
    body = await request.read()
    ctype = request.content_type
    if body.strip() and ctype not in ("application/x-www-form-urlencoded", "", "text/plain"):
        raise StripeError.invalid(
            "invalid_content_type",
            "Stripe's API takes application/x-www-form-urlencoded bodies",
            None,
        )
    found = parse_form(body)
    found.update(_query(request))  # Stripe reads parameters from the query string of a POST too
    return params.check(found, spec)


def _query(request: web.Request) -> dict[str, Any]:
    return nest(parse_pairs(request.query_string.encode())) if request.query_string else {}


def _answered(answer: tuple[int, bytes]) -> web.Response:
    status, body = answer
    return web.Response(status=status, body=body, content_type="application/json")


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(value), content_type="application/json")


def _payment_id(intent: str, param: str = "intent") -> str:
    found = ids.payment_id(intent)
    if found is None:
        raise StripeError.missing("payment_intent", intent, param)
    return found


async def _merchant(request: web.Request) -> str:
    return request.get(MERCHANT_ID) or await authenticate(request)


def _live(request: web.Request) -> bool:
    """The authenticated key is a live one (``authenticate`` set its mode): ``livemode``."""
    return request.get(KEY_MODE) == "live"


def _no_reserved(metadata: Any, name: str = "metadata") -> None:
    if isinstance(metadata, dict):
        for key in metadata:
            if key.startswith(render.RESERVED):
                raise StripeError.invalid(
                    "parameter_invalid",
                    f"Metadata keys starting with {render.RESERVED!r} are reserved by paymux",
                    f"{name}[{key}]",
                )


async def _keep(
    request: web.Request, merchant_id: str, payment_id: str, values: dict[str, str]
) -> None:
    """Reserved values written into a payment's metadata (a field PaymentRecord lacks)."""
    service = _service(request)
    payment, _ = await service.get_payment(merchant_id, payment_id)
    if all(payment.metadata.get(k) == v for k, v in values.items()):
        return
    await service.update_payment(merchant_id, payment_id, {**payment.metadata, **values})


def _refusal_in(
    exc: Refusal, intent: str | None = None, method: str | None = None, **names: str
) -> StripeError:
    """A refusal of the flow, with Stripe's message for an object that does not exist."""
    if exc.kind is RefusalKind.NOT_FOUND:
        if exc.param in ("payment_method.token",) and method is not None:
            return StripeError.missing("PaymentMethod", method, "payment_method")
        if intent is not None and exc.param in ("id", "payment_id"):
            return StripeError.missing(
                "payment_intent",
                intent,
                "payment_intent" if exc.param == "payment_id" else "intent",
            )
    return render.error_of_refusal(exc, names or None)


# -- payment methods --------------------------------------------------------------------------


def _card(card: dict[str, Any], holder: str | None, prefix: str) -> commands.CardInput:
    for field in ("number", "exp_month", "exp_year"):
        if field not in card:
            raise StripeError.invalid(
                "parameter_missing",
                f"Missing required param: {prefix}[{field}].",
                f"{prefix}[{field}]",
            )
    raw = {
        "number": card["number"].replace(" ", ""),
        "exp_month": params.integer(card["exp_month"], f"{prefix}[exp_month]"),
        "exp_year": params.integer(card["exp_year"], f"{prefix}[exp_year]"),
        "cvc": card.get("cvc") or None,
        "holder_name": holder or None,
    }
    try:
        return msgspec.convert(raw, commands.CardInput)
    except msgspec.ValidationError as exc:
        error = from_validation(exc)
        field = (error.body.param or "number").split(".")[-1]
        if field == "holder_name":
            name = "payment_method_data[billing_details][name]"
        else:
            name = f"{prefix}[{field}]"
        code = {"cvc": "invalid_cvc", "number": "incorrect_number"}.get(field, "parameter_invalid")
        status, type_ = (402, "card_error") if field in ("cvc", "number") else (
            400, "invalid_request_error")  # fmt: skip
        raise StripeError(status, type_, f"Invalid {name}", code, name) from None


async def _test_method(request: web.Request, merchant_id: str, name: str) -> str:
    number = TEST_PAYMENT_METHODS[name]
    today = time.gmtime()
    token = await _service(request).create_token(
        merchant_id,
        commands.CreateToken(
            card=commands.CardInput(number=number, exp_month=12, exp_year=today.tm_year + 3)
        ),
    )
    return token.id


async def _method_input(
    request: web.Request, merchant_id: str, found: dict[str, Any]
) -> commands.PaymentMethodInput | None:
    """``payment_method`` (a pm_ id, a paymux tok_ token, or one of Stripe's test
    PaymentMethods) or ``payment_method_data`` (a raw card, vaulted by the flow)."""
    method = found.get("payment_method") or None
    data = found.get("payment_method_data") or None
    if method and data:
        raise StripeError.invalid(
            "parameter_invalid",
            "You cannot provide both payment_method and payment_method_data.",
            "payment_method_data",
        )
    if data is not None:
        kind = data.get("type")
        if kind is None:
            raise StripeError.invalid("parameter_missing",
                                      "Missing required param: payment_method_data[type].",
                                      "payment_method_data[type]")  # fmt: skip
        if kind != "card":
            raise StripeError.invalid(
                "payment_method_unactivated",
                f"The payment method type {kind!r} is not available through paymux; use card.",
                "payment_method_data[type]",
            )
        card = data.get("card")
        if not isinstance(card, dict):
            raise StripeError.invalid("parameter_missing",
                                      "Missing required param: payment_method_data[card].",
                                      "payment_method_data[card]")  # fmt: skip
        billing = data.get("billing_details") or {}
        holder = billing.get("name") if isinstance(billing, dict) else None
        return commands.PaymentMethodInput(card=_card(card, holder, "payment_method_data[card]"))
    if method is not None:
        if method in TEST_PAYMENT_METHODS:
            return commands.PaymentMethodInput(
                token=await _test_method(request, merchant_id, method)
            )
        token = ids.token_id(method)
        if token is None:
            raise StripeError.missing("PaymentMethod", method, "payment_method")
        return commands.PaymentMethodInput(token=token)
    return None


def _billing(found: dict[str, Any]) -> commands.BillingInput | None:
    data = found.get("payment_method_data") or {}
    billing = data.get("billing_details") if isinstance(data, dict) else None
    address = billing.get("address") if isinstance(billing, dict) else None
    country = address.get("country") if isinstance(address, dict) else None
    if not country:
        return None
    if len(country) != 2 or not country.isalpha():
        raise StripeError.invalid("parameter_invalid", f"Invalid country: {country}"[:80],
                                  "payment_method_data[billing_details][address][country]")  # fmt: skip
    assert isinstance(address, dict)  # a country came from it
    return commands.BillingInput(country=country.upper(), postal_code=address.get("postal_code"))


async def _create_payment_method(request: web.Request) -> web.StreamResponse:
    merchant_id = await _merchant(request)
    found = await _form(request, params.CREATE_METHOD)
    if found.get("type") != "card":
        if "type" not in found:
            raise StripeError.invalid("parameter_missing", "Missing required param: type.", "type")
        raise StripeError.invalid("payment_method_unactivated",
                                  "Only card PaymentMethods are available through paymux", "type")  # fmt: skip
    card = found.get("card")
    if not isinstance(card, dict):
        raise StripeError.invalid("parameter_missing", "Missing required param: card.", "card")
    billing = found.get("billing_details") or {}
    card_input = _card(card, billing.get("name") if isinstance(billing, dict) else None, "card")
    # The CVC is not kept: it is only ever sent with a payment (payment_method_data).
    token = await _service(request).create_token(merchant_id, commands.CreateToken(card=card_input))
    return _json(render.payment_method(token, _live(request)))


#: Idempotency-Key as Stripe: the same key and parameters replay the same pm_ (the generic
#: claim-then-complete wrapper of /v1's tokens, its errors in Stripe's shape).
create_payment_method = endpoint(idempotent_by_claim(_create_payment_method))


@endpoint
async def retrieve_payment_method(request: web.Request) -> web.StreamResponse:
    merchant_id = await _merchant(request)
    params.check(_query(request), params.RETRIEVE)
    method = request.match_info["id"]
    token_id = ids.token_id(method)
    token = await request.app[STORE].get_token(merchant_id, token_id) if token_id else None
    if token is None or token.deleted_at is not None:
        raise StripeError.missing("PaymentMethod", method, "payment_method")
    return _json(render.payment_method(token, _live(request)))


# -- payment intents --------------------------------------------------------------------------


_MAX_DESCRIPTOR = 22


def _descriptor(found: dict[str, Any]) -> str | None:
    value = found.get("statement_descriptor")
    if value is None or value == "":
        return None
    if len(value) > _MAX_DESCRIPTOR or any(c in value for c in "<>\\'\"*"):
        raise StripeError.invalid(
            "parameter_invalid",
            "The statement descriptor must be at most 22 characters and may not contain "
            "<, >, \\, ', \" or *",
            "statement_descriptor",
        )
    return value


def _return_url(found: dict[str, Any]) -> str | None:
    value = found.get("return_url") or None
    if value is not None and (len(value) > 2000 or not value.startswith(("http://", "https://"))):
        raise StripeError.invalid("url_invalid", "Not a valid URL", "return_url")
    return value


def _create_command(
    found: dict[str, Any], method: commands.PaymentMethodInput | None, live: bool = False
) -> commands.CreatePayment:
    for field in ("amount", "currency"):
        if field not in found:
            raise StripeError.invalid(
                "parameter_missing", f"Missing required param: {field}.", field
            )
    capture = found.get("capture_method", "automatic")
    if capture not in _CAPTURE_METHODS:
        raise StripeError.invalid(
            "parameter_invalid",
            "Invalid capture_method: must be one of automatic, automatic_async, or manual",
            "capture_method",
        )
    types = found.get("payment_method_types") or ["card"]
    if any(t != "card" for t in types):
        raise StripeError.invalid(
            "payment_method_unactivated",
            "Only the card payment method type is available through paymux",
            "payment_method_types",
        )
    raw: dict[str, Any] = {
        "amount": params.integer(found["amount"], "amount"),
        "currency": str(found["currency"]).upper(),
        "payment_method": msgspec.to_builtins(method or commands.PaymentMethodInput()),
        "capture_method": _CAPTURE_METHODS[capture],
        "metadata": params.metadata_of(found.get("metadata")),
        "description": found.get("description") or None,
    }
    billing = _billing(found)
    if billing is not None:
        raw["billing"] = msgspec.to_builtins(billing)
    if raw["amount"] < 1:
        raise StripeError.invalid(
            "amount_too_small", "Amount must be at least 1 in the currency's minor unit", "amount"
        )
    try:
        command = msgspec.convert(raw, commands.CreatePayment)
    except msgspec.ValidationError as exc:
        param = from_validation(exc).body.param or "amount"
        name = render.PARAMS.get(param) or param.split(".")[0]
        raise StripeError.invalid("parameter_invalid", f"Invalid {name}", name) from None
    if method is not None:
        # The card (and its CVC) travel as given: msgspec.convert rebuilt them from builtins.
        command.payment_method = method
    # What PaymentRecord has no field for, under reserved keys (not counted in the 50).
    kept = {
        render.LIVEMODE: "true" if live else None,
        render.STATEMENT_DESCRIPTOR: _descriptor(found),
        render.RETURN_URL: _return_url(found),
    }
    present: dict[str, str] = {k: v for k, v in kept.items() if v is not None}
    if present:
        command.metadata = {**command.metadata, **present}
    return command


@idempotent
async def create_payment_intent(request: web.Request) -> web.StreamResponse:
    merchant_id = await _merchant(request)
    found = await _form(request, params.CREATE_INTENT)
    _no_reserved(found.get("metadata"))
    confirm = params.boolean(found["confirm"], "confirm") if "confirm" in found else False
    method = await _method_input(request, merchant_id, found)
    if confirm and method is None:
        raise StripeError.invalid(
            "parameter_missing",
            "You cannot confirm this PaymentIntent because it's missing a payment method. "
            "Provide payment_method or payment_method_data.",
            "payment_method",
        )
    command = _create_command(found, method, _live(request))
    try:
        answer = await _service(request).create_payment(
            merchant_id, command, request.get(IDEMPOTENCY_CLAIM), front=FRONT, confirm=confirm
        )
    except Refusal as exc:
        raise _refusal_in(exc, method=found.get("payment_method")) from None
    return _answered(answer)


@idempotent
async def confirm_payment_intent(request: web.Request) -> web.StreamResponse:
    merchant_id = await _merchant(request)
    intent = request.match_info["id"]
    payment_id = _payment_id(intent)
    found = await _form(request, params.CONFIRM_INTENT)
    method = await _method_input(request, merchant_id, found)
    return_url = _return_url(found)
    try:
        if return_url is not None:
            await _keep(request, merchant_id, payment_id, {render.RETURN_URL: return_url})
        answer = await _service(request).confirm_payment(
            merchant_id, payment_id, method, request.get(IDEMPOTENCY_CLAIM), front=FRONT
        )
    except Refusal as exc:
        raise _refusal_in(exc, intent, found.get("payment_method")) from None
    return _answered(answer)


@idempotent
async def capture_payment_intent(request: web.Request) -> web.StreamResponse:
    merchant_id = await _merchant(request)
    intent = request.match_info["id"]
    payment_id = _payment_id(intent)
    found = await _form(request, params.CAPTURE_INTENT)
    amount = None
    if "amount_to_capture" in found:
        amount = params.integer(found["amount_to_capture"], "amount_to_capture")
        if amount < 1:
            raise StripeError.invalid(
                "amount_too_small", "amount_to_capture must be positive", "amount_to_capture"
            )
    try:
        answer = await _service(request).capture(
            merchant_id,
            payment_id,
            commands.CapturePayment(amount=amount),
            request.get(IDEMPOTENCY_CLAIM),
            front=FRONT,
        )
    except Refusal as exc:
        raise _refusal_in(exc, intent, amount="amount_to_capture") from None
    return _answered(answer)


@idempotent
async def cancel_payment_intent(request: web.Request) -> web.StreamResponse:
    merchant_id = await _merchant(request)
    intent = request.match_info["id"]
    payment_id = _payment_id(intent)
    found = await _form(request, params.CANCEL_INTENT)
    reason = found.get("cancellation_reason")
    if reason is not None and reason not in _CANCEL_REASONS:
        raise StripeError.invalid(
            "parameter_invalid",
            "Invalid cancellation_reason: must be one of abandoned, duplicate, fraudulent, or "
            "requested_by_customer",
            "cancellation_reason",
        )
    try:
        if reason is not None:
            # Kept before the void, so its answer (stored for the key) carries it; rendered only
            # once the intent is canceled.
            current, _ = await _service(request).get_payment(merchant_id, payment_id)
            if current.status != PaymentStatus.CANCELED:
                await _keep(request, merchant_id, payment_id, {render.CANCELLATION_REASON: reason})
        answer = await _service(request).cancel(
            merchant_id, payment_id, request.get(IDEMPOTENCY_CLAIM), front=FRONT
        )
    except Refusal as exc:
        raise _refusal_in(exc, intent) from None
    return _answered(answer)


@endpoint
async def update_payment_intent(request: web.Request) -> web.StreamResponse:
    merchant_id = await _merchant(request)
    intent = request.match_info["id"]
    payment_id = _payment_id(intent)
    found = await _form(request, params.UPDATE_INTENT)
    _no_reserved(found.get("metadata"))
    paths = _expand_paths(found)
    service = _service(request)
    try:
        current, _ = await service.get_payment(merchant_id, payment_id)
        metadata = None
        if "metadata" in found:
            # Stripe merges: a key set to "" is removed, `metadata=""` removes them all (the
            # reserved paymux_ keys stay).
            given = found["metadata"]
            own = render.merchant_metadata(current.metadata)
            if given == "":
                own = {}
            else:
                own = {k: v for k, v in {**own, **given}.items() if v != ""}
                if len(own) > 50:
                    raise StripeError.invalid(
                        "parameter_invalid", "You can specify up to 50 keys in metadata", "metadata"
                    )
            metadata = {**own, **render.reserved_metadata(current.metadata)}
        description = found.get("description")
        if metadata is not None or description is not None:
            await service.update_payment(merchant_id, payment_id, metadata, description)
        payment, attempts = await service.get_payment(merchant_id, payment_id)
    except Refusal as exc:
        raise _refusal_in(exc, intent) from None
    doc = render.payment_intent(payment, attempts)
    return _json(await _expand_intent(request, merchant_id, doc, paths))


@endpoint
async def retrieve_payment_intent(request: web.Request) -> web.StreamResponse:
    merchant_id = await _merchant(request)
    intent = request.match_info["id"]
    paths = _expand_paths(params.check(_query(request), params.RETRIEVE))
    try:
        payment, attempts = await _service(request).get_payment(merchant_id, _payment_id(intent))
    except Refusal as exc:
        raise _refusal_in(exc, intent) from None
    doc = render.payment_intent(payment, attempts)
    return _json(await _expand_intent(request, merchant_id, doc, paths))


def _limit(found: dict[str, Any]) -> int:
    limit = params.integer(found.get("limit", "10"), "limit")
    if not 1 <= limit <= 100:
        raise StripeError.invalid(
            "parameter_invalid_integer", "limit must be between 1 and 100", "limit"
        )
    return limit


def _created(found: dict[str, Any]) -> tuple[float | None, float | None]:
    """``created`` (exact second) or ``created[gt|gte|lt|lte]`` as [gte, lt) bounds."""
    created = found.get("created")
    if created is None:
        return None, None
    if not isinstance(created, dict):
        at = params.integer(created, "created")
        return float(at), float(at + 1)
    gte = lt = None
    if "gte" in created:
        gte = params.integer(created["gte"], "created[gte]")
    if "gt" in created:
        gt = params.integer(created["gt"], "created[gt]") + 1
        gte = gt if gte is None else max(gte, gt)
    if "lt" in created:
        lt = params.integer(created["lt"], "created[lt]")
    if "lte" in created:
        lte = params.integer(created["lte"], "created[lte]") + 1
        lt = lte if lt is None else min(lt, lte)
    return (float(gte) if gte is not None else None), (float(lt) if lt is not None else None)


#: How many payments ``ending_before`` may walk back through (the store pages forward only).
_ENDING_BEFORE_SCAN = 5000


@endpoint
async def list_payment_intents(request: web.Request) -> web.StreamResponse:
    merchant_id = await _merchant(request)
    found = params.check(_query(request), params.LIST_INTENTS)
    paths = _expand_paths(found, "data.")
    limit = _limit(found)
    gte, lt = _created(found)
    service = _service(request)
    after = found.get("starting_after")
    before = found.get("ending_before")
    if after and before:
        raise StripeError.invalid(
            "parameter_invalid",
            "You may only specify one of these parameters: ending_before, starting_after.",
            "ending_before",
        )
    if before:
        target = _payment_id(before, "ending_before")
        # Newest first: the page is the `limit` payments just newer than `target`.
        seen: list[Any] = []
        cursor: str | None = None
        while len(seen) < _ENDING_BEFORE_SCAN:
            rows, more = await service.list_payments(
                merchant_id,
                PaymentFilter(created_gte=gte, created_lt=lt, starting_after=cursor, limit=100),
            )
            hit = next((i for i, (p, _) in enumerate(rows) if p.id == target), None)
            if hit is not None:
                seen.extend(rows[:hit])
                break
            seen.extend(rows)
            if not more or not rows:
                seen = []  # the cursor is not in this list: Stripe answers an empty page
                break
            cursor = rows[-1][0].id
        page = seen[-limit:]
        has_more = len(seen) > limit
    else:
        cursor = _payment_id(after, "starting_after") if after else None
        page, has_more = await service.list_payments(
            merchant_id,
            PaymentFilter(created_gte=gte, created_lt=lt, starting_after=cursor, limit=limit),
        )
    data = [
        await _expand_intent(request, merchant_id, render.payment_intent(p, a), paths)
        for p, a in page
    ]
    return _json(render.list_object("/v1/payment_intents", data, has_more))


# -- refunds ----------------------------------------------------------------------------------


def _refund_target(found: dict[str, Any]) -> tuple[str, str]:
    intent = found.get("payment_intent")
    charge = found.get("charge")
    if intent and charge:
        raise StripeError.invalid("parameter_invalid",
                                  "You may only specify one of: charge, payment_intent.", "charge")  # fmt: skip
    if intent:
        return _payment_id(intent, "payment_intent"), "payment_intent"
    if charge:
        found_id = ids.payment_id("pi_" + charge.removeprefix("ch_")) if charge.startswith(
            "ch_") else None  # fmt: skip
        if found_id is None:
            raise StripeError.missing("charge", charge, "charge")
        return found_id, "charge"
    raise StripeError.invalid("parameter_missing",
                              "One of the following params should be provided for this request: "
                              "payment_intent or charge.", "payment_intent")  # fmt: skip


async def _create_refund(request: web.Request) -> web.StreamResponse:
    merchant_id = await _merchant(request)
    found = await _form(request, params.CREATE_REFUND)
    payment_id, which = _refund_target(found)
    amount = params.integer(found["amount"], "amount") if "amount" in found else None
    if amount is not None and amount < 1:
        raise StripeError.invalid("amount_too_small", "Refund amount must be positive", "amount")
    reason = found.get("reason")
    if reason is not None and reason not in _REFUND_REASONS:
        raise StripeError.invalid(
            "parameter_invalid",
            "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer",
            "reason",
        )
    try:
        command = commands.CreateRefund(payment_id=payment_id, amount=amount, reason=reason)
        answer = await _service(request).create_refund(
            merchant_id, command, request.get(IDEMPOTENCY_CLAIM), front=FRONT
        )
    except Refusal as exc:
        if exc.kind is RefusalKind.NOT_FOUND:
            raise StripeError.missing(
                "payment_intent" if which == "payment_intent" else "charge",
                found.get(which, ""),
                which,
            ) from None
        raise render.error_of_refusal(exc, {"payment_id": which}) from None
    return _answered(answer)


create_refund = endpoint(
    _refunding(
        idempotent_in_transaction(
            _create_refund, answer_bound=_answer_bound, canonical_body=canonical
        )
    )
)


@endpoint
async def retrieve_refund(request: web.Request) -> web.StreamResponse:
    merchant_id = await _merchant(request)
    params.check(_query(request), params.RETRIEVE)
    refund_id = request.match_info["id"]
    try:
        refund = await _service(request).get_refund(merchant_id, refund_id)
    except Refusal:
        raise StripeError.missing("refund", refund_id, "refund") from None
    payment = await request.app[STORE].get_payment(merchant_id, refund.payment_id)
    return _json(_refund_doc(refund, payment))


def _refund_doc(refund: Any, payment: PaymentRecord | None) -> dict[str, Any]:
    return render.refund_object(
        refund, render.refund_metadata(payment, refund.id), render.is_live(payment)
    )


#: Refunds listed without ``payment_intent``: those of the merchant's most recent payments (the
#: store lists refunds per payment; a per-merchant refund index would lift this bound).
_REFUND_SCAN_PAYMENTS = 100


@endpoint
async def list_refunds(request: web.Request) -> web.StreamResponse:
    merchant_id = await _merchant(request)
    found = params.check(_query(request), params.LIST_REFUNDS)
    limit = _limit(found)
    store = request.app[STORE]
    service = _service(request)
    payments: dict[str, PaymentRecord] = {}
    if found.get("payment_intent") or found.get("charge"):
        payment_id, which = _refund_target(found)
        try:
            payment, _ = await service.get_payment(merchant_id, payment_id)
        except Refusal:
            raise StripeError.missing(which, found.get(which, ""), which) from None
        payments[payment.id] = payment
    else:
        recent = await store.list_payments(merchant_id, PaymentFilter(limit=_REFUND_SCAN_PAYMENTS))
        payments = {p.id: p for p in recent if p.amount_received > 0 or p.amount_refunded > 0}
    refunds = []
    for payment_id in payments:
        refunds.extend(await store.list_refunds(payment_id))
    refunds.sort(key=lambda r: (r.created_at, r.id), reverse=True)
    gte, lt = _created(found)
    refunds = [
        r
        for r in refunds
        if r.merchant_id == merchant_id
        and (gte is None or r.created_at >= gte)
        and (lt is None or r.created_at < lt)
    ]
    after, before = found.get("starting_after"), found.get("ending_before")
    if after:
        at = next((i for i, r in enumerate(refunds) if r.id == after), None)
        refunds = refunds[at + 1 :] if at is not None else []
        page, has_more = refunds[:limit], len(refunds) > limit
    elif before:
        at = next((i for i, r in enumerate(refunds) if r.id == before), None)
        refunds = refunds[:at] if at is not None else []
        page, has_more = refunds[-limit:], len(refunds) > limit
    else:
        page, has_more = refunds[:limit], len(refunds) > limit
    data = [_refund_doc(r, payments.get(r.payment_id)) for r in page]
    return _json(render.list_object("/v1/refunds", data, has_more))


# -- everything else --------------------------------------------------------------------------


@endpoint
async def unrecognized(request: web.Request) -> web.StreamResponse:
    path = request.path.removeprefix(PREFIX) or "/"
    raise StripeError(
        404,
        "invalid_request_error",
        f"Unrecognized request URL ({request.method}: {path}). paymux's Stripe-compatible front "
        "serves PaymentIntents, PaymentMethods and Refunds; see docs/dropin.md.",
        "resource_missing",
    )


def add_stripe_routes(app: web.Application, answers: HttpAnswers) -> None:
    """The Stripe front's routes and renderings (its answers stored for Idempotency-Keys)."""
    answers.register(FRONT, render.StripeAnswers())
    v1 = PREFIX + "/v1"
    app.router.add_post(v1 + "/payment_intents", create_payment_intent)
    app.router.add_get(v1 + "/payment_intents", list_payment_intents)
    app.router.add_get(v1 + "/payment_intents/{id}", retrieve_payment_intent)
    app.router.add_post(v1 + "/payment_intents/{id}", update_payment_intent)
    app.router.add_post(v1 + "/payment_intents/{id}/confirm", confirm_payment_intent)
    app.router.add_post(v1 + "/payment_intents/{id}/capture", capture_payment_intent)
    app.router.add_post(v1 + "/payment_intents/{id}/cancel", cancel_payment_intent)
    app.router.add_post(v1 + "/payment_methods", create_payment_method)
    app.router.add_get(v1 + "/payment_methods/{id}", retrieve_payment_method)
    app.router.add_post(v1 + "/refunds", create_refund)
    app.router.add_get(v1 + "/refunds", list_refunds)
    app.router.add_get(v1 + "/refunds/{id}", retrieve_refund)
    app.router.add_route("*", PREFIX + "/{tail:.*}", unrecognized)
