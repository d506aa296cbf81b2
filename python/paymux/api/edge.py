"""The HTTP edge: what a slow, oversized, malformed, disconnecting or flooding client meets.

aiohttp provides the idle keep-alive timeout, the request-line and header-line limits and the body
size limit while reading; the OS provides the listen backlog, the file-descriptor limit and socket
filters. This module adds what neither does, in one `RequestHandler` subclass (`EdgeProtocol`):

- a header read timeout (from a request's first byte to the end of its headers) and a body read
  timeout (from the end of the headers to the end of the body): 408 and the connection closed;
- a cap on the total size of a request's headers: 431;
- `Content-Length` checked against the body limit as soon as the headers are parsed, before any
  of the body is read and before routing, so `Expect: 100-continue` gets the 413 instead of
  `100 Continue`;
- a cap on concurrent connections per worker: a 503 and a close, never an unbounded queue;
- error answers for unparseable requests in the usual error JSON, logged by type only (aiohttp's
  own "Error handling request" line carries the raw request);
- sources banned for flooding failed authentications: their connections are closed and, on Linux
  over IPv4, their new connections dropped by a socket filter on the listening socket (the kernel
  drops the SYN; nothing reaches user space), else aborted at accept.

It also holds the rate limiters (`AuthLimiter` for failed authentications per source and per key
prefix, `MerchantLimiter`, a token bucket per merchant) and the set of in-flight state-changing
requests, which a client's disconnect never cancels and a shutdown waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import ipaddress
import logging
import math
import socket
import sys
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler, _ErrInfo
from aiohttp.web_server import Server

from paymux.api.errors import ApiError, ErrorBody, ErrorEnvelope
from paymux.api.schemas import encode_body
from paymux.config import RateLimitConfig, ServerConfig
from paymux.domain.ids import random_hex
from paymux.observability import metrics
from paymux.observability.logs import log

T = TypeVar("T")


class RateLimited(ApiError):
    """A 429: `retry_after` whole seconds; `close` when the source is banned (connection closed)."""

    def __init__(self, code: str, message: str, retry_after: float, close: bool = False) -> None:
        super().__init__(429, "rate_limit_error", code, message)
        self.retry_after = max(1, math.ceil(retry_after))
        self.close = close


class BodyTimeout(Exception):
    """The client did not send its body within `body_timeout_s`."""


class BodyTooLarge(HttpProcessingError):
    code = 413
    message = "Request body too large"


class HeadersTooLarge(HttpProcessingError):
    code = 431
    message = "Request headers too large"


# -- rate limiters ------------------------------------------------------------------------------


class FixedWindows:
    """Counters per key over fixed windows of `window_s`; bounded memory (expired keys pruned,
    and at worst all forgotten, when `max_keys` is reached)."""

    def __init__(self, window_s: float, max_keys: int = 100_000) -> None:
        self.window_s = window_s
        self.max_keys = max_keys
        self._counts: dict[str, list[float]] = {}  # key -> [window start, count]

    def count(self, key: str, now: float) -> int:
        entry = self._counts.get(key)
        if entry is None or now - entry[0] >= self.window_s:
            return 0
        return int(entry[1])

    def add(self, key: str, now: float) -> int:
        entry = self._counts.get(key)
        if entry is None or now - entry[0] >= self.window_s:
            if len(self._counts) >= self.max_keys:
                self._prune(now)
            self._counts[key] = entry = [now, 0.0]
        entry[1] += 1
        return int(entry[1])

    def retry_after(self, key: str, now: float) -> float:
        entry = self._counts.get(key)
        return self.window_s if entry is None else entry[0] + self.window_s - now

    def _prune(self, now: float) -> None:
        live = {k: v for k, v in self._counts.items() if now - v[0] < self.window_s}
        self._counts = live if len(live) < self.max_keys else {}


class MerchantLimiter:
    """A token bucket per merchant: `rps` tokens per second, at most `burst` saved up."""

    def __init__(self, config: RateLimitConfig, workers: int) -> None:
        share = max(1, workers)
        self.default = (config.merchant_rps / share, max(1.0, config.merchant_burst / share))
        self.overrides = {
            m: (o.rps / share, max(1.0, o.burst / share)) for m, o in config.merchants.items()
        }
        self._buckets: dict[str, list[float]] = {}  # merchant -> [tokens, last refill]

    def take(self, merchant_id: str, now: float) -> float | None:
        """None if admitted, else the seconds until a token is there."""
        rate, burst = self.overrides.get(merchant_id, self.default)
        if rate <= 0:
            return None
        bucket = self._buckets.get(merchant_id)
        if bucket is None:
            bucket = self._buckets[merchant_id] = [burst, now]
        tokens = min(burst, bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return None
        bucket[0] = tokens
        return (1.0 - tokens) / rate


# -- the kernel's part of a ban -----------------------------------------------------------------

_SO_ATTACH_FILTER = 26
_SKF_NET_OFF = -0x100000
_MAX_FILTERED = 250  # a cBPF jump offset is one byte


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def drop_sources_filter(sock: socket.socket, sources: list[str]) -> bool:
    """Attach a classic BPF filter to a listening IPv4 socket that drops every packet from
    `sources` (so the kernel never completes their handshakes). False where unsupported."""
    if not sys.platform.startswith("linux") or sock.family != socket.AF_INET:
        return False
    addrs = [int(ipaddress.IPv4Address(s)) for s in sources[-_MAX_FILTERED:]]
    n = len(addrs)
    # ld [net + 12] (the source address); jeq each -> drop; ret accept; drop: ret 0
    insns = [(0x20, 0, 0, (_SKF_NET_OFF + 12) & 0xFFFFFFFF)]
    insns += [(0x15, n + 1 - j, 0, a) for j, a in enumerate(addrs, start=1)]
    insns += [(0x06, 0, 0, 0xFFFFFFFF), (0x06, 0, 0, 0)]
    array = (_SockFilter * len(insns))(*[_SockFilter(*i) for i in insns])
    prog = _SockFprog(len(insns), ctypes.cast(array, ctypes.POINTER(_SockFilter)))
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, bytes(prog))
    except OSError:
        return False
    return True


# -- the edge's state ---------------------------------------------------------------------------


class Edge:
    """Limits and limiters of one worker process."""

    def __init__(self, server: ServerConfig, limits: RateLimitConfig) -> None:
        self.server = server
        self.limits = limits
        self.max_body = server.max_body_bytes
        self.access_log = server.access_log
        self.auth_sources = FixedWindows(limits.auth_failure_window_s)
        self.auth_prefixes = FixedWindows(limits.auth_failure_window_s)
        self.merchants = MerchantLimiter(limits, server.workers)
        self.exempt = frozenset(limits.exempt_sources)
        self.banned: dict[str, float] = {}  # source -> monotonic time the ban ends
        self.sockets: list[socket.socket] = []  # listening sockets carrying the ban filter
        self.kernel_filtered = False
        self.inflight: set[asyncio.Future[Any]] = set()
        self._unban_handle: asyncio.TimerHandle | None = None

    # -- failed authentication ----------------------------------------------------------------

    def check_auth(self, source: str | None, prefix: str | None) -> None:
        """Before a key is looked up: 429 if its source or its prefix failed too often."""
        if not self.limits.enabled or source in self.exempt:
            return
        now = time.monotonic()
        if source is not None:
            if source in self.banned:
                self._refuse_banned(source, now)
            if self.auth_sources.count(source, now) >= self.limits.auth_failures_per_source:
                self._note_failure(source, prefix, now)
                metrics.rate_limited("auth_source")
                raise RateLimited(
                    "too_many_failed_authentications",
                    "Too many failed authentications from this address; retry later",
                    self.auth_sources.retry_after(source, now),
                    close=source in self.banned,
                )
        if (
            prefix is not None
            and self.auth_prefixes.count(prefix, now) >= self.limits.auth_failures_per_prefix
        ):
            self._note_failure(source, prefix, now)
            metrics.rate_limited("auth_prefix")
            raise RateLimited(
                "too_many_failed_authentications",
                "Too many failed authentications with this key; retry later",
                self.auth_prefixes.retry_after(prefix, now),
            )

    def auth_failed(self, source: str | None, prefix: str | None) -> None:
        """A missing or invalid credential: count it; a source past the ban threshold is
        refused (this request's connection closed) from now on."""
        if not self.limits.enabled or source in self.exempt:
            return
        now = time.monotonic()
        self._note_failure(source, prefix, now)
        if source is not None and source in self.banned:
            self._refuse_banned(source, now)

    def _note_failure(self, source: str | None, prefix: str | None, now: float) -> None:
        if prefix is not None:
            self.auth_prefixes.add(prefix, now)
        if source is not None:
            failures = self.auth_sources.add(source, now)
            if failures >= self.limits.ban_after_failures and source not in self.banned:
                self.ban(source, now)

    def _refuse_banned(self, source: str, now: float) -> None:
        until = self.banned.get(source, now)
        if until <= now:
            self.banned.pop(source, None)
            return
        raise RateLimited(
            "source_banned", "Too many failed authentications; retry later", until - now, True
        )

    # -- bans -----------------------------------------------------------------------------------

    def ban(self, source: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.banned[source] = now + self.limits.ban_s
        metrics.rate_limited("ban")
        log("source_banned", logging.WARNING, source=source, ban_s=self.limits.ban_s)
        self._refilter()
        with contextlib.suppress(RuntimeError):  # no running loop (a unit test): lazily expired
            loop = asyncio.get_running_loop()
            if self._unban_handle is None:
                self._unban_handle = loop.call_later(self.limits.ban_s, self._expire_bans)

    def is_banned(self, source: str) -> bool:
        until = self.banned.get(source)
        if until is None:
            return False
        if until <= time.monotonic():
            self._expire_bans()
            return False
        return True

    def _expire_bans(self) -> None:
        self._unban_handle = None
        now = time.monotonic()
        expired = [s for s, until in self.banned.items() if until <= now]
        for source in expired:
            del self.banned[source]
            log("source_unbanned", source=source)
        if expired:
            self._refilter()
        if self.banned:
            with contextlib.suppress(RuntimeError):
                next_end = min(self.banned.values())
                self._unban_handle = asyncio.get_running_loop().call_later(
                    max(0.05, next_end - now), self._expire_bans
                )

    def add_socket(self, sock: socket.socket) -> None:
        self.sockets.append(sock)
        self._refilter()

    def _refilter(self) -> None:
        v4 = [s for s in self.banned if "." in s and ":" not in s]
        ok = bool(self.sockets)
        for sock in self.sockets:
            ok = drop_sources_filter(sock, v4) and ok
        self.kernel_filtered = ok

    # -- merchants ------------------------------------------------------------------------------

    def admit_merchant(self, merchant_id: str) -> None:
        if not self.limits.enabled:
            return
        wait = self.merchants.take(merchant_id, time.monotonic())
        if wait is not None:
            metrics.rate_limited("merchant")
            raise RateLimited(
                "rate_limited", "Too many requests for this merchant; slow down", wait
            )

    # -- requests a disconnect must not cancel ------------------------------------------------

    async def shielded(self, coro: Awaitable[T]) -> T:
        """Run a state-changing handler to its end even if the request's task is cancelled (a
        client gone with handler cancellation on, or a shutdown): the payment it sent to a PSP
        completes and is stored, so the client's retry with its Idempotency-Key replays it."""
        task = asyncio.ensure_future(coro)
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)
        return await asyncio.shield(task)

    async def drain(self, timeout: float) -> None:
        """On shutdown: wait (bounded) for the shielded handlers still running."""
        if self.inflight:
            await asyncio.wait(list(self.inflight), timeout=timeout)


EDGE: web.AppKey[Edge] = web.AppKey("edge", Edge)


def error_bytes(status: int, code: str, message: str, rid: str, extra: str = "") -> bytes:
    """A complete HTTP/1.1 error response (the usual error JSON) that closes the connection, for
    answers given before aiohttp has a request to answer."""
    body = encode_body(
        ErrorEnvelope(error=ErrorBody(type="invalid_request_error", code=code, message=message))
    )
    reason = {408: "Request Timeout", 431: "Request Header Fields Too Large"}.get(
        status, "Service Unavailable"
    )
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\nX-Request-Id: {rid}\r\n{extra}\r\n"
    )
    return head.encode() + body


