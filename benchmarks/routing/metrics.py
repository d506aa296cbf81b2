"""Runs every policy on one (scenario, seed) and turns the results into the benchmark's figures."""

from __future__ import annotations

import statistics
from typing import Any

from .scenario import Scenario
from .simulator import (
    BIN_S,
    WINDOW_S,
    PolicyResult,
    World,
    hindsight_best_single,
    make_router,
    run_policy,
    static_order,
)

#: recovery metrics: a PSP's share of a segment's first choices over this many segment payments
SEG_WINDOW = 100

POLICIES = [
    "paymux",  # dynamic + cascading: what the gateway does
    "paymux_no_cascade",
    "paymux_no_exploration",
    "static_priority",
    "static_priority_no_cascade",
    "round_robin",
    "best_single",
    "oracle",
    "oracle_no_cascade",
]


def run_all(sc: Scenario, seed: int) -> dict[str, Any]:
    world = World(sc, seed)
    names = world.psps

    def run(name: str, over: dict[str, Any], **kw: Any) -> PolicyResult:
        router, clock = make_router(world, over)
        return run_policy(world, name, router=router, clock=clock, **kw)

    dyn = {"strategy": "dynamic", "connectors": names}
    static = {"default": {"strategy": "priority", "connectors": static_order(world)}}
    results: dict[str, PolicyResult] = {}
    results["paymux"] = run(
        "paymux", {"default": dyn, "dynamic": {"seed": seed}}, timing=True, score_ev=True
    )
    results["paymux_no_cascade"] = run(
        "paymux_no_cascade",
        {"default": dyn, "dynamic": {"seed": seed}},
        cascade=False,
        score_ev=True,
    )
    results["paymux_no_exploration"] = run(
        "paymux_no_exploration",
        {"default": dyn, "dynamic": {"seed": seed, "exploration": 0.0}},
        score_ev=True,
    )
    results["static_priority"] = run("static_priority", static)
    results["static_priority_no_cascade"] = run("static_priority_no_cascade", static, cascade=False)
    results["round_robin"] = run(
        "round_robin", {"default": {"strategy": "split", "weights": {n: 1 for n in names}}}
    )
    results["best_single"] = hindsight_best_single(world)
    results["oracle"] = run_policy(world, "oracle", router=None, oracle=True)
    results["oracle_no_cascade"] = run_policy(
        world, "oracle_no_cascade", router=None, oracle=True, cascade=False
    )
    if any(ch.kind == "down" for ch in sc.changes):
        # the ablation: the same path with stall detection off ([routing.stall] seconds = 0)
        results["paymux_no_stall"] = run(
            "paymux_no_stall", {"default": dyn, "dynamic": {"seed": seed}, "stall": {"seconds": 0}}
        )
    return summarize(world, results)


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def summarize(world: World, results: dict[str, PolicyResult]) -> dict[str, Any]:
    sc = world.sc
    oracle = results["oracle"]
    oracle_nc = results["oracle_no_cascade"]
    static = results["static_priority"]
    static_nc = results["static_priority_no_cascade"]
    no_cascade = {
        "paymux_no_cascade",
        "oracle_no_cascade",
        "best_single",
        "static_priority_no_cascade",
    }
    out: dict[str, Any] = {"scenario": sc.name, "seed": world.seed, "policies": {}}
    for name, r in results.items():
        ref, base = (oracle_nc, static_nc) if name in no_cascade else (oracle, static)
        rate = r.warm_approvals / r.warm_payments
        gap = ref.warm_approvals - base.warm_approvals
        row: dict[str, Any] = {
            "approval_rate": rate,
            "approval_rate_whole_run": r.approvals / r.payments,
            "pct_of_oracle": 100.0 * r.warm_approvals / ref.warm_approvals,
            "net_value_pct_of_oracle": 100.0 * r.warm_net_value / ref.warm_net_value,
            "pct_of_oracle_cascading": 100.0 * r.warm_approvals / oracle.warm_approvals,
            "pct_of_oracle_whole_run": 100.0 * r.approvals / ref.approvals,
            "gap_closed_pct": (
                100.0 * (r.warm_approvals - base.warm_approvals) / gap if gap > 0 else None
            ),
            "cost_per_approval": r.fees / r.approvals if r.approvals else None,
            "fee_bps_of_approved": 1e4 * r.fees / r.amount_approved if r.amount_approved else None,
            "attempts_per_payment": r.attempts / r.payments,
            "retry_rule_violations": r.violations,
            "double_authorizations": r.double_auth,
            "expected_first_pct_of_oracle": (
                100.0 * r.expected_first / oracle_nc.expected_first
                if oracle_nc.expected_first
                else None
            ),
            "explore_loss_pct": (
                100.0 * r.explore_loss / oracle_nc.expected_first
                if oracle_nc.expected_first
                else None
            ),
        }
        row.update(
            {
                "double_authorizations_seen": r.double_auth_seen,
                "late_authorizations": r.late_auths,
                "late_authorizations_voided": r.late_voided,
                "late_voided_pct": 100.0 * r.late_voided / r.late_auths if r.late_auths else None,
                "late_hold_max_s": max(r.late_hold_s) if r.late_hold_s else None,
                "pending_settled": r.pending_settled,
                "explored_pct": (100.0 * r.explored / r.warm_payments if r.warm_payments else None),
                "ev_agreement_pct": 100.0 * r.ev_agree / r.ev_pairs if r.ev_pairs else None,
                "ev_first_pct": (100.0 * r.ev_first / r.ev_decisions if r.ev_decisions else None),
                "cheap_agreement_pct": (
                    100.0 * r.cheap_agree / r.cheap_pairs if r.cheap_pairs else None
                ),
                "cheap_pairs": r.cheap_pairs,
            }
        )
        if r.plans:
            row["plan_us"] = 1e6 * r.plan_seconds / r.plans
        row.update(outage_metrics(world, r, oracle))
        row.update(recovery_metrics(world, r, oracle))
        out["policies"][name] = row
    p = results["paymux"]
    p0 = results["paymux_no_exploration"]
    out["exploration_cost_vs_no_exploration_pct"] = (
        100.0 * (p0.warm_approvals - p.warm_approvals) / p0.warm_approvals
    )
    return out


