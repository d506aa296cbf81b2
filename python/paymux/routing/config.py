"""The `[routing]` configuration: rules, per-merchant overrides, dynamic routing, health and fees.

Decoded from a TOML table (or any mapping) by `RoutingConfig.from_dict`; every key is documented
in docs/routing.md. The defaults are the tuned ones the routing benchmark checks
(benchmarks/bench_routing.py); change them there first.
"""

from __future__ import annotations

from typing import Any

import msgspec

from paymux import _core

__all__ = [
    "REGIONS",
    "SEGMENT_FIELDS",
    "DynamicConfig",
    "FeeRule",
    "HealthConfig",
    "MerchantRouting",
    "RoutingConfig",
    "RoutingConfigError",
    "StallConfig",
]

#: Payment attributes a segment level may name (see PaymentAttributes).
SEGMENT_FIELDS = frozenset(
    {"brand", "country", "currency", "card_type", "bin", "merchant_id", "method"}
)

_EU = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
    ]
)
#: Named issuer-country regions a fee rule may use.
REGIONS: dict[str, frozenset[str]] = {
    "EU": _EU,
    "EEA": _EU | {"IS", "LI", "NO"},
}


class RoutingConfigError(ValueError):
    """A routing configuration that cannot be used; `field` is the dotted path of the culprit."""

    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        super().__init__(f"routing.{field}: {message}" if field else f"routing: {message}")


class DynamicConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Success-rate based ordering (the `dynamic` strategy) through `_core.Selector`."""

    exploration: float = 0.02  # share of rankings that are Thompson draws
    min_samples: int = 30  # evidence a segment needs before it is used on its own
    prior_approval: float = 0.8  # P(approval) assumed with no evidence at all
    latency_penalty_per_ms: float = 0.0  # minor units of expected value per ms of p50 latency
    seed: int | None = None  # fixed seed: reproducible exploration (tests, simulations)
    # Finest first; a level is a list of payment attributes, [] is the whole traffic.
    segment_levels: list[list[str]] = msgspec.field(
        default_factory=lambda: [
            ["brand", "country", "currency"],
            ["brand", "country"],
            ["brand"],
            [],
        ]
    )


class HealthConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`_core.HealthBook` parameters. Read when the book is created (not on a hot reload)."""

    window_seconds: float = 60.0
    bucket_seconds: float = 1.0
    # 500, not the core's 200: at 200 the estimate of a segment's incumbent PSP wobbles by ~2
    # points, enough to hand a segment to a close competitor (benchmarks/bench_routing.py).
    count_window: int = 500
    breaker_consecutive_failures: int = 5
    breaker_failure_rate: float = 0.5
    breaker_min_volume: int = 20
    breaker_open_seconds: float = 5.0
    # Caps the exponential back-off (5, 10, 15, 15... s): a PSP that recovers waits at most this
    # long for its probes (the core's 60 s would keep it away for up to a minute).
    breaker_max_open_seconds: float = 15.0
    # Probes handed out per half-open period; 2 keeps a dead PSP's probes under 1% of traffic.
    breaker_half_open_probes: int = 2
    # Count-window evidence halves every this many attempts recorded under its segment (by any
    # connector): a PSP that lost a segment is re-tested and wins it back once it recovers.
    evidence_half_life: float = 400.0

    def build(self) -> _core.HealthBook:
        return _core.HealthBook(**msgspec.structs.asdict(self))


class StallConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Leave out a connector whose attempts hang, before they time out and reach the breaker.

    Works when the gateway reports attempts it starts (`RoutingEngine.attempt_started`)."""

    seconds: float = 1.5  # an attempt in flight this long is stalled (0: off); above normal p99.9
    min_attempts: int = 3  # this many stalled attempts at once leave the connector out
    forget_seconds: float = 60.0  # a started attempt never finished stops counting after this


class FeeRule(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One line of a PSP's price list; the first matching line of a connector wins."""

    percent_bps: int = 0  # basis points of the amount (150 = 1.5%)
    fixed: int = 0  # minor units of the payment's currency
    brand: list[str] | None = None
    country: list[str] | None = None  # issuer country
    region: str | None = None  # a name from REGIONS (EU, EEA)
    currency: list[str] | None = None


