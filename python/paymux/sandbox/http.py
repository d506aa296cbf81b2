"""HTTP plumbing shared by the PSP dialects: JSON answers, late or dropped delivery, idempotency."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import struct
from typing import Any

import orjson
from aiohttp import web

from paymux.sandbox.engine import Decision, PspState, Sandbox, StoredResponse

JSON = "application/json"


def json_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj), content_type=JSON, headers=headers)


def fingerprint(request: web.Request, body: bytes) -> bytes:
    return hashlib.blake2b(request.method.encode() + request.path.encode() + b"\0" + body,
                           digest_size=16).digest()  # fmt: skip


def replay(stored: StoredResponse, extra_headers: dict[str, str] | None = None) -> web.Response:
    headers = dict(stored.headers)
    if extra_headers:
        headers.update(extra_headers)
    return web.Response(status=stored.status, body=stored.body, content_type=JSON, headers=headers)


def store(psp: PspState, key: str | None, fp: bytes, response: web.Response) -> web.Response:
    """Keep the answer under the idempotency key before it is (maybe never) delivered."""
    if key:
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
        psp.remember(key, StoredResponse(fp, response.status, response.body, headers))  # type: ignore[arg-type]
    return response


def reset_connection(request: web.Request) -> None:
    """Abort the TCP connection with an RST, as a middlebox or a crashing PSP would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()


GARBAGE_HTML = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    b"</h1></center><hr><center>nginx</center></body></html>"
)


def garble(response: web.Response, kind: str) -> web.Response:
    """The applied answer made unreadable, as a broken proxy or a crashing PSP sends it: an HTML
    page, the JSON cut in half (a complete HTTP message whose body does not parse), or nothing."""
    headers = {k: v for k, v in response.headers.items()
               if k.lower() not in ("content-type", "content-length")}  # fmt: skip
    if kind == "html":
        return web.Response(status=response.status, body=GARBAGE_HTML, content_type="text/html",
                            headers=headers)  # fmt: skip
    if kind == "empty":
        return web.Response(status=response.status, body=b"", content_type=JSON, headers=headers)
    body = bytes(response.body or b"{}")  # type: ignore[arg-type]
    return web.Response(status=response.status, body=body[: max(len(body) // 2, 1)],
                        content_type=JSON, headers=headers)  # fmt: skip


async def deliver(
    request: web.Request,
    response: web.Response,
    decision: Decision,
    server_error: web.Response | None = None,
) -> web.Response:
    """Answer after the drawn latency; a timeout holds the answer back, a reset never sends it;
    ``error_after`` sends ``server_error`` (a 5xx) and ``garbage_*`` an unreadable body instead of
    the answer that was applied (and stored under the idempotency key)."""
    if decision.latency_s > 0:
        await asyncio.sleep(decision.latency_s)
    if decision.delivery == "reset":
        reset_connection(request)
        return response  # aiohttp finds the transport gone and writes nothing
    if decision.delivery == "timeout":
        await asyncio.sleep(decision.hold_s)
        if decision.timeout_mode == "drop":
            transport = request.transport
            if transport is not None:
                transport.close()
    elif decision.delivery == "error_after":
        return server_error if server_error is not None else web.Response(status=500)
    elif decision.delivery.startswith("garbage_"):
        return garble(response, decision.delivery.removeprefix("garbage_"))
    return response


class Dialect:
    """One PSP instance speaking one wire format: authentication, idempotency, then a handler.

    Handlers are synchronous `(request, psp, params, idempotency_key) -> (response, decision)`:
    every state change happens before the first await, so concurrent requests never interleave
    inside a payment, and the answer is stored under its idempotency key before it is delivered.
    """

    idempotency_header = "Idempotency-Key"

    def __init__(self, sandbox: Sandbox, name: str) -> None:
        self.sandbox = sandbox
        self.name = name

    @property
    def psp(self) -> PspState:
        return self.sandbox.psps[self.name]

    # Overridden per wire format.
    def routes(self, mount: str) -> list[web.RouteDef]:
        raise NotImplementedError

    def complete_challenge(self, payment: Any, authenticated: bool) -> None:
        """The 3DS page's verdict on a challenged payment: authorize it or fail it."""
        raise NotImplementedError

    def authenticate(self, request: web.Request, psp: PspState) -> web.Response | None:
        raise NotImplementedError

    def parse(self, request: web.Request, body: bytes) -> Any:
        raise NotImplementedError

    def idempotency_mismatch(self, key: str) -> web.Response:
        raise NotImplementedError

    def replay_headers(self, key: str) -> dict[str, str]:
        """Headers a replayed answer carries on top of the stored ones."""
        return {}

    def key_headers(self, key: str) -> dict[str, str]:
        """Headers every answer to a request with an idempotency key carries."""
        return {}

    def error_response(self, exc: Exception) -> web.Response:
        raise NotImplementedError

    def server_error(self) -> web.Response:
        """This PSP's 5xx, as it answers a request it failed on."""
        return web.Response(status=500)

    error_types: tuple[type[Exception], ...] = ()

    def wrap(self, handler):
        async def endpoint(request: web.Request) -> web.StreamResponse:
            psp = self.psp
            denied = self.authenticate(request, psp)
            if denied is not None:
                return denied
            post = request.method == "POST"
            body = await request.read() if post else b""
            key = request.headers.get(self.idempotency_header) if post else None
            fp = b""
            if key:
                fp = fingerprint(request, body)
                stored = psp.idempotency.get(key)
                if stored is not None:
                    if stored.fingerprint != fp:
                        return self.idempotency_mismatch(key)
                    psp.stats["idempotent_replays"] += 1
                    return replay(stored, self.replay_headers(key))
            try:
                params = self.parse(request, body)
                response, decision = handler(request, psp, params, key)
            except self.error_types as exc:
                # A request that fails validation leaves no idempotent result behind.
                return self.error_response(exc)
            if key:
                response.headers.update(self.key_headers(key))
            if decision is None:
                store(psp, key, fp, response)
                return response
            # Technical failures never reached the PSP's idempotency layer: a retry is processed.
            if decision.outcome not in ("error", "none"):
                store(psp, key, fp, response)
            server_error = self.server_error() if decision.delivery == "error_after" else None
            return await deliver(request, response, decision, server_error)

        return endpoint
