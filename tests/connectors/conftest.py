"""A tiny canned PSP on a loopback port (real sockets), and connector fixtures pointed at it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from paymux.connectors.adyen import AdyenConnector
from paymux.connectors.base import AuthorizeRequest, CardDetails, ConnectorConfig
from paymux.connectors.checkout import CheckoutConnector
from paymux.connectors.stripe import StripeConnector

PAN = "4242424242424242"  # Stripe's published test Visa
CVC = "987"
API_KEY = "sk_test_unitKEY0123456789"
WEBHOOK_SECRET = "whsec_unit_test_secret"
ADYEN_HMAC_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"


@dataclass
class Canned:
    """One canned answer: status + body, or a misbehaviour (sleep, reset)."""

    status: int = 200
    body: bytes | str | dict | list | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    reset: bool = False  # close the socket instead of answering
    cut_short: bool = False  # promise more bytes than sent, then close the socket
    content_type: str | None = None


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def form(self) -> dict[str, str]:
        from urllib.parse import parse_qsl

        return dict(parse_qsl(self.body.decode()))


Handler = Callable[[Recorded], Canned | Awaitable[Canned]]


class FakePsp:
    """Answers each (method, path) with a queued Canned or a handler; records every request."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Canned | Handler]] = {}
        self.requests: list[Recorded] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    def on(self, method: str, path: str, *answers: Canned | Handler) -> None:
        self.routes.setdefault((method, path), []).extend(answers)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rec = Recorded(
            request.method,
            request.path,
            dict(request.query),
            dict(request.headers),
            await request.read(),
        )
        self.requests.append(rec)
        queue = self.routes.get((request.method, request.path))
        if not queue:
            return web.json_response({"unrouted": request.path}, status=599)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if callable(answer):
            answer = answer(rec)
            if asyncio.iscoroutine(answer):
                answer = await answer
        assert isinstance(answer, Canned)
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        if answer.reset:
            assert request.transport is not None
            request.transport.abort()
            await asyncio.sleep(0.01)
            return web.Response(status=200)
        if answer.cut_short:
            resp = web.StreamResponse(status=answer.status)
            resp.content_length = 4096
            resp.content_type = "application/json"
            await resp.prepare(request)
            await resp.write(answer.body if isinstance(answer.body, bytes) else b'{"id": "x"')
            assert request.transport is not None
            request.transport.close()
            return resp
        body = answer.body
        ctype = answer.content_type
        if isinstance(body, (dict, list)):
            body, ctype = orjson.dumps(body), ctype or "application/json"
        elif isinstance(body, str):
            body = body.encode()
        return web.Response(
            status=answer.status,
            body=body or b"",
            headers={**answer.headers, **({"Content-Type": ctype} if ctype else {})},
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def psp():
    server = FakePsp()
    await server.start()
    yield server
    await server.stop()


def make_config(kind: str, base_url: str, **kw: Any) -> ConnectorConfig:
    return ConnectorConfig(
        name=f"{kind}_unit",
        kind=kind,
        base_url=base_url,
        api_key=API_KEY,
        merchant_account="PaymuxECOM" if kind == "adyen" else None,
        webhook_secret=ADYEN_HMAC_KEY if kind == "adyen" else WEBHOOK_SECRET,
        timeout_s=kw.pop("timeout_s", 0.5),
        connect_timeout_s=kw.pop("connect_timeout_s", 0.5),
        max_connections=kw.pop("max_connections", 10),
        **kw,
    )


CLASSES = {"stripe": StripeConnector, "adyen": AdyenConnector, "checkout": CheckoutConnector}
AUTHORIZE_PATH = {
    "stripe": "/v1/payment_intents",
    "adyen": "/v72/payments",
    "checkout": "/payments",
}


async def _connector(kind: str, psp: FakePsp):
    conn = CLASSES[kind](make_config(kind, psp.url))
    await conn.start()
    return conn


@pytest.fixture
async def stripe(psp):
    conn = await _connector("stripe", psp)
    yield conn
    await conn.close()


@pytest.fixture
async def adyen(psp):
    conn = await _connector("adyen", psp)
    yield conn
    await conn.close()


@pytest.fixture
async def checkout(psp):
    conn = await _connector("checkout", psp)
    yield conn
    await conn.close()


@pytest.fixture(params=["stripe", "adyen", "checkout"])
async def any_connector(request, psp):
    conn = await _connector(request.param, psp)
    yield conn
    await conn.close()


def authorize_request(
    reference: str = "att_unit_0001",
    *,
    capture: bool = False,
    amount: int = 1099,
    currency: str = "EUR",
    pan: str = PAN,
) -> AuthorizeRequest:
    return AuthorizeRequest(
        reference=reference,
        payment_id="pay_unit_0001",
        amount=amount,
        currency=currency,
        card=CardDetails(pan, 12, 2034, CVC, "Ada Lovelace"),
        capture=capture,
        merchant_reference="order-42",
    )


def free_port() -> int:
    """A loopback port nobody listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_no_card_data(*texts: str | None) -> None:
    for text in texts:
        if text is None:
            continue
        assert PAN not in text, text
        assert "4242 4242 4242 4242" not in text, text
        assert CVC not in text, text
        assert API_KEY not in text, text
