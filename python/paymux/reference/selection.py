"""Pure-Python reference for paymux._core.Selector: same estimator (hierarchical posterior over the
segment levels, on age-weighted evidence), greedy ranking by posterior-mean expected value,
exploration decided apart from the ranking, and the same breaker rules.

Its random numbers come from `random.Random`, so only greedy rankings (exploration=0, or any
ranking no exploration moved) are comparable with the Rust selector draw for draw.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from paymux.reference.health import HealthBook

__all__ = ["PRIOR_STRENGTH", "Estimate", "Ranking", "Selector"]

#: Strength of `prior_approval` above the coarsest level (weak: faded evidence is re-tested).
PRIOR_STRENGTH = 2.0


@dataclass(frozen=True)
class Estimate:
    connector: str
    approval: float
    fee: int
    expected_value: float
    samples: int
    segment: str | None
    breaker: str
    explored: bool
    probe: bool


@dataclass
class _Judged:
    index: int
    approval: float
    expected_value: float
    samples: int
    segment: int | None
    breaker: str
    retry_in: float
    drawn: bool
    probe: bool = False


def _round_half_away(x: float) -> int:
    """Rust's f64::round (half away from zero), for x >= 0."""
    return math.floor(x + 0.5)


@dataclass(frozen=True)
class Ranking:
    order: list[str]
    estimates: list[Estimate]


class Selector:
    def __init__(
        self,
        health: HealthBook,
        *,
        exploration: float = 0.02,
        min_samples: int = 30,
        prior_approval: float = 0.8,
        seed: int | None = None,
        latency_penalty_per_ms: float = 0.0,
    ) -> None:
        if min_samples < 1:
            raise ValueError(f"min_samples must be at least 1, got {min_samples}")
        if not 0.0 <= exploration <= 1.0:
            raise ValueError(f"exploration must be in [0, 1], got {exploration}")
        if not 0.0 < prior_approval < 1.0:
            raise ValueError(f"prior_approval must be in (0, 1), got {prior_approval}")
        if not (math.isfinite(latency_penalty_per_ms) and latency_penalty_per_ms >= 0):
            raise ValueError("latency_penalty_per_ms must be a finite number >= 0")
        self.health = health
        self.exploration = exploration
        self.min_samples = min_samples
        self.prior_approval = prior_approval
        self.latency_penalty_per_ms = latency_penalty_per_ms
        self._rng = random.Random(seed)

    def _posterior(
        self, connector: str, segments: Sequence[str], k: float
    ) -> tuple[float, float, int | None, int]:
        """Beta(a, b) at the finest level, coarsest to finest, each level's prior the next
        coarser level's mean with strength `min_samples`; the level the estimate mostly comes
        from (finest with `min_samples` of weighted evidence, else finest with any); its
        evidence, rounded."""
        m = self.prior_approval
        strength = PRIOR_STRENGTH
        a, b = m * strength, (1.0 - m) * strength
        enough: tuple[int, float] | None = None
        any_: tuple[int, float] | None = None
        for si in range(len(segments) - 1, -1, -1):
            s, f = self.health.psp_evidence(connector, segments[si], 0.0)
            a = m * strength + s
            b = (1.0 - m) * strength + f
            m = a / (a + b)
            strength = min(k, a + b)  # a level lends at most min_samples, never more than it has
            n = s + f
            if n >= k:
                enough = (si, n)
            if n > 0.0:
                any_ = (si, n)
        chosen = enough or any_
        if chosen is None:
            return a, b, None, 0
        return a, b, chosen[0], _round_half_away(chosen[1])

    def rank(
        self,
        candidates: Sequence[str],
        segments: Sequence[str],
        amount: int,
        fees: Sequence[int],
        now: float,
    ) -> Ranking:
        if not candidates:
            raise ValueError("candidates must not be empty")
        if len(fees) != len(candidates):
            raise ValueError(
                f"fees has {len(fees)} entries but there are {len(candidates)} candidates"
            )
        if not (math.isfinite(now) and abs(now) <= 1e12):
            raise ValueError(f"now must be a finite number of seconds, got {now}")
        if len(set(candidates)) != len(candidates):
            raise ValueError("a candidate is listed twice")
        book = self.health
        explore = self.exploration > 0.0 and self._rng.random() < self.exploration
        k = float(self.min_samples)
        with book._lock:
            raw: list[_Judged] = []
            posteriors: list[tuple[float, float, float, float]] = []
            for ci, connector in enumerate(candidates):
                a, b, seg, samples = self._posterior(connector, segments, k)
                approval = a / (a + b)
                latency = 0.0
                if seg is not None and self.latency_penalty_per_ms > 0.0:
                    latency = book.latency_p50(connector, segments[seg], now) or 0.0
                margin = float(amount) - float(fees[ci])
                penalty = self.latency_penalty_per_ms * latency
                ev = approval * margin - penalty
                state, retry_in = book.breaker_view(connector, now)
                posteriors.append((a, b, margin, penalty))
                raw.append(_Judged(ci, approval, ev, samples, seg, state, retry_in, False))
            admitted = []
            for e in raw:
                if e.breaker == "closed":
                    admitted.append(e.index)
                elif e.breaker == "half_open" and book._breakers[candidates[e.index]].allow(
                    now, book
                ):
                    e.probe = True
                    admitted.append(e.index)

        def by_value(i: int) -> tuple[bool, float, int]:
            return (not raw[i].probe, -raw[i].expected_value, i)

        if admitted:
            order = sorted(admitted, key=by_value)
        else:
            order = sorted(range(len(candidates)), key=lambda i: (raw[i].retry_in, *by_value(i)))
        if explore and len(order) > 1 and not raw[order[0]].probe:
            best, best_ev = 0, -math.inf
            for pos, ci in enumerate(order):
                a, b, margin, penalty = posteriors[ci]
                draw = self._rng.betavariate(a, b) * margin - penalty
                if draw > best_ev:
                    best, best_ev = pos, draw
            if best > 0:
                ci = order.pop(best)
                order.insert(0, ci)
                raw[ci].drawn = True
        estimates = [
            Estimate(
                connector=candidates[e.index],
                approval=e.approval,
                fee=int(fees[e.index]),
                expected_value=e.expected_value,
                samples=e.samples,
                segment=None if e.segment is None else segments[e.segment],
                breaker=e.breaker,
                explored=e.drawn,
                probe=e.probe,
            )
            for e in raw
        ]
        return Ranking([candidates[i] for i in order], estimates)
