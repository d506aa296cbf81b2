"""SIGKILL the gateway in the middle of a burst: nothing answered is lost, nothing left in limbo."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from paymux.sandbox.app import build_app as build_sandbox

from tests.gateway.conftest import SANDBOX_KEYS, card, free_port, start_app

DEMO_KEY = "sk_test_crash_recovery_key"


def _write_config(tmp: Path, gateway_port: int, sandbox_port: int) -> Path:
    lines = [
        "[server]",
        'host = "127.0.0.1"',
        f"port = {gateway_port}",
        'log_level = "warning"',
        "[storage]",
        f'path = "{tmp / "paymux.db"}"',
        "[vault]",
        f'key_file = "{tmp / "keys.json"}"',
        "[demo]",
        'merchant_id = "m_crash"',
        f'api_key = "{DEMO_KEY}"',
        "[routing]",
        'default_order = ["stripe", "adyen", "checkout"]',
    ]
    for wire, creds in SANDBOX_KEYS.items():
        lines += [
            "[[connectors]]",
            f'name = "{wire}"',
            f'kind = "{wire}"',
            f'base_url = "http://127.0.0.1:{sandbox_port}/{wire}"',
        ]
        lines += [f'{k} = "{v}"' for k, v in creds.items() if isinstance(v, str)]
        if "extra" in creds:
            lines += [
                "extra = { " + ", ".join(f'{k} = "{v}"' for k, v in creds["extra"].items()) + " }"
            ]
    path = tmp / "paymux.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def _start_gateway(config: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once; the test then polls it
        [sys.executable, "-m", "paymux.cli", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.get(f"http://127.0.0.1:{port}/health") as r:
                    if r.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode())
            await asyncio.sleep(0.1)
    proc.kill()
    raise RuntimeError("gateway did not start")


async def test_sigkill_mid_burst_loses_no_answered_payment(tmp_path):
    sandbox_runner, sandbox_port = await start_app(build_sandbox(None, seed=3))
    port = free_port()
    config = _write_config(tmp_path, port, sandbox_port)
    proc = await _start_gateway(config, port)
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {DEMO_KEY}"}
    answered: dict[str, dict] = {}
    try:
        async with aiohttp.ClientSession() as s:

            async def pay(i: int) -> None:
                try:
                    async with s.post(
                        url + "/v1/payments",
                        headers={**headers, "Idempotency-Key": f"burst-{i}"},
                        json={"amount": 1000 + i, "currency": "EUR", "payment_method": card()},
                    ) as r:
                        body = await r.json()
                        if r.status == 200:
                            answered[f"burst-{i}"] = body
                except (TimeoutError, aiohttp.ClientError):
                    pass

            tasks = [asyncio.create_task(pay(i)) for i in range(300)]
            while len(answered) < 30:
                await asyncio.sleep(0.005)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            await asyncio.gather(*tasks)
        assert 30 <= len(answered) < 300, "the kill did not land mid-burst"

        proc = await _start_gateway(config, port)  # recovery runs before it listens
        async with aiohttp.ClientSession() as s:
            for body in answered.values():
                async with s.get(f"{url}/v1/payments/{body['id']}", headers=headers) as r:
                    assert r.status == 200
                    stored = await r.json()
                assert stored["status"] == body["status"] == "succeeded"
            conn = sqlite3.connect(tmp_path / "paymux.db")
            limbo = conn.execute(
                "SELECT COUNT(*) FROM attempts WHERE status = 'started'"
            ).fetchone()[0]
            processing = conn.execute(
                "SELECT COUNT(*) FROM payments WHERE status = 'processing'"
            ).fetchone()[0]
            stuck = conn.execute(
                "SELECT COUNT(*) FROM idempotency WHERE status = 'in_progress'"
            ).fetchone()[0]
            paid = {
                r[0]
                for r in conn.execute(
                    "SELECT connector_reference FROM payments WHERE status = 'succeeded'"
                )
            }
            conn.close()
            assert limbo == 0, "attempts left without an outcome after restart"
            assert processing == 0, "payments left processing with nothing outstanding at a PSP"
            assert stuck == 0, "idempotency keys left in progress after restart"
            # Every retry of the burst with its key: a replay or a fresh payment, never a 2nd charge.
            for i in range(300):
                async with s.post(
                    url + "/v1/payments",
                    headers={**headers, "Idempotency-Key": f"burst-{i}"},
                    json={"amount": 1000 + i, "currency": "EUR", "payment_method": card()},
                ) as r:
                    assert r.status == 200, await r.text()
            async with s.get(f"http://127.0.0.1:{sandbox_port}/_sandbox/ledger") as r:
                ledger = await r.json()
        authorized = [p for psp in ledger["psps"].values() for p in psp["payments"]]
        amounts = [p["amount"] for p in authorized]
        assert len(amounts) == len(set(amounts)) == 300, "a payment was authorized twice or lost"
        assert paid <= {p["id"] for p in authorized}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
        await sandbox_runner.cleanup()


async def test_payment_interrupted_before_any_attempt_fails_and_frees_its_key(gateway):
    from paymux.api.app import RECOVERY
    from paymux.api.http import STORE
    from paymux.domain.records import IdempotencyClaim, PaymentRecord

    store, recovery = gateway.app[STORE], gateway.app[RECOVERY]
    payment = PaymentRecord(
        id="pay_0interrupted0",
        merchant_id="m_alpha",
        status="processing",
        amount=777,
        currency="EUR",
        capture_method="automatic",
        created_at=1.0,
        updated_at=1.0,
    )
    claim = IdempotencyClaim(
        merchant_id="m_alpha", key="k-interrupted", request_hash="h", now=time.time(), ttl_s=86400
    )
    await store.create_payment(payment, None, [], claim=claim)
    await recovery.run()
    _, stored = await gateway.get(f"/v1/payments/{payment.id}")
    assert stored["status"] == "failed"
    assert stored["error"]["code"] == "processing_interrupted"
    # the key is free again: the client's retry is processed, and charged once
    status, retried = await gateway.post(
        "/v1/payments",
        {"amount": 777, "currency": "EUR", "payment_method": card()},
        idem="k-interrupted",
    )
    assert status == 200 and retried["status"] == "succeeded" and retried["id"] != payment.id
