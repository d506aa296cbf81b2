"""Pure-Python reference for paymux._core.Selector: same estimator, ordering and breaker rules.

Its random numbers come from `random.Random`, so only greedy rankings (exploration=0, or any
ranking whose `explored` is False) are comparable with the Rust selector draw for draw.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from paymux.reference.health import HealthBook

__all__ = ["PRIOR_STRENGTH", "Estimate", "Ranking", "Selector"]

#: Prior strength (pseudo-attempts) when the chosen segment has at least `min_samples`.
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
        prior = self.prior_approval
        with book._lock:
            raw: list[_Judged] = []
            for ci, connector in enumerate(candidates):
                chosen = None
                thin = None
                finest = 0
                for si, segment in enumerate(segments):
                    s, f = book.psp_evidence(connector, segment, now)
                    n = s + f
                    if si == 0:
                        finest = n
                    if n >= self.min_samples:
                        chosen = (si, s, f)
                        break
                    if n > 0 and (thin is None or n > thin[1] + thin[2]):
                        thin = (si, s, f)
                if chosen is not None:
                    seg: int | None
                    seg, s, f = chosen
                    k = PRIOR_STRENGTH
                elif thin is not None:
                    seg, s, f = thin
                    k = float(self.min_samples)
                else:
                    seg, s, f, k = None, 0, 0, float(self.min_samples)
                a = prior * k + s
                b = (1.0 - prior) * k + f
                under_explored = self.exploration > 0.0 and finest < self.min_samples
                drawn = explore or under_explored
                approval = self._rng.betavariate(a, b) if drawn else a / (a + b)
                latency = 0.0
                if seg is not None and self.latency_penalty_per_ms > 0.0:
                    latency = book.latency_p50(connector, segments[seg], now) or 0.0
                margin = float(amount) - float(fees[ci])
                ev = approval * margin - self.latency_penalty_per_ms * latency
                state, retry_in = book.breaker_view(connector, now)
                raw.append(_Judged(ci, approval, ev, s + f, seg, state, retry_in, drawn))
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
