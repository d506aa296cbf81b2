"""Selection through the Python binding: ordering by posterior-mean expected value, the
hierarchical fallback, forgetting, exploration apart from the ranking, breakers, seeds, and
agreement with the pure-Python reference on greedy rankings (exploration=0)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paymux import _core
from paymux.reference import health as ref_health
from paymux.reference import selection as ref_selection

SEGMENTS = ["visa|DE|EUR", "visa|DE", "visa", "*"]


def hierarchical(levels, prior=0.8, k=30.0):
    """The expected posterior mean: (s, f) per level, coarsest first (see selection.rs)."""
    m, strength = prior, 2.0
    for s, f in levels:
        a, b = m * strength + s, (1 - m) * strength + f
        m, strength = a / (a + b), min(k, a + b)
    return m


def feed(book, connector, segments, approved, failed, now=0.0, failure="soft_route"):
    for _ in range(approved):
        book.record(connector, segments, "approved", 100.0, now)
    for _ in range(failed):
        book.record(connector, segments, failure, 100.0, now)


@pytest.fixture(params=["rust", "reference"])
def impls(request):
    if request.param == "rust":
        return _core.HealthBook, _core.Selector
    return ref_health.HealthBook, ref_selection.Selector


def test_candidates_are_ordered_by_expected_value_net_of_fees(impls):
    Book, Selector = impls
    book = Book()
    feed(book, "adyen", SEGMENTS, 90, 10)
    feed(book, "stripe", SEGMENTS, 85, 15)
    selector = Selector(book, exploration=0.0)
    r = selector.rank(["stripe", "adyen"], SEGMENTS, 10_000, [100, 100], now=1.0)
    assert r.order == ["adyen", "stripe"]
    adyen = r.estimates[1]
    assert (adyen.connector, adyen.fee, adyen.samples, adyen.segment) == (
        "adyen",
        100,
        100,
        "visa|DE|EUR",
    )
    assert adyen.approval == pytest.approx(hierarchical([(90, 10)] * 4))
    assert adyen.expected_value == pytest.approx(adyen.approval * 9_900)
    assert adyen.breaker == "closed" and not adyen.explored and not adyen.probe
    # a fee that eats the approval edge flips the order
    assert selector.rank(["stripe", "adyen"], SEGMENTS, 10_000, [100, 900], 1.0).order == [
        "stripe",
        "adyen",
    ]


def test_card_caused_declines_are_not_held_against_a_psp(impls):
    Book, Selector = impls
    book = Book()
    feed(book, "a", SEGMENTS, 40, 0)
    feed(book, "a", SEGMENTS, 0, 40, failure="issuer_not_now")
    feed(book, "a", SEGMENTS, 0, 40, failure="hard")
    feed(book, "b", SEGMENTS, 40, 8)
    r = Selector(book, exploration=0.0).rank(["b", "a"], SEGMENTS, 1000, [0, 0], 1.0)
    assert r.order == ["a", "b"]
    assert r.estimates[1].samples == 40


def test_thin_fine_segments_fall_back_to_coarser_ones_then_to_the_prior(impls):
    Book, Selector = impls
    book = Book()
    feed(book, "a", ["visa|DE|EUR"], 3, 0)
    feed(book, "a", ["visa"], 50, 10)
    r = Selector(book, exploration=0.0, prior_approval=0.7).rank(
        ["a", "new"], SEGMENTS, 100, [0, 0], 0.0
    )
    assert r.estimates[0].segment == "visa"
    assert r.estimates[0].approval == pytest.approx(
        hierarchical([(0, 0), (50, 10), (0, 0), (3, 0)], prior=0.7)
    )
    assert r.estimates[1].segment is None
    assert r.estimates[1].approval == pytest.approx(0.7)


@pytest.mark.parametrize("impl", ["rust", "reference"])
def test_a_psp_that_lost_a_segment_wins_it_back_after_recovering(impl):
    """Declines alone (no breaker) made "a" lose the segment; its evidence then fades with the
    segment's own attempts, exploration re-tests it, and once it is better again it leads."""
    Book, Selector = (
        (_core.HealthBook, _core.Selector)
        if impl == "rust"
        else (ref_health.HealthBook, ref_selection.Selector)
    )
    book = Book(count_window=500, evidence_half_life=300.0)
    feed(book, "a", SEGMENTS, 400, 100)  # 80%: it lost the segment to b
    selector = Selector(book, exploration=0.02, seed=3)
    import random

    rng = random.Random(4)
    firsts = []
    for _ in range(5000):
        r = selector.rank(["a", "b"], SEGMENTS, 1000, [0, 0], 1.0)
        first = r.order[0]
        firsts.append(first)
        p = 0.95 if first == "a" else 0.89  # a has recovered: only trying it shows it
        book.record(first, SEGMENTS, "approved" if rng.random() < p else "soft_route", 10.0, 1.0)
        # estimates are posterior means, never draws; only a moved candidate is `explored`
        assert sum(e.explored for e in r.estimates) <= 1
        assert all(not e.explored or e.connector == first for e in r.estimates)
    assert firsts[:200].count("a") < 50
    assert firsts[-1000:].count("a") > 800
    # no forgetting: the old evidence keeps "a" away for good
    book = Book(count_window=500)
    feed(book, "a", SEGMENTS, 400, 100)
    feed(book, "b", SEGMENTS, 445, 55)
    greedy = Selector(book, exploration=0.0)
    assert greedy.rank(["a", "b"], SEGMENTS, 1000, [0, 0], 1.0).order[0] == "b"