def _outages(sc: Scenario) -> list[tuple[str, float, float]]:
    out = []
    for i, ch in enumerate(sc.changes):
        if ch.kind != "down" or ch.match:
            continue
        end = sc.duration_s
        for later in sc.changes[i + 1 :]:
            if later.psp == ch.psp and later.kind == "recover":
                end = later.at
                break
        out.append((ch.psp, ch.at, end))
    return out


def outage_metrics(world: World, r: PolicyResult, oracle: PolicyResult) -> dict[str, Any]:
    """For each full outage: seconds (and payments) from its start until every later 5-s window
    of the outage sends < 1% of attempts to the dead PSP; seconds from its recovery until the end
    of the first 5-s window in which the PSP had >= half its fair share (the oracle's share after
    recovery) of first choices."""
    sc = world.sc
    out: dict[str, Any] = {}
    w = round(WINDOW_S / BIN_S)
    for n, (psp, start, end) in enumerate(_outages(sc)):
        k = world.index[psp]
        b0, b1 = round(start / BIN_S), round(end / BIN_S)
        last_bad = None
        for u in range(b0, b1 - w + 1):
            to_k = sum(r.attempt_bins[j][k] for j in range(u, u + w))
            total = sum(sum(r.attempt_bins[j]) for j in range(u, u + w))
            if total and to_k / total >= 0.01:
                last_bad = u
        t_cut = 0.0 if last_bad is None else (last_bad + 1 - b0) * BIN_S
        res: dict[str, Any] = {
            "psp": psp,
            "seconds_to_under_1pct": t_cut,
            "payments_to_under_1pct": int(t_cut * sc.rate),
        }
        if end < sc.duration_s:
            stop = sc.duration_s
            for ch in sc.changes:
                if ch.psp == psp and ch.at > end:
                    stop = ch.at
                    break
            e0, e1 = b1, min(round(stop / BIN_S), len(r.first_bins))
            fair_k = sum(oracle.first_bins[j][k] for j in range(e0, e1))
            fair_total = sum(sum(oracle.first_bins[j]) for j in range(e0, e1))
            fair = fair_k / fair_total if fair_total else 0.0
            back = None
            for u in range(e0, e1 - w + 1):
                to_k = sum(r.first_bins[j][k] for j in range(u, u + w))
                total = sum(sum(r.first_bins[j]) for j in range(u, u + w))
                if total and to_k / total >= fair / 2:
                    back = (u + w - e0) * BIN_S
                    break
            res["fair_share"] = fair
            res["seconds_to_half_fair_share"] = back
        out[f"outage{n}"] = res
    return out


