"""The HTTP layer: routes, authentication, idempotency, error rendering and the wide log line.

Handlers stay thin: decode the body into a Struct, call the PaymentService, encode the answer.
"""

from __future__ import annotations

import decimal
import hashlib
import hmac
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import orjson
from aiohttp import web

from paymux.api import schemas
from paymux.api.auth import KEY_PREFIX_LEN, bearer_secret, hash_api_key
from paymux.api.edge import EDGE, BodyTimeout, RateLimited
from paymux.api.errors import ApiError, ErrorEnvelope, from_refusal, from_validation, invalid
from paymux.api.schemas import encode_body
from paymux.api.strict_json import check_body, check_content_type
from paymux.api.views import payment_view, refund_view, token_view
from paymux.domain.errors import Refusal
from paymux.domain.ids import random_hex
from paymux.domain.lifecycle import IllegalTransition
from paymux.domain.records import (
    IdempotencyClaim,
    IdempotencyRecord,
    IdempotencyState,
    IdempotencyTaken,
    PaymentFilter,
    PaymentStatus,
    idempotency_state,
)
from paymux.observability import metrics
from paymux.observability.logs import log, request_id_var, scrub_text
from paymux.payments.service import PaymentService
from paymux.store.base import Store, StoreUnavailable

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SERVICE: web.AppKey[PaymentService] = web.AppKey("service", PaymentService)
STORE: web.AppKey[Store] = web.AppKey("store", Store)
HASH_KEY: web.AppKey[bytes] = web.AppKey("hash_key", bytes)
KEY_CACHE: web.AppKey[dict[str, tuple[str, float, str]]] = web.AppKey("key_cache", dict)
IDEMPOTENCY_TTL: web.AppKey[float] = web.AppKey("idempotency_ttl", float)
MERCHANT_ID: web.RequestKey[str] = web.RequestKey("merchant_id", str)
#: The authenticated key's mode ("test" or "live"), set with MERCHANT_ID (for livemode).
KEY_MODE: web.RequestKey[str] = web.RequestKey("key_mode", str)
IDEMPOTENCY_CLAIM: web.RequestKey[IdempotencyClaim] = web.RequestKey(
    "idempotency_claim", IdempotencyClaim
)

_decoders: dict[type, msgspec.json.Decoder[Any]] = {}
_KEY_CACHE_TTL_S = 30.0
_MAX_IDEMPOTENCY_KEY = 255


def json_response(status: int, value: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=encode_body(value), content_type="application/json", headers=headers
    )


def error_response(exc: ApiError) -> web.Response:
    return json_response(exc.status, ErrorEnvelope(error=exc.body))


async def decode(request: web.Request, cls: type[Any], allow_empty: bool = False) -> Any:
    """The body as `cls`, strictly: a JSON content type (415), valid UTF-8 and no repeated key
    (400 `invalid_utf8`, `duplicate_key`), then msgspec's validation."""
    body = await request.read()
    if not body.strip():
        if allow_empty:
            return cls()
        raise invalid("body_missing", "The request body is empty; send a JSON object")
    check_content_type(request)
    check_body(body)
    decoder = _decoders.get(cls)
    if decoder is None:
        decoder = _decoders[cls] = msgspec.json.Decoder(cls)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        if "got `float`" in str(exc):  # `1000.0` is a JSON Schema integer: take it as one
            integral = _with_integral_floats(body, cls)
            if integral is not None:
                return integral
        raise from_validation(exc) from None
    except msgspec.DecodeError:
        raise invalid("invalid_json", "The request body is not valid JSON") from None


def _integral(text: str) -> int | float:
    number = decimal.Decimal(text)
    if number == number.to_integral_value() and abs(number) < 2**63:
        return int(number)
    return float(text)


