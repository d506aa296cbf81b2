"""The routing simulator: the gateway's own `Router` and the real DefaultPolicy over pre-drawn payments.

One code path: the simulator drives `paymux.routing.router.Router` exactly as the payment flow
(`paymux.payments.service`) does, on a simulated clock: `plan(payment)` once per payment,
`attempt_started(connector)` before every authorization, `observe(attempt, payment,
health_outcome)` once the attempt's outcome is known (after the status sync of an ambiguous
answer), with the same `AttemptRecord` fields and the same health outcome override for timeouts.

Every policy sees the same payments and the same pre-drawn uniforms (common random numbers): per
payment, whether and how the issuer declines (the same answer at every PSP), and per payment and
PSP, the uniform that decides approval (correlated across PSPs through a Gaussian copula: a card a
PSP soft-declines is likelier to be soft-declined elsewhere, so cascading is not flattered), the
uniform that decides a technical failure (and, for a timeout, whether the PSP processed it and
what its status sync says), and the latency. Time is simulated: payments arrive at `rate` per
second; an attempt's outcome reaches the health windows when it completes (a timeout teaches
nothing until it times out). Each PSP keeps a ledger of what it authorized; a reconciler model
(the gateway's rules: an attempt whose sync said "not found" is watched, and an authorization
that surfaces for it later is voided; a payment left pending by a failed sync is settled by a
later sync) works through it, so double authorizations and unvoided late authorizations are
counted, not assumed away.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field
from typing import Any

from paymux.connectors.base import Capabilities
from paymux.domain.outcomes import AttemptStatus, DeclineClass
from paymux.domain.records import AttemptRecord, PaymentRecord
from paymux.failover.policy import AttemptContext, DefaultPolicy
from paymux.routing import PaymentAttributes, RoutingConfig, RoutingEngine
from paymux.routing.router import Router

from .scenario import ISSUER_CLASSES, ISSUER_CODES, Scenario

SYNC_MS = 150.0  # a status lookup after an ambiguous answer
LATE_AUTH_CHECK_S = 30.0  # the reconciler's late_auth_check_s (then doubling), as the gateway's
LATE_AUTH_MAX_INTERVAL_S = 3600.0  # the reconciler's back-off cap
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
            # a timeout: did the PSP process it anyway? (never when it is down) And what does
            # its status sync say: the answer, not found yet (its index lags), or nothing (fails)?
            sc = self.sc
            v = ut / (tr * psp.timeout_share) / max(sc.timeout_processed_share, 1e-12)
            processed = tr < 1.0 and v < 1.0
            if not processed:
                sync = "not_found"
            elif v < sc.sync_lag_share:
                sync = "lagging"  # processed, but the sync does not find it (yet)
            elif v < sc.sync_lag_share + sc.sync_error_share:
                sync = "unknown"  # the sync itself fails: the payment waits at this PSP
            else:
                sync = self._answer(pay, k, p)[0]
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
    double_auth: int = 0  # payments holding two authorizations at the end (after reconciling)
    double_auth_seen: int = 0  # payments that held two at some moment (a late one, until voided)
    late_auths: int = 0  # authorizations the PSP made although its sync said not found
    late_voided: int = 0  # ... of them voided by the reconciler
    late_hold_s: list[float] = field(default_factory=list)  # seconds each was held until voided
    pending_settled: int = 0  # payments left pending by a failed sync, settled by the reconciler
    pending_unsettled: int = 0
    warm_approvals: int = 0  # after warm-up
    warm_payments: int = 0
    warm_net_value: int = 0  # sum of (amount - fee) over approved payments after warm-up
    expected_first: float = 0.0  # sum of the first choice's true P(approval), after warm-up
    explore_loss: float = 0.0  # expected approvals lost on rankings that explored, after warm-up
    explored: int = 0  # decisions an exploration moved, after warm-up
    # EV agreement, after warm-up, on decisions no exploration moved: pairs of candidates the
    # plan ranked, and of them those in the true expected-value order (value = P x (amount - fee))
    ev_pairs: int = 0
    ev_agree: int = 0
    ev_first: int = 0  # decisions whose first choice has the best true EV
    ev_decisions: int = 0
    cheap_pairs: int = 0  # pairs where the cheaper PSP approves less but is worth more
    cheap_agree: int = 0
    plan_seconds: float = 0.0
    plans: int = 0
    # outage metrics: bins of BIN_S seconds -> [attempts to each PSP], [first choices per PSP]
    attempt_bins: list[list[int]] = field(default_factory=list)
    first_bins: list[list[int]] = field(default_factory=list)
    expected_by_10s: list[float] = field(default_factory=list)  # first choice's true P, summed
    # per segment, the first choice of each of its payments (PSP index), in arrival order
    seg_firsts: list[list[int]] = field(default_factory=list)
    seg_times: list[list[float]] = field(default_factory=list)


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
#: the fields an ambiguous answer's normalized result leaves on the attempt
_EV_TOL = 0.005  # pairs whose true EVs are within 0.5% are ties: not counted


class SimClock:
    """The simulated clock the Router reads (unix seconds)."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def routing_raw(sc: Scenario, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {"fees": {p.name: p.fees for p in sc.psps if p.fees}}
    raw.update(sc.routing)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return raw


