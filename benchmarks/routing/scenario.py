"""Routing benchmark scenarios: the TOML format (docs/routing.md), its loader and a generator of
random ("unseen") scenarios."""

from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ISSUER_CLASSES = ("issuer_not_now", "hard", "fix_data")
ISSUER_CODES = {
    "issuer_not_now": "insufficient_funds",
    "hard": "lost_card",
    "fix_data": "expired_card",
}


class ScenarioError(ValueError):
    pass


@dataclass
class Psp:
    name: str
    latency_ms: float = 300.0  # median of a log-normal
    latency_sigma: float = 0.4
    timeout_ms: float = 5000.0  # a timed-out attempt costs this long (then a status sync)
    error_latency_ms: float = 80.0  # a fast technical error (5xx, connection refused)
    technical_rate: float = 0.005  # normal share of attempts without a real answer
    timeout_share: float = 0.3  # of technical failures, the share that are timeouts
    fees: list[dict[str, Any]] = field(default_factory=list)  # routing fee rules, same format
    currencies: list[str] | None = None  # capabilities (None: any)
    brands: list[str] | None = None


@dataclass
class Segment:
    brand: str
    country: str
    currency: str
    weight: float
    approval: dict[str, float]  # P(approval | the issuer would approve the card), per PSP


@dataclass
class Change:
    at: float
    psp: str
    kind: str  # degrade | down | recover
    match: dict[str, str] = field(default_factory=dict)  # brand / country / currency
    approval_delta: float = 0.0  # degrade: added to the base approval (negative: worse)


@dataclass
class Scenario:
    name: str
    psps: list[Psp]
    segments: list[Segment]
    changes: list[Change] = field(default_factory=list)
    duration_s: float = 600.0
    rate: float = 50.0  # payments per second
    warmup_s: float = 60.0  # excluded from the approval comparisons (learning)
    amount_median: int = 5000  # minor units, log-normal
    amount_sigma: float = 1.0
    issuer_decline: float = 0.08  # share of payments the issuer declines whichever PSP asks
    issuer_mix: dict[str, float] = field(
        default_factory=lambda: {"issuer_not_now": 0.6, "hard": 0.25, "fix_data": 0.15}
    )
    do_not_retry_share: float = 0.3  # of hard declines, the share carrying advice code 03/21
    soft_advice_share: float = 0.02  # of payments, soft declines that carry advice 21
    soft_correlation: float = 0.85  # Gaussian-copula correlation of one payment's PSP draws
    timeout_processed_share: float = 0.3  # a normal-time timeout the PSP did process anyway
    # Of the timeouts the PSP did process: the share its status sync does not find yet (its index
    # lags: the gateway cascades, and the authorization surfaces `late_surface_s` later: a late
    # authorization the reconciler must void), and the share whose sync fails itself (the payment
    # stays pending at that PSP until the reconciler's sync settles it).
    sync_lag_share: float = 0.0
    sync_error_share: float = 0.0
    late_surface_s: float = 20.0
    max_attempts: int = 3
    deadline_s: float = 30.0
    static_order: list[str] | None = None  # default: by traffic-weighted base approval
    routing: dict[str, Any] = field(default_factory=dict)  # extra [routing] keys for paymux

    @property
    def psp_names(self) -> list[str]:
        return [p.name for p in self.psps]


def _fields(cls: type, raw: dict[str, Any], where: str) -> dict[str, Any]:
    known = set(cls.__dataclass_fields__)
    unknown = set(raw) - known
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}")
    return raw


