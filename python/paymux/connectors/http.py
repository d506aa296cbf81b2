"""The HTTP plumbing every built-in connector shares: one pooled session, timing, and turning
transport failures into ``technical`` results with the right ``ambiguous`` flag.

Ambiguity is decided by whether the request started going out on an established connection:
before that point the PSP surely never saw it (connection refused, DNS, connect timeout, waiting
for a pooled connection); after it, the PSP may have acted on it (read timeout, reset, truncated
body).

Every built-in connector turns a reply into a result the same way: ``HttpConnector._read`` is the
one prologue (transport failure, 5xx, unreadable body -> a technical result; otherwise the decoded
body for the PSP-specific parser), and ``classify_status`` / ``classify_unreadable`` are the one
place an HTTP status gets paymux's meaning. What stays in each connector is only what is
particular to its PSP: decline tables, PSP error codes, status fields.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Self

import aiohttp
import orjson

from paymux.connectors.base import (
    Connector,
    ConnectorConfig,
    ConnectorResult,
    OperationSyncRequest,
)
from paymux.connectors.errors import DeclineTable, load_table, load_table_file
from paymux.connectors.scrub import scrub_detail
from paymux.domain.outcomes import AttemptStatus, DeclineClass


@dataclass(slots=True)
class Reply:
    """A complete HTTP answer from the PSP (any status)."""

    status: int
    body: bytes
    headers: Mapping[str, str]
    latency_ms: float

    def json(self) -> Any:
        """The decoded JSON body, or None when it is not JSON (HTML, truncated, empty)."""
        if not self.body:
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None


@dataclass(slots=True)
class TransportFailure:
    """No complete HTTP answer: the request failed on the way out or on the way back."""

    code: str  # "timeout" | "connection_error"
    ambiguous: bool
    detail: str
    latency_ms: float


def classify_status(status: int) -> tuple[str, bool] | None:
    """paymux's code and ``ambiguous`` flag for a status that fails the call whatever the body
    says, or None when the body decides (2xx, and 4xx answers the PSP explains in its body).

    - 5xx: ``psp_server_error``, ambiguous: the PSP (or a proxy in front of it) may have acted.
    - 401 / 403: ``authentication_failed``, not ambiguous: the PSP refused to look at the request.
    - 429: ``rate_limited``, not ambiguous: refused before processing.
    - 409: ``idempotency_conflict``, ambiguous: a request with this key reached the PSP (it is in
      flight, or was made with other parameters).
    """
    if status >= 500:
        return "psp_server_error", True
    if status in (401, 403):
        return "authentication_failed", False
    if status == 429:
        return "rate_limited", False
    if status == 409:
        return "idempotency_conflict", True
    return None


def classify_unreadable(status: int) -> tuple[str, bool]:
    """The code and ``ambiguous`` flag for an answer whose body cannot be used (HTML, truncated or
    empty JSON, JSON of the wrong shape): the status decides when it can (``classify_status``);
    an unreadable 2xx or 3xx may be a success we cannot see, so it is ambiguous; a 4xx refused
    the request, so it is not."""
    fixed = classify_status(status)
    if fixed is not None:
        return fixed
    return "invalid_response", not 400 <= status < 500


def cannot_tell(result: ConnectorResult) -> ConnectorResult:
    """A ``sync_operation`` answer: a lookup that failed (whatever the reason, even an
    authentication error or a refused connection) says nothing about the operation, so every
    FAILED result is "cannot tell yet" (``ambiguous``), never a verdict."""
    if result.status is AttemptStatus.FAILED:
        result.ambiguous = True
    return result


#: The operations ``sync_operation`` knows, and the status an applied one has.
OPERATION_DONE = {
    "capture": AttemptStatus.CAPTURED,
    "void": AttemptStatus.VOIDED,
    "refund": AttemptStatus.REFUNDED,
}


def unknown_operation(request: OperationSyncRequest) -> ConnectorResult | None:
    """A FAILED/ambiguous result for an operation name ``sync_operation`` does not know."""
    if request.operation in OPERATION_DONE:
        return None
    return ConnectorResult(
        status=AttemptStatus.FAILED,
        normalized_code="unsupported_operation",
        decline_class=DeclineClass.TECHNICAL,
        ambiguous=True,
        detail=f"no lookup for operation {request.operation!r}",
    )


# Set by _MarkedRequest.send, in the calling task's context, when the request starts going out
# on an established connection. (An aiohttp trace hook on "headers sent" told the same at about
# 40 us of CPU per request, a tenth of what a whole proxied request costs.)
_sending: contextvars.ContextVar[bool] = contextvars.ContextVar("paymux_sending", default=False)


class _MarkedRequest(aiohttp.ClientRequest):
    async def send(self, conn: Any) -> aiohttp.ClientResponse:
        _sending.set(True)
        return await super().send(conn)


class HttpConnector(Connector):
    """A connector speaking HTTP to one PSP through one pooled ``aiohttp.ClientSession``.

    Subclasses set ``table_name`` and implement ``_auth_headers``; they call ``_request`` and turn
    its ``Reply`` into a result, or hand a ``TransportFailure`` to ``_transport_result``.
    """

    table_name: str = ""  # a built-in table: paymux/connectors/tables/<name>.toml
    table_path: str | None = None  # or a table file of your own (a plugin's), loaded once

    def __init__(self, config: ConnectorConfig) -> None:
        super().__init__(config)
        self._session: aiohttp.ClientSession | None = None
        self.table: DeclineTable = (
            load_table_file(self.table_path)
            if self.table_path
            else load_table(self.table_name or self.kind)
        )
        self.log = logging.getLogger(f"paymux.connectors.{self.kind}")
        self._base = config.base_url.rstrip("/")

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._session is not None and not self._session.closed:
            return
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.config.max_connections),
            timeout=aiohttp.ClientTimeout(
                total=self.config.timeout_s, connect=self.config.connect_timeout_s
            ),
            request_class=_MarkedRequest,
            json_serialize=lambda obj: orjson.dumps(obj).decode(),
            raise_for_status=False,
            auto_decompress=True,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- hooks ------------------------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    def map_error(self, raw_code: str | None) -> tuple[str, DeclineClass]:
        return self.table.decline(raw_code)

    def passthrough_headers(self) -> dict[str, str]:
        return {k: v for k, v in self._auth_headers().items() if k.lower() != "accept"}

    # -- the one place a request goes out --------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        form: str | None = None,
        params: Mapping[str, str] | None = None,
        idempotency_header: str | None = None,
        idempotency_key: str | None = None,
    ) -> Reply | TransportFailure:
        if self._session is None or self._session.closed:
            await self.start()
        assert self._session is not None
        headers = self._auth_headers()
        data: bytes | str | None = None
        if json is not None:
            headers["Content-Type"] = "application/json"
            data = orjson.dumps(json)
        elif form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = form
        if idempotency_header and idempotency_key:
            headers[idempotency_header] = idempotency_key
        _sending.set(False)
        started = time.perf_counter()
        try:
            async with self._session.request(
                method,
                self._base + path,
                data=data,
                params=params,
                headers=headers,
            ) as resp:
                body = await resp.read()
                return Reply(resp.status, body, resp.headers, _ms(started))
        except asyncio.CancelledError:
            raise
        except aiohttp.ClientConnectorError as exc:  # refused, DNS, TLS handshake: never sent
            return self._failure("connection_error", _sending.get(), exc, started)
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            return self._failure("timeout", _sending.get(), exc, started)
        except aiohttp.ClientError as exc:  # reset, disconnect, truncated payload, bad HTTP
            return self._failure("connection_error", _sending.get(), exc, started)
        except Exception as exc:  # noqa: BLE001  (nothing a PSP does may escape as an exception)
            return self._failure("connection_error", _sending.get(), exc, started)

    def _failure(
        self, code: str, sent: bool, exc: BaseException, started: float
    ) -> TransportFailure:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return TransportFailure(code, sent, self._scrub(text) or "", _ms(started))

    # -- result builders -------------------------------------------------------------------------

    def _scrub(self, raw: bytes | str | None) -> str | None:
        return scrub_detail(raw, secrets=(self.config.api_key, self.config.webhook_secret))

    def _transport_result(self, failure: TransportFailure, *, operation: str) -> ConnectorResult:
        result = ConnectorResult(
            status=AttemptStatus.FAILED,
            normalized_code=failure.code,
            decline_class=DeclineClass.TECHNICAL,
            latency_ms=failure.latency_ms,
            ambiguous=failure.ambiguous,
            detail=failure.detail,
        )
        self._log_technical(operation, result)
        return result

    def _technical(
        self,
        reply: Reply,
        code: str,
        *,
        operation: str,
        ambiguous: bool,
        raw_code: str | None = None,
        raw_message: str | None = None,
        connector_reference: str | None = None,
    ) -> ConnectorResult:
        """A technical failure on a complete HTTP answer (5xx, garbage, auth, API error)."""
        result = ConnectorResult(
            status=AttemptStatus.FAILED,
            connector_reference=connector_reference,
            raw_code=raw_code,
            raw_message=self._scrub(raw_message) if raw_message else None,
            normalized_code=code,
            decline_class=DeclineClass.TECHNICAL,
            http_status=reply.status,
            latency_ms=reply.latency_ms,
            ambiguous=ambiguous,
            detail=self._scrub(reply.body)
            if reply.body
            else f"HTTP {reply.status} with empty body",
        )
        self._log_technical(operation, result)
        return result

    def _unreadable(self, reply: Reply, *, operation: str) -> ConnectorResult:
        """A body we cannot use, classified by its status (``classify_unreadable``)."""
        code, ambiguous = classify_unreadable(reply.status)
        return self._technical(reply, code, operation=operation, ambiguous=ambiguous)

    def _read(
        self,
        reply: Reply | TransportFailure,
        *,
        operation: str,
        shape: type | tuple[type, ...] = dict,
        empty_ok: Collection[int] = (),
    ) -> tuple[Reply, Any] | ConnectorResult:
        """The one response prologue: a finished technical result for a transport failure, any
        5xx, or a body that is not JSON of the expected ``shape`` (object, list, or either);
        otherwise the reply and its decoded body for the PSP-specific parser. ``empty_ok`` lists
        the statuses at which this PSP documents an empty body (Checkout.com's 202/401/403/404):
        there an empty body reads as an empty ``shape`` (an empty object when either will do)."""
        if isinstance(reply, TransportFailure):
            return self._transport_result(reply, operation=operation)
        if reply.status >= 500:
            return self._unreadable(reply, operation=operation)
        if not reply.body.strip() and reply.status in empty_ok:
            return reply, (shape() if isinstance(shape, type) else {})
        body = reply.json()
        if not isinstance(body, shape):
            return self._unreadable(reply, operation=operation)
        return reply, body

    def _status_failure(
        self,
        reply: Reply,
        *,
        operation: str,
        raw_code: str | None = None,
        raw_message: str | None = None,
        connector_reference: str | None = None,
    ) -> ConnectorResult | None:
        """The technical result for a status ``classify_status`` decides on its own (401, 403,
        409, 429, 5xx), keeping the PSP's raw code; None when the body must decide."""
        fixed = classify_status(reply.status)
        if fixed is None:
            return None
        code, ambiguous = fixed
        return self._technical(
            reply,
            code,
            operation=operation,
            ambiguous=ambiguous,
            raw_code=raw_code,
            raw_message=raw_message,
            connector_reference=connector_reference,
        )

    @staticmethod
    def _not_found(reply: Reply) -> ConnectorResult:
        return ConnectorResult(
            status=AttemptStatus.NOT_FOUND, http_status=reply.status, latency_ms=reply.latency_ms
        )

    def _declined(
        self,
        reply: Reply,
        raw_code: str | None,
        *,
        raw_message: str | None = None,
        advice_code: str | None = None,
        connector_reference: str | None = None,
        amount: int | None = None,
        status: AttemptStatus = AttemptStatus.DECLINED,
        error: bool = False,
    ) -> ConnectorResult:
        """A real answer that said no, classified through the table (and the advice code)."""
        code, cls = self.table.error(raw_code) if error else self.table.decline(raw_code)
        cls = self.table.apply_advice(cls, advice_code)
        return ConnectorResult(
            status=status,
            connector_reference=connector_reference,
            amount=amount,
            raw_code=raw_code,
            raw_message=self._scrub(raw_message) if raw_message else None,
            normalized_code=code,
            decline_class=cls,
            advice_code=advice_code,
            http_status=reply.status,
            latency_ms=reply.latency_ms,
        )

    def _log_technical(self, operation: str, result: ConnectorResult) -> None:
        self.log.warning(
            "psp call failed connector=%s operation=%s code=%s http_status=%s ambiguous=%s "
            "latency_ms=%.1f detail=%s",
            self.name,
            operation,
            result.normalized_code,
            result.http_status,
            result.ambiguous,
            result.latency_ms,
            result.detail,
        )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)


def json_object(reply: Reply) -> dict[str, Any] | None:
    """The body as a JSON object, or None (not JSON, or JSON that is not an object)."""
    body = reply.json()
    return body if isinstance(body, dict) else None


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (PSP bodies are never trusted)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def as_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    return None


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name from any mapping (aiohttp's CIMultiDict or a dict)."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, val in headers.items():
        if key.lower() == lowered:
            return val
    return None