def test_exploration_never_changes_the_estimates_only_the_order():
    book = _core.HealthBook()
    feed(book, "a", SEGMENTS, 85, 15)
    feed(book, "b", SEGMENTS, 80, 20)
    greedy = _core.Selector(book, exploration=0.0).rank(["a", "b"], SEGMENTS, 100, [0, 0], 1.0)
    selector = _core.Selector(book, exploration=0.5, seed=9)
    moved = 0
    for _ in range(400):
        r = selector.rank(["a", "b"], SEGMENTS, 100, [0, 0], 1.0)
        assert [e.approval for e in r.estimates] == [e.approval for e in greedy.estimates]
        if r.order != greedy.order:
            moved += 1
            assert r.estimates[1].explored and not r.estimates[0].explored
        else:
            assert not any(e.explored for e in r.estimates)
    assert 0 < moved < 200


def test_open_breakers_are_skipped_but_a_payment_always_gets_a_candidate(impls):
    Book, Selector = impls
    book = Book()
    feed(book, "a", SEGMENTS, 90, 0)
    feed(book, "b", SEGMENTS, 50, 50)
    feed(book, "a", SEGMENTS, 0, 5, now=1.0, failure="timeout")
    selector = Selector(book, exploration=0.0)
    r = selector.rank(["a", "b"], SEGMENTS, 100, [0, 0], 2.0)
    assert r.order == ["b"] and r.estimates[0].breaker == "open"
    feed(book, "b", SEGMENTS, 0, 5, now=3.0, failure="technical")
    assert selector.rank(["b", "a"], SEGMENTS, 100, [0, 0], 4.0).order == ["a", "b"]
    # a's open period ends at 6.0: it gets the probe slots, first
    orders = [selector.rank(["b", "a"], SEGMENTS, 100, [0, 0], 6.0).order for _ in range(4)]
    assert orders[:3] == [["a"]] * 3
    assert orders[3] == ["a", "b"]  # no probe slot left, b still open: everything, soonest first


def test_the_same_seed_gives_the_same_rankings():
    def run(seed):
        book = _core.HealthBook()
        feed(book, "a", SEGMENTS, 80, 20)
        feed(book, "b", SEGMENTS, 78, 22)
        feed(book, "c", ["*"], 5, 5)
        selector = _core.Selector(book, exploration=0.2, seed=seed)
        return [
            (r.order, [e.approval for e in r.estimates])
            for r in (
                selector.rank(["a", "b", "c"], SEGMENTS, 100, [0, 0, 0], 1.0) for _ in range(200)
            )
        ]

    assert run(42) == run(42)
    assert run(42) != run(43)


