"""The routing benchmark's simulator on a short run: the real engine and policy keep the card
network rules, never authorize twice, and get close to the oracle; common random numbers make
the outcome of a payment independent of the policy."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from routing.metrics import run_all
from routing.scenario import load_scenario, random_scenario
from routing.simulator import World

SCENARIOS = Path(__file__).resolve().parents[2] / "benchmarks" / "routing" / "scenarios"


def short(name: str, seconds: float = 120.0):
    sc = load_scenario(SCENARIOS / f"{name}.toml")
    sc.duration_s = seconds
    sc.warmup_s = 30.0
    sc.changes = [c for c in sc.changes if c.at < seconds]
    return sc


def test_short_stationary_run_keeps_the_rules_and_tracks_the_oracle():
    out = run_all(short("stationary"), seed=1)
    for name, row in out["policies"].items():
        assert row["retry_rule_violations"] == 0, name
        assert row["double_authorizations"] == 0, name
    assert out["policies"]["paymux"]["pct_of_oracle"] > 98.5
    assert out["policies"]["oracle"]["pct_of_oracle"] == 100.0


def test_outage_is_measured_and_left_quickly():
    sc = short("outage", 480.0)
    out = run_all(sc, seed=2)
    o = out["policies"]["paymux"]["outage0"]
    assert o["psp"] == "adyen"
    assert o["seconds_to_under_1pct"] <= 2.0
    assert o["seconds_to_half_fair_share"] is not None and o["seconds_to_half_fair_share"] <= 60


def test_issuer_declines_are_the_same_whichever_psp_is_asked():
    world = World(short("stationary", 20.0), seed=3)
    p, _tech = world.epoch_at(0.0)
    for pay in world.payments:
        if pay.issuer is None:
            continue
        answers = {world._answer(pay, k, p)[:3] for k in range(len(world.psps))}
        assert len(answers) == 1


def test_random_scenarios_are_reproducible_and_valid():
    a, b = random_scenario(5), random_scenario(5)
    assert a == b
    assert 2 <= len(a.psps) <= 5
    assert all(set(s.approval) == set(a.psp_names) for s in a.segments)
