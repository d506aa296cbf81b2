"""Routing hot path: Rust-through-Python vs the pure-Python reference, measured in one run.

Prints the per-call time of each and the ratio for: evaluating a 200-rule set, recording one
outcome, ranking 4 candidates. Build the extension with `maturin develop --release` first
(`make build-prod`). `run()` returns the rows so benchmarks/bench_core.py can combine them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from paymux import _core
from paymux.reference import health as ref_health
from paymux.reference import rules as ref_rules
from paymux.reference import selection as ref_selection

CURRENCIES = ["EUR", "USD", "GBP", "JPY", "CHF", "SEK", "PLN", "AUD"]
BRANDS = ["visa", "mastercard", "amex", "discover"]
COUNTRIES = ["DE", "FR", "US", "GB", "NL", "ES", "IT", "PL", "SE", "AU"]
CONNECTORS = ["stripe", "adyen", "checkout", "worldpay"]
SEGMENTS = ["visa|DE|EUR", "visa|DE", "visa", "*"]


def rule_config(n_rules: int = 200, seed: int = 1) -> dict:
    """A 200-rule set shaped like a real orchestration config: mostly merchant overrides (half),
    then BIN-range rules, country/currency corridors, channel (metadata) and night-time rules, and
    a few generic currency rules; the default routes dynamically."""
    rng = random.Random(seed)
    rules = []
    for i in range(n_rules):
        when: dict = {}
        kind = rng.random()
        if kind < 0.5:  # merchant override, often narrowed further
            when["merchant"] = [f"m_{rng.randrange(0, 400)}"]
            if rng.random() < 0.5:
                when["currency"] = rng.sample(CURRENCIES, 2)
            if rng.random() < 0.3:
                lo = rng.randrange(0, 100_000)
                when["amount"] = {"min": lo, "max": lo + rng.randrange(1_000, 50_000)}
        elif kind < 0.7:  # BIN ranges (issuer-specific routing)
            lo = rng.randrange(400000, 599000)
            when["bin"] = [f"{lo}-{lo + rng.randrange(10, 1000)}"]
        elif kind < 0.85:  # corridors
            when["country"] = rng.sample(COUNTRIES, 1)
            when["currency"] = rng.sample(CURRENCIES, 1)
            when["brand"] = rng.sample(BRANDS, 2)
        elif kind < 0.95:  # channel and time-of-day rules
            when["metadata"] = {"channel": rng.choice(["moto", "ivr"])}
            when["time"] = {"days": ["sat", "sun"], "from": "22:00", "to": "06:00"}
        else:  # generic currency rules
            when["currency"] = rng.sample(CURRENCIES, 1)
            when["card_type"] = ["prepaid"]
        rules.append(
            {
                "name": f"rule-{i}",
                "priority": rng.randrange(0, 50),
                "when": when,
                "then": {"strategy": "priority", "connectors": rng.sample(CONNECTORS, 2)},
            }
        )
    rules[-1] = {
        "name": "gbp-split",
        "priority": 100,
        "when": {"currency": ["GBP"], "amount": {"min": 50_000}},
        "then": {"strategy": "split", "weights": {"adyen": 70, "stripe": 30}},
    }
    return {
        "utc_offset_minutes": 60,
        "rules": rules,
        "default": {"strategy": "dynamic", "connectors": CONNECTORS},
    }


def payments(n: int = 256, seed: int = 2) -> list[tuple]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        out.append(
            (
                rng.choice(CURRENCIES),
                rng.randrange(100, 200_000),
                rng.choice(BRANDS),
                rng.choice(["credit", "debit", None]),
                str(rng.randrange(400000, 599999)),
                rng.choice(COUNTRIES),
                f"m_{rng.randrange(0, 400)}",
                {"channel": rng.choice(["web", "app", "moto"])},
                1_704_844_800.0 + rng.randrange(0, 7 * 86400),
                f"pay_{i}",
            )
        )
    return out


def per_call_ns(fn: Callable[[int], None], calls: int, repeats: int = 5) -> float:
    """Best-of-`repeats` nanoseconds per call of `fn(calls)`, which makes `calls` calls."""
    fn(max(1, calls // 10))  # warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        fn(calls)
        best = min(best, (time.perf_counter_ns() - start) / calls)
    return best


def bench_rules(n_rules: int = 200, fall_through: bool = False) -> dict:
    config = rule_config(n_rules)
    batch = payments()
    if fall_through:  # a currency no rule names: every rule is looked at, then the default
        batch = [("NOK", *p[1:3], "debit", "3" + p[4][1:], *p[5:]) for p in batch]

    def loop(rs):
        def go(calls: int) -> None:
            k = len(batch)
            for i in range(calls):
                c, a, b, t, bn, co, m, md, now, pid = batch[i % k]
                rs.evaluate(
                    currency=c,
                    amount=a,
                    brand=b,
                    card_type=t,
                    bin=bn,
                    country=co,
                    merchant_id=m,
                    metadata=md,
                    now=now,
                    payment_id=pid,
                )

        return go

    rust = _core.RuleSet(config)
    ref = ref_rules.RuleSet(config)
    for p in batch:  # same answers before timing anything
        kw = dict(
            zip(
                [
                    "currency",
                    "amount",
                    "brand",
                    "card_type",
                    "bin",
                    "country",
                    "merchant_id",
                    "metadata",
                    "now",
                    "payment_id",
                ],
                p,
                strict=True,
            )
        )
        a, b = rust.evaluate(**kw), ref.evaluate(**kw)
        assert (a.rule, a.connectors) == (b.rule, b.connectors)
    label = f"evaluate {n_rules} rules ({'no rule matches' if fall_through else 'mixed payments'})"
    return row(label, per_call_ns(loop(rust), 200_000), per_call_ns(loop(ref), 5_000), 2_000, 20)


def bench_record(segments: str | list[str], label: str) -> dict:
    outcomes = ["approved"] * 8 + ["soft_route", "issuer_not_now"]

    def loop(book):
        def go(calls: int) -> None:
            for i in range(calls):
                book.record(
                    CONNECTORS[i & 3],
                    segments,
                    outcomes[i % 10],
                    120.0 + (i & 63),
                    1000.0 + i * 0.001,
                )

        return go

    return row(
        label,
        per_call_ns(loop(_core.HealthBook()), 500_000),
        per_call_ns(loop(ref_health.HealthBook()), 50_000),
        500,
        10,
    )


def bench_rank() -> dict:
    rng = random.Random(3)

    def warmed(book_cls):
        book = book_cls()
        r = random.Random(4)
        for i in range(4000):
            c = CONNECTORS[i & 3]
            book.record(
                c,
                SEGMENTS,
                "approved" if r.random() < 0.85 else "soft_route",
                150.0,
                1000.0 + i * 0.01,
            )
        return book

    fees = [rng.randrange(10, 60) for _ in CONNECTORS]

    def loop(selector):
        def go(calls: int) -> None:
            for _ in range(calls):
                selector.rank(CONNECTORS, SEGMENTS, 10_000, fees, 1040.0)

        return go

    rust = _core.Selector(warmed(_core.HealthBook), seed=1)
    ref = ref_selection.Selector(warmed(ref_health.HealthBook), seed=1)
    return row(
        "rank 4 candidates (4 segment levels)",
        per_call_ns(loop(rust), 200_000),
        per_call_ns(loop(ref), 20_000),
        3_000,
        None,
    )


def row(
    name: str, rust_ns: float, ref_ns: float, target_ns: float | None, target_ratio: float | None
) -> dict:
    ratio = ref_ns / rust_ns
    met = (target_ns is None or rust_ns <= target_ns) and (
        target_ratio is None or ratio >= target_ratio
    )
    target = " and ".join(
        t
        for t in (
            f"<= {target_ns / 1000:g} us" if target_ns is not None else "",
            f">= {target_ratio:g}x" if target_ratio is not None else "",
        )
        if t
    )
    return {
        "benchmark": name,
        "rust_us": rust_ns / 1000,
        "reference_us": ref_ns / 1000,
        "speedup": ratio,
        "target": target,
        "target_met": met,
    }


def run() -> list[dict]:
    return [
        bench_rules(200),
        bench_rules(200, fall_through=True),
        bench_record("visa|DE|EUR", "record one outcome (1 segment)"),
        bench_record(SEGMENTS, "record one outcome (4 segment levels)"),
        bench_rank(),
    ]


def print_rows(rows: list[dict]) -> None:
    print(f"{'benchmark':<42} {'rust us':>9} {'python us':>10} {'ratio':>8}  target")
    for r in rows:
        mark = "met" if r["target_met"] else "NOT met"
        target = f"{r['target']} ({mark})" if r["target"] else "-"
        print(
            f"{r['benchmark']:<42} {r['rust_us']:>9.3f} {r['reference_us']:>10.2f} {r['speedup']:>7.1f}x  {target}"
        )


def main() -> None:
    print_rows(run())


if __name__ == "__main__":
    main()
