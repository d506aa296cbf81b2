"""Analytics fixtures: a store filled with known attempts, and the gateway fixture reused."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from paymux.store.sqlite import SqliteStore

from tests.gateway.conftest import gateway, pytest_configure  # noqa: F401 - reused fixture

NOW = 1_800_000_000.0


class Seeder:
    """Writes payments and attempts with exactly the fields the reports read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(path)
        self.conn.execute("INSERT INTO merchants VALUES ('m_alpha', 'alpha', 0)")
        self.n = 0

    def payment(
        self,
        attempts: list[dict[str, Any]],
        *,
        amount: int = 1000,
        currency: str = "EUR",
        country: str = "DE",
        brand: str = "visa",
        status: str | None = None,
        at: float = NOW - 60,
        merchant: str = "m_alpha",
    ) -> str:
        self.n += 1
        pid = f"pay_{self.n:06d}"
        approved = any(a["status"] in ("captured", "authorized") for a in attempts)
        final = status or ("succeeded" if approved else "failed")
        self.conn.execute(
            "INSERT INTO payments (id, merchant_id, status, amount, currency, capture_method,"
            " connector, card_brand, card_bin, card_last4, billing_country, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, 'automatic', ?, ?, '42424242', '4242', ?, ?, ?)",
            (
                pid,
                merchant,
                final,
                amount,
                currency,
                attempts[-1]["connector"],
                brand,
                country,
                at,
                at,
            ),
        )
        for seq, a in enumerate(attempts, 1):
            aid = f"att_{self.n:06d}_{seq}"
            self.conn.execute(
                "INSERT INTO attempts (id, payment_id, merchant_id, seq, connector, reference,"
                " status, amount, currency, raw_code, normalized_code, decline_class, latency_ms,"
                " fee, card_brand, card_bin, billing_country, created_at, updated_at) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '42424242', ?, ?, ?)",
                (
                    aid,
                    pid,
                    merchant,
                    seq,
                    a["connector"],
                    aid,
                    a["status"],
                    amount,
                    currency,
                    a.get("raw_code"),
                    a.get("code"),
                    a.get("klass"),
                    a.get("latency_ms", 100.0),
                    a.get("fee"),
                    brand,
                    country,
                    at + seq * 0.01,
                    at + seq * 0.01,
                ),
            )
        self.conn.commit()
        return pid


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[Seeder]:
    path = tmp_path / "analytics.db"
    store = SqliteStore(str(path))
    asyncio.run(store.open())
    asyncio.run(store.close())
    seeder = Seeder(path)
    yield seeder
    seeder.conn.close()
