"""Analytics on PostgreSQL with 1,000,000 attempts: the time of every report the dashboard calls,
and EXPLAIN of the main scan. Prints figures; never pass/fail.

    .venv/bin/python benchmarks/bench_pg_analytics.py [--attempts 1000000] [--url postgresql://...]

Without --url it starts a throwaway cluster (scripts/install-postgres.sh start) and removes it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))

from paymux.analytics.queries import AnalyticsQuery, run_report
from paymux.store.postgres import PostgresStore

NOW = 1_800_000_000.0
DASHBOARD = [  # (report, query) as the dashboard asks for them
    ("health", {"from_ts": NOW - 300, "group_by": ("connector",)}),
    ("approvals", {"group_by": ("connector",)}),
    ("declines", {"group_by": ("connector",)}),
    ("failover", {"group_by": ("connector",)}),
    ("latency", {"group_by": ("connector",)}),
    ("fees", {"group_by": ("connector",)}),
    ("timeseries", {"group_by": ("connector",), "resolution": 900}),
    ("approvals", {"group_by": ("country",)}),
]


async def load(url: str, n: int) -> None:
    store = PostgresStore(url, pool_min=1, pool_max=2)
    await store.open()
    await store.close()
    conn = await asyncpg.connect(url)
    rng = random.Random(16)
    try:
        await conn.execute("INSERT INTO merchants VALUES ('m_alpha', 'alpha', 0)")
        payments, attempts = [], []
        i = 0
        while len(attempts) < n:
            i += 1
            pid = f"pay_{i:09d}"
            at = NOW - rng.uniform(0, 86400)
            chain = rng.choice([1, 1, 1, 1, 2, 3])
            status = "succeeded"
            for seq in range(1, chain + 1):
                last = seq == chain
                ok = last and rng.random() < 0.8
                st = "captured" if ok else rng.choice(["declined", "failed"])
                attempts.append(
                    (
                        f"att_{i:09d}_{seq}",
                        pid,
                        "m_alpha",
                        seq,
                        rng.choice(["stripe", "adyen", "checkout"]),
                        f"ref_{i}_{seq}",
                        st,
                        1000,
                        "EUR",
                        None if ok else "do_not_honor",
                        None if ok else "soft_route",
                        rng.lognormvariate(5, 0.6),
                        rng.choice([10, 20, 30]),
                        "visa",
                        "424242",
                        rng.choice(["DE", "FR", "US", "BR"]),
                        at + seq * 0.01,
                        at + seq * 0.01,
                    )
                )
                if not ok and last:
                    status = "failed"
            payments.append((pid, "m_alpha", status, 1000, "EUR", "automatic", at, at))
        cols = [
            "id",
            "payment_id",
            "merchant_id",
            "seq",
            "connector",
            "reference",
            "status",
            "amount",
            "currency",
            "normalized_code",
            "decline_class",
            "latency_ms",
            "fee",
            "card_brand",
            "card_bin",
            "billing_country",
            "created_at",
            "updated_at",
        ]
        await conn.copy_records_to_table(
            "payments",
            records=payments,
            columns=[
                "id",
                "merchant_id",
                "status",
                "amount",
                "currency",
                "capture_method",
                "created_at",
                "updated_at",
            ],
        )
        await conn.copy_records_to_table("attempts", records=attempts[:n], columns=cols)
        await conn.execute("VACUUM ANALYZE")  # index-only scans need the visibility map
    finally:
        await conn.close()


async def explain(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "EXPLAIN (ANALYZE, BUFFERS) SELECT a.connector, count(*), "
            "sum((a.status IN ('authorized', 'captured', 'voided', 'refunded'))::int) "
            "FROM attempts a WHERE a.created_at >= $1 AND a.created_at < $2 "
            "AND a.connector = 'stripe' GROUP BY a.connector",
            NOW - 86400,
            NOW,
        )
        return "\n".join(r[0] for r in rows)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--url")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cluster = None
    url = args.url
    if url is None:
        out = subprocess.run(
            [str(ROOT / "scripts/install-postgres.sh"), "start"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        cluster, base = out[-2], out[-1]
        subprocess.run(["psql", "-X", "-q", base, "-c", "CREATE DATABASE bench"], check=True)
        url = base.rsplit("/", 1)[0] + "/bench"
    try:
        started = time.perf_counter()
        asyncio.run(load(url, args.attempts))
        print(f"loaded {args.attempts} attempts in {time.perf_counter() - started:.1f}s")
        print(f"{'report':<12} {'group_by':<12} {'median ms':>10} {'max ms':>8}")
        for name, extra in DASHBOARD:
            q = AnalyticsQuery(**{"from_ts": NOW - 86400, "to_ts": NOW, **extra})
            run_report(url, name, q)  # warm
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                run_report(url, name, q)
                times.append((time.perf_counter() - t) * 1000)
            print(
                f"{name:<12} {','.join(q.group_by):<12} "
                f"{statistics.median(times):>10.1f} {max(times):>8.1f}"
            )
        print("\nEXPLAIN of one connector's scan (approvals/health):")
        print(asyncio.run(explain(url)))
    finally:
        if cluster:
            cmd = [str(ROOT / "scripts/install-postgres.sh"), "stop", cluster, "--remove"]
            subprocess.run(cmd, check=False)


if __name__ == "__main__":
    main()
