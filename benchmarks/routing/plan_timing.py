"""Per-call cost of RoutingEngine.plan / observe / explain on a warmed engine, next to the Rust
calls plan makes (RuleSet.evaluate + Selector.rank), so the Python overhead is visible."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from paymux.connectors.base import Capabilities
from paymux.routing import PaymentAttributes, RoutingConfig, RoutingEngine

NAMES = ["adyen", "stripe", "checkout"]
SEGMENTS = [
    ("visa", "DE", "EUR"),
    ("mastercard", "DE", "EUR"),
    ("visa", "US", "USD"),
    ("mastercard", "US", "USD"),
    ("amex", "US", "USD"),
    ("visa", "GB", "GBP"),
]


def _per_call(fn: Callable[[Any], Any], items: list[Any], rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for x in items:
            fn(x)
        best = min(best, (time.perf_counter() - t0) / len(items))
    return best * 1e6


def measure(n: int = 20_000) -> dict[str, float]:
    rng = random.Random(1)
    fees = {
        "adyen": [{"percent_bps": 120, "fixed": 11}],
        "stripe": [{"percent_bps": 250, "fixed": 25}],
        "checkout": [{"percent_bps": 160, "fixed": 20, "region": "EEA"}, {"percent_bps": 210}],
    }
    rules = [
        {"name": f"m{i}", "when": {"merchant": [f"m_{i}"]}, "then": {"connectors": ["adyen"]}}
        for i in range(20)
    ]
    caps = {n: Capabilities() for n in NAMES}

    def build(strategy: str) -> RoutingEngine:
        cfg = RoutingConfig.from_dict(
            {
                "rules": rules,
                "default": {"strategy": strategy, "connectors": NAMES},
                "fees": fees,
                "dynamic": {"seed": 1},
            }
        )
        return RoutingEngine(cfg, caps)

    pays = []
    for i in range(n):
        brand, country, currency = rng.choice(SEGMENTS)
        pays.append(
            PaymentAttributes(
                payment_id=f"pay_{i}",
                amount=rng.randrange(100, 100_000),
                currency=currency,
                brand=brand,
                country=country,
                merchant_id="m_shop",
            )
        )
    dyn = build("dynamic")
    for i, p in enumerate(pays):  # warm the health windows: every PSP, every segment
        dyn.observe(NAMES[i % 3], p, "approved" if i % 10 else "soft_route", 250.0, i / 50)
    now = n / 50
    prio = build("priority")
    rank = dyn._selector.rank
    rs = dyn._rules.global_rules
    segs = [dyn.segments(p) for p in pays]
    fee_lists = [[dyn.fee(c, p) for c in NAMES] for p in pays]
    idx = list(range(n))

    def rust_only(i: int) -> None:
        p = pays[i]
        rs.evaluate(
            currency=p.currency,
            amount=p.amount,
            brand=p.brand,
            country=p.country,
            merchant_id=p.merchant_id,
            now=now,
            payment_id=p.payment_id,
        )
        r = rank(NAMES, segs[i], p.amount, fee_lists[i], now)
        for e in r.estimates:  # plan reads every estimate once
            _ = (e.connector, e.approval, e.fee, e.expected_value, e.samples)
            _ = (e.segment, e.breaker, e.explored, e.probe)

    out = {
        "plan_dynamic_us": _per_call(lambda p: dyn.plan(p, now), pays),
        "rust_calls_of_plan_us": _per_call(rust_only, idx),
        "plan_priority_us": _per_call(lambda p: prio.plan(p, now), pays),
        "observe_us": _per_call(lambda p: dyn.observe("adyen", p, "approved", 250.0, now), pays),
        "explain_us": _per_call(lambda p: dyn.explain(p, now), pays[:2000]),
    }
    out["plan_overhead_us"] = out["plan_dynamic_us"] - out["rust_calls_of_plan_us"]
    return out


if __name__ == "__main__":
    for k, v in measure().items():
        print(f"{k:<24}{v:8.2f}")