def scenario_from_dict(raw: dict[str, Any], name: str = "scenario") -> Scenario:
    raw = dict(raw)
    psps = [Psp(**_fields(Psp, p, f"psps[{i}]")) for i, p in enumerate(raw.pop("psps", []))]
    if not psps:
        raise ScenarioError("at least one [[psps]] is needed")
    names = {p.name for p in psps}
    segments = []
    for i, s in enumerate(raw.pop("segments", [])):
        seg = Segment(**_fields(Segment, s, f"segments[{i}]"))
        missing = names - set(seg.approval)
        if missing or set(seg.approval) - names:
            raise ScenarioError(
                f"segments[{i}].approval must name every PSP exactly: {sorted(names)}"
            )
        segments.append(seg)
    if not segments:
        raise ScenarioError("at least one [[segments]] is needed")
    changes = []
    for i, c in enumerate(raw.pop("changes", [])):
        ch = Change(**_fields(Change, c, f"changes[{i}]"))
        if ch.psp not in names or ch.kind not in ("degrade", "down", "recover"):
            raise ScenarioError(f"changes[{i}]: unknown psp or kind (degrade | down | recover)")
        changes.append(ch)
    raw.setdefault("name", name)
    sc = Scenario(
        psps=psps,
        segments=segments,
        changes=sorted(changes, key=lambda c: c.at),
        **_fields(Scenario, raw, "scenario"),
    )
    return sc


def load_scenario(path: str | Path) -> Scenario:
    p = Path(path)
    return scenario_from_dict(tomllib.loads(p.read_text()), name=p.stem)


BRANDS = ["visa", "mastercard", "amex"]
CORRIDORS = [
    ("DE", "EUR"),
    ("FR", "EUR"),
    ("US", "USD"),
    ("GB", "GBP"),
    ("NL", "EUR"),
    ("US", "EUR"),
]
PSP_NAMES = ["adyen", "stripe", "checkout", "worldpay", "braintree"]


def random_scenario(seed: int) -> Scenario:
    """An unseen scenario: 2-5 PSPs, 3-12 segments with skewed traffic and per-PSP approval
    differences, and some of: a degradation in one segment, an outage with recovery."""
    rng = random.Random(seed * 7919 + 17)
    n_psp = rng.randint(2, 5)
    psps = []
    for name in PSP_NAMES[:n_psp]:
        psps.append(
            Psp(
                name=name,
                latency_ms=rng.uniform(150, 600),
                technical_rate=rng.uniform(0.0, 0.015),
                fees=[
                    {"percent_bps": rng.randrange(100, 320, 10), "fixed": rng.randrange(0, 35, 5)}
                ],
            )
        )
    base = {p.name: rng.uniform(0.78, 0.93) for p in psps}
    brands = rng.sample(BRANDS, rng.randint(1, 3))
    corridors = rng.sample(CORRIDORS, rng.randint(2, 4))
    segments = []
    for b in brands:
        for country, currency in corridors:
            if rng.random() < 0.15 and segments:
                continue
            approval = {
                p: round(min(0.98, max(0.5, base[p] + rng.gauss(0.0, 0.04))), 3) for p in base
            }
            segments.append(
                Segment(b, country, currency, round(rng.paretovariate(1.2), 2), approval)
            )
    duration = 600.0
    changes: list[Change] = []
    if rng.random() < 0.7:  # a degradation in one segment
        seg = rng.choice(segments)
        best = max(seg.approval, key=seg.approval.get)  # type: ignore[arg-type]
        changes.append(
            Change(
                at=round(rng.uniform(150, 400)),
                psp=best,
                kind="degrade",
                match={"brand": seg.brand, "country": seg.country, "currency": seg.currency},
                approval_delta=-round(rng.uniform(0.05, 0.15), 3),
            )
        )
    if rng.random() < 0.7 or not changes:  # an outage and its recovery
        psp = rng.choice(psps).name
        start = round(rng.uniform(120, 350))
        changes.append(Change(at=start, psp=psp, kind="down"))
        changes.append(Change(at=start + round(rng.uniform(20, 150)), psp=psp, kind="recover"))
    return Scenario(
        name=f"random-{seed}",
        psps=psps,
        segments=segments,
        changes=sorted(changes, key=lambda c: c.at),
        duration_s=duration,
        issuer_decline=rng.uniform(0.04, 0.12),
        soft_correlation=rng.uniform(0.6, 0.9),
        amount_median=rng.choice([1500, 5000, 12000]),
    )
