"""The real gateway and the real sandbox on loopback ports, on an event loop in a background
thread: the official SDKs are synchronous, and call them over real sockets as a merchant would."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import requests
from aiohttp import web
from paymux.api.app import build_gateway, register_api_key
from paymux.api.http import STORE
from paymux.config import config_from_dict, load_secrets
from paymux.domain.records import Merchant
from paymux.observability import logs
from paymux.sandbox.app import build_app as build_sandbox
from paymux.sandbox.scenario import scenario_from_dict

from tests.gateway.conftest import gateway_config


class Running:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.url = ""
        self.sandbox_url = ""
        self.app: web.Application | None = None
        self.keys: dict[str, str] = {}
        self.log = io.StringIO()
        self.runners: list[web.AppRunner] = []

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def add_key(self, name: str, secret: str) -> str:
        """A key for merchant ``name`` (``"m:label"``: merchant m, one of its several keys)."""
        merchant = name.partition(":")[0]

        async def add() -> None:
            assert self.app is not None
            store = self.app[STORE]
            await store.ensure_merchant(Merchant(id=merchant, name=merchant, created_at=0.0))
            await register_api_key(store, merchant, secret)

        self.run(add())
        self.keys[name] = secret
        return secret

    def ledger(self, psp: str) -> list[dict[str, Any]]:
        doc = requests.get(self.sandbox_url + "/_sandbox/ledger", params={"psp": psp}, timeout=5)
        return doc.json()["psps"][psp]["payments"]

    def outage(self, **body: Any) -> None:
        r = requests.post(self.sandbox_url + "/_sandbox/outage", json=body, timeout=5)
        assert r.status_code == 200, r.text


async def _start(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


@contextlib.contextmanager
def running_gateway(
    tmp: Path, scenario: dict | None = None, upstream: web.Application | None = None,
    upstream_port: int | None = None, **overrides: Any,
) -> Iterator[Running]:  # fmt: skip
    """``upstream``: a merchant backend served on ``upstream_port`` before the gateway starts."""
    loop = asyncio.new_event_loop()
    running = Running(loop)
    ready = threading.Event()
    failure: list[BaseException] = []

    async def start() -> None:
        logs.configure("debug", running.log)
        if upstream is not None:
            upstream_runner = web.AppRunner(upstream, access_log=None, handle_signals=False)
            await upstream_runner.setup()
            await web.TCPSite(upstream_runner, "127.0.0.1", upstream_port).start()
            running.runners.append(upstream_runner)
        sandbox_runner, sandbox_port = await _start(
            build_sandbox(scenario_from_dict(scenario) if scenario else None, seed=7)
        )
        running.runners.append(sandbox_runner)
        running.sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        raw = gateway_config(tmp, sandbox_port, **overrides)
        config = config_from_dict(raw)
        app = build_gateway(config, load_secrets(config.vault))
        runner, port = await _start(app)
        running.runners.append(runner)
        running.app = app
        running.url = f"http://127.0.0.1:{port}"

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(30)
    if failure:
        raise failure[0]
    try:
        yield running
    finally:

        async def stop() -> None:
            for runner in reversed(running.runners):
                await runner.cleanup()

        with contextlib.suppress(Exception):
            running.run(stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        logging.getLogger("paymux").handlers.clear()