def test_bad_arguments_raise_value_or_type_errors():
    selector = _core.Selector(_core.HealthBook(), seed=1)
    with pytest.raises(ValueError, match="fees"):
        selector.rank(["a", "b"], ["*"], 100, [1], 0.0)
    with pytest.raises(ValueError, match="empty"):
        selector.rank([], ["*"], 100, [], 0.0)
    with pytest.raises(ValueError, match="twice"):
        selector.rank(["a", "a"], ["*"], 100, [0, 0], 0.0)
    with pytest.raises(TypeError):
        selector.rank("ab", ["*"], 100, [0, 0], 0.0)
    with pytest.raises(ValueError, match="now"):
        selector.rank(["a"], ["*"], 100, [0], float("nan"))
    for kwargs in ({"exploration": 1.5}, {"min_samples": 0}, {"prior_approval": 1.0}, {"seed": -1}):
        with pytest.raises(ValueError):
            _core.Selector(_core.HealthBook(), **kwargs)
    with pytest.raises(TypeError):
        _core.Selector("not a book")


# ---- Rust and reference agree on greedy rankings over random histories ----

CONNECTORS = ["adyen", "stripe", "checkout", "worldpay"]
LEVELS = [["visa|DE", "visa", "*"], ["visa", "*"], ["*"], ["mc|FR", "mc", "*"]]
OUTCOMES = ["approved"] * 4 + ["soft_route", "hard", "issuer_not_now", "technical", "timeout"]

events = st.lists(
    st.tuples(
        st.sampled_from(CONNECTORS),
        st.sampled_from(LEVELS),
        st.sampled_from(OUTCOMES),
        st.sampled_from([1.0, 35.0, 250.0, 1200.0]),
        st.sampled_from([0.0, 0.0, 0.05, 0.5, 3.0]),
        st.booleans(),  # rank after this event?
    ),
    max_size=150,
)


@settings(max_examples=150, deadline=None)
@given(
    history=events,
    min_samples=st.sampled_from([1, 5, 30]),
    penalty=st.sampled_from([0.0, 0.01]),
    prior=st.sampled_from([0.5, 0.8]),
    n_candidates=st.integers(1, 4),
    amount=st.integers(0, 100_000),
    count_window=st.sampled_from([5, 200]),
    half_life=st.sampled_from([0.0, 3.0, 50.0]),
)
def test_rust_and_reference_rank_alike_without_exploration(
    history, min_samples, penalty, prior, n_candidates, amount, count_window, half_life
):
    kw = {
        "breaker_consecutive_failures": 3,
        "breaker_open_seconds": 1.0,
        "breaker_half_open_probes": 2,
        "count_window": count_window,
        "evidence_half_life": half_life,
    }
    books = (_core.HealthBook(**kw), ref_health.HealthBook(**kw))
    sel = [
        impl(
            book,
            exploration=0.0,
            min_samples=min_samples,
            prior_approval=prior,
            latency_penalty_per_ms=penalty,
        )
        for impl, book in zip((_core.Selector, ref_selection.Selector), books, strict=True)
    ]
    candidates = CONNECTORS[:n_candidates]
    fees = [i * 37 for i in range(n_candidates)]
    now = 1000.0
    for connector, segments, outcome, latency, step, rank_now in history:
        now += step
        for book in books:
            book.record(connector, segments, outcome, latency, now)
        if rank_now:
            a, b = (s.rank(candidates, LEVELS[0], amount, fees, now) for s in sel)
            assert a.order == b.order
            for x, y in zip(a.estimates, b.estimates, strict=True):
                assert (x.connector, x.samples, x.segment, x.breaker, x.probe, x.explored) == (
                    y.connector,
                    y.samples,
                    y.segment,
                    y.breaker,
                    y.probe,
                    y.explored,
                )
                assert x.approval == pytest.approx(y.approval, rel=1e-12, abs=1e-15)
                assert x.expected_value == pytest.approx(y.expected_value, rel=1e-12)
