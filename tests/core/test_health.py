"""Health windows and circuit breakers through the Python binding (and the reference)."""

from __future__ import annotations

import threading

import pytest
from paymux import _core
from paymux.reference import health as ref

SEGMENTS = ["visa|DE|EUR", "visa|DE", "visa", "*"]


@pytest.fixture(params=["rust", "reference"])
def impl(request):
    return _core if request.param == "rust" else ref


def test_outcomes_are_counted_per_segment_level_with_rates(impl):
    book = impl.HealthBook()
    for outcome in ["approved"] * 6 + ["technical", "issuer_not_now"]:
        book.record("adyen", SEGMENTS, outcome, 120.0, now=10.0)
    s = book.stats("adyen", "visa", now=10.5)
    assert (s.total, s.approved, s.technical, s.issuer_not_now) == (8, 6, 1, 1)
    assert s.approval_rate == 0.75 and s.technical_rate == 0.125
    assert s.count_window_total == 8 and s.count_window_approval_rate == 0.75
    assert s.counts()["approved"] == 6
    assert 120.0 <= s.latency_p50 <= 120.0 * 2**0.25
    empty = book.stats("adyen", "mastercard", now=10.5)
    assert empty.total == 0 and empty.approval_rate is None and empty.latency_p99 is None


def test_the_time_window_slides_and_the_count_window_keeps_the_last_n(impl):
    book = impl.HealthBook(window_seconds=10, bucket_seconds=1, count_window=5)
    for i in range(10):
        book.record("stripe", "*", "soft_route" if i < 5 else "approved", 50.0, now=float(i))
    s = book.stats("stripe", "*", now=9.0)
    assert s.total == 10 and s.count_window_total == 5 and s.count_window_approval_rate == 1.0
    assert book.stats("stripe", "*", now=12.0).total == 7  # buckets 0..2 expired
    assert book.stats("stripe", "*", now=25.0).total == 0
    # the count window is the last N attempts, however old
    assert book.stats("stripe", "*", now=25.0).count_window_total == 5


def test_a_closing_breaker_forgives_the_outage_in_the_count_window(impl):
    book = impl.HealthBook(breaker_consecutive_failures=3, breaker_half_open_probes=1)
    for _ in range(20):
        book.record("a", "*", "approved", 1.0, now=0.0)
    for _ in range(3):
        book.record("a", "*", "timeout", 1.0, now=1.0)
    assert book.stats("a", "*", now=1.0).count_window_total == 23
    assert book.allow_request("a", now=6.0)
    book.record("a", "*", "approved", 1.0, now=6.0)
    s = book.stats("a", "*", now=6.0)
    assert book.breaker_state("a", now=6.0) == "closed"
    assert (s.count_window_total, s.count_window_technical_rate) == (21, 0.0)
    assert s.timeout == 3  # monitoring still sees the outage


def test_breaker_ignores_issuer_declines_and_opens_on_technical_failures(impl):
    book = impl.HealthBook(breaker_consecutive_failures=3)
    for i in range(50):
        book.record("checkout", "*", "hard", 10.0, now=i * 0.01)
    assert book.breaker_state("checkout", now=1.0) == "closed"
    for _ in range(3):
        book.record("checkout", "*", "timeout", 30_000.0, now=1.0)
    assert book.breaker_state("checkout", now=1.0) == "open"
    assert book.allow_request("checkout", now=2.0) is False
    assert book.allow_request("never-seen", now=2.0) is True


def test_half_open_probes_close_or_reopen_with_back_off(impl):
    book = impl.HealthBook(
        breaker_consecutive_failures=2, breaker_open_seconds=1.0, breaker_half_open_probes=2
    )
    book.record("a", "*", "technical", 1.0, now=0.0)
    book.record("a", "*", "technical", 1.0, now=0.0)
    assert book.breaker_state("a", now=0.99) == "open"
    assert book.breaker_state("a", now=1.0) == "half_open"
    assert [book.allow_request("a", now=1.0) for _ in range(3)] == [True, True, False]
    book.record("a", "*", "technical", 1.0, now=1.1)  # a probe fails: open for 2 s now
    assert book.breaker_state("a", now=3.0) == "open"
    assert book.breaker_state("a", now=3.1) == "half_open"
    for _ in range(2):
        assert book.allow_request("a", now=3.1)
        book.record("a", "*", "soft_route", 1.0, now=3.2)  # a real answer is a success
    assert book.breaker_state("a", now=3.2) == "closed"