def _with_integral_floats(body: bytes, cls: type[Any]) -> Any:
    """The body as `cls` with every integral number written with a fraction or an exponent
    (`1000.0`, `1e3`) read as the integer it is (the request structs have no float fields), or
    None if it still does not validate for that reason. Only on the error path."""
    try:
        value = json.loads(body, parse_float=_integral)
        return msgspec.convert(value, cls, strict=True)
    except msgspec.ValidationError as exc:
        if "got `float`" in str(exc):
            return None
        raise from_validation(exc) from None
    except ValueError:
        return None


# -- middlewares ------------------------------------------------------------------------------

_SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, error rendering, and one wide log line per request."""
    rid = request.headers.get("X-Request-Id") or random_hex(16)
    if len(rid) > 64 or not rid.replace("-", "").isalnum():
        rid = random_hex(16)
    token = request_id_var.set(rid)
    started = time.perf_counter()
    edge = request.app.get(EDGE)
    disconnected: str | None = None
    try:
        try:
            if edge is not None and request.method not in _SAFE_METHODS:
                # A client that goes away must not cut short what it asked for: a payment sent
                # to a PSP completes and is stored, and the client's retry replays it.
                response = await edge.shielded(handler(request))
            else:
                response = await handler(request)
        except RateLimited as exc:
            response = error_response(exc)
            response.headers["Retry-After"] = str(exc.retry_after)
            if exc.close:
                response.force_close()
        except ApiError as exc:
            response = error_response(exc)
        except Refusal as exc:  # the payment flow said no: its kind decides the status
            response = error_response(from_refusal(exc))
        except IllegalTransition as exc:  # a state the flow did not expect: never a 500
            response = error_response(invalid(exc.code, exc.message, status=409))
        except StoreUnavailable as exc:  # the database is down or restarting: retry shortly
            response = error_response(
                ApiError(503, "api_error", "store_unavailable", "The database is unavailable")
            )
            response.headers["Retry-After"] = str(exc.retry_after_s)
        except web.HTTPRequestEntityTooLarge:
            response = error_response(
                invalid("body_too_large", "The request body is too large", status=413)
            )
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = {404: "route_not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
            response = error_response(invalid(code, exc.reason, status=exc.status))
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
        except BodyTimeout:
            response = error_response(
                invalid("request_timeout", "The request body was not received in time", status=408)
            )
            response.force_close()
        except (ConnectionResetError, web.RequestPayloadError) as exc:
            if request.transport is None or isinstance(exc, ConnectionResetError):
                disconnected = "body"  # gone while sending its body: nothing was done
                response = error_response(
                    ApiError(499, "invalid_request_error", "client_closed", "Client went away")
                )
            else:  # broken framing (a bad chunk) in a body still arriving
                response = error_response(
                    invalid("malformed_body", "The request body's framing is invalid")
                )
                response.force_close()
        except Exception as exc:  # noqa: BLE001 - a bug must not leak a stack trace to the client
            log(
                "unhandled_error",
                logging.ERROR,
                error_type=type(exc).__name__,
                path=scrub_text(request.path, 100),
            )
            response = error_response(
                ApiError(500, "api_error", "internal_error", "An internal error occurred")
            )
        if disconnected is None and request.transport is None:
            disconnected = "response"  # gone while the gateway worked: the work is done, kept
        if disconnected is not None:
            metrics.client_disconnected(disconnected)
            log(
                "client_disconnected",
                phase=disconnected,
                method=request.method,
                merchant_id=request.get(MERCHANT_ID),
            )
        response.headers["X-Request-Id"] = rid
        resource = request.match_info.route.resource
        elapsed = time.perf_counter() - started
        metrics.request_finished(
            resource.canonical if resource is not None else "unmatched",
            request.method,
            response.status,
            elapsed,
            response.headers.get("Idempotent-Replayed") == "true",
        )
        if edge is None or edge.access_log:
            log(
                "request",
                method=request.method,
                path=resource.canonical if resource is not None else scrub_text(request.path, 100),
                status=response.status,
                duration_ms=round(elapsed * 1000, 3),
                merchant_id=request.get(MERCHANT_ID),
                idempotency_replayed=response.headers.get("Idempotent-Replayed") == "true" or None,
                client_disconnected=disconnected is not None or None,
            )
        return response
    finally:
        request_id_var.reset(token)


async def authenticate(request: web.Request) -> str:
    """The merchant id behind the request's secret key (compared by its SHA-256 hash).

    A key seen recently is answered from the cache. Otherwise the failed-authentication limits
    (per source address and per key prefix) are checked before the store is asked, so a flood
    of bad keys costs a hash and a dict lookup each; then the merchant's own request rate."""
    edge = request.app.get(EDGE)
    secret = bearer_secret(request)
    if secret is None:
        if edge is not None:
            edge.check_auth(request.remote, None)
            edge.auth_failed(request.remote, None)
        raise ApiError(
            401,
            "authentication_error",
            "api_key_missing",
            "Send your secret key as `Authorization: Bearer sk_...`",
        )
    key_hash = hash_api_key(secret)
    cache = request.app[KEY_CACHE]
    hit = cache.get(key_hash)
    now = time.monotonic()
    if hit is not None and hit[1] > now:
        merchant_id, mode = hit[0], hit[2]
    else:
        prefix = secret[:KEY_PREFIX_LEN]
        if edge is not None:
            edge.check_auth(request.remote, prefix)
        key = await request.app[STORE].find_api_key(key_hash)
        if key is None:
            if edge is not None:
                edge.auth_failed(request.remote, prefix)
            raise ApiError(401, "authentication_error", "api_key_invalid", "Invalid API key")
        merchant_id, mode = key.merchant_id, key.mode
        if len(cache) > 10_000:
            cache.clear()
        cache[key_hash] = (merchant_id, now + _KEY_CACHE_TTL_S, mode)
    request[MERCHANT_ID] = merchant_id
    request[KEY_MODE] = mode
    if edge is not None:
        edge.admit_merchant(merchant_id)
    return merchant_id


