"""Fixtures: the sandbox and the gateway behind its real edge (EdgeRunner on a real socket), with
the limits set low so the slow-client tests are quick; and a raw-socket client."""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from paymux.api.app import build_gateway, new_api_key_secret, register_api_key
from paymux.api.edge import EDGE, Edge, EdgeRunner
from paymux.api.http import STORE
from paymux.config import config_from_dict, load_secrets
from paymux.domain.records import Merchant
from paymux.observability import logs
from paymux.sandbox.app import build_app as build_sandbox

from tests.gateway.conftest import card, gateway_config, start_app

ADMIN_KEY = "adm_edge_test_admin_key_0123456789"

#: Low limits: every timeout fires in well under a second.
EDGE_LIMITS: dict[str, Any] = {
    "server": {
        "header_timeout_s": 0.4,
        "body_timeout_s": 0.4,
        "keepalive_timeout_s": 0.8,
        "max_header_bytes": 4096,
        "max_header_line_bytes": 2048,
        "max_headers": 32,
        "max_body_bytes": 8192,
        "max_connections": 16,
        "shutdown_timeout_s": 5.0,
    },
    "rate_limits": {
        "auth_failure_window_s": 60.0,
        "auth_failures_per_source": 5,
        "auth_failures_per_prefix": 8,
        "ban_after_failures": 12,
        "ban_s": 30.0,
        "merchant_rps": 1000.0,
        "merchant_burst": 1000,
    },
}


@dataclass
class EdgeGateway:
    host: str
    port: int
    url: str
    keys: dict[str, str]
    app: web.Application
    edge: Edge
    log: io.StringIO
    session: aiohttp.ClientSession
    sandbox_url: str
    db_path: Path

    def auth(self, merchant: str = "m_alpha") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[merchant]}"}

    def log_lines(self) -> str:
        for handler in logging.getLogger("paymux").handlers:
            handler.flush()
        return self.log.getvalue()


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in extra.items():
        if isinstance(values, dict):
            out.setdefault(section, {}).update(values)
        else:
            out[section] = values
    return out


@pytest.fixture
async def edge_gw(tmp_path: Path, request: pytest.FixtureRequest):
    marker = request.node.get_closest_marker("edge_config")
    overrides = _merge(EDGE_LIMITS, marker.kwargs if marker else {})
    scenario_marker = request.node.get_closest_marker("sandbox_scenario")
    scenario = scenario_marker.args[0] if scenario_marker else None
    log_stream = io.StringIO()
    logs.configure("debug", log_stream)
    sandbox_runner, sandbox_port = await start_app(build_sandbox(scenario, seed=7))
    raw = gateway_config(tmp_path, sandbox_port, **overrides)
    raw["admin_api_key"] = ADMIN_KEY
    config = config_from_dict(raw)
    app = build_gateway(config, load_secrets(config.vault))
    runner = EdgeRunner(app)
    await runner.setup()
    sock = await runner.serve("127.0.0.1", 0)
    port = sock.getsockname()[1]
    store = app[STORE]
    keys = {}
    for merchant in ("m_alpha", "m_beta"):
        await store.ensure_merchant(Merchant(id=merchant, name=merchant, created_at=0.0))
        keys[merchant] = new_api_key_secret()
        await register_api_key(store, merchant, keys[merchant])
    session = aiohttp.ClientSession()
    try:
        yield EdgeGateway(
            host="127.0.0.1",
            port=port,
            url=f"http://127.0.0.1:{port}",
            keys=keys,
            app=app,
            edge=app[EDGE],
            log=log_stream,
            session=session,
            sandbox_url=f"http://127.0.0.1:{sandbox_port}",
            db_path=tmp_path / "paymux.db",
        )
    finally:
        await session.close()
        await runner.cleanup()
        await sandbox_runner.cleanup()
        logging.getLogger("paymux").handlers.clear()


class Raw:
    """A raw TCP client: bytes out exactly as given, bytes in until the server closes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, source: str | None = None) -> Raw:
        local = (source, 0) if source else None
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_all(self, timeout: float = 10.0) -> bytes:
        """Everything until EOF (or a reset). The timeout only bounds a hung test."""
        out = b""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    chunk = await self.reader.read(65536)
                    if not chunk:
                        break
                    out += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
        return out

    async def read_response(self, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
        """One response with a Content-Length body."""
        async with asyncio.timeout(timeout):
            head = await self.reader.readuntil(b"\r\n\r\n")
            status, headers = parse_head(head)
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body

    def close(self) -> None:
        self.writer.close()


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    return status, headers


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    status, headers = parse_head(head + b"\r\n\r\n")
    return status, headers, body


def payment_body(**extra: Any) -> dict[str, Any]:
    return {"amount": 1000, "currency": "EUR", "payment_method": card(), **extra}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "edge_config(**sections): override the edge test config")
    config.addinivalue_line("markers", "sandbox_scenario(scenario): run the sandbox with it")
