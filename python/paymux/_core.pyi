"""Type stubs for paymux._core, the Rust hot path. Checked against the binary by mypy.stubtest."""

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal, TypeAlias, final

__version__: str

# --- card data (rust_core/src/card.rs) ---

# --- vault crypto (rust_core/src/vault.rs) ---

# --- routing rules (rust_core/src/rules.rs) ---

class RuleError(ValueError):
    """A rule set that does not compile; the message names the rule and the field."""

    rule: str | int | None  # rule name, its index when unnamed, "default", or None (top level)
    field: str  # dotted path inside the rule, e.g. "when.currency"

@final
class RouteDecision:
    """Which rule matched and the connectors to try, in order."""

    @property
    def rule(self) -> str: ...  # "default" when no rule matched
    @property
    def strategy(self) -> str: ...  # "priority" | "split" | "dynamic"
    @property
    def connectors(self) -> list[str]: ...  # split: the chosen one, then the others by weight
    def __eq__(self, value: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]

@final
class RuleSet:
    """A routing rule set compiled once from a mapping (what TOML/JSON express); see
    docs/routing-rules.md. Raises RuleError on unknown keys or bad values."""

    def __new__(cls, config: Mapping[str, Any]) -> RuleSet: ...
    def evaluate(
        self,
        *,
        currency: str,
        amount: int,
        brand: str | None = None,
        card_type: str | None = None,
        bin: str | None = None,
        country: str | None = None,
        merchant_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        now: float = 0.0,
        payment_id: str = "",
    ) -> RouteDecision: ...
    @property
    def rule_count(self) -> int: ...
    def rule_names(self) -> list[str]: ...  # in evaluation order
    def connector_names(self) -> list[str]: ...  # first appearance, default last

# --- health windows and circuit breakers (rust_core/src/health.rs) ---

_Outcome: TypeAlias = Literal[
    "approved", "hard", "fix_data", "issuer_not_now", "soft_route", "technical", "timeout"
]
_BreakerState: TypeAlias = Literal["closed", "open", "half_open"]

@final
class HealthStats:
    """Counts over the time window; rates over the time and the count window; latency
    percentiles in ms (upper edge of a log bucket, ~19% wide). Rates/percentiles are None
    without data."""

    @property
    def approved(self) -> int: ...
    @property
    def hard(self) -> int: ...
    @property
    def fix_data(self) -> int: ...
    @property
    def issuer_not_now(self) -> int: ...
    @property
    def soft_route(self) -> int: ...
    @property
    def technical(self) -> int: ...
    @property
    def timeout(self) -> int: ...
    @property
    def total(self) -> int: ...
    @property
    def approval_rate(self) -> float | None: ...  # approved / total
    @property
    def technical_rate(self) -> float | None: ...  # (technical + timeout) / total
    @property
    def latency_p50(self) -> float | None: ...
    @property
    def latency_p95(self) -> float | None: ...
    @property
    def latency_p99(self) -> float | None: ...
    @property
    def count_window_total(self) -> int: ...
    @property
    def count_window_approval_rate(self) -> float | None: ...
    @property
    def count_window_technical_rate(self) -> float | None: ...
    def counts(self) -> dict[str, int]: ...

@final
class HealthBook:
    """Sliding windows per (connector, segment) and a circuit breaker per connector.
    Thread-safe. Time is passed in as `now` (seconds)."""

    def __new__(
        cls,
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
    ) -> HealthBook: ...
    def record(
        self,
        connector: str,
        segment: str | Sequence[str],
        outcome: _Outcome | str,
        latency_ms: float,
        now: float,
    ) -> None: ...
    def stats(self, connector: str, segment: str, now: float) -> HealthStats: ...
    def breaker_state(self, connector: str, now: float) -> _BreakerState: ...
    def allow_request(self, connector: str, now: float) -> bool: ...
    def snapshot(self, now: float) -> list[dict[str, Any]]: ...

# --- selection (rust_core/src/selection.rs) ---

@final
class Estimate:
    """How one candidate was judged (see docs/routing-rules.md for the estimator)."""

    @property
    def connector(self) -> str: ...
    @property
    def approval(self) -> float: ...  # posterior mean, or a Thompson draw when explored
    @property
    def fee(self) -> int: ...
    @property
    def expected_value(self) -> float: ...  # approval * (amount - fee) - latency penalty
    @property
    def samples(self) -> int: ...  # PSP-attributable attempts behind the estimate
    @property
    def segment(self) -> str | None: ...  # None: the prior alone
    @property
    def breaker(self) -> _BreakerState: ...
    @property
    def explored(self) -> bool: ...
    @property
    def probe(self) -> bool: ...  # a half-open breaker granted this candidate a probe slot

@final
class Ranking:
    @property
    def order(self) -> list[str]: ...  # admitted candidates, best first (never empty)
    @property
    def estimates(self) -> list[Estimate]: ...  # one per candidate, in input order

@final
class Selector:
    """Orders candidates by expected value estimated from a HealthBook."""

    def __new__(
        cls,
        health: HealthBook,
        *,
        exploration: float = 0.02,
        min_samples: int = 30,
        prior_approval: float = 0.8,
        seed: int | None = None,
        latency_penalty_per_ms: float = 0.0,
    ) -> Selector: ...
    @property
    def health(self) -> HealthBook: ...
    def rank(
        self,
        candidates: Sequence[str],
        segments: Sequence[str],
        amount: int,
        fees: Sequence[int],
        now: float,
    ) -> Ranking: ...
