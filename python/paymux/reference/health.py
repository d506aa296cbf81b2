"""Pure-Python reference for paymux._core.HealthBook: same API, windows and breaker semantics.

Used by the property tests to prove the Rust health windows agree, and by the benchmark.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["OUTCOMES", "HealthBook", "HealthStats", "latency_bucket", "latency_bucket_upper_ms"]

OUTCOMES = (
    "approved",
    "hard",
    "fix_data",
    "issuer_not_now",
    "soft_route",
    "technical",
    "timeout",
)
_INDEX = {name: i for i, name in enumerate(OUTCOMES)}
_TECHNICAL = frozenset({_INDEX["technical"], _INDEX["timeout"]})
_N_OUT = len(OUTCOMES)
LATENCY_BUCKETS = 79


def latency_bucket(ms: float) -> int:
    if ms < 0.1:
        return 0
    i = math.floor(math.log2(ms / 0.1) * 4.0) + 1
    return max(1, min(LATENCY_BUCKETS - 1, i))


def latency_bucket_upper_ms(i: int) -> float:
    return 0.1 * 2.0 ** (i / 4.0)


def _percentile(hist: list[int], total: int, q: float) -> float | None:
    if total == 0:
        return None
    target = max(1, math.ceil(q * total))
    cumulative = 0
    for i, c in enumerate(hist):
        cumulative += c
        if cumulative >= target:
            return latency_bucket_upper_ms(i)
    return latency_bucket_upper_ms(len(hist) - 1)


class _TimeRing:
    def __init__(self, n: int, k: int) -> None:
        self.n = n
        self.k = k
        self.head: int | None = None
        self.slots = [[0] * k for _ in range(n)]
        self.total = [0] * k

    def advance(self, epoch: int) -> None:
        if self.head is None:
            self.head = epoch
            return
        if epoch <= self.head:
            return
        if epoch - self.head >= self.n:
            self.clear()
        else:
            for e in range(self.head + 1, epoch + 1):
                old = self.slots[e % self.n]
                for j, c in enumerate(old):
                    self.total[j] -= c
                self.slots[e % self.n] = [0] * self.k
        self.head = epoch

    def live(self, epoch: int) -> bool:
        return self.head is None or epoch > self.head - self.n

    def add(self, epoch: int, counters: Sequence[int]) -> bool:
        self.advance(epoch)
        if not self.live(epoch):
            return False
        slot = self.slots[epoch % self.n]
        for j in counters:
            slot[j] += 1
            self.total[j] += 1
        return True

    def clear(self) -> None:
        self.slots = [[0] * self.k for _ in range(self.n)]
        self.total = [0] * self.k


_SUCCESS = _INDEX["approved"]
_FAILURES = frozenset({_INDEX["soft_route"], _INDEX["technical"], _INDEX["timeout"]})


def decay_weight(age: int, half_life: float) -> float:
    """The weight of evidence `age` segment attempts old."""
    if half_life <= 0.0 or age == 0:
        return 1.0
    return 0.5 ** (age / half_life)


class _SegmentWindow:
    def __init__(self, n: int, count_window: int) -> None:
        self.time = _TimeRing(n, _N_OUT + LATENCY_BUCKETS)
        self.recent: deque[tuple[int, int]] = deque()  # (outcome, segment clock when recorded)
        self.recent_counts = [0] * _N_OUT
        self.count_window = count_window
        # weighted PSP evidence (successes, failures) as of the segment clock `decay_at`
        self.ws = 0.0
        self.wf = 0.0
        self.decay_at = 0
        self.pushes = 0

    def record(self, epoch: int, outcome: int, latency: int, clock: int, half_life: float) -> None:
        if not self.time.add(epoch, (outcome, _N_OUT + latency)):
            return
        factor = decay_weight(max(0, clock - self.decay_at), half_life)
        self.ws *= factor
        self.wf *= factor
        self.decay_at = clock
        if len(self.recent) == self.count_window:
            old, at = self.recent.popleft()
            self.recent_counts[old] -= 1
            w = decay_weight(max(0, clock - at), half_life)
            if old == _SUCCESS:
                self.ws = max(0.0, self.ws - w)
            elif old in _FAILURES:
                self.wf = max(0.0, self.wf - w)
        self.recent.append((outcome, clock))
        self.recent_counts[outcome] += 1
        if outcome == _SUCCESS:
            self.ws += 1.0
        elif outcome in _FAILURES:
            self.wf += 1.0
        self.pushes += 1
        if self.pushes >= self.count_window:
            self.rebuild(half_life)

    def rebuild(self, half_life: float) -> None:
        """Recompute the weighted sums exactly from the count window (as of `decay_at`)."""
        self.pushes = 0
        ws = wf = 0.0
        for o, at in self.recent:
            w = decay_weight(max(0, self.decay_at - at), half_life)
            if o == _SUCCESS:
                ws += w
            elif o in _FAILURES:
                wf += w
        self.ws, self.wf = ws, wf

    def evidence(self, clock: int, half_life: float) -> tuple[float, float]:
        d = decay_weight(max(0, clock - self.decay_at), half_life)
        return self.ws * d, self.wf * d

    def advance(self, epoch: int) -> None:
        self.time.advance(epoch)

    def forgive_technical(self, half_life: float) -> None:
        """Drop technical failures from the count window (the breaker just closed)."""
        self.recent = deque((o, at) for o, at in self.recent if o not in _TECHNICAL)
        for o in _TECHNICAL:
            self.recent_counts[o] = 0
        self.rebuild(half_life)


@dataclass(frozen=True)
class HealthStats:
    counts_: tuple[int, ...] = (0,) * _N_OUT
    recent_: tuple[int, ...] = (0,) * _N_OUT
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_p99: float | None = None

    approved = property(lambda s: s.counts_[0])
    hard = property(lambda s: s.counts_[1])
    fix_data = property(lambda s: s.counts_[2])
    issuer_not_now = property(lambda s: s.counts_[3])
    soft_route = property(lambda s: s.counts_[4])
    technical = property(lambda s: s.counts_[5])
    timeout = property(lambda s: s.counts_[6])

    @property
    def total(self) -> int:
        return sum(self.counts_)

    @property
    def approval_rate(self) -> float | None:
        t = self.total
        return self.counts_[0] / t if t else None

    @property
    def technical_rate(self) -> float | None:
        t = self.total
        return (self.counts_[5] + self.counts_[6]) / t if t else None

    @property
    def count_window_total(self) -> int:
        return sum(self.recent_)

    @property
    def count_window_approval_rate(self) -> float | None:
        t = self.count_window_total
        return self.recent_[0] / t if t else None

    @property
    def count_window_technical_rate(self) -> float | None:
        t = self.count_window_total
        return (self.recent_[5] + self.recent_[6]) / t if t else None

    def counts(self) -> dict[str, int]:
        return dict(zip(OUTCOMES, self.counts_, strict=True))


def _stats(w: _SegmentWindow) -> HealthStats:
    counts = tuple(w.time.total[:_N_OUT])
    total = sum(counts)
    hist = w.time.total[_N_OUT:]
    return HealthStats(
        counts,
        tuple(w.recent_counts),
        _percentile(hist, total, 0.50),
        _percentile(hist, total, 0.95),
        _percentile(hist, total, 0.99),
    )


class _Breaker:
    def __init__(self, n: int) -> None:
        self.state = "closed"
        self.consecutive = 0
        self.ring = _TimeRing(n, 2)
        self.opens = 0
        self.open_until = 0.0
        self.probes_granted = 0
        self.probe_successes = 0
        self.last_grant = 0.0

    def refresh(self, now: float) -> None:
        if self.state == "open" and now >= self.open_until:
            self.state = "half_open"
            self.probes_granted = 0
            self.probe_successes = 0
            self.last_grant = now

    def allow(self, now: float, book: HealthBook) -> bool:
        self.refresh(now)
        if self.state == "closed":
            return True
        if self.state == "open":
            return False
        probes = book.breaker_half_open_probes
        if self.probes_granted >= probes and now - self.last_grant >= book.breaker_open_seconds:
            self.probes_granted = self.probe_successes
        if self.probes_granted < probes:
            self.probes_granted += 1
            self.last_grant = now
            return True
        return False

    def on_outcome(self, epoch: int, now: float, technical: bool, book: HealthBook) -> bool:
        """Feed one attempt; True when it closed the breaker."""
        self.refresh(now)
        if self.state == "closed":
            counted = self.ring.add(epoch, (0, 1) if technical else (1,))
            if not technical:
                self.consecutive = 0
                return False
            self.consecutive += 1
            failures, total = self.ring.total
            rate_trips = (
                counted
                and total >= book.breaker_min_volume
                and failures / total >= book.breaker_failure_rate
            )
            if self.consecutive >= book.breaker_consecutive_failures or rate_trips:
                self.trip(now, book)
        elif self.state == "half_open":
            if technical:
                self.trip(now, book)
            else:
                self.probe_successes += 1
                if self.probe_successes >= book.breaker_half_open_probes:
                    self.state = "closed"
                    self.opens = 0
                    self.consecutive = 0
                    self.ring.clear()
                    return True
        return False

    def trip(self, now: float, book: HealthBook) -> None:
        self.opens += 1
        exponent = min(self.opens - 1, 62)
        period = min(book.breaker_open_seconds * 2.0**exponent, book.breaker_max_open_seconds)
        self.state = "open"
        self.open_until = now + period
        self.consecutive = 0


def _check_now(now: float) -> None:
    if not (math.isfinite(now) and abs(now) <= 1e12):
        raise ValueError(f"now must be unix seconds (finite, |now| <= 1e12), got {now}")


class HealthBook:
    """Sliding windows per (connector, segment) and a breaker per connector (reference)."""

    def __init__(
        self,
        *,
        window_seconds: float = 60.0,
        bucket_seconds: float = 1.0,
        count_window: int = 200,
        breaker_consecutive_failures: int = 5,
        breaker_failure_rate: float = 0.5,
        breaker_min_volume: int = 20,
        breaker_open_seconds: float = 5.0,
        breaker_max_open_seconds: float = 60.0,
        breaker_half_open_probes: int = 3,
        evidence_half_life: float = 0.0,
    ) -> None:
        for name, v, hi in (
            ("count_window", count_window, 1_000_000),
            ("breaker_consecutive_failures", breaker_consecutive_failures, 1_000_000),
            ("breaker_min_volume", breaker_min_volume, 1_000_000_000),
            ("breaker_half_open_probes", breaker_half_open_probes, 1_000_000),
        ):
            if not 1 <= v <= hi:
                raise ValueError(f"{name} must be between 1 and {hi}, got {v}")
        for name, f in (
            ("window_seconds", window_seconds),
            ("bucket_seconds", bucket_seconds),
            ("breaker_open_seconds", breaker_open_seconds),
            ("breaker_max_open_seconds", breaker_max_open_seconds),
        ):
            if not (math.isfinite(f) and f > 0):
                raise ValueError(f"{name} must be a positive finite number, got {f}")
        if bucket_seconds < 0.001:
            raise ValueError("bucket_seconds must be at least 0.001")
        if bucket_seconds > window_seconds:
            raise ValueError("bucket_seconds must not exceed window_seconds")
        if window_seconds / bucket_seconds > 100_000:
            raise ValueError("window_seconds / bucket_seconds must be at most 100000 buckets")
        if not 0 < breaker_failure_rate <= 1:
            raise ValueError("breaker_failure_rate must be in (0, 1]")
        if breaker_max_open_seconds < breaker_open_seconds:
            raise ValueError("breaker_max_open_seconds must be at least breaker_open_seconds")
        if not (math.isfinite(evidence_half_life) and evidence_half_life >= 0):
            raise ValueError(
                f"evidence_half_life must be a finite number >= 0, got {evidence_half_life}"
            )
        self.evidence_half_life = float(evidence_half_life)
        self._clocks: dict[str, int] = {}  # per segment: attempts recorded under it (any connector)
        self.bucket_seconds = float(bucket_seconds)
        self.count_window = count_window
        self.breaker_consecutive_failures = breaker_consecutive_failures
        self.breaker_failure_rate = breaker_failure_rate
        self.breaker_min_volume = breaker_min_volume
        self.breaker_open_seconds = float(breaker_open_seconds)
        self.breaker_max_open_seconds = float(breaker_max_open_seconds)
        self.breaker_half_open_probes = breaker_half_open_probes
        self.n_buckets = max(1, math.floor(window_seconds / bucket_seconds + 0.5))
        self._segments: dict[str, dict[str, _SegmentWindow]] = {}
        self._breakers: dict[str, _Breaker] = {}
        self._lock = threading.Lock()

    def _epoch(self, now: float) -> int:
        return math.floor(now / self.bucket_seconds)

    def record(
        self,
        connector: str,
        segment: str | Sequence[str],
        outcome: str,
        latency_ms: float,
        now: float,
    ) -> None:
        o = _INDEX.get(outcome)
        if o is None:
            raise ValueError(
                f"unknown outcome {outcome!r} (expected one of: {', '.join(OUTCOMES)})"
            )
        segments = [segment] if isinstance(segment, str) else list(segment)
        _check_now(now)
        if not (math.isfinite(latency_ms) and latency_ms >= 0):
            raise ValueError(f"latency_ms must be a finite number >= 0, got {latency_ms}")
        epoch = self._epoch(now)
        lat = latency_bucket(latency_ms)
        with self._lock:
            windows = self._segments.setdefault(connector, {})
            breaker = self._breakers.get(connector)
            if breaker is None:
                breaker = self._breakers[connector] = _Breaker(self.n_buckets)
            hl = self.evidence_half_life
            for s in segments:
                clock = self._clocks[s] = self._clocks.get(s, 0) + 1
                w = windows.get(s)
                if w is None:
                    w = windows[s] = _SegmentWindow(self.n_buckets, self.count_window)
                w.record(epoch, o, lat, clock, hl)
            if breaker.on_outcome(epoch, now, o in _TECHNICAL, self):
                for w in windows.values():
                    w.forgive_technical(hl)

    def _window(self, connector: str, segment: str, now: float) -> _SegmentWindow | None:
        w = self._segments.get(connector, {}).get(segment)
        if w is not None:
            w.advance(self._epoch(now))
        return w

    def stats(self, connector: str, segment: str, now: float) -> HealthStats:
        _check_now(now)
        with self._lock:
            w = self._window(connector, segment, now)
            return HealthStats() if w is None else _stats(w)

    def psp_evidence(self, connector: str, segment: str, now: float) -> tuple[float, float]:
        """Count-window (approved, soft_route + technical + timeout), each entry weighted by its
        age in the segment's attempts (`evidence_half_life`), for the selector."""
        w = self._segments.get(connector, {}).get(segment)
        if w is None:
            return 0.0, 0.0
        return w.evidence(self._clocks.get(segment, 0), self.evidence_half_life)

    def segment_clock(self, segment: str) -> int:
        return self._clocks.get(segment, 0)

    def latency_p50(self, connector: str, segment: str, now: float) -> float | None:
        w = self._window(connector, segment, now)
        if w is None:
            return None
        return _percentile(w.time.total[_N_OUT:], sum(w.time.total[:_N_OUT]), 0.5)

    def breaker_view(self, connector: str, now: float) -> tuple[str, float]:
        """(state, seconds until an open breaker goes half-open)."""
        b = self._breakers.get(connector)
        if b is None:
            return "closed", 0.0
        b.refresh(now)
        return b.state, max(b.open_until - now, 0.0) if b.state == "open" else 0.0

    def breaker_state(self, connector: str, now: float) -> str:
        _check_now(now)
        with self._lock:
            return self.breaker_view(connector, now)[0]

    def allow_request(self, connector: str, now: float) -> bool:
        _check_now(now)
        with self._lock:
            b = self._breakers.get(connector)
            return True if b is None else b.allow(now, self)

    def snapshot(self, now: float) -> list[dict[str, Any]]:
        _check_now(now)
        rows = []
        with self._lock:
            for connector, windows in self._segments.items():
                state = self.breaker_view(connector, now)[0]
                for segment in windows:
                    s = _stats(self._window(connector, segment, now))  # type: ignore[arg-type]
                    row: dict[str, Any] = {
                        "connector": connector,
                        "segment": segment,
                        "breaker": state,
                    }
                    row.update(s.counts())
                    row.update(
                        total=s.total,
                        approval_rate=s.approval_rate,
                        technical_rate=s.technical_rate,
                        latency_p50=s.latency_p50,
                        latency_p95=s.latency_p95,
                        latency_p99=s.latency_p99,
                        count_window_total=s.count_window_total,
                        count_window_approval_rate=s.count_window_approval_rate,
                        count_window_technical_rate=s.count_window_technical_rate,
                    )
                    rows.append(row)
        rows.sort(key=lambda r: (r["connector"], r["segment"]))
        return rows
