"""The routing simulator: the real RoutingEngine and the real DefaultPolicy over pre-drawn payments.

Every policy sees the same payments and the same pre-drawn uniforms (common random numbers): per
payment, whether and how the issuer declines (the same answer at every PSP), and per payment and
PSP, the uniform that decides approval (correlated across PSPs through a Gaussian copula: a card a
PSP soft-declines is likelier to be soft-declined elsewhere, so cascading is not flattered), the
uniform that decides a technical failure, and the latency. Time is simulated: payments arrive at
`rate` per second; an attempt's outcome reaches the health windows when it completes (a timeout
teaches nothing until it times out).
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field
from typing import Any

from paymux.connectors.base import Capabilities
from paymux.domain.outcomes import AttemptStatus, DeclineClass
from paymux.failover.policy import AttemptContext, DefaultPolicy
from paymux.routing import PaymentAttributes, RoutingConfig, RoutingEngine

from .scenario import ISSUER_CLASSES, ISSUER_CODES, Scenario

SYNC_MS = 150.0  # a status lookup after an ambiguous answer
WINDOW_S = 5.0  # outage metrics: traffic share over rolling windows of this length
BIN_S = 0.1


@dataclass
class Payment:
    t: float
    seg: int
    attrs: PaymentAttributes
    issuer: tuple[str, str, str | None] | None  # (class, normalized code, advice code)
    soft_advice: str | None  # advice code on this card's soft declines (do-not-retry)
    u_appr: list[float]  # per PSP
    u_tech: list[float]
    lat: list[float]  # ms, per PSP


class World:
    """The scenario's ground truth over time, and the pre-drawn payments for one seed."""

    def __init__(self, sc: Scenario, seed: int) -> None:
        self.sc = sc
        self.seed = seed
        self.psps = sc.psp_names
        self.index = {n: i for i, n in enumerate(self.psps)}
        n_seg = len(sc.segments)
        base_p = [[s.approval[p] for p in self.psps] for s in sc.segments]
        base_t = [[p.technical_rate for p in sc.psps] for _ in sc.segments]
        # epochs: (start time, approval[seg][psp], technical[seg][psp])
        self.epochs: list[tuple[float, list[list[float]], list[list[float]]]] = []
        p = [row[:] for row in base_p]
        tech = [row[:] for row in base_t]
        self.epochs.append((0.0, [r[:] for r in p], [r[:] for r in tech]))
        for ch in sc.changes:
            k = self.index[ch.psp]
            for s, seg in enumerate(sc.segments):
                if any(getattr(seg, key) != val for key, val in ch.match.items()):
                    continue
                if ch.kind == "degrade":
                    p[s][k] = min(1.0, max(0.0, base_p[s][k] + ch.approval_delta))
                elif ch.kind == "down":
                    tech[s][k] = 1.0
                else:  # recover
                    p[s][k] = base_p[s][k]
                    tech[s][k] = base_t[s][k]
            self.epochs.append((ch.at, [r[:] for r in p], [r[:] for r in tech]))
        self.epoch_starts = [e[0] for e in self.epochs]
        self.capabilities = {
            p.name: Capabilities(
                currencies=None if p.currencies is None else frozenset(p.currencies),
                brands=None if p.brands is None else frozenset(p.brands),
            )
            for p in sc.psps
        }
        self.payments = self._draw(n_seg)

    def _draw(self, n_seg: int) -> list[Payment]:
        sc = self.sc
        rng = random.Random(self.seed)
        weights = [s.weight for s in sc.segments]
        cum = []
        acc = 0.0
        for w in weights:
            acc += w
            cum.append(acc)
        rho = sc.soft_correlation
        a, b = math.sqrt(rho), math.sqrt(1.0 - rho)
        mix = [(c, sc.issuer_mix.get(c, 0.0)) for c in ISSUER_CLASSES]
        mix_total = sum(w for _, w in mix) or 1.0
        n = int(sc.duration_s * sc.rate)
        n_psp = len(self.psps)
        out = []
        mu = math.log(sc.amount_median)
        for i in range(n):
            t = i / sc.rate
            r = rng.random() * acc
            seg = next(j for j, c in enumerate(cum) if r < c)
            s = sc.segments[seg]
            amount = max(50, int(math.exp(mu + sc.amount_sigma * rng.gauss(0.0, 1.0))))
            issuer = None
            if rng.random() < sc.issuer_decline:
                r = rng.random() * mix_total
                cls = mix[-1][0]
                for c, w in mix:
                    if r < w:
                        cls = c
                        break
                    r -= w
                advice = None
                if cls == "hard" and rng.random() < sc.do_not_retry_share:
                    advice = rng.choice(["03", "21"])
                elif cls == "issuer_not_now":
                    advice = "02" if rng.random() < 0.3 else None
                issuer = (cls, ISSUER_CODES[cls], advice)
            soft_advice = "21" if rng.random() < sc.soft_advice_share else None
            z = rng.gauss(0.0, 1.0)
            u_appr = [_phi(a * z + b * rng.gauss(0.0, 1.0)) for _ in range(n_psp)]
            u_tech = [rng.random() for _ in range(n_psp)]
            lat = [p.latency_ms * math.exp(p.latency_sigma * rng.gauss(0.0, 1.0)) for p in sc.psps]
            attrs = PaymentAttributes(
                payment_id=f"pay_{self.seed}_{i}",
                amount=amount,
                currency=s.currency,
                brand=s.brand,
                country=s.country,
                merchant_id="m_bench",
            )
            out.append(Payment(t, seg, attrs, issuer, soft_advice, u_appr, u_tech, lat))
        return out

    def epoch_at(self, t: float) -> tuple[list[list[float]], list[list[float]]]:
        lo = 0
        for j, start in enumerate(self.epoch_starts):
            if start <= t:
                lo = j
        e = self.epochs[lo]
        return e[1], e[2]

    def attempt(self, pay: Payment, k: int, p: list[list[float]], tech: list[list[float]]):
        """One attempt of `pay` at PSP index k: (status, decline_class, normalized_code, advice,
        latency_ms, ambiguous, sync_status)."""
        psp = self.sc.psps[k]
        s = pay.seg
        tr = tech[s][k]
        ut = pay.u_tech[k]
        if ut < tr:
            timeout = ut < tr * psp.timeout_share
            if not timeout:
                return (
                    "failed",
                    "technical",
                    "processing_error",
                    None,
                    psp.error_latency_ms,
                    False,
                    None,
                )
            # a timeout: did the PSP process it anyway? (never when it is down)
            processed = (
                tr < 1.0 and (ut / (tr * psp.timeout_share)) < self.sc.timeout_processed_share
            )
            sync = self._answer(pay, k, p)[0] if processed else "not_found"
            return ("failed", "technical", "timeout", None, psp.timeout_ms, True, sync)
        status, dc, code, advice = self._answer(pay, k, p)
        return (status, dc, code, advice, pay.lat[k], False, None)

    def _answer(self, pay: Payment, k: int, p: list[list[float]]):
        if pay.issuer is not None:
            cls, code, advice = pay.issuer
            return ("declined", cls, code, advice)
        if pay.u_appr[k] < p[pay.seg][k]:
            return ("authorized", None, None, None)
        return ("declined", "soft_route", "do_not_honor", pay.soft_advice)


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@dataclass
class PolicyResult:
    name: str
    approvals: int = 0
    payments: int = 0
    attempts: int = 0
    fees: int = 0  # on approved attempts, minor units
    amount_approved: int = 0
    violations: int = 0
    double_auth: int = 0
    warm_approvals: int = 0  # after warm-up
    warm_payments: int = 0
    warm_net_value: int = 0  # sum of (amount - fee) over approved payments after warm-up
    expected_first: float = 0.0  # sum of the first choice's true P(approval), after warm-up
    explore_loss: float = 0.0  # expected approvals lost on rankings that explored, after warm-up
    plan_seconds: float = 0.0
    plans: int = 0
    # outage metrics: bins of BIN_S seconds -> [attempts to each PSP], [first choices per PSP]
    attempt_bins: list[list[int]] = field(default_factory=list)
    first_bins: list[list[int]] = field(default_factory=list)
    expected_by_10s: list[float] = field(default_factory=list)  # first choice's true P, summed


