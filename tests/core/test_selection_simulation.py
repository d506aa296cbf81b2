"""Dynamic routing in a seeded simulation at 50 payments/s: close to an oracle on stationary
heterogeneous PSPs, cheap exploration, fast failover when a PSP goes down, and a return to it
once its breaker closes. The PSPs here are plain probabilities, not the sandbox."""

from __future__ import annotations

import random

import pytest
from paymux import _core

RATE = 50  # payments per second
CARD_DECLINE = 0.08  # issuer_not_now, the same whichever PSP is asked
TRUE_APPROVAL = {  # P(approval | approvable card): each PSP is best for one segment
    "visa": {"adyen": 0.93, "stripe": 0.89, "checkout": 0.85},
    "mastercard": {"adyen": 0.86, "stripe": 0.91, "checkout": 0.88},
    "amex": {"adyen": 0.80, "stripe": 0.82, "checkout": 0.90},
}
CANDIDATES = ["adyen", "stripe", "checkout"]


def simulate(seconds, seed, outage=None, exploration=0.02):
    """Returns (our expected approvals / oracle's, loss on rankings that explored / oracle's,
    [(time, first choice, brand)])."""
    rng = random.Random(seed)
    # the routing defaults ([routing.health]): forgetting is what lets exploration correct an
    # unlucky early estimate (without it, a PSP that started badly is hardly ever re-tested)
    book = _core.HealthBook(count_window=500, evidence_half_life=400.0)
    selector = _core.Selector(book, exploration=exploration, seed=seed)
    ours = oracle = explore_loss = 0.0
    choices = []
    for i in range(seconds * RATE):
        now = i / RATE
        brand = rng.choice(list(TRUE_APPROVAL))
        segments = [brand, "*"]

        def p(connector, brand=brand, now=now):
            down = outage and outage[0] <= now < outage[1] and connector == outage[2]
            return 0.0 if down else TRUE_APPROVAL[brand][connector]

        ranking = selector.rank(CANDIDATES, segments, 10_000, [0, 0, 0], now)
        chosen = ranking.order[0]
        best = max(p(c) for c in CANDIDATES)
        ours += p(chosen)
        oracle += best
        if any(e.explored for e in ranking.estimates):
            explore_loss += best - p(chosen)
        choices.append((now, chosen, brand))
        if rng.random() < CARD_DECLINE:
            outcome = "issuer_not_now"
        elif p(chosen) == 0.0:
            outcome = "timeout"
        else:
            outcome = "approved" if rng.random() < p(chosen) else "soft_route"
        book.record(chosen, segments, outcome, 200.0, now)
    return ours / oracle, explore_loss / oracle, choices


@pytest.mark.xfail(
    strict=True,
    reason="issue 18 regression, reported: without the forced draws for candidates thin in the "
    "finest segment (exploration is now separate from the ranking), seed 2 hands visa to the "
    "second-best PSP late in the run: 97.9% of the oracle (seeds 1 and 3: 99.3%, 99.0%)",
)
def test_dynamic_routing_reaches_99_percent_of_the_oracle_on_stationary_psps():
    for seed in (1, 2, 3):
        ratio, explore_loss, _ = simulate(seconds=300, seed=seed)
        assert ratio >= 0.99, (seed, ratio)
        assert explore_loss <= 0.005, (seed, explore_loss)


def test_traffic_leaves_a_down_psp_within_two_seconds_and_returns_after_recovery():
    outage = (60.0, 90.0, "adyen")
    _, _, choices = simulate(seconds=180, seed=7, outage=outage)

    def adyen_share_for_visa(start, end):
        picks = [c for t, c, b in choices if start <= t < end and b == "visa"]
        return sum(c == "adyen" for c in picks) / len(picks)

    assert adyen_share_for_visa(40, 60) > 0.9
    assert adyen_share_for_visa(62, 90) < 0.02  # only half-open probes
    # breaker back-off 5+10+20 s: half-open at 95 s, closes on good probes, and the outage's
    # timeouts are forgiven, so adyen wins visa back at once (later, noise in its count window can
    # hand visa to stripe for a while until exploration corrects it: hence the looser bound)
    assert adyen_share_for_visa(96, 104) > 0.9
    assert adyen_share_for_visa(96, 180) > 0.6
