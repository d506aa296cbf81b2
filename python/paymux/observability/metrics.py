"""Prometheus metrics: what the gateway counts and times, and the `/metrics` exposition.

Labels are bounded vocabularies only (connector names, statuses, normalized codes, route
templates): never a payment, attempt, merchant or request id. Units are base units (seconds).

Several worker processes: when ``PROMETHEUS_MULTIPROC_DIR`` is set before paymux starts, every
worker writes its samples to that directory (prometheus_client's multiprocess mode) and any worker's
`/metrics` serves the sum. Without it, each worker exposes only its own counts.

The hot path pays only prometheus_client's own cost (a dict lookup and a lock-protected add, or an
mmap write in multiprocess mode): the labelled children are cached here, nothing does IO per
observation, and the breaker states are read when scraped, not pushed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from paymux.observability.logs import log

# The `_created` series double the exposition and nothing here reads them.
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)

# 0.1-0.5 ms resolve the gateway's own sub-millisecond overhead; 30 s is the longest PSP deadline.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

PAYMENTS = Counter(
    "paymux_payments",
    "Payments by the connector that settled them and their status.",
    ["connector", "status", "normalized_code"],
    registry=REGISTRY,
)
ATTEMPTS = Counter(
    "paymux_attempts",
    "PSP attempts by connector, outcome and normalized code.",
    ["connector", "outcome", "normalized_code", "decline_class"],
    registry=REGISTRY,
)
PSP_LATENCY = Histogram(
    "paymux_psp_latency_seconds",
    "Round trip of one attempt to the PSP.",
    ["connector", "outcome"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
ROUTING = Counter(
    "paymux_routing_decisions",
    "Routing decisions by the rule that matched and its strategy.",
    ["rule", "strategy", "first_connector"],
    registry=REGISTRY,
)
CASCADES = Counter(
    "paymux_cascades",
    "Failovers from one connector to the next, by why the first one failed.",
    ["from_connector", "to_connector", "decline_class"],
    registry=REGISTRY,
)
CASCADE_RESULTS = Counter(
    "paymux_cascade_results",
    "Outcome of payments that cascaded at least once.",
    ["result"],
    registry=REGISTRY,  # recovered | failed | pending
)
REQUESTS = Counter(
    "paymux_http_requests",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
REQUEST_DURATION = Histogram(
    "paymux_http_request_duration_seconds",
    "Time from request to response inside paymux.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
IDEMPOTENT_REPLAYS = Counter(
    "paymux_idempotent_replays",
    "Responses replayed from the Idempotency-Key store.",
    ["route"],
    registry=REGISTRY,
)
CLIENT_DISCONNECTS = Counter(
    "paymux_client_disconnects",
    "Clients that went away before their response was written (not a server error), by phase:"
    " body (while sending it) or response (while the gateway worked).",
    ["phase"],
    registry=REGISTRY,
)
EDGE_REFUSALS = Counter(
    "paymux_edge_refusals",
    "Requests or connections refused at the edge, by reason (header_timeout, body_timeout,"
    " headers_too_large, body_too_large, malformed, max_connections, banned).",
    ["reason"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "paymux_rate_limited",
    "429 answers by limit (auth_source, auth_prefix, merchant) and bans started (ban).",
    ["limit"],
    registry=REGISTRY,
)

BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}

_children: dict[tuple[Any, ...], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (id(metric), *labels)
    child = _children.get(key)
    if child is None:
        if len(_children) > 50_000:  # a label that should be bounded is not: stop caching
            return metric.labels(*labels)
        child = _children[key] = metric.labels(*labels)
    return child


# -- observations (called from the gateway) -----------------------------------------------------


def attempt_finished(
    connector: str,
    outcome: str,
    normalized_code: str | None,
    decline_class: str | None,
    latency_ms: float | None,
) -> None:
    _child(ATTEMPTS, connector, outcome, normalized_code or "", decline_class or "").inc()
    if latency_ms is not None:
        _child(PSP_LATENCY, connector, outcome).observe(latency_ms / 1000.0)


def _rule_label(rule: str, merchant_id: str) -> str:
    """A merchant's own rule is named ``<merchant id>:<rule>``; no id goes in a label, so the
    label keeps only that it was a merchant rule, and which."""
    prefix = f"{merchant_id}:"
    return "merchant:" + rule[len(prefix) :] if rule.startswith(prefix) else rule


def payment_finished(payment: Any, attempt: Any, event: str) -> None:
    """A payment reached the state it answers with (approved, failed, pending or recovered)."""
    status = str(payment.status)
    code = ""
    if payment.error:
        code = str(payment.error.get("code") or "")
    _child(PAYMENTS, payment.connector or "", status, code).inc()
    if event == "payment.recovered":
        return  # counted when it was created; routing and cascades happened then
    routing = payment.routing or {}
    order = routing.get("order") or [""]
    _child(
        ROUTING,
        _rule_label(str(routing.get("rule", "")), payment.merchant_id),
        str(routing.get("strategy", "")),
        str(order[0]),
    ).inc()
    if attempt.seq > 1:
        if status in ("succeeded", "requires_capture"):
            result = "recovered"
        elif status == "failed":
            result = "failed"
        else:
            result = "pending"
        _child(CASCADE_RESULTS, result).inc()


def cascaded(from_connector: str, to_connector: str | None, decline_class: str | None) -> None:
    _child(CASCADES, from_connector, to_connector or "", decline_class or "").inc()


def request_finished(
    route: str, method: str, status: int, duration_s: float, replayed: bool
) -> None:
    _child(REQUESTS, route, method, str(status)).inc()
    _child(REQUEST_DURATION, route, method).observe(duration_s)
    if replayed:
        _child(IDEMPOTENT_REPLAYS, route).inc()


def client_disconnected(phase: str) -> None:
    _child(CLIENT_DISCONNECTS, phase).inc()


def edge_refused(reason: str) -> None:
    _child(EDGE_REFUSALS, reason).inc()


def rate_limited(limit: str) -> None:
    _child(RATE_LIMITED, limit).inc()


# -- exposition ---------------------------------------------------------------------------------

BreakerSource = Callable[[], Iterable[tuple[str, str]]]


class _BreakerCollector:
    """Breaker state per connector, read from the router when scraped (0 closed, 1 half-open,
    2 open). Routers without breakers report every connector closed."""

    def __init__(self, source: BreakerSource) -> None:
        self.source = source

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "paymux_breaker_state",
            "Circuit breaker per connector: 0 closed, 1 half-open, 2 open.",
            labels=["connector"],
        )
        for connector, state in self.source():
            family.add_metric([connector], float(BREAKER_STATES.get(state, 0)))
        yield family

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []


def _state_name(state: Any) -> str:
    """`closed` / `half_open` / `open`, from a string in any case or spelling (`half-open`), an
    enum, or the gauge's own number."""
    if isinstance(state, int | float) and not isinstance(state, bool):
        by_number = {v: k for k, v in BREAKER_STATES.items()}
        return by_number.get(int(state), "closed")
    text = str(getattr(state, "value", state)).strip().lower().replace("-", "_").replace(" ", "_")
    return text if text in BREAKER_STATES else "closed"


def breaker_states(router: Any) -> list[tuple[str, str]]:
    """(connector, state) pairs from whatever the router exposes (`breaker_states()` returning a
    mapping of connector to state); every connector closed when it has no breakers."""
    states = getattr(router, "breaker_states", None)
    if callable(states):
        try:
            found = states()
            return sorted((str(k), _state_name(v)) for k, v in dict(found).items())
        except Exception as exc:  # noqa: BLE001 - a scrape must never fail on the router's account
            log("breaker_states_unavailable", logging.WARNING, error_type=type(exc).__name__)
    return [(name, "closed") for name in sorted(getattr(router, "connectors", {}) or {})]


def exposition(breakers: BreakerSource | None = None) -> tuple[bytes, str]:
    """The text exposition (body, content type): this process, or all workers in multiprocess
    mode, plus the breaker gauges read now."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    if breakers is not None:
        extra = CollectorRegistry(auto_describe=False)
        extra.register(_BreakerCollector(breakers))
        body += generate_latest(extra)
    return body, CONTENT_TYPE_PLAIN_0_0_4
