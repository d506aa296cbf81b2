"""Fixtures: the real sandbox and the real gateway on loopback ports, on a fresh database: the
`gateway` fixture runs every test twice, on a SQLite file and on a PostgreSQL database of the
session's throwaway cluster (tests/pg.py)."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
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
    db_path: Path  # the SQLite file (backend "sqlite" only)
    app: web.Application
    log: io.StringIO
    session: aiohttp.ClientSession
    extra: dict[str, Any] = field(default_factory=dict)
    backend: str = "sqlite"
    database_url: str = ""  # the PostgreSQL database (backend "postgresql")

    def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        """Backend-neutral read of the gateway's database (``?`` placeholders), for tests."""
        return query_rows(self.backend, self.database_url or str(self.db_path), sql, *params)

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


def query_rows(backend: str, where: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    """Rows as dicts from a SQLite file or a PostgreSQL URL, synchronously (a test may call it
    from inside a coroutine: PostgreSQL is read on a thread of its own)."""
    if backend == "sqlite":
        import sqlite3

        conn = sqlite3.connect(where)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()
    import concurrent.futures

    import asyncpg

    parts = sql.split("?")
    pg_sql = parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], start=1))

    async def fetch() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(where)
        try:
            return [dict(r) for r in await conn.fetch(pg_sql, *params)]
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, fetch()).result(timeout=30)


#: Tests that read or edit the SQLite file itself (sqlite3.connect(db_path)): they run on SQLite
#: only. What they check on PostgreSQL is covered by tests/store and tests/cluster.
SQLITE_ONLY: dict[str, str] = {
    "test_malformed_payment_is_rejected_with_code_and_param": "counts rows in the SQLite file",
    "test_a_new_payments_answer_is_stored_with_its_final_state": "reads the SQLite file",
    "test_no_pan_or_cvv_in_logs_responses_or_database": (
        "scans the SQLite files for PANs (PostgreSQL: tests/store/test_postgres_store.py)"
    ),
}
SQLITE_ONLY_MODULES: dict[str, str] = {
    "test_reconcile_cli": "the CLI's config names the SQLite file, and the tests edit it",
    "test_sqlite_writer": "the SQLite writer itself",
}


def _sqlite_only(request: pytest.FixtureRequest) -> str | None:
    module = request.node.module.__name__.rsplit(".", 1)[-1]
    if module in SQLITE_ONLY_MODULES:
        return SQLITE_ONLY_MODULES[module]
    return SQLITE_ONLY.get(request.node.originalname)


def card(number: str = "4242424242424242", cvc: str = "123") -> dict[str, Any]:
    return {"card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": cvc}}


@pytest.fixture(params=["sqlite", "postgresql"])
async def gateway(tmp_path: Path, request: pytest.FixtureRequest):
    backend = request.param
    database_url = ""
    if backend == "postgresql":
        reason = _sqlite_only(request)
        if reason:
            pytest.skip(f"SQLite only: {reason}")
        database_url = request.getfixturevalue("pg_url")
        # A config the test builds itself (a second worker, say) is on the same database.
        request.getfixturevalue("monkeypatch").setenv("PAYMUX_DATABASE", database_url)
    marker = request.node.get_closest_marker("gateway_config")
    overrides = marker.kwargs if marker else {}
    scenario_marker = request.node.get_closest_marker("sandbox_scenario")
    scenario = scenario_marker.args[0] if scenario_marker else None
    log_stream = io.StringIO()
    logs.configure("debug", log_stream)
    sandbox_runner, sandbox_port = await start_app(build_sandbox(scenario, seed=7))
    raw = gateway_config(tmp_path, sandbox_port, **overrides)
    if database_url:
        raw["storage"] = {**raw["storage"], "backend": "postgresql", "url": database_url}
    config = config_from_dict(raw)
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
            backend=backend,
            database_url=database_url,
        )
    finally:
        await session.close()
        await runner.cleanup()
        await sandbox_runner.cleanup()
        logging.getLogger("paymux").handlers.clear()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gateway_config(**sections): override gateway config")
    config.addinivalue_line("markers", "sandbox_scenario(scenario): run the sandbox with it")


# -- real processes: the gateway (and the sandbox) as subprocesses, for the crash tests and
# benchmarks/crash_run.py. Every wait is bounded; every process started is killed by its owner.


