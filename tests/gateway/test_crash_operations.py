"""SIGKILL the gateway at every crashpoint of every PSP operation, restart it, and prove the money.

Real processes: the sandbox (one for the module, its ledger shared by every case) and, per case,
the gateway on its own fresh database. Each case arms one point (`PAYMUX_CRASH_AT`), does the
prerequisite steps on the armed gateway, sends the operation with an Idempotency-Key and sees
the gateway die there. It then restarts the gateway unarmed (recovery on start, a reconciler
every 0.1 s), waits until nothing is in flight, retries the same request with the same key and
checks it gets the final answer: the operation applied exactly once (where the PSP never saw
it, the retry runs it afresh, once). Finally every payment of the case is compared with the
sandbox ledger, operation by operation (tests/failover/conftest.py: `ledger_disagreements`).

The PSP rotates over the cases so that each operation meets each connector's sync semantics
(Stripe: the PaymentIntent's status; Adyen: re-sending the identical modification; Checkout.com:
the payment's actions by reference).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.failover.conftest import assert_ledger_agrees, ledger_disagreements, ledger_payments
from tests.gateway.conftest import (
    GatewayProcess,
    SandboxProcess,
    card,
    free_port,
    process_gateway_config,
    toml_text,
)

API_KEY = "sk_test_crash_operations_key"
PSPS = ("stripe", "adyen", "checkout")
OPERATIONS = (
    "authorize_automatic",
    "authorize_manual",
    "capture",
    "partial_capture",
    "void",
    "refund",
    "partial_refund",
)
POINTS = ("before_psp", "during_psp", "after_psp", "after_commit")
CRASH_OP = {
    "authorize_automatic": "authorize",
    "authorize_manual": "authorize",
    "capture": "capture",
    "partial_capture": "capture",
    "void": "void",
    "refund": "refund",
    "partial_refund": "refund",
}
AMOUNT = 4200
PART = 1500
DURING_LATENCY_MS = 400  # the kill comes 50 ms after the request left: the PSP is still on it
SETTLE_S = 20.0

CASES = [
    pytest.param(
        op,
        point,
        PSPS[(i + j) % 3],
        id=f"{op}-{point}-{PSPS[(i + j) % 3]}",
    )
    for i, op in enumerate(OPERATIONS)
    for j, point in enumerate(POINTS)
]


@pytest.fixture(scope="module")
def sandbox():
    sb = SandboxProcess(free_port(), seed=11)
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


async def _ledger(s: aiohttp.ClientSession, sandbox: SandboxProcess) -> dict[str, Any]:
    async with s.get(sandbox.url + "/_sandbox/ledger") as r:
        assert r.status == 200
        return await r.json()


async def _latency(s: aiohttp.ClientSession, sandbox: SandboxProcess, psp: str, ms: int) -> None:
    patch = {"psps": {psp: {"default": {"latency": {"kind": "fixed", "ms": ms}}}}}
    async with s.post(sandbox.url + "/_sandbox/scenario", json=patch) as r:
        assert r.status == 200, await r.text()


def _in_flight(db: Path) -> list[tuple[str, int]]:
    conn = sqlite3.connect(db)
    try:
        queries = {
            "payments": "SELECT COUNT(*) FROM payments WHERE status IN "
            "('processing', 'capturing', 'canceling')",
            "attempts": "SELECT COUNT(*) FROM attempts WHERE status = 'started'",
            "operations": "SELECT COUNT(*) FROM operations WHERE status = 'pending'",
            "refunds": "SELECT COUNT(*) FROM refunds WHERE status = 'pending'",
            "keys": "SELECT COUNT(*) FROM idempotency WHERE status = 'in_progress'",
        }
        counts = [(name, conn.execute(q).fetchone()[0]) for name, q in queries.items()]
    finally:
        conn.close()
    return [(name, n) for name, n in counts if n]


async def _settled(db: Path, timeout_s: float = SETTLE_S) -> None:
    deadline = time.monotonic() + timeout_s
    left = _in_flight(db)
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        left = _in_flight(db)
    assert not left, f"still in flight {timeout_s} s after the restart: {left}"


class Client:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.s = session
        self.url = url

    async def post(
        self, path: str, body: dict[str, Any], key: str | None = None
    ) -> tuple[int, Any, bool]:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        async with self.s.post(self.url + path, json=body, headers=headers) as r:
            return r.status, await r.json(), r.headers.get("Idempotent-Replayed") == "true"

    async def get(self, path: str) -> Any:
        async with self.s.get(self.url + path, headers={"Authorization": f"Bearer {API_KEY}"}) as r:
            assert r.status == 200, await r.text()
            return await r.json()


def _payment_body(psp: str, manual: bool, amount: int = AMOUNT) -> dict[str, Any]:
    return {
        "amount": amount,
        "currency": "EUR",
        "payment_method": card(),
        "capture_method": "manual" if manual else "automatic",
        "connector": psp,
    }


def _request(op: str, psp: str, payment_id: str | None) -> tuple[str, dict[str, Any]]:
    """The operation's request (path, body)."""
    if op.startswith("authorize"):
        return "/v1/payments", _payment_body(psp, op == "authorize_manual")
    if op == "capture":
        return f"/v1/payments/{payment_id}/capture", {}
    if op == "partial_capture":
        return f"/v1/payments/{payment_id}/capture", {"amount": PART}
    if op == "void":
        return f"/v1/payments/{payment_id}/cancel", {}
    if op == "refund":
        return "/v1/refunds", {"payment_id": payment_id}
    return "/v1/refunds", {"payment_id": payment_id, "amount": PART}


