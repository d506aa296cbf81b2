"""A client that goes away is a normal event: an info line with the request id, a count in
`paymux_client_disconnects_total`, never a 500; and a payment already sent to the PSP completes
and is stored, so the client's retry replays it."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest
from paymux.observability.metrics import REGISTRY
from paymux.sandbox.scenario import Behaviour, Latency, Psp, Scenario

from tests.edge.conftest import Raw, payment_body

SLOW_STRIPE = Scenario(
    psps={
        "stripe": Psp(wire="stripe", default=Behaviour(latency=Latency(kind="fixed", ms=300.0))),
        "adyen": Psp(wire="adyen"),
        "checkout": Psp(wire="checkout"),
    }
)


def _disconnects(phase: str) -> float:
    return REGISTRY.get_sample_value("paymux_client_disconnects_total", {"phase": phase}) or 0.0


def _attempts(db) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]
    finally:
        conn.close()


def _lines(gw, event: str) -> list[dict]:
    return [
        json.loads(line) for line in gw.log_lines().splitlines() if f'"event":"{event}"' in line
    ]


async def test_disconnect_mid_body_is_info_and_counted_never_500(edge_gw):
    before = _disconnects("body")
    raw = await Raw.open(edge_gw.port)
    await raw.send(
        f"POST /v1/payments HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "
        f"{edge_gw.keys['m_alpha']}\r\nContent-Type: application/json\r\nX-Request-Id: rid-body-1"
        f'\r\nContent-Length: 300\r\n\r\n{{"amount": 10'.encode()
    )
    for _ in range(200):
        if any(r.get("request_id") == "rid-body-1" for r in _lines(edge_gw, "request")):
            break
        if _ == 2:
            raw.writer.transport.abort()
        await asyncio.sleep(0.02)
    gone = [r for r in _lines(edge_gw, "client_disconnected") if r["request_id"] == "rid-body-1"]
    assert gone and gone[0]["level"] == "info" and gone[0]["phase"] == "body"
    request = next(r for r in _lines(edge_gw, "request") if r["request_id"] == "rid-body-1")
    assert request["status"] == 499
    assert _disconnects("body") == before + 1
    assert not _lines(edge_gw, "unhandled_error")
    assert '"level":"error"' not in edge_gw.log_lines()


@pytest.mark.sandbox_scenario(SLOW_STRIPE)
async def test_a_payment_sent_to_the_psp_completes_and_the_retry_replays_it(edge_gw):
    before = _disconnects("response")
    body = json.dumps(payment_body()).encode()
    raw = await Raw.open(edge_gw.port)
    await raw.send(
        f"POST /v1/payments HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer "
        f"{edge_gw.keys['m_alpha']}\r\nContent-Type: application/json\r\n"
        f"Idempotency-Key: order-77\r\nX-Request-Id: rid-gone-1\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    for _ in range(500):  # until the attempt is persisted: it is sent to the PSP right after
        if _attempts(edge_gw.db_path):
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    raw.writer.transport.abort()  # the client goes away while the PSP is working
    headers = {**edge_gw.auth(), "Idempotency-Key": "order-77"}
    for _ in range(300):  # the retry: "in progress" until the first one is stored
        async with edge_gw.session.post(
            edge_gw.url + "/v1/payments", json=payment_body(), headers=headers
        ) as r:
            answer = await r.json()
            if r.status != 409:
                break
        await asyncio.sleep(0.02)
    assert r.status == 200 and r.headers.get("Idempotent-Replayed") == "true"
    assert answer["status"] == "succeeded"
    async with edge_gw.session.get(
        edge_gw.url + f"/v1/payments/{answer['id']}", headers=edge_gw.auth()
    ) as got:
        assert (await got.json())["status"] == "succeeded"
    gone = [r for r in _lines(edge_gw, "client_disconnected") if r["request_id"] == "rid-gone-1"]
    assert gone and gone[0]["level"] == "info" and gone[0]["phase"] == "response"
    assert _disconnects("response") == before + 1
    assert '"level":"error"' not in edge_gw.log_lines()