def toml_text(raw: dict[str, Any]) -> str:
    """A small TOML writer for gateway configs and scenarios: tables, arrays of tables, inline
    tables for dicts inside arrays or under `extra`, strings, numbers, booleans, lists."""

    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list | tuple):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {scalar(x)}" for k, x in v.items()) + " }"
        raise TypeError(f"cannot write {type(v).__name__} to TOML")

    lines: list[str] = []

    def table(prefix: str, values: dict[str, Any], header: str | None) -> None:
        plain = {
            k: v
            for k, v in values.items()
            if not (isinstance(v, dict) and k != "extra")
            and not (isinstance(v, list) and v and all(isinstance(x, dict) for x in v))
        }
        if header is not None:
            lines.append(header)
        lines.extend(f"{k} = {scalar(v)}" for k, v in plain.items())
        for k, v in values.items():
            name = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict) and k != "extra":
                table(name, v, f"[{name}]")
            elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
                for item in v:
                    table(name, item, f"[[{name}]]")

    table("", raw, None)
    return "\n".join(lines) + "\n"


def process_gateway_config(
    tmp: Path, gateway_port: int, sandbox_port: int, api_key: str, **overrides: Any
) -> dict[str, Any]:
    """`gateway_config` for `paymux serve --config`: a [server] on loopback, one demo merchant
    (`m_crash`, whose key is `api_key`) and a fast reconciler."""
    raw = gateway_config(tmp, sandbox_port)
    raw["server"] = {"host": "127.0.0.1", "port": gateway_port, "log_level": "warning"}
    raw["demo"] = {"merchant_id": "m_crash", "api_key": api_key}
    raw["reconciler"] = {
        "interval_s": 0.1,
        "pending_check_s": 0.2,
        "late_auth_check_s": 0.3,
        "void_backoff_s": 0.1,
        "routing_poll_s": 0.5,
        "config_poll_s": 3600.0,
    }
    raw["payments"] = {"sync_timeout_s": 1.0}
    for c in raw["connectors"]:
        c["timeout_s"] = 1.0
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(raw.get(section), dict):
            raw[section] = {**raw[section], **values}
        else:
            raw[section] = values
    return raw


class GatewayProcess:
    """`python -m paymux.cli serve --config FILE` as a subprocess that can be armed with a
    crashpoint (PAYMUX_CRASH_AT / PAYMUX_CRASH_AFTER), SIGKILLed and restarted on the same
    database. Its stderr goes to a file next to the config (read on a failed start)."""

    def __init__(self, config_path: Path, port: int) -> None:
        self.config_path = config_path
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: Any = None  # subprocess.Popen
        self.starts = 0
        self.stderr_path = config_path.with_suffix(".stderr.log")

    async def start(
        self, crash_at: str | None = None, crash_after: int | None = None, timeout_s: float = 30.0
    ) -> None:

        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMUX_CRASH_")}
        if crash_at:
            env["PAYMUX_CRASH_AT"] = crash_at
            if crash_after is not None:
                env["PAYMUX_CRASH_AFTER"] = str(crash_after)
        self.starts += 1
        with open(self.stderr_path, "ab") as err:  # noqa: ASYNC230 - a local file, once
            err.write(f"--- start {self.starts} crash_at={crash_at}\n".encode())
            err.flush()
            self.proc = subprocess.Popen(  # noqa: ASYNC220 - started once, then polled
                [sys.executable, "-m", "paymux.cli", "serve", "--config", str(self.config_path)],
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
            )
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                try:
                    async with s.get(
                        self.url + "/health", timeout=aiohttp.ClientTimeout(total=1)
                    ) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"gateway exited with {self.proc.returncode} on start: "
                        + self.stderr_path.read_text(errors="replace")[-3000:]
                    )
                await asyncio.sleep(0.05)
        self.kill()
        raise RuntimeError("gateway did not start in time")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait_dead(self, timeout_s: float = 10.0) -> bool:
        """Wait (bounded) for the process to exit on its own (an armed crashpoint)."""

        deadline = time.monotonic() + timeout_s
        while self.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return not self.alive()

    def kill(self) -> None:
        """SIGKILL, from outside."""

        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (SIGKILL if it does not go within 10 s); safe to call on a dead process."""

        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class SandboxProcess:
    """`python -m paymux.cli sandbox` as a subprocess on a loopback port (sync: usable from a
    module-scoped fixture or a script)."""

    def __init__(self, port: int, seed: int = 7, scenario_path: Path | None = None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.seed = seed
        self.scenario_path = scenario_path
        self.proc: Any = None

    def start(self, timeout_s: float = 30.0) -> None:

        cmd = [sys.executable, "-m", "paymux.cli", "sandbox", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--seed", str(self.seed)]
        if self.scenario_path is not None:
            cmd += ["--scenario", str(self.scenario_path)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/_sandbox/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"sandbox exited with {self.proc.returncode} on start")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("sandbox did not start in time")

    def stop(self) -> None:

        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