def _check_final(op: str, status: int, body: dict[str, Any]) -> None:
    """The final answer of one successful operation."""
    assert status == 200, (status, body)
    if op == "authorize_automatic":
        assert body["status"] == "succeeded" and body["amount_received"] == AMOUNT, body
    elif op == "authorize_manual":
        assert body["status"] == "requires_capture" and body["amount_capturable"] == AMOUNT, body
    elif op in ("capture", "partial_capture"):
        received = AMOUNT if op == "capture" else PART
        assert body["status"] == "succeeded" and body["amount_received"] == received, body
        assert body["amount_capturable"] == 0, body
    elif op == "void":
        assert body["status"] == "canceled" and body["amount_capturable"] == 0, body
    else:
        assert body["object"] == "refund" and body["status"] == "succeeded", body
        assert body["amount"] == (AMOUNT if op == "refund" else PART), body


def _kind(op: str) -> str:
    return {"partial_capture": "capture", "partial_refund": "refund"}.get(op, op)


@pytest.mark.parametrize(("op", "point", "psp"), CASES)
async def test_kill_at_point_then_retry_gets_the_final_answer(
    op: str, point: str, psp: str, sandbox: SandboxProcess, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "paymux.toml"
    config.write_text(toml_text(process_gateway_config(tmp_path, port, sandbox.port, API_KEY)))
    db = tmp_path / "paymux.db"
    gateway = GatewayProcess(config, port)
    key = f"crash-{op}-{point}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        before = {p["id"] for p in ledger_payments(await _ledger(session, sandbox))}
        client = Client(session, gateway.url)
        try:
            await gateway.start(crash_at=f"{CRASH_OP[op]}.{point}")
            payment_id = None
            if not op.startswith("authorize"):  # the prerequisite: a payment to operate on
                manual = op in ("capture", "partial_capture", "void")
                status, paid, _ = await client.post("/v1/payments", _payment_body(psp, manual))
                assert status == 200, paid
                assert paid["status"] == ("requires_capture" if manual else "succeeded"), paid
                payment_id = paid["id"]
            path, body = _request(op, psp, payment_id)
            if point == "during_psp":
                await _latency(session, sandbox, psp, DURING_LATENCY_MS)
            try:
                with pytest.raises((aiohttp.ClientError, TimeoutError)):
                    await client.post(path, body, key)
            finally:
                if point == "during_psp":
                    await _latency(session, sandbox, psp, 0)
            assert await gateway.wait_dead(), "the armed gateway did not die at its point"

            await gateway.start()  # unarmed; recovery runs before it listens
            await _settled(db)
            status, answer, replayed = await client.post(path, body, key)
            _check_final(op, status, answer)
            # once more: the same committed answer, replayed
            again = await client.post(path, body, key)
            assert again[:2] == (status, answer) and again[2], again
            if op.startswith("authorize"):
                payment_id = answer["id"]
            payment = await client.get(f"/v1/payments/{payment_id}")
            if not op.startswith("authorize"):
                assert payment["connector"] == psp
            await _settled(db, 5.0)
            psp_payments = ledger_payments(await _ledger(session, sandbox), since=before)
        finally:
            gateway.stop()
    assert_ledger_agrees(ledger_disagreements(db, psp_payments))
    # The operation was applied exactly once at the PSP (and the authorization once).
    ours = [p for p in psp_payments if p["id"] == payment["connector_reference"]]
    assert len(ours) == 1, psp_payments
    held = [p for p in psp_payments if p["authorized"] and not p["voided"]]
    assert len(held) <= 1, f"more than one authorization held: {held}"
    events = [e for e in ours[0]["events"] if e["type"] == _kind(op)]
    if op.startswith("authorize"):
        assert [e["type"] for e in ours[0]["events"]].count("authorization") == 1
    else:
        assert len(events) == 1, ours[0]["events"]
    if point == "before_psp" and (op.startswith("authorize") or psp != "adyen"):
        # The PSP never saw it and says so: the key was freed and the retry ran afresh.
        assert not replayed, "a request the PSP never saw must run afresh"
    if point == "after_commit":
        assert replayed, "the committed answer must be replayed"
