"""Fixtures: the real sandbox and the real gateway on loopback ports, with a fresh SQLite file."""

from __future__ import annotations

import io
import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from paymux.api.app import build_gateway, new_api_key_secret, register_api_key
from paymux.api.http import STORE
from paymux.config import config_from_dict, load_secrets
from paymux.domain.records import Merchant
from paymux.observability import logs
from paymux.sandbox.app import build_app as build_sandbox

SANDBOX_KEYS = {
    "stripe": {"api_key": "sk_test_paymux_sandbox"},
    "adyen": {
        "api_key": "paymux_sandbox_adyen_key",
        "merchant_account": "PaymuxSandboxECOM",
        "extra": {"lookup_path": "/v72/_sandbox/payments"},
    },
    "checkout": {"api_key": "sk_sbox_paymuxsandboxsecretkeyabcde"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_app(app: web.Application, port: int | None = None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    port = port or free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


def gateway_config(tmp: Path, sandbox_port: int, **overrides: Any) -> dict[str, Any]:
    connectors = [
        {
            "name": wire,
            "kind": wire,
            "base_url": f"http://127.0.0.1:{sandbox_port}/{wire}",
            "timeout_s": 2.0,
            **creds,
        }
        for wire, creds in SANDBOX_KEYS.items()
    ]
    raw: dict[str, Any] = {
        "storage": {"path": str(tmp / "paymux.db")},
        "vault": {"key_file": str(tmp / "keys.json")},
        "payments": {"sync_timeout_s": 2.0},
        "routing": {"default_order": ["stripe", "adyen", "checkout"]},
        "connectors": connectors,
    }
    for section, values in overrides.items():
        if isinstance(values, dict):
            raw.setdefault(section, {}).update(values)
        else:
            raw[section] = values
    return raw


@dataclass
class Gateway:
    url: str
    sandbox_url: str
    keys: dict[str, str]  # merchant id -> secret key
    db_path: Path
    app: web.Application
    log: io.StringIO
    session: aiohttp.ClientSession
    extra: dict[str, Any] = field(default_factory=dict)

    def headers(self, merchant: str = "m_alpha", idem: str | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.keys[merchant]}"}
        if idem is not None:
            h["Idempotency-Key"] = idem
        return h

    async def post(
        self, path: str, body: Any, merchant: str = "m_alpha", idem: str | None = None
    ) -> tuple[int, Any]:
        async with self.session.post(
            self.url + path, json=body, headers=self.headers(merchant, idem)
        ) as r:
            return r.status, await r.json()

    async def get(self, path: str, merchant: str = "m_alpha") -> tuple[int, Any]:
        async with self.session.get(self.url + path, headers=self.headers(merchant)) as r:
            return r.status, await r.json()

    async def ledger(self) -> Any:
        async with self.session.get(self.sandbox_url + "/_sandbox/ledger") as r:
            return await r.json()


def card(number: str = "4242424242424242", cvc: str = "123") -> dict[str, Any]:
    return {"card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": cvc}}


@pytest.fixture
async def gateway(tmp_path: Path, request: pytest.FixtureRequest):
    marker = request.node.get_closest_marker("gateway_config")
    overrides = marker.kwargs if marker else {}
    scenario_marker = request.node.get_closest_marker("sandbox_scenario")
    scenario = scenario_marker.args[0] if scenario_marker else None
    log_stream = io.StringIO()
    logs.configure("debug", log_stream)
    sandbox_runner, sandbox_port = await start_app(build_sandbox(scenario, seed=7))
    config = config_from_dict(gateway_config(tmp_path, sandbox_port, **overrides))
    app = build_gateway(config, load_secrets(config.vault))
    runner, port = await start_app(app)
    store = app[STORE]
    keys = {}
    for merchant in ("m_alpha", "m_beta"):
        await store.ensure_merchant(Merchant(id=merchant, name=merchant, created_at=0.0))
        keys[merchant] = new_api_key_secret()
        await register_api_key(store, merchant, keys[merchant])
    session = aiohttp.ClientSession()
    try:
        yield Gateway(
            url=f"http://127.0.0.1:{port}",
            sandbox_url=f"http://127.0.0.1:{sandbox_port}",
            keys=keys,
            db_path=tmp_path / "paymux.db",
            app=app,
            log=log_stream,
            session=session,
        )
    finally:
        await session.close()
        await runner.cleanup()
        await sandbox_runner.cleanup()
        logging.getLogger("paymux").handlers.clear()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gateway_config(**sections): override gateway config")
    config.addinivalue_line("markers", "sandbox_scenario(scenario): run the sandbox with it")
