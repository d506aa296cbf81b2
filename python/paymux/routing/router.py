"""The gateway's side of routing: payment records in, the routing engine's decisions out.

`Router` is what the payment flow calls (`plan`, `fee`, `observe`); the decisions themselves are
made by `paymux.routing.RoutingEngine` (rules → capability filter → priority / split / dynamic
order, breakers). A hot reload swaps the compiled engine in one assignment and keeps its
HealthBook, so live statistics and breaker states survive a new configuration.

The routing benchmark's simulator drives this very class (`Router.for_capabilities` with a
simulated clock): `plan` before the first attempt, `attempt_started` before every authorization,
`observe` when the attempt's outcome is known (after the status sync of an ambiguous answer), as
`paymux.payments.service` does. What the benchmark measures is this code path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from paymux.connectors.base import Capabilities, Connector
from paymux.domain.records import AttemptRecord, PaymentRecord
from paymux.routing import (
    PaymentAttributes,
    RoutePlan,
    RoutingConfig,
    RoutingConfigError,
    RoutingEngine,
    outcome_for,
)

__all__ = ["RoutePlan", "Router", "RoutingCompileError", "attributes_of", "compile_routing"]


class RoutingCompileError(ValueError):
    """A `[routing]` table that does not compile; the message names the field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def compile_routing(
    raw: dict[str, Any],
    capabilities: dict[str, Capabilities] | list[str],
    running: RoutingEngine | None = None,
) -> RoutingEngine:
    """Decode, check and compile a `[routing]` table into an engine (from ``running`` with
    `with_config`, keeping its HealthBook, when given). Raises RoutingCompileError."""
    if not isinstance(raw, dict):
        raise RoutingCompileError("routing: the configuration must be a JSON object / TOML table")
    caps = (
        capabilities
        if isinstance(capabilities, dict)
        else {n: Capabilities() for n in capabilities}
    )
    try:
        config = RoutingConfig.from_dict(raw)
        if running is not None:
            return running.with_config(config)
        return RoutingEngine(config, caps)
    except RoutingConfigError as exc:
        raise RoutingCompileError(str(exc), exc.field) from None
    except (TypeError, ValueError) as exc:  # anything the Rust side refuses
        raise RoutingCompileError(f"routing: {exc}") from None


def attributes_of(payment: PaymentRecord) -> PaymentAttributes:
    return PaymentAttributes(
        payment_id=payment.id,
        amount=payment.amount,
        currency=payment.currency,
        brand=payment.card_brand,
        bin=payment.card_bin,
        country=payment.billing_country,
        merchant_id=payment.merchant_id,
        metadata=payment.metadata,
    )