def _request_hash(
    app: web.Application,
    request: web.Request,
    body: bytes,
    canonical_body: Callable[[bytes], bytes] | None = None,
) -> str:
    if canonical_body is not None:  # a front with another body encoding (Stripe's forms)
        canonical = canonical_body(body)
    else:
        try:
            canonical = (
                orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body else b""
            )
        except orjson.JSONDecodeError:
            canonical = body
    # Keyed: the body may carry a card number, and an unkeyed hash of a PAN can be brute-forced.
    mac = hmac.new(
        app[HASH_KEY],
        request.method.encode() + b" " + request.path.encode() + b"\n",
        hashlib.sha256,
    )
    mac.update(canonical)
    return mac.hexdigest()


async def _keyed(
    request: web.Request, canonical_body: Callable[[bytes], bytes] | None = None
) -> tuple[str, str, str] | None:
    """Authenticate; then the merchant, the request's Idempotency-Key and the request's keyed
    hash, or None when it carries no key."""
    merchant_id = await authenticate(request)
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not key or len(key) > _MAX_IDEMPOTENCY_KEY or not (key.isascii() and key.isprintable()):
        raise invalid(
            "idempotency_key_invalid",
            f"Idempotency-Key must be 1 to {_MAX_IDEMPOTENCY_KEY} printable ASCII characters",
            "Idempotency-Key",
        )
    body = await request.read()
    return merchant_id, key, _request_hash(request.app, request, body, canonical_body)


def _answer_bound_key(state: IdempotencyState, record: IdempotencyRecord) -> web.Response:
    """The answer to a request whose key is bound already: replay, or why not."""
    if state is IdempotencyState.MISMATCH:
        raise ApiError(
            422,
            "idempotency_error",
            "idempotency_key_reused",
            "This Idempotency-Key was used with different parameters",
        )
    if state is IdempotencyState.IN_PROGRESS:
        raise ApiError(
            409,
            "idempotency_error",
            "idempotency_key_in_use",
            "A request with this Idempotency-Key is still being processed",
        )
    assert record.response_status is not None
    return web.Response(
        status=record.response_status,
        body=record.response_body,
        content_type="application/json",
        headers={"Idempotent-Replayed": "true"},
    )