def _drive(coro: Any) -> Any:
    """Run a coroutine that never awaits anything pending (DefaultPolicy.decide) to its end."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("policy awaited something; the simulator drives synchronous policies only")


_STATUS = {s.value: s for s in AttemptStatus}
_CLASS = {c.value: c for c in DeclineClass}
_HOLDS = {"authorized", "captured"}
_NO_RETRY_CLASSES = {"hard", "fix_data", "issuer_not_now"}
_DNR = {"03", "21"}


def routing_config(sc: Scenario, overrides: dict[str, Any] | None = None) -> RoutingConfig:
    raw: dict[str, Any] = {"fees": {p.name: p.fees for p in sc.psps if p.fees}}
    raw.update(sc.routing)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return RoutingConfig.from_dict(raw)


def static_order(world: World) -> list[str]:
    sc = world.sc
    if sc.static_order:
        return list(sc.static_order)
    total = sum(s.weight for s in sc.segments)
    avg = {p: sum(s.weight * s.approval[p] for s in sc.segments) / total for p in world.psps}
    return sorted(world.psps, key=lambda p: -avg[p])


def run_policy(
    world: World,
    name: str,
    *,
    engine: RoutingEngine | None,
    oracle: bool = False,
    cascade: bool = True,
    seed: int = 0,
    timing: bool = False,
    attempt_aware: bool = True,
    report_starts: bool = True,
) -> PolicyResult:
    """Run one policy over the world's payments. `engine` routes (and learns) unless `oracle`:
    then the true current expected value orders the candidates (fees from `fee_engine`)."""
    import time as _time

    sc = world.sc
    res = PolicyResult(name)
    n_psp = len(world.psps)
    n_bins = int(sc.duration_s / BIN_S) + 1
    res.attempt_bins = [[0] * n_psp for _ in range(n_bins)]
    res.first_bins = [[0] * n_psp for _ in range(n_bins)]
    policy = DefaultPolicy()
    max_attempts = sc.max_attempts if cascade else 1
    # (time, seq, connector, attrs, outcome or None for an attempt's start, latency, attempt no.)
    pending: list[tuple[float, int, str, PaymentAttributes, str | None, float, int]] = []
    seq = 0
    index = world.index
    caps = world.capabilities
    fee_engine = engine if engine is not None else RoutingEngine(routing_config(sc), caps)
    warm = sc.warmup_s
    perf = _time.perf_counter
    next_epoch_i = 0
    p_tab, t_tab = world.epoch_at(0.0)
    for pay in world.payments:
        now = pay.t
        while next_epoch_i < len(world.epoch_starts) and world.epoch_starts[next_epoch_i] <= now:
            p_tab, t_tab = world.epochs[next_epoch_i][1], world.epochs[next_epoch_i][2]
            next_epoch_i += 1
        attrs = pay.attrs
        s = pay.seg
        # true expected approval of each PSP right now (the oracle's knowledge; also for scoring)
        truth = [p_tab[s][k] * (1.0 - t_tab[s][k]) for k in range(n_psp)]
        explored = False
        if oracle:
            cands = [
                c
                for c in world.psps
                if caps[c].supports(
                    method="card", brand=attrs.brand, currency=attrs.currency, country=attrs.country
                )
            ]
            ev = {c: truth[index[c]] * (attrs.amount - fee_engine.fee(c, attrs)) for c in cands}
            # it knows a PSP is down: never sends it anything (unless everything is down)
            order = sorted((c for c in cands if ev[c] > 0), key=lambda c: -ev[c]) or cands
        else:
            assert engine is not None
            while pending and pending[0][0] <= now:
                when, _, conn, a, outcome, lat, attempt = heapq.heappop(pending)
                if outcome is None:
                    if report_starts:
                        engine.attempt_started(conn, when)
                    continue
                engine.observe(conn, a, outcome, lat, when, attempt=attempt if attempt_aware else 1)
            if timing:
                t0 = perf()
                plan = engine.plan(attrs, now)
                res.plan_seconds += perf() - t0
                res.plans += 1
            else:
                plan = engine.plan(attrs, now)
            order = plan.connectors
            if plan.estimates:
                explored = any(e.explored for e in plan.estimates)
        res.payments += 1
        b = int(now / BIN_S)
        if order:
            res.first_bins[b][index[order[0]]] += 1
            ten = int(now / 10.0)
            while len(res.expected_by_10s) <= ten:
                res.expected_by_10s.append(0.0)
            res.expected_by_10s[ten] += truth[index[order[0]]]
        if now >= warm:
            res.warm_payments += 1
            if order:
                first = truth[index[order[0]]]
                res.expected_first += first
                if explored:
                    res.explore_loss += max(truth[index[c]] for c in order) - first
        elapsed_ms = 0.0
        approved_attempts = 0
        no_retry = False
        approved = False
        remaining = list(order)
        attempt_no = 0
        while remaining:
            conn = remaining.pop(0)
            attempt_no += 1
            if no_retry:
                res.violations += 1
            k = index[conn]
            status, dc, code, advice, lat, ambiguous, sync = world.attempt(pay, k, p_tab, t_tab)
            if engine is not None and not oracle:
                start = now + elapsed_ms / 1000.0
                heapq.heappush(pending, (start, seq, conn, attrs, None, 0.0, attempt_no))
                seq += 1
            res.attempts += 1
            res.attempt_bins[b][k] += 1
            elapsed_ms += lat
            outcome = "timeout" if code == "timeout" else ("approved" if status in _HOLDS else dc)
            if engine is not None and not oracle:
                heapq.heappush(
                    pending, (now + elapsed_ms / 1000.0, seq, conn, attrs, outcome, lat, attempt_no)
                )
                seq += 1
            if ambiguous:
                # the gateway asks this PSP by our reference before going anywhere else
                elapsed_ms += SYNC_MS
                if sync in _HOLDS or sync == "declined":
                    status, dc, code, advice = world._answer(pay, k, p_tab)
            if status in _HOLDS:
                approved_attempts += 1
                approved = True
                res.fees += fee_engine.fee(conn, attrs)
                break
            if dc in _NO_RETRY_CLASSES or advice in _DNR:
                no_retry = True
            decision = _drive(
                policy.decide(
                    _STATUS[status],
                    _CLASS.get(dc) if dc else None,
                    advice,
                    AttemptContext(
                        payment_id=attrs.payment_id,
                        attempt_number=attempt_no,
                        max_attempts=max_attempts,
                        elapsed_s=elapsed_ms / 1000.0,
                        deadline_s=sc.deadline_s,
                        remaining_candidates=list(remaining),
                    ),
                )
            )
            if not decision.cascade:
                break
        if approved_attempts > 1:
            res.double_auth += 1
        if approved:
            res.approvals += 1
            res.amount_approved += attrs.amount
            if now >= warm:
                res.warm_approvals += 1
                res.warm_net_value += attrs.amount - fee_engine.fee(conn, attrs)
    return res


def hindsight_best_single(world: World) -> PolicyResult:
    """Each PSP alone (no failover possible), scored on the same draws; the best one in hindsight."""
    best: PolicyResult | None = None
    for name in world.psps:
        cfg = routing_config(world.sc, {"default": {"strategy": "priority", "connectors": [name]}})
        engine = RoutingEngine(cfg, world.capabilities)
        r = run_policy(world, f"single:{name}", engine=engine, cascade=False)
        if best is None or r.approvals > best.approvals:
            best = r
    assert best is not None
    return best
