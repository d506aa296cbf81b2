"""The routing engine: which connectors a payment goes to, in what order, and what was learned.

Pure decision logic (no HTTP, no store), shared by the gateway and the routing benchmark:
rules (Rust `RuleSet`) -> capability filter -> order (priority / split as the rule says, dynamic
through the Rust `Selector` over segment levels with fees) -> breaker exclusion (open breakers are
left out, never all candidates). `observe` feeds every attempt's outcome into the `HealthBook`.
"""

from __future__ import annotations

import operator
from collections import deque
from typing import Any

import msgspec

from paymux import _core
from paymux.connectors.base import Capabilities
from paymux.routing.config import (
    FALLTHROUGH,
    REGIONS,
    RoutingConfig,
    RoutingConfigError,
    compile_rules,
)

__all__ = [
    "CandidateEstimate",
    "PaymentAttributes",
    "RoutePlan",
    "RoutingEngine",
    "outcome_for",
]

_FALLTHROUGH_NAME = FALLTHROUGH["connectors"][0]
_MISSING = "?"  # a segment value for an attribute the payment does not have
#: Where cascaded attempts are recorded: seen by the breaker and by metrics, not by the estimator.
CASCADE_SEGMENT = "cascade"


class PaymentAttributes(msgspec.Struct, kw_only=True):
    """What routing may look at. No card data beyond brand, type, BIN and issuer country."""

    payment_id: str
    amount: int  # minor units
    currency: str
    brand: str | None
    card_type: str | None = None
    bin: str | None = None
    country: str | None = None  # issuer (or billing) country, ISO 3166 alpha-2
    merchant_id: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    method: str = "card"


class CandidateEstimate(msgspec.Struct, gc=False):
    """How the selector judged one candidate (see docs/routing-rules.md, Selection)."""

    connector: str
    approval: float  # posterior mean, or a Thompson draw when explored
    fee: int  # minor units
    expected_value: float
    samples: int  # PSP-attributable attempts behind the estimate
    segment: str | None  # the segment level the estimate came from; None: the prior
    breaker: str  # closed | open | half_open
    explored: bool
    probe: bool  # a half-open breaker granted this candidate a probe slot


class RoutePlan(msgspec.Struct, kw_only=True):
    connectors: list[str]  # in the order to try them; empty: nowhere to go
    rule: str  # the rule that matched ("default"; "<merchant>:<rule>" for a merchant's own)
    strategy: str  # priority | split | dynamic
    eligible: list[str] = msgspec.field(default_factory=list)  # after the capability filter
    excluded: dict[str, str] = msgspec.field(default_factory=dict)  # connector -> reason
    estimates: list[CandidateEstimate] = msgspec.field(default_factory=list)  # dynamic only


_APPROVED = frozenset({"authorized", "captured"})
_UNDECIDED = frozenset({"pending", "requires_action"})
_DECLINE_CLASSES = frozenset({"hard", "fix_data", "issuer_not_now", "soft_route", "technical"})


def outcome_for(status: str, decline_class: str | None, normalized_code: str | None) -> str | None:
    """The health outcome of one attempt from its normalized result; None when it says nothing
    yet (pending, requires_action) or is not an authorization outcome (voided, refunded...)."""
    status = str(status)
    if status in _APPROVED:
        return "approved"
    if status == "declined":
        dc = str(decline_class) if decline_class is not None else "soft_route"
        return dc if dc in _DECLINE_CLASSES else "soft_route"
    if status == "failed":
        return "timeout" if normalized_code == "timeout" else "technical"
    return None


def _evaluate(rules: _core.RuleSet, attrs: PaymentAttributes, now: float) -> Any:
    return rules.evaluate(
        currency=attrs.currency,
        amount=attrs.amount,
        brand=attrs.brand,
        card_type=attrs.card_type,
        bin=attrs.bin,
        country=attrs.country,
        merchant_id=attrs.merchant_id,
        metadata=attrs.metadata or None,
        now=now,
        payment_id=attrs.payment_id,
    )