def idempotent_in_transaction(
    handler: Handler,
    *,
    answer_bound: Callable[[IdempotencyState, IdempotencyRecord], web.Response] | None = None,
    canonical_body: Callable[[bytes], bytes] | None = None,
) -> Handler:
    """Idempotency-Key for a handler whose service claims the key in the transaction that
    creates its object (a new payment) and completes it with its answer in its last one: two
    commits fewer than claiming and completing on their own.

    A key seen before is answered from its record before anything else runs. A request that
    fails validation claims nothing (as Stripe, which saves no result for a request that did not
    start executing). A concurrent request that claimed the key in between is caught by the
    claim itself, which is atomic with the insert, and answered as a bound key.

    A drop-in front passes its own ``answer_bound`` (its error shapes for a reused or busy key)
    and ``canonical_body`` (its body encoding, for the request hash); /v1 uses neither.
    """
    bound = answer_bound or _answer_bound_key

    async def wrapper(request: web.Request) -> web.StreamResponse:
        keyed = await _keyed(request, canonical_body)
        if keyed is None:
            return await handler(request)
        merchant_id, key, request_hash = keyed
        app = request.app
        now = time.time()
        record = await app[STORE].get_idempotent(merchant_id, key, now, app[IDEMPOTENCY_TTL])
        if record is not None:
            return bound(idempotency_state(record, request_hash), record)
        request[IDEMPOTENCY_CLAIM] = IdempotencyClaim(
            merchant_id=merchant_id,
            key=key,
            request_hash=request_hash,
            now=now,
            ttl_s=app[IDEMPOTENCY_TTL],
        )
        try:
            return await handler(request)
        except IdempotencyTaken as taken:
            return bound(taken.state, taken.record)

    return wrapper


