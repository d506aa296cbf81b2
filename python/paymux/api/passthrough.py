"""The transparent pass-through: ``/proxy/{connector}/...`` in front of a PSP the merchant keeps.

The merchant's own Stripe, Adyen or Checkout.com SDK points its base URL here and sends its
paymux key where that SDK sends its key (``connector.merchant_credential``). paymux then:

- forwards the request (any method, path, query and body) to the connector's configured base
  URL over a keep-alive pool per PSP, with the real PSP credentials from the config injected;
- reveals paymux tokens (``tok_...``) sent in that connector's declared card fields
  (``connector.card_fields``) from the vault, filling the expiry from the token when left out;
  a CVC sent alongside passes through, unstored;
- fills what the PSP account needs (``connector.passthrough_defaults``: Adyen's merchantAccount,
  Checkout.com's processing channel);
- reads the answer with the connector's own mapper (``connector.parse_passthrough``) and feeds
  the outcome and latency to the health windows and metrics, like an attempt of /v1;
- masks every PAN in the PSP's answer, and otherwise returns its status, headers and body as is.

It never retries nor reroutes (the merchant chose the PSP). With the connector's breaker open it
answers 503 (``Paymux-Breaker: open``) when ``[proxy] refuse_when_breaker_open``; a PSP that does
not answer (timeout, reset, refused connection, broken HTTP) is a 504/502 with paymux's error
JSON and ``Paymux-Upstream: no-answer``. Errors paymux raises itself (a bad key, a token of
another merchant) are in the PSP's own error shape (``connector.passthrough_error``).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any
from urllib.parse import quote_plus, unquote_to_bytes

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict

from paymux.api.auth import bearer_secret
from paymux.api.edge import RateLimited
from paymux.api.errors import ApiError
from paymux.api.http import SERVICE, STORE, authenticate
from paymux.config import ProxyConfig
from paymux.connectors.base import CardFields, Connector, ConnectorResult, PassthroughError
from paymux.domain.ids import new_id
from paymux.domain.outcomes import AttemptStatus, DeclineClass
from paymux.domain.records import AttemptRecord, PaymentRecord, TokenRecord
from paymux.observability import metrics
from paymux.observability.logs import log, scrub_text
from paymux.payments.effects import record_attempt_result

PROXY_CONFIG: web.AppKey[ProxyConfig] = web.AppKey("proxy_config", ProxyConfig)
PROXY_SESSIONS: web.AppKey[dict[str, aiohttp.ClientSession]] = web.AppKey("proxy_sessions", dict)

PREFIX = "/proxy"
_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer",
        "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "Content-Encoding",
        "Accept-Encoding",
    )
)  # fmt: skip
#: The merchant's credential headers: never forwarded (the PSP gets the configured ones).
_CREDENTIALS = frozenset(("authorization", "x-api-key"))
# A PAN in a JSON string value of the PSP's answer (13-19 digits), masked if it passes Luhn.
_PAN_IN_JSON = re.compile(rb'"([2-6][0-9]{12,18})"')


class _Refused(Exception):
    def __init__(self, error: PassthroughError) -> None:
        super().__init__(error.message)
        self.error = error


def _luhn(digits: bytes) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ch - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def mask_pans(body: bytes) -> bytes:
    """Every Luhn-valid card number in a JSON string of ``body`` as BIN + ``*`` + last 4."""

    def masked(m: re.Match[bytes]) -> bytes:
        pan = m.group(1)
        if not _luhn(pan):
            return m.group(0)
        return b'"' + pan[:6] + b"*" * (len(pan) - 10) + pan[-4:] + b'"'

    return _PAN_IN_JSON.sub(masked, body) if body else body


def _paymux_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"error": {"type": "api_error" if status >= 500 else "invalid_request_error",
                      "code": code, "message": message}}  # fmt: skip
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def _psp_error(connector: Connector, error: PassthroughError) -> web.Response:
    body, ctype = connector.passthrough_error(error)
    response = web.Response(status=error.status, body=body, content_type=ctype)
    response.headers["Paymux-Error"] = error.code
    return response


async def _merchant(request: web.Request, connector: Connector) -> str:
    secret = connector.merchant_credential(request.headers)
    if secret is not None and secret == bearer_secret(request):
        return await _authenticated(request)  # already where authenticate reads it: no clone
    headers = CIMultiDict(request.headers)
    headers.pop("Authorization", None)
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    return await _authenticated(request.clone(headers=headers))


async def _authenticated(request: web.Request) -> str:
    try:
        return await authenticate(request)
    except RateLimited:
        raise
    except ApiError as exc:
        raise _Refused(PassthroughError(status=401, code=exc.body.code,
                                        message="Invalid API key")) from None  # fmt: skip


# -- the request body on its way out ----------------------------------------------------------


class _Outgoing:
    """What the forwarded body said, for the health windows (never the PAN)."""

    def __init__(self) -> None:
        self.token: TokenRecord | None = None
        self.amount: int | None = None
        self.currency: str | None = None


async def _reveal(request: web.Request, merchant_id: str, token_id: str) -> Any:
    token = await request.app[STORE].get_token(merchant_id, token_id)
    if token is None or token.deleted_at is not None:
        raise _Refused(PassthroughError(status=404, code="token_not_found",
                                        message=f"No such token: '{token_id}'"))  # fmt: skip
    return token, request.app[SERVICE].vault.reveal(merchant_id, token.id, token.ciphertext)


def _get(doc: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc.setdefault(key, {})
    doc[path[-1]] = value


async def _json_body(
    request: web.Request, merchant_id: str, connector: Connector, path: str, body: bytes,
    out: _Outgoing,
) -> bytes:  # fmt: skip
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body  # the PSP answers its own 400 for it
    if not isinstance(doc, dict):
        return body
    for fields in connector.card_fields:
        value = _get(doc, fields.number)
        if isinstance(value, str) and value.startswith("tok_"):
            token, card = await _reveal(request, merchant_id, value)
            out.token = token
            _set(doc, fields.number, card.number)
            _fill_expiry(doc, fields, card, lambda d, p: _get(d, p), _set)
            del card
    connector.passthrough_defaults(request.method, path, doc)
    amount = doc.get("amount")
    if isinstance(amount, dict):  # Adyen: {"value", "currency"}
        out.amount, out.currency = amount.get("value"), amount.get("currency")
    else:
        out.amount, out.currency = amount, doc.get("currency")
    return orjson.dumps(doc)


def _fill_expiry(doc: Any, fields: CardFields, card: Any, get: Any, put: Any) -> None:
    if get(doc, fields.exp_month) in (None, ""):
        put(doc, fields.exp_month, f"{card.exp_month:02d}" if fields.expiry_as_text
            else card.exp_month)  # fmt: skip
    if get(doc, fields.exp_year) in (None, ""):
        put(doc, fields.exp_year, f"{card.exp_year:04d}" if fields.expiry_as_text
            else card.exp_year)  # fmt: skip


_NAMES: dict[bytes, str] = {}  # decoded form names: a PSP's API has few, and they repeat


def _unform_name(raw: bytes) -> str:
    name = _NAMES.get(raw)
    if name is None:
        name = _unform(raw)
        if len(_NAMES) < 4096 and len(raw) <= 128:
            _NAMES[raw] = name
    return name


def _unform(raw: bytes) -> str:
    """One name or value of a form body, decoded (most need no unquoting)."""
    if b"%" in raw or b"+" in raw:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    return raw.decode("utf-8")


async def _form_body(
    request: web.Request, merchant_id: str, connector: Connector, path: str, body: bytes,
    out: _Outgoing,
) -> bytes:  # fmt: skip
    """The form with its card tokens revealed and the connector's defaults filled in. Only the
    pairs that changed are re-encoded; the others go out byte for byte as the merchant sent them
    (the PSP reads its own malformed encodings: an undecodable body is forwarded as is)."""
    chunks: list[tuple[str, bytes, bytes]] = []
    form: dict[str, str] = {}
    try:
        for chunk in body.split(b"&"):
            if chunk:
                raw_name, _, raw_value = chunk.partition(b"=")
                name = _unform_name(raw_name)
                chunks.append((name, raw_name, chunk))
                form[name] = _unform(raw_value)
    except UnicodeDecodeError:
        return body
    sent = dict(form)
    for fields in connector.card_fields:
        name = fields.number[0]
        value = form.get(name)
        if value and value.startswith("tok_"):
            token, card = await _reveal(request, merchant_id, value)
            out.token = token
            form[name] = card.number
            _fill_expiry(
                form,
                fields,
                card,
                lambda d, p: d.get(p[0]),
                lambda d, p, v: d.__setitem__(p[0], str(v)),
            )
            del card
    connector.passthrough_defaults(request.method, path, form)
    amount = form.get("amount")
    out.amount = int(amount) if amount and amount.isdigit() else None
    out.currency = form.get("currency")
    if form == sent:
        return body
    # Pairs keep their order; a changed one is re-encoded once, new ones follow.
    parts: list[bytes] = []
    done: set[str] = set()
    for name, raw_name, chunk in chunks:
        if name not in form:
            continue
        if form[name] == sent[name]:
            parts.append(chunk)
        elif name not in done:
            parts.append(raw_name + b"=" + quote_plus(form[name]).encode())
            done.add(name)
    parts.extend(
        f"{quote_plus(n)}={quote_plus(v)}".encode() for n, v in form.items() if n not in sent
    )
    return b"&".join(parts)


# -- health -------------------------------------------------------------------------------------


def _observe(
    request: web.Request, connector: Connector, merchant_id: str, out: _Outgoing,
    result: ConnectorResult,
) -> tuple[AttemptRecord, PaymentRecord]:  # fmt: skip
    """Feed the pass-through's authorization to the health windows and metrics, as /v1 does
    for an attempt, and build the records the service stores for analytics."""
    service = request.app[SERVICE]
    now = time.time()
    token = out.token
    currency = (out.currency or "").upper() if isinstance(out.currency, str) else ""
    amount = out.amount if isinstance(out.amount, int) and not isinstance(out.amount, bool) else 0
    payment = PaymentRecord(
        id=new_id("pxy"),
        merchant_id=merchant_id,
        status="processing",
        amount=amount,
        currency=currency,
        capture_method="automatic",
        card_brand=token.brand if token else None,
        card_bin=token.bin if token else None,
        front=f"proxy:{connector.name}",
        created_at=now,
        updated_at=now,
    )
    attempt = AttemptRecord(
        id=new_id("att"),
        payment_id=payment.id,
        merchant_id=merchant_id,
        seq=1,
        connector=connector.name,
        reference="",
        status="started",
        amount=amount,
        currency=currency,
        card_brand=payment.card_brand,
        card_bin=payment.card_bin,
        created_at=now,
        updated_at=now,
    )
    record_attempt_result(attempt, result)
    service.router.observe(attempt, payment)
    metrics.attempt_finished(
        connector.name,
        attempt.status,
        attempt.normalized_code,
        attempt.decline_class,
        attempt.latency_ms,
    )
    return attempt, payment


# -- the handler --------------------------------------------------------------------------------


def _session(request: web.Request, connector: Connector) -> aiohttp.ClientSession:
    sessions = request.app[PROXY_SESSIONS]
    session = sessions.get(connector.name)
    if session is None or session.closed:
        config = connector.config
        session = sessions[connector.name] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=request.app[PROXY_CONFIG].max_connections),
            timeout=aiohttp.ClientTimeout(total=config.timeout_s, connect=config.connect_timeout_s),
            auto_decompress=True,
            skip_auto_headers=("User-Agent", "Content-Type"),
        )
    return session


async def proxy(request: web.Request) -> web.StreamResponse:
    name = request.match_info["connector"]
    connector = request.app[SERVICE].connectors.get(name)
    if connector is None:
        return _paymux_error(404, "unknown_connector", f"No connector named {name[:40]!r}")
    try:
        return await _forward(request, connector)
    except _Refused as refused:
        return _psp_error(connector, refused.error)


async def _forward(request: web.Request, connector: Connector) -> web.StreamResponse:
    merchant_id = await _merchant(request, connector)
    config = request.app[PROXY_CONFIG]
    router = request.app[SERVICE].router
    if config.refuse_when_breaker_open and router.breaker_states().get(connector.name) == "open":
        return _paymux_error(
            503,
            "connector_unavailable",
            f"{connector.name}'s circuit breaker is open: paymux does not forward to it now",
            {"Paymux-Breaker": "open", "Retry-After": "1"},
        )
    path = "/" + request.match_info["tail"]
    body = await request.read()
    out = _Outgoing()
    if body:
        if connector.passthrough_encoding == "form":
            body = await _form_body(request, merchant_id, connector, path, body, out)
        elif request.content_type in ("application/json", "") or body[:1] in (b"{", b"["):
            body = await _json_body(request, merchant_id, connector, path, body, out)
    headers = CIMultiDict(
        (k, v)
        for k, v in request.headers.items()
        if k.lower() not in _HOP and k.lower() not in _CREDENTIALS
    )
    headers.update(connector.passthrough_headers())
    url = connector.config.base_url.rstrip("/") + path
    if request.query_string:
        url += "?" + request.query_string
    # In flight for stall detection, as a /v1 attempt is; `observe` (or the finally) ends it.
    router.attempt_started(connector.name)
    observed = False
    started = time.perf_counter()
    try:
        try:
            async with _session(request, connector).request(
                request.method, url, data=body or None, headers=headers, allow_redirects=False
            ) as upstream:
                answer = await upstream.read()
                status, upstream_headers = upstream.status, upstream.headers
        except (TimeoutError, aiohttp.ServerTimeoutError):
            observed = _observe_no_answer(request, connector, merchant_id, out, "timeout", started)
            return _no_answer(request, connector, 504, "upstream_timeout", started)
        except (aiohttp.ClientError, OSError, ValueError):
            observed = _observe_no_answer(
                request, connector, merchant_id, out, "connection_error", started
            )
            return _no_answer(request, connector, 502, "upstream_unreachable", started)
        finally:
            body = b""  # the revealed PAN is not kept past the call
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        result = connector.parse_passthrough(
            request.method, path, status, upstream_headers, answer, latency_ms
        )
        attempt = None
        if result is not None:
            attempt, payment = _observe(request, connector, merchant_id, out, result)
            observed = True
            # Counted by analytics and `paymux report` like /v1 traffic, marked as pass-through.
            await request.app[SERVICE].record_passthrough(payment, attempt, result)
    finally:
        if not observed:
            router.engine.attempt_finished(connector.name)
    log(
        "passthrough",
        connector=connector.name,
        method=request.method,
        path=scrub_text(path, 100),
        status=status,
        latency_ms=latency_ms,
        merchant_id=merchant_id,
        outcome=attempt.status if attempt else None,
        normalized_code=attempt.normalized_code if attempt else None,
        decline_class=attempt.decline_class if attempt else None,
        raw_code=attempt.raw_code if attempt else None,
    )
    response = web.Response(status=status, body=mask_pans(answer))
    for key, value in upstream_headers.items():
        if key.lower() not in _HOP:
            response.headers.add(key, value)
    response.headers["Paymux-Connector"] = connector.name
    return response


def _observe_no_answer(
    request: web.Request,
    connector: Connector,
    merchant_id: str,
    out: _Outgoing,
    code: str,
    started: float,
) -> bool:
    """A PSP that did not answer an authorization is what its breaker must hear about (a
    technical outcome), as for /v1. Only requests that carried an amount count as one."""
    if not isinstance(out.amount, int) or isinstance(out.amount, bool):
        return False
    result = ConnectorResult(
        status=AttemptStatus.FAILED,
        normalized_code=code,
        decline_class=DeclineClass.TECHNICAL,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
        ambiguous=True,
    )
    _observe(request, connector, merchant_id, out, result)
    return True


def _no_answer(
    request: web.Request, connector: Connector, status: int, code: str, started: float
) -> web.Response:
    log(
        "passthrough_no_answer",
        logging.WARNING,
        connector=connector.name,
        method=request.method,
        code=code,
        latency_ms=round((time.perf_counter() - started) * 1000, 3),
    )
    what = "did not answer in time" if status == 504 else "did not answer"
    return _paymux_error(
        status,
        code,
        f"{connector.name} {what}; the request was not retried and may or may not have "
        "reached the PSP",
        {"Paymux-Upstream": "no-answer"},
    )


def add_passthrough_routes(app: web.Application, config: ProxyConfig) -> None:
    if not config.enabled:
        return
    app[PROXY_CONFIG] = config
    app[PROXY_SESSIONS] = {}
    app.router.add_route("*", PREFIX + "/{connector}/{tail:.*}", proxy)

    async def close_sessions(app: web.Application) -> None:
        for session in app[PROXY_SESSIONS].values():
            await session.close()

    app.on_cleanup.append(close_sessions)
