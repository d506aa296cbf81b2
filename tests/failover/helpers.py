"""Small helpers the failover tests share: sandbox controls and reading paymux's own records."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.failover.conftest import ADMIN_KEY


async def sandbox_patch(gw: Any, patch: dict[str, Any]) -> None:
    async with gw.session.post(gw.sandbox_url + "/_sandbox/scenario", json=patch) as r:
        assert r.status == 200, await r.text()


async def sandbox_outage(gw: Any, **body: Any) -> None:
    async with gw.session.post(gw.sandbox_url + "/_sandbox/outage", json=body) as r:
        assert r.status == 200, await r.text()


async def admin(
    gw: Any, method: str, path: str, body: Any = None, key: str | None = ADMIN_KEY
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with gw.session.request(method, gw.url + path, json=body, headers=headers) as r:
        return r.status, await r.json()


def events(db_path: Path, payment_id: str) -> list[dict[str, Any]]:
    import msgspec

    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT * FROM events WHERE payment_id = ? ORDER BY id", (payment_id,)
        ).fetchall()
    finally:
        conn.close()
    out = []
    for r in rows:
        d = dict(r)
        d["data"] = msgspec.json.decode(d["data"]) if d["data"] else {}
        out.append(d)
    return out


def attempt_rows(db_path: Path, payment_id: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return [
            dict(r)
            for r in conn.execute(
                "SELECT * FROM attempts WHERE payment_id = ? ORDER BY seq", (payment_id,)
            )
        ]
    finally:
        conn.close()


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0, every_s: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(every_s)


def payment_body(number: str = "4242424242424242", **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "amount": 2500,
        "currency": "EUR",
        "payment_method": {
            "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}
        },
    }
    body.update(kw)
    return body