def routing_config(sc: Scenario, overrides: dict[str, Any] | None = None) -> RoutingConfig:
    return RoutingConfig.from_dict(routing_raw(sc, overrides))


def make_router(world: World, overrides: dict[str, Any] | None = None) -> tuple[Router, SimClock]:
    """The gateway's Router over the world's PSPs, on a simulated clock."""
    clock = SimClock()
    router = Router.for_capabilities(
        world.capabilities, routing_raw(world.sc, overrides), clock=clock
    )
    return router, clock


def static_order(world: World) -> list[str]:
    sc = world.sc
    if sc.static_order:
        return list(sc.static_order)
    total = sum(s.weight for s in sc.segments)
    avg = {p: sum(s.weight * s.approval[p] for s in sc.segments) / total for p in world.psps}
    return sorted(world.psps, key=lambda p: -avg[p])


def _payment_record(attrs: PaymentAttributes) -> PaymentRecord:
    return PaymentRecord(
        id=attrs.payment_id,
        merchant_id=attrs.merchant_id or "m_bench",
        status="processing",
        amount=attrs.amount,
        currency=attrs.currency,
        capture_method="automatic",
        card_brand=attrs.brand,
        billing_country=attrs.country,
        metadata=attrs.metadata,
    )


def _attempt_record(
    payment: PaymentRecord,
    connector: str,
    seq: int,
    status: str,
    dc: str | None,
    code: str | None,
    advice: str | None,
    latency_ms: float,
) -> AttemptRecord:
    """The attempt as `record_attempt_result` leaves it after the PSP's (final) answer."""
    return AttemptRecord(
        id=f"{payment.id}_{seq}",
        payment_id=payment.id,
        merchant_id=payment.merchant_id,
        seq=seq,
        connector=connector,
        reference=f"{payment.id}_{seq}",
        status=status,
        amount=payment.amount,
        currency=payment.currency,
        normalized_code=code,
        decline_class=dc,
        advice_code=advice,
        latency_ms=latency_ms,
    )


def _late_checks(start: float, surface: float) -> float:
    """When the reconciler (checks after LATE_AUTH_CHECK_S, doubling) first sees a late
    authorization that surfaces at `surface`, for an attempt watched from `start`."""
    t, delay = start + LATE_AUTH_CHECK_S, LATE_AUTH_CHECK_S
    while t < surface:
        delay = min(delay * 2, LATE_AUTH_MAX_INTERVAL_S)
        t += delay
    return t