# -- the protocol -------------------------------------------------------------------------------

_HEADERS, _BODY = 0, 1
_EMPTY_CONTEXT = contextvars.Context()


class EdgeProtocol(RequestHandler):
    """aiohttp's request handler with the edge's timeouts, header cap, early 413, connection cap
    and bans (see the module docstring)."""

    def __init__(self, manager: Server, *, edge: Edge, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._edge = edge
        self._peer: str | None = None
        self._phase = _HEADERS
        self._header_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._body: Any = None  # the payload whose body the body timeout watches
        self._draining = False  # answered and closing: input is discarded

    # connection ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        edge = self._edge
        peer = transport.get_extra_info("peername")
        source = peer[0] if isinstance(peer, tuple) and peer else None
        if source is not None and edge.banned and edge.is_banned(source):
            metrics.edge_refused("banned")
            self._manager = None  # connection_lost: nothing to undo
            transport.abort()  # type: ignore[attr-defined]
            return
        manager = self._manager
        if manager is not None and len(manager.connections) >= edge.server.max_connections:
            metrics.edge_refused("max_connections")
            log("connection_refused", logging.WARNING, reason="max_connections")
            self._manager = None
            transport.write(  # type: ignore[attr-defined]
                error_bytes(
                    503,
                    "too_many_connections",
                    "The server is at its connection limit; retry shortly",
                    random_hex(16),
                    "Retry-After: 1\r\n",
                )
            )
            transport.close()
            return
        self._peer = source
        super().connection_made(transport)
        self._arm(self._edge.server.header_timeout_s, "header_timeout")

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # timers ---------------------------------------------------------------------------------

    def _arm(self, seconds: float, reason: str) -> None:
        self._disarm()
        if seconds > 0:
            # In an empty context: a request's context (its request id) must not leak into it.
            self._deadline = self._loop.call_later(
                seconds, self._expired, reason, context=_EMPTY_CONTEXT
            )

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, reason: str) -> None:
        self._deadline = None
        if self.transport is None:
            return
        metrics.edge_refused(reason)
        log("request_timeout", reason=reason, source=self._peer)
        if reason == "body_timeout" and self._body is not None and not self._body.is_eof():
            # The handler reading it gets BodyTimeout (a 408 from the middleware); nothing of
            # the rest is waited for.
            self._lingering_time = 0.0
            self._body.set_exception(BodyTimeout())
            self._body = None
            return
        if self._request_in_progress:  # a pipelined request's headers behind a running one
            self._arm(self._edge.server.header_timeout_s, reason)
            return
        self._answer_and_close(
            error_bytes(
                408, "request_timeout", "The request was not received in time", random_hex(16)
            )
        )

    def _answer_and_close(self, response: bytes) -> None:
        """Write a final answer, half-close, and discard what the client still sends for a
        moment before closing (closing with unread input would reset the connection, and the
        client could lose the answer)."""
        transport = self.transport
        if transport is None:
            return
        self._draining = True
        transport.write(response)
        if transport.can_write_eof():
            transport.write_eof()
        self._loop.call_later(1.0, self.force_close, context=_EMPTY_CONTEXT)

    # data -----------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._draining:
            return
        if not data:  # aiohttp re-parses its buffer this way after a pause: nothing arrived
            super().data_received(data)
            return
        edge = self._edge
        if self._peer is not None and edge.banned and edge.is_banned(self._peer):
            metrics.edge_refused("banned")
            if self.transport is not None:
                self.transport.abort()
            return
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:
            self._headers_done()
            return
        if self._phase == _BODY:
            if self._body is None or self._body.is_eof():
                self._phase = _HEADERS
                self._header_bytes = 0
                self._disarm()
            return
        self._header_bytes += len(data)
        if self._header_bytes > edge.server.max_header_bytes and self.transport is not None:
            metrics.edge_refused("headers_too_large")
            log("request_refused", reason="headers_too_large", source=self._peer)
            self._answer_and_close(
                error_bytes(
                    431,
                    "headers_too_large",
                    "The request line and headers are too large",
                    random_hex(16),
                )
            )
            return
        if self._deadline is None:
            self._arm(edge.server.header_timeout_s, "header_timeout")

    def _headers_done(self) -> None:
        """A request's headers were parsed: refuse a declared body over the limit now, else
        watch the body's arrival."""
        self._header_bytes = 0
        self._disarm()
        if not self._messages:
            return
        message, payload = self._messages[-1]
        if isinstance(message, _ErrInfo):
            self._phase = _HEADERS
            return
        size = len(message.path) + sum(len(k) + len(v) + 4 for k, v in message.raw_headers)
        if size > self._edge.server.max_header_bytes:
            self._messages[-1] = (
                _ErrInfo(status=431, exc=HeadersTooLarge(), message="headers too large"),
                EMPTY_PAYLOAD,
            )
            self._phase = _HEADERS
            return
        length = message.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > self._edge.max_body:
            self._messages[-1] = (
                _ErrInfo(status=413, exc=BodyTooLarge(), message="body too large"),
                EMPTY_PAYLOAD,
            )
            self._phase = _HEADERS
            return
        if payload.is_eof():
            self._phase = _HEADERS
            return
        self._phase = _BODY
        self._body = payload
        self._arm(self._edge.server.body_timeout_s, "body_timeout")

    # errors aiohttp answers itself ----------------------------------------------------------

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Unparseable requests and failures outside the middleware: the usual error JSON,
        logged by type only (the exception's text can hold the raw request)."""
        if isinstance(exc, (LineTooLong, HeadersTooLarge)):
            status = 431
        if status >= 500:
            reason, code, text = "server_error", "internal_error", "An internal error occurred"
            log("unhandled_error", logging.ERROR, error_type=type(exc).__name__, where="edge")
        elif status == 413:
            reason, code, text = "body_too_large", "body_too_large", "The request body is too large"
        elif status == 431:
            reason, code = "headers_too_large", "headers_too_large"
            text = "The request line or a header is too large"
        else:
            reason, code, text = "malformed", "malformed_request", "The request is not valid HTTP"
        metrics.edge_refused(reason)
        rid = random_hex(16)
        log(
            "request_refused",
            status=status,
            reason=reason,
            error_type=type(exc).__name__ if exc else None,
            source=self._peer,
            request_id=rid,
        )
        if request.writer.output_size > 0:
            raise ConnectionError("a response was sent already")
        error = ApiError(
            status, "api_error" if status >= 500 else "invalid_request_error", code, text
        )
        resp = web.Response(
            status=status,
            body=encode_body(ErrorEnvelope(error=error.body)),
            content_type="application/json",
            headers={"X-Request-Id": rid},
        )
        resp.force_close()
        return resp


class EdgeServer(Server):
    def __init__(self, handler: Any, *, edge: Edge, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.edge = edge

    def __call__(self) -> RequestHandler:
        return EdgeProtocol(self, loop=self._loop, edge=self.edge, **self._kwargs)


class EdgeRunner(web.AppRunner):
    """An AppRunner whose connections are `EdgeProtocol`s configured from `[server]`."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        self.edge = app[EDGE]
        server = self.edge.server
        super().__init__(
            app,
            handle_signals=False,
            access_log=None,  # the middleware's scrubbed "request" line is the access log
            keepalive_timeout=server.keepalive_timeout_s,
            max_line_size=server.max_header_line_bytes,
            max_field_size=server.max_header_line_bytes,
            max_headers=server.max_headers,
            lingering_time=2.0,
            shutdown_timeout=server.shutdown_timeout_s,
            **kwargs,
        )

    async def _make_server(self) -> Server:
        base = await super()._make_server()
        return EdgeServer(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=base._loop,
            edge=self.edge,
            **base._kwargs,
        )

    async def serve_socket(self, sock: socket.socket) -> None:
        """Serve on a bound, listening socket (its ban filter managed by the edge)."""
        self.edge.add_socket(sock)
        await web.SockSite(self, sock).start()

    async def serve(self, host: str, port: int, reuse_port: bool = False) -> socket.socket:
        sock = bind_socket(host, port, reuse_port)
        await self.serve_socket(sock)
        return sock


def bind_socket(
    host: str, port: int, reuse_port: bool = False, backlog: int = 4096
) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def raise_fd_limit(connections: int) -> None:
    """Lift the soft file-descriptor limit toward the hard one, so `max_connections` is reached
    before the process runs out of descriptors (accept would fail and spin otherwise)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, max(soft, connections + 256)) if hard > 0 else connections + 256
        if want > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ImportError, ValueError, OSError):
        pass


def install(app: web.Application, server: ServerConfig, limits: RateLimitConfig) -> Edge:
    """Give an app its edge: limits, limiters, and a shutdown that waits for shielded handlers."""
    edge = Edge(server, limits)
    app[EDGE] = edge

    async def drain(app: web.Application) -> None:
        await edge.drain(server.shutdown_timeout_s)

    app.on_shutdown.append(drain)
    return edge


__all__ = [
    "EDGE",
    "BodyTimeout",
    "Edge",
    "EdgeRunner",
    "RateLimited",
    "bind_socket",
    "install",
    "raise_fd_limit",
]
