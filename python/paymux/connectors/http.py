"""The HTTP plumbing every built-in connector shares: one pooled session, timing, and turning
transport failures into ``technical`` results with the right ``ambiguous`` flag.

Ambiguity is decided by whether the request started going out on an established connection:
before that point the PSP surely never saw it (connection refused, DNS, connect timeout, waiting
for a pooled connection); after it, the PSP may have acted on it (read timeout, reset, truncated
body).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import aiohttp
import orjson

from paymux.connectors.base import Connector, ConnectorConfig, ConnectorResult
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
        """A body we cannot use. 5xx or a 2xx we cannot read: the PSP may have acted on it."""
        if reply.status >= 500:
            return self._technical(reply, "psp_server_error", operation=operation, ambiguous=True)
        if reply.status in (401, 403):
            return self._technical(
                reply, "authentication_failed", operation=operation, ambiguous=False
            )
        if reply.status == 429:
            return self._technical(reply, "rate_limited", operation=operation, ambiguous=False)
        return self._technical(reply, "invalid_response", operation=operation, ambiguous=True)

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