def run_policy(
    world: World,
    name: str,
    *,
    router: Router | None,
    clock: SimClock | None = None,
    oracle: bool = False,
    cascade: bool = True,
    timing: bool = False,
    score_ev: bool = False,
) -> PolicyResult:
    """Run one policy over the world's payments. `router` (the gateway's Router, on `clock`)
    routes and learns unless `oracle`: then the true current expected value orders the candidates
    (fees from the scenario's fee table)."""
    import time as _time

    sc = world.sc
    res = PolicyResult(name)
    n_psp = len(world.psps)
    n_seg = len(sc.segments)
    n_bins = int(sc.duration_s / BIN_S) + 1
    res.attempt_bins = [[0] * n_psp for _ in range(n_bins)]
    res.first_bins = [[0] * n_psp for _ in range(n_bins)]
    res.seg_firsts = [[] for _ in range(n_seg)]
    res.seg_times = [[] for _ in range(n_seg)]
    policy = DefaultPolicy()
    max_attempts = sc.max_attempts if cascade else 1
    # (time, seq, connector, attempt record or None for an attempt's start, payment, outcome)
    pending: list[tuple[float, int, str, AttemptRecord | None, PaymentRecord | None, str | None]]
    pending = []
    seq = 0
    index = world.index
    caps = world.capabilities
    learning = router is not None and not oracle
    if learning:
        assert clock is not None
    fee_engine = router.engine if router is not None else RoutingEngine(routing_config(sc), caps)
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
        record: PaymentRecord | None = None
        if oracle or router is None:
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
            assert clock is not None
            while pending and pending[0][0] <= now:
                when, _, conn, att, prec, outcome = heapq.heappop(pending)
                clock.now = when
                if att is None:
                    router.attempt_started(conn)
                else:
                    assert prec is not None
                    router.observe(att, prec, outcome)
            clock.now = now
            record = _payment_record(attrs)
            if timing:
                t0 = perf()
                plan = router.plan(record)
                res.plan_seconds += perf() - t0
                res.plans += 1
            else:
                plan = router.plan(record)
            order = plan.connectors
            if plan.estimates:
                explored = any(e.explored for e in plan.estimates)
        res.payments += 1
        b = int(now / BIN_S)
        if order:
            k0 = index[order[0]]
            res.first_bins[b][k0] += 1
            res.seg_firsts[s].append(k0)
            res.seg_times[s].append(now)
            ten = int(now / 10.0)
            while len(res.expected_by_10s) <= ten:
                res.expected_by_10s.append(0.0)
            res.expected_by_10s[ten] += truth[k0]
        if now >= warm and order:
            res.warm_payments += 1
            first = truth[index[order[0]]]
            res.expected_first += first
            if explored:
                res.explored += 1
                res.explore_loss += max(truth[index[c]] for c in order) - first
            elif score_ev and len(order) > 1:
                _score_ev(res, order, truth, index, attrs, fee_engine)
        elif not order:
            res.warm_payments += now >= warm
        elapsed_ms = 0.0
        # the PSPs' ledgers for this payment: (psp, late, watched by the reconciler, voided at)
        holds: list[tuple[str, bool, bool, float]] = []
        no_retry = False
        approved_at: str | None = None
        remaining = list(order)
        attempt_no = 0
        while remaining:
            conn = remaining.pop(0)
            attempt_no += 1
            if no_retry:
                res.violations += 1
            k = index[conn]
            status, dc, code, advice, lat, ambiguous, sync = world.attempt(pay, k, p_tab, t_tab)
            start = now + elapsed_ms / 1000.0
            if learning:
                assert clock is not None
                if start <= now:  # the first attempt: sent right after plan
                    router.attempt_started(conn)
                else:
                    heapq.heappush(pending, (start, seq, conn, None, None, None))
                    seq += 1
            res.attempts += 1
            res.attempt_bins[b][k] += 1
            elapsed_ms += lat
            health_outcome = None
            waiting = False
            if ambiguous:
                # the gateway asks this PSP by our reference before going anywhere else; health
                # sees what the PSP did to us (a timeout) whatever the sync then finds
                health_outcome = "timeout" if code == "timeout" else "technical"
                elapsed_ms += SYNC_MS
                truly = world._answer(pay, k, p_tab)
                if sync in _HOLDS or sync == "declined":
                    status, dc, code, advice = truly
                elif sync == "unknown":
                    waiting = True  # still unknown: stay put, the reconciler settles it
                if sync in ("lagging", "not_found"):
                    # Sync said not found (for "lagging" wrongly: the PSP did process it and its
                    # index shows it later). The gateway's rule: the attempt failed cleanly, may
                    # cascade, and the request did reach the PSP, so the reconciler watches it
                    # (service._run_attempts: reached_psp -> reconciler.watch(..., "late_auth")).
                    watched = True
                    if sync == "lagging" and truly[0] in _HOLDS:
                        res.late_auths += 1
                        t_sync = now + elapsed_ms / 1000.0
                        surface = t_sync + sc.late_surface_s
                        voided_at = _late_checks(t_sync, surface) if watched else math.inf
                        holds.append((conn, True, watched, voided_at))
            if learning:
                assert record is not None
                att = _attempt_record(record, conn, attempt_no, status, dc, code, advice, lat)
                heapq.heappush(
                    pending,
                    (now + elapsed_ms / 1000.0, seq, conn, att, record, health_outcome),
                )
                seq += 1
            if waiting:
                truly = world._answer(pay, k, p_tab)
                res.pending_settled += 1
                if truly[0] in _HOLDS:
                    holds.append((conn, False, False, math.inf))
                    approved_at = conn
                break
            if status in _HOLDS:
                holds.append((conn, False, False, math.inf))
                approved_at = conn
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
        # The ledgers: two holds at once (a late authorization while another PSP's stands) until
        # the reconciler voided the late one; at the end only the payment's own may remain.
        if len(holds) > 1:
            res.double_auth_seen += 1
        live = 0
        for _psp, late, watched, voided_at in holds:
            if late and watched and voided_at < math.inf:  # the reconciler voided it
                res.late_voided += 1
                res.late_hold_s.append(voided_at - now)
            else:
                live += 1
        if live > 1:
            res.double_auth += 1
        if approved_at is not None:
            res.approvals += 1
            res.amount_approved += attrs.amount
            if now >= warm:
                res.warm_approvals += 1
                res.warm_net_value += attrs.amount - fee_engine.fee(approved_at, attrs)
            res.fees += fee_engine.fee(approved_at, attrs)
    return res


