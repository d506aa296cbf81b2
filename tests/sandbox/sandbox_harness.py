"""A real sandbox server on a loopback port, in a background thread, for the sandbox tests.

The official SDKs are synchronous, so the server runs on its own event loop in a thread and the
tests call it over real sockets exactly as a connector would.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import requests
from aiohttp import web
from paymux.sandbox import SANDBOX_KEY, build_app
from paymux.sandbox.scenario import Scenario, scenario_from_dict


class RunningSandbox:
    def __init__(self, app: web.Application, base: str, loop: asyncio.AbstractEventLoop) -> None:
        self.app, self.base, self.loop = app, base, loop
        self.sandbox = app[SANDBOX_KEY]

    def url(self, path: str) -> str:
        return self.base + path

    def ledger(self, psp: str | None = None, reference: str | None = None) -> dict[str, Any]:
        params = {k: v for k, v in (("psp", psp), ("reference", reference)) if v}
        return requests.get(self.url("/_sandbox/ledger"), params=params, timeout=5).json()

    def payments(self, psp: str) -> list[dict[str, Any]]:
        return self.ledger(psp)["psps"][psp]["payments"]

    def admin(self, path: str, body: dict[str, Any] | None = None, **params: str) -> Any:
        response = requests.post(self.url(path), json=body or {}, params=params, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()


@contextlib.contextmanager
def running_sandbox(
    scenario: Scenario | dict | None = None, seed: int = 0
) -> Iterator[RunningSandbox]:
    if isinstance(scenario, dict):
        scenario = scenario_from_dict(scenario)
    app = build_app(scenario, seed=seed)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"] = runner
        state["port"] = runner.addresses[0][1]

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield RunningSandbox(app, f"http://127.0.0.1:{state['port']}", loop)
    finally:
        asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
