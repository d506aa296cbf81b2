"""`/metrics` after real traffic: the counters moved, histograms have the PSP, no ids in labels."""

from __future__ import annotations

import re

import pytest
from paymux.observability import metrics
from prometheus_client.parser import text_string_to_metric_families

from tests.analytics.traffic import ADMIN_KEY, SCENARIO, drive
from tests.gateway.conftest import card

pytestmark = [
    pytest.mark.gateway_config(admin_api_key=ADMIN_KEY),
    pytest.mark.sandbox_scenario(SCENARIO),
]


async def scrape(gateway) -> tuple[str, dict[tuple[str, frozenset], float]]:
    async with gateway.session.get(gateway.url + "/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await r.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return text, samples


def total(samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


async def test_metrics_count_payments_attempts_cascades_and_replays(gateway):
    _, before = await scrape(gateway)
    payments = await drive(gateway)
    body = {"amount": 1200, "currency": "EUR", "payment_method": card(), "connector": "adyen"}
    await gateway.post("/v1/payments", body, idem="replay-me")
    status, replay = await gateway.post("/v1/payments", body, idem="replay-me")
    assert status == 200
    text, after = await scrape(gateway)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    attempts = sum(len(p["attempts"]) for p in payments) + 1
    assert delta("paymux_attempts_total") == attempts
    assert delta("paymux_attempts_total", connector="stripe", outcome="captured") == 3
    assert (
        delta(
            "paymux_attempts_total",
            connector="stripe",
            normalized_code="insufficient_funds",
            decline_class="issuer_not_now",
        )
        == 1
    )
    assert delta("paymux_payments_total") == len(payments) + 1
    assert delta("paymux_payments_total", status="failed") == sum(
        p["status"] == "failed" for p in payments
    )
    assert (
        delta("paymux_psp_latency_seconds_count", connector="adyen")
        == sum(a["connector"] == "adyen" for p in payments for a in p["attempts"]) + 1
    )
    assert delta("paymux_cascades_total", from_connector="stripe", to_connector="adyen") >= 3
    assert delta("paymux_cascade_results_total", result="recovered") == 2
    assert delta("paymux_routing_decisions_total", rule="pinned", strategy="pinned") == 10
    assert delta("paymux_idempotent_replays_total", route="/v1/payments") == 1
    assert (
        delta("paymux_http_requests_total", route="/v1/payments", method="POST")
        == len(payments) + 2
    )
    assert total(after, "paymux_breaker_state", connector="checkout") == 0.0
    # Buckets resolve sub-millisecond overhead and reach the PSP timeout.
    assert 'le="0.0001"' in text and 'le="30.0"' in text

    # No id of any kind in a label: payments, attempts, merchants, keys, request ids.
    ids = {p["id"] for p in payments} | {a["id"] for p in payments for a in p["attempts"]}
    ids |= {replay["id"], "m_alpha", "m_beta", *gateway.keys.values()}
    labels = " ".join(v for (_, ls) in after for _, v in ls)
    assert not any(i in labels for i in ids)
    assert not re.search(r"\b(pay|att|re|key)_[A-Za-z0-9]{8,}", labels)


def test_unbounded_routes_collapse_into_one_label():
    metrics.request_finished("unmatched", "GET", 404, 0.001, False)
    body, _ = metrics.exposition()
    assert b'route="unmatched"' in body
