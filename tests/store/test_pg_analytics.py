"""The analytics reports on PostgreSQL give exactly what they give on SQLite, on the hand-checked
traffic of tests/analytics and on a larger random set, for every report, grouping and filter."""

from __future__ import annotations

import asyncio
import math
import random
import sqlite3
from typing import Any

import asyncpg
import pytest
from paymux.analytics.queries import REPORTS, AnalyticsQuery, run_report
from paymux.store.postgres import PostgresStore

from tests.analytics.conftest import NOW, seeded  # noqa: F401 - the reused fixture
from tests.analytics.test_reports import DNH_ADYEN, DNH_STRIPE, FUNDS, OK, TIMEOUT, on

TABLES = ("merchants", "payments", "attempts")


async def _copy_to_pg(sqlite_path: str | None, url: str) -> None:
    store = PostgresStore(url, pool_min=1, pool_max=2)
    await store.open()  # the schema, by the migrations
    await store.close()
    if sqlite_path is None:
        return
    src = sqlite3.connect(sqlite_path)
    src.row_factory = sqlite3.Row
    conn = await asyncpg.connect(url)
    try:
        for table in TABLES:
            rows = [dict(r) for r in src.execute(f"SELECT * FROM {table}")]
            if rows:
                cols = list(rows[0])
                await conn.copy_records_to_table(
                    table, records=[tuple(r[c] for c in cols) for r in rows], columns=cols
                )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
        src.close()


QUERIES = [
    {},
    {"group_by": ("country",)},
    {"group_by": ("brand", "currency")},
    {"group_by": ()},
    {"filters": {"connector": ("adyen",)}},
    {"filters": {"country": ("DE", "FR")}, "group_by": ("connector", "country")},
    {"group_by": ("merchant",), "top": 1},
    {"resolution": 600},
]


def assert_same(a: Any, b: Any, where: str) -> None:
    """Equal, floats to the last rounded digit (sums of many floats may add up in another
    order on each backend: 5123.405 against 5123.404)."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, int | float) and isinstance(b, int | float), (where, a, b)
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0011), (where, a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (where, a, b)
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), (where, a, b)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


def _compare(sqlite_path: str, url: str) -> int:
    compared = 0
    for name in REPORTS:
        for extra in QUERIES:
            q = AnalyticsQuery(**{"from_ts": NOW - 3600, "to_ts": NOW, **extra})
            lite = run_report(sqlite_path, name, q)
            pg = run_report(url, name, q)
            assert_same(lite, pg, f"{name} {extra}")
            compared += 1
    return compared


def test_hand_checked_traffic_gives_the_same_reports(seeded, pg_url):  # noqa: F811
    for latency in (100.0, 200.0, 300.0):
        seeded.payment([on("stripe", OK, latency_ms=latency, fee=30)], amount=1000)
    seeded.payment([on("stripe", FUNDS, fee=30)])
    seeded.payment([on("adyen", OK, fee=20)], amount=500, country="FR", brand="mastercard")
    seeded.payment([on("adyen", OK, fee=20)], amount=700, currency="USD", country="US")
    seeded.payment([on("stripe", DNH_STRIPE, fee=30), on("adyen", OK, fee=20)], amount=2000)
    seeded.payment(
        [on("stripe", TIMEOUT, fee=30), on("adyen", DNH_ADYEN, fee=20), on("checkout", OK, fee=10)],
        amount=3000,
    )
    seeded.payment([on("checkout", FUNDS)], at=NOW - 7200)
    asyncio.run(_copy_to_pg(str(seeded.path), pg_url))
    assert _compare(str(seeded.path), pg_url) == len(REPORTS) * len(QUERIES)
    body = run_report(pg_url, "approvals", AnalyticsQuery(from_ts=NOW - 3600, to_ts=NOW))
    assert body["totals"]["payments"] == 8  # the one outside the window does not count


def test_random_traffic_gives_the_same_reports(seeded, pg_url):  # noqa: F811
    rng = random.Random(16)
    outcomes = [OK, OK, OK, FUNDS, DNH_STRIPE, DNH_ADYEN, TIMEOUT]
    for _ in range(400):
        chain = [
            on(
                rng.choice(["stripe", "adyen", "checkout"]),
                rng.choice(outcomes),
                latency_ms=round(rng.uniform(1, 12000), 3),
                fee=rng.choice([None, 10, 20, 33]),
            )
            for _ in range(rng.randint(1, 3))
        ]
        seeded.payment(
            chain,
            amount=rng.randint(1, 10**6),
            currency=rng.choice(["EUR", "USD", "JPY"]),
            country=rng.choice(["DE", "FR", "US", "BR"]),
            brand=rng.choice(["visa", "mastercard", "amex"]),
            at=NOW - rng.uniform(1, 3599),
            merchant="m_alpha",
        )
    asyncio.run(_copy_to_pg(str(seeded.path), pg_url))
    _compare(str(seeded.path), pg_url)


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_an_empty_database_reports_nothing(pg_url, name):
    asyncio.run(_copy_to_pg(None, pg_url))
    body = run_report(pg_url, name, AnalyticsQuery(from_ts=NOW - 3600, to_ts=NOW))
    assert body["object"] == f"analytics.{name}"