def test_snapshot_lists_every_connector_and_segment(impl):
    book = impl.HealthBook()
    book.record("b", ["visa", "*"], "approved", 5.0, now=1.0)
    book.record("a", "*", "timeout", 5.0, now=1.0)
    rows = book.snapshot(now=2.0)
    assert [(r["connector"], r["segment"]) for r in rows] == [("a", "*"), ("b", "*"), ("b", "visa")]
    assert (
        rows[0]["breaker"] == "closed"
        and rows[0]["timeout"] == 1
        and rows[0]["technical_rate"] == 1.0
    )
    assert set(rows[0]) >= {
        "approved",
        "total",
        "approval_rate",
        "latency_p95",
        "count_window_total",
    }


def test_bad_arguments_raise_value_or_type_errors():
    book = _core.HealthBook()
    with pytest.raises(ValueError, match="unknown outcome"):
        book.record("a", "*", "declined", 1.0, 0.0)
    with pytest.raises(ValueError, match="latency_ms"):
        book.record("a", "*", "approved", -1.0, 0.0)
    with pytest.raises(ValueError, match="now"):
        book.record("a", "*", "approved", 1.0, float("inf"))
    with pytest.raises(TypeError):
        book.record("a", 3, "approved", 1.0, 0.0)
    with pytest.raises(ValueError, match="now"):
        book.stats("a", "*", float("nan"))
    for kwargs in (
        {"bucket_seconds": 0},
        {"window_seconds": -1},
        {"count_window": 0},
        {"count_window": -5},
        {"breaker_failure_rate": 0},
        {"breaker_half_open_probes": 0},
        {"breaker_max_open_seconds": 1.0},
        {"bucket_seconds": 1e-9},
    ):
        with pytest.raises(ValueError):
            _core.HealthBook(**kwargs)
    with pytest.raises(TypeError):
        _core.HealthBook(60)  # keyword-only


def test_concurrent_records_from_threads_are_all_counted():
    book = _core.HealthBook(count_window=100_000)

    def worker():
        for _ in range(5000):
            book.record("a", "*", "approved", 1.0, 1.0)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert book.stats("a", "*", 1.0).total == 20_000


@pytest.mark.parametrize("Book", [_core.HealthBook, ref.HealthBook], ids=["rust", "reference"])
def test_evidence_fades_with_the_segments_own_attempts(Book):
    book = Book(count_window=100, evidence_half_life=50.0)
    for _ in range(10):
        book.record("a", ["s", "*"], "approved", 10.0, 0.0)
    book.record("a", ["s", "*"], "issuer_not_now", 10.0, 0.0)  # the card's doing: no evidence
    want = sum(0.5 ** (age / 50.0) for age in range(1, 11))
    assert book.psp_evidence("a", "s", 0.0) == pytest.approx((want, 0.0))
    for _ in range(50):  # 50 attempts at another PSP in the same segment halve a's evidence
        book.record("b", ["s", "*"], "soft_route", 10.0, 0.0)
    assert book.psp_evidence("a", "s", 0.0) == pytest.approx((want / 2, 0.0))
    assert book.psp_evidence("b", "s", 0.0)[1] == pytest.approx(
        sum(0.5 ** (age / 50.0) for age in range(50))
    )
    for _ in range(50):  # traffic elsewhere does not age it
        book.record("b", ["t"], "approved", 10.0, 0.0)
    assert book.psp_evidence("a", "s", 0.0) == pytest.approx((want / 2, 0.0))
    # no forgetting: plain count-window counts
    plain = Book(count_window=100)
    for _ in range(7):
        plain.record("a", "s", "approved", 10.0, 0.0)
    plain.record("a", "s", "timeout", 10.0, 0.0)
    assert plain.psp_evidence("a", "s", 0.0) == (7.0, 1.0)