def _degradations(sc: Scenario) -> list[tuple[str, dict[str, str], float, float | None]]:
    """(psp, match, degraded at, recovered at or None) for each degradation of some segments."""
    out = []
    for i, ch in enumerate(sc.changes):
        if ch.kind != "degrade" or not ch.match:
            continue
        end = None
        for later in sc.changes[i + 1 :]:
            if later.psp == ch.psp and later.kind == "recover" and later.match == ch.match:
                end = later.at
                break
        out.append((ch.psp, ch.match, ch.at, end))
    return out


def _share_crossing(
    firsts: list[int], k: int, start: int, stop: int, threshold: float, above: bool
) -> int | None:
    """Segment payments from `start` until the PSP k's share of first choices over the last
    SEG_WINDOW of them is >= threshold (above) or < threshold (not above); None: never."""
    w = SEG_WINDOW
    if stop - start < w:
        return None
    count = sum(1 for j in range(start, start + w) if firsts[j] == k)
    for end in range(start + w, stop + 1):
        share = count / w
        if (share >= threshold) if above else (share < threshold):
            return end - start
        if end < stop:
            count += (firsts[end] == k) - (firsts[end - w] == k)
    return None


def recovery_metrics(world: World, r: PolicyResult, oracle: PolicyResult) -> dict[str, Any]:
    """For each degradation of a segment (declines alone, no breaker) followed by its recovery:
    the segment's payments until the PSP has < half its fair share of that segment's first
    choices (over SEG_WINDOW segment payments) after degrading, and >= half its fair share after
    recovering (fair share: the oracle's share of that segment after the recovery)."""
    sc = world.sc
    out: dict[str, Any] = {}
    for n, (psp, match, at, end) in enumerate(_degradations(sc)):
        k = world.index[psp]
        segs = [
            i
            for i, seg in enumerate(sc.segments)
            if all(getattr(seg, key) == val for key, val in match.items())
        ]
        if not segs:
            continue
        s = max(segs, key=lambda i: len(r.seg_times[i]))
        times, firsts = r.seg_times[s], r.seg_firsts[s]
        o_times, o_firsts = oracle.seg_times[s], oracle.seg_firsts[s]
        i_deg = next((i for i, t in enumerate(times) if t >= at), len(times))
        i_rec = (
            len(times)
            if end is None
            else next((i for i, t in enumerate(times) if t >= end), len(times))
        )
        o_deg = next((i for i, t in enumerate(o_times) if t >= at), len(o_times))
        o_rec = (
            len(o_times)
            if end is None
            else next((i for i, t in enumerate(o_times) if t >= end), len(o_times))
        )
        before = [f for f in o_firsts[:o_deg]]
        fair_before = before.count(k) / len(before) if before else 0.0
        res: dict[str, Any] = {
            "psp": psp,
            "segment": "|".join(match.get(x, "*") for x in ("brand", "country", "currency")),
            "segment_rate_per_s": len(times) / sc.duration_s,
            "payments_to_lose_half": _share_crossing(
                firsts, k, i_deg, i_rec, fair_before / 2, above=False
            ),
        }
        if end is not None:
            after = o_firsts[o_rec:]
            fair = after.count(k) / len(after) if after else 0.0
            res["fair_share"] = fair
            res["payments_to_half_fair_share"] = _share_crossing(
                firsts, k, i_rec, len(firsts), fair / 2, above=True
            )
            tail = firsts[i_rec:]
            res["share_after_recovery"] = tail.count(k) / len(tail) if tail else None
        out[f"recovery{n}"] = res
    return out


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over seeds of every numeric figure."""
    agg: dict[str, Any] = {"scenario": runs[0]["scenario"], "seeds": [r["seed"] for r in runs]}

    def stats(values: list[Any]) -> Any:
        nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        missing = len(values) - len(nums)
        if not nums:
            return {"mean": None, "sd": None, "min": None, "max": None, "missing": missing}
        return {
            "mean": statistics.fmean(nums),
            "sd": statistics.stdev(nums) if len(nums) > 1 else 0.0,
            "min": min(nums),
            "max": max(nums),
            "missing": missing,
        }

    agg["policies"] = {}
    for policy in runs[0]["policies"]:
        rows = [r["policies"][policy] for r in runs]
        prow: dict[str, Any] = {}
        for key, value in rows[0].items():
            if isinstance(value, dict):
                prow[key] = {
                    k2: (stats([r[key][k2] for r in rows]) if not isinstance(v2, str) else v2)
                    for k2, v2 in value.items()
                }
            else:
                prow[key] = stats([r[key] for r in rows])
        agg["policies"][policy] = prow
    agg["exploration_cost_vs_no_exploration_pct"] = stats(
        [r["exploration_cost_vs_no_exploration_pct"] for r in runs]
    )
    return agg
