"""Property tests: the Rust HealthBook and the pure-Python reference agree on random outcome
streams with random time steps (counts, rates, breaker states, probe grants; percentiles within
one histogram bucket)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paymux import _core
from paymux.reference import health as ref

OUTCOMES = list(ref.OUTCOMES)
CONNECTORS = ["a", "b"]
SEGMENTS = [["*"], ["visa", "*"], ["visa|DE", "visa", "*"]]
BUCKET_RATIO = 2**0.25

configs = st.fixed_dictionaries(
    {
        "window_seconds": st.sampled_from([2.0, 5.0, 10.0, 60.0]),
        "bucket_seconds": st.sampled_from([0.25, 0.5, 1.0, 2.0]),
        "count_window": st.sampled_from([1, 3, 10, 50]),
        "breaker_consecutive_failures": st.sampled_from([1, 2, 3, 5]),
        "breaker_failure_rate": st.sampled_from([0.25, 0.5, 1.0]),
        "breaker_min_volume": st.sampled_from([1, 4, 20]),
        "breaker_open_seconds": st.sampled_from([0.5, 1.0, 5.0]),
        "breaker_max_open_seconds": st.sampled_from([5.0, 20.0]),
        "breaker_half_open_probes": st.sampled_from([1, 2, 3]),
        "evidence_half_life": st.sampled_from([0.0, 2.0, 40.0]),
    }
).filter(lambda c: c["bucket_seconds"] <= c["window_seconds"])

# mostly small steps forward, sometimes a jump past the window, sometimes a late (backdated) event
time_steps = st.one_of(
    st.just(0.0),
    st.floats(0.0, 1.0, allow_nan=False),
    st.floats(1.0, 30.0, allow_nan=False),
    st.floats(-3.0, 0.0, allow_nan=False),
    st.sampled_from([0.25, 0.5, 1.0, 2.0, 100.0]),
)

# technical-heavy outcome mixes, so breakers actually move
outcomes = st.sampled_from(OUTCOMES + ["technical", "timeout", "technical", "approved"])

operations = st.lists(
    st.tuples(
        st.sampled_from(["record"] * 6 + ["stats", "breaker", "allow", "snapshot"]),
        st.sampled_from(CONNECTORS),
        st.sampled_from(SEGMENTS),
        outcomes,
        st.floats(0.0, 100_000.0, allow_nan=False),
        time_steps,
    ),
    min_size=1,
    max_size=120,
)


def close_percentile(a, b):
    if a is None or b is None:
        return a is b
    return max(a, b) / min(a, b) <= BUCKET_RATIO * 1.000001


def same_stats(r, p):
    assert r.counts() == p.counts()
    assert (r.total, r.count_window_total) == (p.total, p.count_window_total)
    assert r.approval_rate == p.approval_rate
    assert r.technical_rate == p.technical_rate
    assert r.count_window_approval_rate == p.count_window_approval_rate
    assert r.count_window_technical_rate == p.count_window_technical_rate
    for q in ("latency_p50", "latency_p95", "latency_p99"):
        assert close_percentile(getattr(r, q), getattr(p, q)), q


@settings(max_examples=600, deadline=None)
@given(config=configs, ops=operations, start=st.floats(0, 2e9, allow_nan=False))
def test_rust_and_reference_agree_on_random_outcome_streams(config, ops, start):
    rust = _core.HealthBook(**config)
    py = ref.HealthBook(**config)
    now = start
    for kind, connector, segments, outcome, latency, step in ops:
        now += step
        if kind == "record":
            rust.record(connector, segments, outcome, latency, now)
            py.record(connector, segments, outcome, latency, now)
        elif kind == "stats":
            for segment in segments:
                same_stats(rust.stats(connector, segment, now), py.stats(connector, segment, now))
                # the selector's age-weighted evidence (evidence_half_life)
                er, ep = (
                    rust.psp_evidence(connector, segment, now),
                    py.psp_evidence(connector, segment, now),
                )
                assert er == pytest.approx(ep, rel=1e-9, abs=1e-12)
        elif kind == "breaker":
            assert rust.breaker_state(connector, now) == py.breaker_state(connector, now)
        elif kind == "allow":
            assert rust.allow_request(connector, now) == py.allow_request(connector, now)
        else:
            rows_r, rows_p = rust.snapshot(now), py.snapshot(now)
            assert len(rows_r) == len(rows_p)
            for a, b in zip(rows_r, rows_p, strict=True):
                pa = {k: v for k, v in a.items() if not k.startswith("latency")}
                pb = {k: v for k, v in b.items() if not k.startswith("latency")}
                assert pa == pb
                assert close_percentile(a["latency_p99"], b["latency_p99"])
        # after every step: the breaker states agree (cheap, and catches back-off drift early)
        assert rust.breaker_state(connector, now) == py.breaker_state(connector, now)
    for connector in CONNECTORS:
        assert rust.breaker_state(connector, now) == py.breaker_state(connector, now)
        for segment in ("*", "visa", "visa|DE"):
            same_stats(rust.stats(connector, segment, now), py.stats(connector, segment, now))