class MerchantRouting(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A merchant's own rules, tried before the global ones. Without `default`, payments that
    match none of them fall through to the global rules."""

    rules: list[dict[str, Any]] = msgspec.field(default_factory=list)
    default: dict[str, Any] | None = None


class RoutingConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    rules: list[dict[str, Any]] = msgspec.field(default_factory=list)
    default: dict[str, Any] | None = None  # RuleSet default; else priority over default_order
    utc_offset_minutes: int = 0  # local time for rule time windows
    merchants: dict[str, MerchantRouting] = msgspec.field(default_factory=dict)
    dynamic: DynamicConfig = msgspec.field(default_factory=DynamicConfig)
    health: HealthConfig = msgspec.field(default_factory=HealthConfig)
    stall: StallConfig = msgspec.field(default_factory=StallConfig)
    fees: dict[str, list[FeeRule]] = msgspec.field(default_factory=dict)
    default_order: list[str] = msgspec.field(default_factory=list)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> RoutingConfig:
        """Decode and check a `[routing]` table. Raises RoutingConfigError naming the field."""
        try:
            config = msgspec.convert(raw or {}, cls)
        except msgspec.ValidationError as exc:
            raise RoutingConfigError(_field_of(exc), str(exc)) from None
        config.validate()
        return config

    def validate(self) -> None:
        """Check everything that does not need the connector list (the engine checks names)."""
        d = self.dynamic
        if not 0.0 <= d.exploration <= 1.0:
            raise RoutingConfigError(
                "dynamic.exploration", f"must be in [0, 1], got {d.exploration}"
            )
        if d.min_samples < 1:
            raise RoutingConfigError("dynamic.min_samples", f"must be >= 1, got {d.min_samples}")
        if not 0.0 < d.prior_approval < 1.0:
            raise RoutingConfigError(
                "dynamic.prior_approval", f"must be in (0, 1), got {d.prior_approval}"
            )
        if not d.latency_penalty_per_ms >= 0.0:
            raise RoutingConfigError("dynamic.latency_penalty_per_ms", "must be >= 0")
        if not d.segment_levels:
            raise RoutingConfigError("dynamic.segment_levels", "needs at least one level")
        for i, level in enumerate(d.segment_levels):
            for name in level:
                if name not in SEGMENT_FIELDS:
                    raise RoutingConfigError(
                        f"dynamic.segment_levels[{i}]",
                        f"unknown attribute {name!r}; one of {sorted(SEGMENT_FIELDS)}",
                    )
        st = self.stall
        if not st.seconds >= 0.0:
            raise RoutingConfigError("stall.seconds", f"must be >= 0, got {st.seconds}")
        if st.min_attempts < 1:
            raise RoutingConfigError("stall.min_attempts", f"must be >= 1, got {st.min_attempts}")
        if not st.forget_seconds > st.seconds:
            raise RoutingConfigError("stall.forget_seconds", "must be more than stall.seconds")
        try:
            self.health.build()
        except ValueError as exc:
            raise RoutingConfigError("health", str(exc)) from None
        for connector, rules in self.fees.items():
            for i, rule in enumerate(rules):
                where = f"fees.{connector}[{i}]"
                if rule.percent_bps < 0 or rule.fixed < 0:
                    raise RoutingConfigError(where, "percent_bps and fixed must be >= 0")
                if rule.region is not None and rule.region.upper() not in REGIONS:
                    raise RoutingConfigError(
                        f"{where}.region",
                        f"unknown region {rule.region!r}; one of {sorted(REGIONS)}",
                    )
                for key in ("brand", "country", "currency"):
                    if getattr(rule, key) == []:
                        raise RoutingConfigError(f"{where}.{key}", "empty list (omit it instead)")
        if self.default is None and not self.default_order and self.rules:
            raise RoutingConfigError("default", "rules are given but no default (or default_order)")
        # Compile the rule sets once here so errors surface at load time with their names.
        compile_rules(self.rules, self.default, self.default_order, self.utc_offset_minutes, "")
        for merchant, m in self.merchants.items():
            compile_rules(m.rules, m.default, [], self.utc_offset_minutes, f"merchants.{merchant}.")


def _field_of(exc: msgspec.ValidationError) -> str | None:
    """The dotted path msgspec names in a validation error ("dynamic.min_samples")."""
    msg = str(exc)
    path = msg.rsplit("at `$", 1)[1].rstrip("`").lstrip(".") if "at `$" in msg else ""
    if "unknown field `" in msg:
        name = msg.split("unknown field `", 1)[1].split("`", 1)[0]
        path = f"{path}.{name}" if path else name
    return path or None


#: Stand-in default of a merchant rule set without one: "fall through to the global rules".
FALLTHROUGH = {"strategy": "priority", "connectors": ["__paymux_fallthrough__"]}


def compile_rules(
    rules: list[dict[str, Any]],
    default: dict[str, Any] | None,
    default_order: list[str],
    utc_offset_minutes: int,
    where: str,
    all_connectors: list[str] | None = None,
) -> _core.RuleSet | None:
    """Compile one rule set; None when there is nothing to compile (no rules, no default, no
    order and no connector list). RuleError messages are passed through, prefixed with the path."""
    if default is None:
        if default_order:
            default = {"strategy": "priority", "connectors": list(default_order)}
        elif where:  # a merchant without a default falls through to the global rules
            default = FALLTHROUGH
        elif all_connectors:
            default = {"strategy": "priority", "connectors": list(all_connectors)}
        elif not rules:
            return None
        else:
            default = FALLTHROUGH
    spec: dict[str, Any] = {"rules": rules, "default": default}
    if utc_offset_minutes:
        spec["utc_offset_minutes"] = utc_offset_minutes
    try:
        return _core.RuleSet(spec)
    except _core.RuleError as exc:
        if exc.rule is None:
            field = f"{where}{exc.field}" if exc.field else where.rstrip(".") or None
        elif exc.rule == "default":
            field = f"{where}default.{exc.field}".rstrip(".")
        else:
            field = f"{where}rules[{exc.rule!r}].{exc.field}".rstrip(".")
        raise RoutingConfigError(field, str(exc)) from exc
    except (TypeError, ValueError) as exc:
        raise RoutingConfigError(where.rstrip(".") or "rules", str(exc)) from exc