def _estimate(e: Any) -> CandidateEstimate:
    return CandidateEstimate(
        e.connector,
        e.approval,
        e.fee,
        e.expected_value,
        e.samples,
        e.segment,
        e.breaker,
        e.explored,
        e.probe,
    )


def _upper_set(values: list[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(v.upper() for v in values)


class _RuleSets:
    """The compiled global rule set and the merchants' own."""

    __slots__ = ("global_rules", "merchants")

    def __init__(self, config: RoutingConfig, names: list[str]) -> None:
        rules = compile_rules(
            config.rules, config.default, config.default_order, config.utc_offset_minutes, "", names
        )
        if rules is None:
            raise RoutingConfigError("default", "no connectors to route to")
        self.global_rules = rules
        self.merchants: dict[str, tuple[_core.RuleSet, bool]] = {}
        for merchant, m in config.merchants.items():
            rs = compile_rules(
                m.rules, m.default, [], config.utc_offset_minutes, f"merchants.{merchant}."
            )
            assert rs is not None
            self.merchants[merchant] = (rs, m.default is not None)
        known = set(names)
        for where, rs in [("rules", rules)] + [
            (f"merchants.{m}", rs) for m, (rs, _) in self.merchants.items()
        ]:
            unknown = [c for c in rs.connector_names() if c not in known and c != _FALLTHROUGH_NAME]
            if unknown:
                raise RoutingConfigError(
                    where, f"unknown connectors {unknown}; configured: {names}"
                )


class RoutingEngine:
    """Compiled routing for one configuration. Thread-safe for `plan`/`observe` (the Rust objects
    lock inside; the caches here are plain dicts whose races only cost a recomputation)."""

    def __init__(
        self,
        config: RoutingConfig,
        capabilities: dict[str, Capabilities],
        health: _core.HealthBook | None = None,
    ) -> None:
        self.config = config
        self.capabilities = dict(capabilities)
        names = list(self.capabilities)
        self._rules = _RuleSets(config, names)
        for connector in config.fees:
            if connector not in self.capabilities:
                raise RoutingConfigError(
                    f"fees.{connector}", f"unknown connector; configured: {names}"
                )
        self.health: _core.HealthBook = health if health is not None else config.health.build()
        d = config.dynamic
        self._selector = _core.Selector(
            self.health,
            exploration=d.exploration,
            min_samples=d.min_samples,
            prior_approval=d.prior_approval,
            seed=d.seed,
            latency_penalty_per_ms=d.latency_penalty_per_ms,
        )
        # explain(): greedy means, no random draws, so it changes nothing.
        self._explainer = _core.Selector(
            self.health,
            exploration=0.0,
            min_samples=d.min_samples,
            prior_approval=d.prior_approval,
            seed=0,
            latency_penalty_per_ms=d.latency_penalty_per_ms,
        )
        self._levels = [tuple(level) for level in d.segment_levels]
        self._fees: dict[str, list[tuple[int, int, Any, Any, Any]]] = {}
        for connector, fee_rules in config.fees.items():
            compiled = []
            for r in fee_rules:
                countries = _upper_set(r.country)
                if r.region is not None:
                    region = REGIONS[r.region.upper()]
                    countries = region if countries is None else countries & region
                brands = None if r.brand is None else frozenset(b.lower() for b in r.brand)
                compiled.append((r.percent_bps, r.fixed, brands, countries, _upper_set(r.currency)))
            self._fees[connector] = compiled
        self._filter_cache: dict[tuple[Any, ...], tuple[list[str], dict[str, str]]] = {}
        fields = sorted({name for level in self._levels for name in level})
        self._seg_key = operator.attrgetter(*fields) if fields else (lambda attrs: ())
        self._seg_cache: dict[Any, list[str]] = {}
        self._fee_cache: dict[tuple[Any, ...], tuple[int, int]] = {}
        # start times of attempts in flight per connector, oldest first (attempt_started)
        self._inflight: dict[str, deque[float]] = {}
        st = config.stall
        self._stall_seconds = st.seconds
        self._stall_min = st.min_attempts
        self._stall_forget = st.forget_seconds

    def with_config(self, config: RoutingConfig) -> RoutingEngine:
        """A hot reload: new compiled rules and fees, the SAME HealthBook (live statistics and
        breakers survive). `[routing.health]` changes take effect only with a new book."""
        engine = RoutingEngine(config, self.capabilities, health=self.health)
        engine._inflight = self._inflight  # attempts in flight survive a reload too
        return engine

    # ---- attempts in flight (stall detection) ----

    def attempt_started(self, connector: str, now: float) -> None:
        """An authorization is about to be sent to `connector`. `observe` ends it; for an attempt
        with no outcome to observe (pending, requires action, an exception) call
        `attempt_finished`. A connector with `stall.min_attempts` attempts in flight for longer
        than `stall.seconds` is left out of plans until they finish (or it is the only one)."""
        d = self._inflight.get(connector)
        if d is None:
            d = self._inflight.setdefault(connector, deque())
        d.append(now)

    def attempt_finished(self, connector: str) -> None:
        """An attempt started with `attempt_started` ended without an outcome to `observe`."""
        d = self._inflight.get(connector)
        if d:
            try:
                d.popleft()  # the oldest: if answers come back out of order, stalls look younger
            except IndexError:
                pass

    def stalled(self, connectors: list[str], now: float, *, purge: bool = True) -> list[str]:
        """The connectors among these whose attempts hang (see `attempt_started`)."""
        k, limit, forget = self._stall_min, self._stall_seconds, self._stall_forget
        if limit <= 0.0:
            return []
        out = []
        for c in connectors:
            d = self._inflight.get(c)
            if not d or len(d) < k:
                continue
            first = 0  # skip attempts never finished that are past forgetting
            while first < len(d) and now - d[first] > forget:
                first += 1
            if purge:
                for _ in range(first):
                    d.popleft()
                first = 0
            if len(d) - first >= k and now - d[first + k - 1] >= limit:
                out.append(c)
        return out

    # ---- per payment ----

    def segments(self, attrs: PaymentAttributes) -> list[str]:
        """The segment key of each level, finest first ("visa|DE|EUR", "visa|DE", "visa", "*")."""
        key = self._seg_key(attrs)
        hit = self._seg_cache.get(key)
        if hit is None:
            hit = self._build_segments(attrs)
            if len(self._seg_cache) > 65536:
                self._seg_cache.clear()
            self._seg_cache[key] = hit
        return hit

    def _build_segments(self, attrs: PaymentAttributes) -> list[str]:
        out = []
        for level in self._levels:
            if not level:
                out.append("*")
                continue
            parts = []
            for name in level:
                v = getattr(attrs, name)
                if not v:
                    parts.append(_MISSING)
                elif name == "brand":
                    parts.append(v.lower())
                elif name in ("country", "currency"):
                    parts.append(v.upper())
                else:
                    parts.append(v)
            out.append("|".join(parts))
        return out

    def fee(self, connector: str, attrs: PaymentAttributes) -> int:
        """The PSP's fee for this payment in minor units (first matching fee rule; 0 without)."""
        key = (connector, attrs.brand, attrs.country, attrs.currency)
        price = self._fee_cache.get(key)
        if price is None:
            price = self._price(connector, attrs)
            if len(self._fee_cache) > 65536:
                self._fee_cache.clear()
            self._fee_cache[key] = price
        bps, fixed = price
        return (attrs.amount * bps + 5000) // 10000 + fixed if bps else fixed

    def _price(self, connector: str, attrs: PaymentAttributes) -> tuple[int, int]:
        """(percent_bps, fixed) of the first fee rule of `connector` matching the payment."""
        rules = self._fees.get(connector)
        if not rules:
            return (0, 0)
        brand = attrs.brand.lower() if attrs.brand else None
        country = attrs.country.upper() if attrs.country else None
        currency = attrs.currency.upper()
        for bps, fixed, brands, countries, currencies in rules:
            if brands is not None and brand not in brands:
                continue
            if countries is not None and country not in countries:
                continue
            if currencies is not None and currency not in currencies:
                continue
            return (bps, fixed)
        return (0, 0)

    def _decide(self, attrs: PaymentAttributes, now: float) -> tuple[str, str, list[str]]:
        merchant = attrs.merchant_id
        if merchant is not None and self._rules.merchants:
            entry = self._rules.merchants.get(merchant)
            if entry is not None:
                d = _evaluate(entry[0], attrs, now)
                if d.rule != "default" or entry[1]:
                    return f"{merchant}:{d.rule}", d.strategy, d.connectors
        d = _evaluate(self._rules.global_rules, attrs, now)
        return d.rule, d.strategy, d.connectors

    def _eligible(
        self, attrs: PaymentAttributes, connectors: list[str]
    ) -> tuple[list[str], dict[str, str]]:
        key = (tuple(connectors), attrs.method, attrs.brand, attrs.currency, attrs.country)
        hit = self._filter_cache.get(key)
        if hit is not None:
            return hit
        eligible: list[str] = []
        excluded: dict[str, str] = {}
        brand = attrs.brand.lower() if attrs.brand else None
        currency = attrs.currency.upper()
        country = attrs.country.upper() if attrs.country else None
        for c in connectors:
            caps = self.capabilities.get(c)
            if caps is None:
                excluded[c] = "not_configured"
            elif attrs.method not in caps.payment_methods:
                excluded[c] = "capability:method"
            elif caps.currencies is not None and currency not in caps.currencies:
                excluded[c] = "capability:currency"
            elif brand is not None and caps.brands is not None and brand not in caps.brands:
                excluded[c] = "capability:brand"
            elif (
                country is not None and caps.countries is not None and country not in caps.countries
            ):
                excluded[c] = "capability:country"
            else:
                eligible.append(c)
        if len(self._filter_cache) > 4096:
            self._filter_cache.clear()
        self._filter_cache[key] = (eligible, excluded)
        return eligible, excluded

    def plan(self, attrs: PaymentAttributes, now: float) -> RoutePlan:
        """Where this payment goes, in order. Consumes a half-open breaker's probe slot when it
        puts that connector first (a probe nobody tries would never close the breaker)."""
        rule, strategy, candidates = self._decide(attrs, now)
        eligible, cap_excluded = self._eligible(attrs, candidates)
        excluded = dict(cap_excluded)
        if not eligible:
            return RoutePlan(
                connectors=[], rule=rule, strategy=strategy, eligible=[], excluded=excluded
            )
        candidates = eligible
        if self._inflight:
            stalled = self.stalled(eligible, now)
            if stalled and len(stalled) < len(eligible):
                candidates = [c for c in eligible if c not in stalled]
                for c in stalled:
                    excluded[c] = "stalled"
        if strategy == "dynamic":
            fee = self.fee
            fees = [fee(c, attrs) for c in candidates]
            ranking = self._selector.rank(candidates, self.segments(attrs), attrs.amount, fees, now)
            order = ranking.order
            estimates = [_estimate(e) for e in ranking.estimates]
            if len(order) < len(candidates):
                for e in estimates:
                    if e.connector not in order:
                        excluded[e.connector] = f"breaker_{e.breaker}"
            return RoutePlan(
                connectors=order,
                rule=rule,
                strategy=strategy,
                eligible=list(eligible),
                excluded=excluded,
                estimates=estimates,
            )
        order = self._breaker_filter(candidates, excluded, now)
        return RoutePlan(
            connectors=order,
            rule=rule,
            strategy=strategy,
            eligible=list(eligible),
            excluded=excluded,
        )

    def _breaker_filter(
        self, eligible: list[str], excluded: dict[str, str], now: float
    ) -> list[str]:
        """Priority/split: keep the given order, drop open breakers, half-open ones with a probe
        slot go first; if that leaves nothing, everything (a payment always has somewhere to go)."""
        health = self.health
        probes: list[str] = []
        closed: list[str] = []
        dropped: dict[str, str] = {}
        for c in eligible:
            state = health.breaker_state(c, now)
            if state == "closed":
                closed.append(c)
            elif state == "half_open" and health.allow_request(c, now):
                probes.append(c)
            else:
                dropped[c] = f"breaker_{state}"
        if not probes and not closed:
            return list(eligible)
        excluded.update(dropped)
        return probes + closed

    def observe(
        self,
        connector: str,
        attrs: PaymentAttributes,
        outcome: str,
        latency_ms: float,
        now: float,
        *,
        attempt: int = 1,
    ) -> None:
        """Record one attempt's outcome (the `_core` vocabulary, see `outcome_for`) at every
        segment level; the connector's breaker counts it once.

        `attempt` is the attempt's number within its payment. A cascaded attempt (2, 3, ...) sees
        only cards another PSP just soft-declined, which are likelier to be declined again: it
        would bias the fallback PSP's approval estimate down. It feeds the breaker and the
        monitoring-only segment "cascade", never the estimator's segments."""
        d = self._inflight.get(connector)
        if d:
            self.attempt_finished(connector)
        if attempt > 1:
            self.health.record(connector, CASCADE_SEGMENT, outcome, latency_ms, now)
        else:
            self.health.record(connector, self.segments(attrs), outcome, latency_ms, now)

    def breaker_states(self, now: float) -> dict[str, str]:
        return {c: self.health.breaker_state(c, now) for c in self.capabilities}

    def explain(self, attrs: PaymentAttributes, now: float) -> dict[str, Any]:
        """What `plan` would decide and why, without sending anything, drawing random numbers or
        taking half-open probe slots. Estimates are greedy posterior means."""
        rule, strategy, candidates = self._decide(attrs, now)
        eligible, cap_excluded = self._eligible(attrs, candidates)
        excluded = dict(cap_excluded)
        segments = self.segments(attrs)
        stalled = self.stalled(eligible, now, purge=False) if self._inflight else []
        if stalled and len(stalled) < len(eligible):
            for c in stalled:
                excluded[c] = "stalled"
            eligible_now = [c for c in eligible if c not in stalled]
        else:
            eligible_now = eligible
        states = {c: self.health.breaker_state(c, now) for c in eligible}
        fees = {c: self.fee(c, attrs) for c in eligible}
        # Half-open candidates are left out of the ranking: ranking them would take a probe slot.
        rankable = [c for c in eligible_now if states[c] != "half_open"]
        probes = [c for c in eligible_now if states[c] == "half_open"]
        estimates: dict[str, dict[str, Any]] = {}
        ranked: list[str] = []
        if rankable:
            ranking = self._explainer.rank(
                rankable, segments, attrs.amount, [fees[c] for c in rankable], now
            )
            ranked = ranking.order
            for e in ranking.estimates:
                estimates[e.connector] = {
                    "approval": round(e.approval, 4),
                    "fee": e.fee,
                    "expected_value": round(e.expected_value, 2),
                    "samples": e.samples,
                    "segment": e.segment,
                    "breaker": e.breaker,
                }
        for c in probes:
            estimates[c] = {
                "fee": fees[c],
                "breaker": "half_open",
                "note": "probed first if a slot is free",
            }
        if strategy == "dynamic":
            order = probes + ranked
            for c in rankable:
                if c not in ranked:
                    excluded[c] = f"breaker_{states[c]}"
        else:
            closed = [c for c in eligible_now if states[c] == "closed"]
            if probes or closed:
                order = probes + closed
                for c in eligible_now:
                    if states[c] == "open":
                        excluded[c] = "breaker_open"
            else:
                order = list(eligible_now)
        return {
            "payment_id": attrs.payment_id,
            "rule": rule,
            "strategy": strategy,
            "candidates": list(candidates),
            "eligible": list(eligible),
            "excluded": excluded,
            "segments": segments,
            "estimates": [{"connector": c, **estimates[c]} for c in eligible if c in estimates],
            "order": order,
        }