def idempotent(handler: Handler) -> Handler:
    """Stripe's Idempotency-Key semantics for a POST handler: the key is claimed before the
    handler runs and completed with whatever it answers (success or error)."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        keyed = await _keyed(request)
        if keyed is None:
            return await handler(request)
        merchant_id, key, request_hash = keyed
        store = request.app[STORE]
        state, record = await store.begin_idempotent(
            merchant_id, key, request_hash, time.time(), request.app[IDEMPOTENCY_TTL]
        )
        if state is not IdempotencyState.NEW:
            assert record is not None
            return _answer_bound_key(state, record)
        try:
            response = await handler(request)
        except ApiError as exc:
            response = error_response(exc)
        except Refusal as exc:
            response = error_response(from_refusal(exc))
        except BaseException:
            # An unexpected failure: free the key if nothing was created, so the client can retry;
            # if a payment exists, crash recovery completes the record from the payment's state.
            await store.release_idempotent(merchant_id, key)
            raise
        assert isinstance(response, web.Response) and isinstance(response.body, bytes)
        await store.complete_idempotent(merchant_id, key, response.status, response.body)
        return response

    return wrapper


# -- handlers ---------------------------------------------------------------------------------


def _service(request: web.Request) -> PaymentService:
    return request.app[SERVICE]


def _answered(answer: tuple[int, bytes]) -> web.Response:
    status, body = answer
    return web.Response(status=status, body=body, content_type="application/json")


@idempotent_in_transaction
async def create_payment(request: web.Request) -> web.StreamResponse:
    body = await decode(request, schemas.CreatePayment)
    return _answered(
        await _service(request).create_payment(
            request[MERCHANT_ID], body, request.get(IDEMPOTENCY_CLAIM)
        )
    )


async def get_payment(request: web.Request) -> web.StreamResponse:
    merchant_id = await authenticate(request)
    payment, attempts = await _service(request).get_payment(merchant_id, request.match_info["id"])
    return json_response(200, payment_view(payment, attempts))


def _float_param(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise invalid("parameter_invalid", f"{name} must be a unix timestamp", name) from None
    if not math.isfinite(value):
        raise invalid("parameter_invalid", f"{name} must be a unix timestamp", name)
    return value


async def list_payments(request: web.Request) -> web.StreamResponse:
    merchant_id = await authenticate(request)
    q = request.query
    try:
        limit = int(q.get("limit", "20"))
    except ValueError:
        raise invalid("parameter_invalid", "limit must be an integer", "limit") from None
    if not 1 <= limit <= 100:
        raise invalid("parameter_invalid", "limit must be between 1 and 100", "limit")
    status = q.get("status")
    if status is not None and status not in {s.value for s in PaymentStatus}:
        raise invalid("parameter_invalid", f"Unknown status {status!r}", "status")
    flt = PaymentFilter(
        status=status,
        connector=q.get("connector"),
        created_gte=_float_param(request, "created[gte]"),
        created_lt=_float_param(request, "created[lt]"),
        starting_after=q.get("starting_after"),
        limit=limit,
    )
    rows, has_more = await _service(request).list_payments(merchant_id, flt)
    return json_response(
        200,
        schemas.PaymentList(
            object="list",
            data=[payment_view(p, attempts) for p, attempts in rows],
            has_more=has_more,
            next_cursor=rows[-1][0].id if has_more else None,
        ),
    )


# Captures, voids and refunds claim their Idempotency-Key in the transaction that starts the
# operation and complete it in the one that settles it (inline, or later by the reconciler).


@idempotent_in_transaction
async def capture_payment(request: web.Request) -> web.StreamResponse:
    body = await decode(request, schemas.CapturePayment, allow_empty=True)
    return _answered(
        await _service(request).capture(
            request[MERCHANT_ID], request.match_info["id"], body, request.get(IDEMPOTENCY_CLAIM)
        )
    )


@idempotent_in_transaction
async def cancel_payment(request: web.Request) -> web.StreamResponse:
    await decode(request, schemas.CancelPayment, allow_empty=True)
    return _answered(
        await _service(request).cancel(
            request[MERCHANT_ID], request.match_info["id"], request.get(IDEMPOTENCY_CLAIM)
        )
    )


@idempotent_in_transaction
async def create_refund(request: web.Request) -> web.StreamResponse:
    body = await decode(request, schemas.CreateRefund)
    return _answered(
        await _service(request).create_refund(
            request[MERCHANT_ID], body, request.get(IDEMPOTENCY_CLAIM)
        )
    )


async def get_refund(request: web.Request) -> web.StreamResponse:
    merchant_id = await authenticate(request)
    refund = await _service(request).get_refund(merchant_id, request.match_info["id"])
    return json_response(200, refund_view(refund))


@idempotent
async def create_token(request: web.Request) -> web.StreamResponse:
    body = await decode(request, schemas.CreateToken)
    token = await _service(request).create_token(request[MERCHANT_ID], body)
    return json_response(200, token_view(token))


async def delete_token(request: web.Request) -> web.StreamResponse:
    merchant_id = await authenticate(request)
    token_id = request.match_info["id"]
    await _service(request).delete_token(merchant_id, token_id)
    return json_response(200, schemas.DeletedView(id=token_id, object="token", deleted=True))


async def health(request: web.Request) -> web.StreamResponse:
    return json_response(200, {"status": "ok"})


async def openapi(request: web.Request) -> web.StreamResponse:
    from paymux.api.openapi import openapi_document

    return json_response(200, openapi_document())


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_post("/v1/payments", create_payment)
    app.router.add_get("/v1/payments", list_payments)
    app.router.add_get("/v1/payments/{id}", get_payment)
    app.router.add_post("/v1/payments/{id}/capture", capture_payment)
    app.router.add_post("/v1/payments/{id}/cancel", cancel_payment)
    app.router.add_post("/v1/refunds", create_refund)
    app.router.add_get("/v1/refunds/{id}", get_refund)
    app.router.add_post("/v1/tokens", create_token)
    app.router.add_delete("/v1/tokens/{id}", delete_token)
