"""Analytics on a million attempts: how long each report takes on the embedded SQLite store.

Fills a temporary store (all migrations applied, so the analytics index is the real one) with
synthetic payments and attempts spread over 7 days, then times every report over the whole week,
the last day, and the last hour filtered to one connector. Prints figures; asserts nothing.

    .venv/bin/python benchmarks/bench_analytics.py [--attempts 1000000] [--keep PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from paymux.analytics import queries
from paymux.analytics.queries import REPORTS, AnalyticsQuery, run_report
from paymux.store.sqlite import SqliteStore

CONNECTORS = ["stripe", "adyen", "checkout", "worldpay", "braintree"]
COUNTRIES = ["US", "GB", "DE", "FR", "NL", "ES", "IT", "BR", "JP", "AU"]
BRANDS = ["visa", "visa", "visa", "mastercard", "mastercard", "amex", "discover"]
CURRENCIES = {"US": "USD", "GB": "GBP", "BR": "BRL", "JP": "JPY", "AU": "AUD"}
DECLINES = [  # normalized code, class, raw code
    ("insufficient_funds", "issuer_not_now", "51"),
    ("do_not_honor", "soft_route", "05"),
    ("generic_decline", "soft_route", "DECLINED"),
    ("expired_card", "fix_data", "54"),
    ("incorrect_cvc", "fix_data", "N7"),
    ("lost_card", "hard", "41"),
    ("processing_error", "technical", "96"),
]
WEEK = 7 * 86400


def fill(path: str, attempts: int, seed: int = 1) -> tuple[float, int]:
    """Insert payments and their attempts; returns (the newest timestamp, payments inserted)."""
    rng = random.Random(seed)
    now = time.time()
    start = now - WEEK
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("INSERT OR IGNORE INTO merchants VALUES ('m_bench', 'bench', 0)")
    pay_rows: list[tuple] = []
    att_rows: list[tuple] = []
    made = 0
    payments = 0
    step = WEEK / attempts
    t = start
    while made < attempts:
        payments += 1
        pid = f"pay_{payments:012d}"
        country = rng.choice(COUNTRIES)
        currency = CURRENCIES.get(country, "EUR")
        brand = rng.choice(BRANDS)
        bin_ = f"{rng.choice('45')}{rng.randrange(10**7):07d}"
        amount = rng.randrange(100, 50_000)
        order = rng.sample(CONNECTORS, 3)
        final = "failed"
        winner = order[0]
        for seq, connector in enumerate(order, 1):
            t += step
            made += 1
            latency = rng.lognormvariate(5.3, 0.5)  # ~200 ms median
            roll = rng.random()
            if roll < 0.82:
                status, code, klass, raw = "captured", None, None, None
            elif roll < 0.97:
                status = "declined"
                code, klass, raw = rng.choice(DECLINES[:-1])
            else:
                status = "failed"
                code, klass, raw = DECLINES[-1]
                latency = 8000.0
            fee = amount * 29 // 1000 + 30
            att_rows.append(
                (
                    f"att_{made:012d}",
                    pid,
                    "m_bench",
                    seq,
                    connector,
                    f"att_{made:012d}",
                    status,
                    amount,
                    currency,
                    f"psp_{made}",
                    raw,
                    "declined" if raw else None,
                    code,
                    klass,
                    round(latency, 3),
                    0,
                    None,
                    fee,
                    brand,
                    bin_,
                    country,
                    t,
                    t,
                )
            )
            winner = connector
            if status == "captured":
                final = "succeeded"
                break
            if klass not in ("soft_route", "technical") or made >= attempts:
                break
        pay_rows.append(
            (
                pid,
                "m_bench",
                final,
                amount,
                currency,
                "automatic",
                0,
                amount if final == "succeeded" else 0,
                0,
                winner,
                None,
                None,
                brand,
                bin_,
                "4242",
                12,
                2034,
                country,
                t,
                t,
            )
        )
        if len(att_rows) >= 50_000:
            _flush(conn, pay_rows, att_rows)
    _flush(conn, pay_rows, att_rows)
    # No ANALYZE: the gateway never runs it, so the plans measured are the ones it gets.
    conn.close()
    return now, payments


def _flush(conn: sqlite3.Connection, pay_rows: list[tuple], att_rows: list[tuple]) -> None:
    with conn:
        conn.executemany(
            "INSERT INTO payments (id, merchant_id, status, amount, currency, capture_method,"
            " amount_capturable, amount_received, amount_refunded, connector, connector_reference,"
            " token_id, card_brand, card_bin, card_last4, card_exp_month, card_exp_year,"
            f" billing_country, created_at, updated_at) VALUES ({', '.join('?' * 20)})",
            pay_rows,
        )
        conn.executemany(
            "INSERT INTO attempts (id, payment_id, merchant_id, seq, connector, reference, status,"
            " amount, currency, connector_reference, raw_code, raw_message, normalized_code,"
            " decline_class, latency_ms, ambiguous, next_action, fee, card_brand, card_bin,"
            " billing_country, created_at, updated_at) VALUES"
            f" ({', '.join('?' * 23)})",
            att_rows,
        )
    pay_rows.clear()
    att_rows.clear()


def timed(path: str, name: str, q: AnalyticsQuery, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run_report(path, name, q)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", help="build the store at this path and keep it")
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the comparison with migration 1's indexes only",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or str(Path(tmp) / "bench.db")
        store = SqliteStore(path)
        asyncio.run(store.open())
        asyncio.run(store.close())
        t0 = time.perf_counter()
        now, payments = fill(path, args.attempts)
        print(
            f"filled {args.attempts:,} attempts / {payments:,} payments in "
            f"{time.perf_counter() - t0:.1f} s ({Path(path).stat().st_size / 2**20:.0f} MiB)"
        )
        ranges = {
            "7 days, by connector": AnalyticsQuery(from_ts=now - WEEK - 1, to_ts=now + 1),
            "24 h, by connector": AnalyticsQuery(from_ts=now - 86400, to_ts=now + 1),
            "24 h, by connector+country": AnalyticsQuery(
                from_ts=now - 86400, to_ts=now + 1, group_by=("connector", "country")
            ),
            "1 h, connector=adyen, by brand": AnalyticsQuery(
                from_ts=now - 3600,
                to_ts=now + 1,
                group_by=("brand",),
                filters={"connector": ("adyen",)},
            ),
        }
        print(f"\n{'report':<12}" + "".join(f"{label:>34}" for label in ranges))
        for name in REPORTS:
            cells = []
            for q in ranges.values():
                if name == "timeseries":
                    span = q.to_ts - q.from_ts
                    q = AnalyticsQuery(
                        **{
                            **{f: getattr(q, f) for f in q.__struct_fields__},
                            "resolution": 3600 if span > 86400 else 300,
                        }
                    )
                cells.append(f"{timed(path, name, q, args.repeat) * 1000:>31.1f} ms")
            print(f"{name:<12}" + "".join(cells))
        if not args.no_baseline:
            baseline(path, ranges["24 h, by connector"], args.repeat)


def baseline(path: str, q: AnalyticsQuery, repeat: int) -> None:
    """The same reports through migration 1's (connector, created_at) index, which is not
    covering: what the analytics index buys, as a ratio, in the same run."""
    fast = {name: timed(path, name, q, repeat) for name in REPORTS}
    hinted, payments = queries._attempts, queries._payments
    queries._attempts = lambda conn: "attempts a INDEXED BY attempts_connector"  # type: ignore[assignment]
    queries._payments = lambda conn: "payments p"  # type: ignore[assignment]
    try:
        slow = {name: timed(path, name, q, repeat) for name in REPORTS}
    finally:
        queries._attempts, queries._payments = hinted, payments
    print("\n24 h, by connector: analytics index vs migration 1's indexes only")
    for name in REPORTS:
        print(
            f"{name:<12}{fast[name] * 1000:>10.1f} ms {slow[name] * 1000:>10.1f} ms"
            f"   x{slow[name] / fast[name]:.1f}"
        )


if __name__ == "__main__":
    main()
