"""`paymux serve --config` as a real process with two workers: SIGHUP re-reads [routing], every
worker serves the new version, and a broken file keeps the running configuration."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
from paymux.sandbox.app import build_app as build_sandbox

from tests.failover.conftest import ADMIN_KEY
from tests.gateway.conftest import free_port, start_app
from tests.gateway.test_crash_recovery import _start_gateway, _write_config


def _config(tmp: Path, port: int, sandbox_port: int, order: str) -> Path:
    path = _write_config(tmp, port, sandbox_port)
    text = path.read_text().replace(
        'default_order = ["stripe", "adyen", "checkout"]', f"default_order = {order}"
    )
    text = f'admin_api_key = "{ADMIN_KEY}"\n' + text.replace("[server]", "[server]\nworkers = 2", 1)
    text += "[reconciler]\nconfig_poll_s = 3600.0\nrouting_poll_s = 0.2\n"  # SIGHUP only
    path.write_text(text)
    return path


async def _versions_seen(url: str, n: int = 12) -> set[tuple[int, int]]:
    """(active, serving) as answered by whichever workers take these connections."""
    seen = set()
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for _ in range(n):
        # A new session, so a new connection: maybe another worker.
        async with (
            aiohttp.ClientSession() as s,
            s.get(url + "/admin/routing", headers=headers) as r,
        ):
            body = await r.json()
            seen.add((body["version"], body["serving"]))
    return seen


async def test_sighup_reloads_routing_in_every_worker(tmp_path):
    sandbox_runner, sandbox_port = await start_app(build_sandbox(None, seed=3))
    port = free_port()
    path = _config(tmp_path, port, sandbox_port, '["stripe", "adyen"]')
    proc = await _start_gateway(path, port)
    url = f"http://127.0.0.1:{port}"
    try:
        assert await _versions_seen(url) == {(1, 1)}
        _config(tmp_path, port, sandbox_port, '["adyen", "paypal"]')  # broken
        proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.8)
        assert await _versions_seen(url) == {(1, 1)}
        _config(tmp_path, port, sandbox_port, '["checkout", "stripe"]')
        proc.send_signal(signal.SIGHUP)
        for _ in range(30):
            await asyncio.sleep(0.2)
            if await _versions_seen(url, 6) == {(2, 2)}:
                break
        assert await _versions_seen(url) == {(2, 2)}
        async with (
            aiohttp.ClientSession() as s,
            s.get(
                url + "/admin/routing/versions", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            ) as r,
        ):
            versions = (await r.json())["data"]
        # Both workers re-read the file; the new config is stored once.
        assert [(v["version"], v["source"]) for v in versions] == [(2, "config"), (1, "config")]
        assert versions[0]["config"] == {"default_order": ["checkout", "stripe"]}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            proc.kill()
        await sandbox_runner.cleanup()