def _score_ev(
    res: PolicyResult,
    order: list[str],
    truth: list[float],
    index: dict[str, int],
    attrs: PaymentAttributes,
    fee_engine: RoutingEngine,
) -> None:
    fees = [fee_engine.fee(c, attrs) for c in order]
    evs = [truth[index[c]] * (attrs.amount - f) for c, f in zip(order, fees, strict=True)]
    best = max(evs)
    res.ev_decisions += 1
    res.ev_first += evs[0] >= best * (1 - _EV_TOL) if best > 0 else 1
    for i in range(len(order)):
        for j in range(i + 1, len(order)):
            hi = max(abs(evs[i]), abs(evs[j]))
            if hi <= 0 or abs(evs[i] - evs[j]) < _EV_TOL * hi:
                continue  # a tie
            res.ev_pairs += 1
            agree = evs[i] > evs[j]
            res.ev_agree += agree
            # the cheap PSP: approves less, costs less, is worth more
            a, c = (i, j) if evs[i] > evs[j] else (j, i)
            if fees[a] < fees[c] and truth[index[order[a]]] < truth[index[order[c]]]:
                res.cheap_pairs += 1
                res.cheap_agree += agree


def hindsight_best_single(world: World) -> PolicyResult:
    """Each PSP alone (no failover possible), scored on the same draws; the best one in hindsight."""
    best: PolicyResult | None = None
    for name in world.psps:
        router, clock = make_router(
            world, {"default": {"strategy": "priority", "connectors": [name]}}
        )
        r = run_policy(world, f"single:{name}", router=router, clock=clock, cascade=False)
        if best is None or r.approvals > best.approvals:
            best = r
    assert best is not None
    return best