class Router:
    def __init__(
        self,
        connectors: dict[str, Connector],
        raw: dict[str, Any] | list[str] | None = None,
        version: int | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.connectors = connectors
        self.capabilities = {name: c.capabilities for name, c in connectors.items()}
        self._clock = clock  # unix seconds; the benchmark's simulator passes its simulated clock
        if raw is None or isinstance(raw, list):  # the old signature: a default order
            raw = {"default_order": list(raw or [])}
        # (engine, raw config, version) swapped as one tuple: a reader never sees a mix.
        self._active: tuple[RoutingEngine, dict[str, Any], int | None] = (
            compile_routing(raw, self.capabilities),
            raw,
            version,
        )

    @classmethod
    def for_capabilities(
        cls,
        capabilities: dict[str, Capabilities],
        raw: dict[str, Any] | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> Router:
        """A router over connectors known only by their capabilities (the benchmark's simulator:
        the same plan / attempt_started / observe as the gateway, on a simulated clock)."""
        router = cls.__new__(cls)
        router.connectors = {}
        router.capabilities = dict(capabilities)
        router._clock = clock
        raw = raw if raw is not None else {}
        router._active = (compile_routing(raw, router.capabilities), raw, None)
        return router

    @property
    def engine(self) -> RoutingEngine:
        return self._active[0]

    @property
    def config(self) -> dict[str, Any]:
        return self._active[1]

    @property
    def version(self) -> int | None:
        return self._active[2]

    # hot reload

    def compile(self, raw: dict[str, Any]) -> RoutingEngine:
        """Compile a candidate configuration against the live HealthBook; nothing changes."""
        return compile_routing(raw, self.capabilities, running=self.engine)

    def swap(self, engine: RoutingEngine, raw: dict[str, Any], version: int | None) -> None:
        self._active = (engine, raw, version)

    def reload(self, raw: dict[str, Any], version: int | None) -> None:
        """Compile and swap in; on RoutingCompileError the old configuration stays."""
        self.swap(self.compile(raw), raw, version)

    # the payment flow

    def plan(self, payment: PaymentRecord, pinned: str | None = None) -> RoutePlan:
        if pinned is not None:
            caps = self.capabilities.get(pinned)
            ok = caps is not None and caps.supports(
                method="card",
                brand=payment.card_brand,
                currency=payment.currency,
                country=payment.billing_country,
            )
            return RoutePlan(
                connectors=[pinned] if ok else [],
                rule="pinned",
                strategy="pinned",
                eligible=[pinned] if ok else [],
                excluded={} if ok else {pinned: "capability"},
            )
        return self.engine.plan(attributes_of(payment), self._clock())

    def record(self, plan: RoutePlan) -> dict[str, Any]:
        """The routing decision as stored on the payment and in its `payment.created` event."""
        out: dict[str, Any] = {
            "rule": plan.rule,
            "strategy": plan.strategy,
            "order": plan.connectors,
            "version": self.version,
        }
        if plan.excluded:
            out["excluded"] = plan.excluded
        if plan.estimates:
            out["estimates"] = [
                {
                    "connector": e.connector,
                    "approval": round(e.approval, 4),
                    "fee": e.fee,
                    "expected_value": round(e.expected_value, 2),
                    "samples": e.samples,
                    "segment": e.segment,
                    "breaker": e.breaker,
                    "explored": e.explored,
                    "probe": e.probe,
                }
                for e in plan.estimates
            ]
        return out

    def fee(self, connector: str, payment: PaymentRecord) -> int | None:
        """The PSP's fee for this payment in minor units, when a fee table is configured."""
        if connector not in self.engine.config.fees:
            return None
        return self.engine.fee(connector, attributes_of(payment))

    def observe(
        self, attempt: AttemptRecord, payment: PaymentRecord, outcome: str | None = None
    ) -> None:
        """Feed one attempt's outcome to the health windows (dynamic routing, breakers);
        ``outcome`` overrides the one read from the attempt (the engine's vocabulary)."""
        if outcome is None:
            outcome = outcome_for(attempt.status, attempt.decline_class, attempt.normalized_code)
        if outcome is None:
            self.engine.attempt_finished(attempt.connector)  # no outcome: ends its stall clock
            return
        # Cascaded attempts (seq > 1) only see cards another PSP just declined: the engine keeps
        # them out of the approval estimates and feeds them to the breaker only.
        self.engine.observe(
            attempt.connector,
            attributes_of(payment),
            outcome,
            attempt.latency_ms or 0.0,
            self._clock(),
            attempt=attempt.seq,
        )

    def attempt_started(self, connector: str) -> None:
        """An authorization is about to go to ``connector``: ``[routing.stall]`` counts it as in
        flight until ``observe`` (a connector whose attempts hang is left out of plans)."""
        self.engine.attempt_started(connector, self._clock())

    def breaker_states(self) -> dict[str, str]:
        return self.engine.breaker_states(self._clock())

    def explain(self, attrs: PaymentAttributes) -> dict[str, Any]:
        out = self.engine.explain(attrs, self._clock())
        out["version"] = self.version
        out["fees_configured"] = sorted(self.engine.config.fees)
        return out
