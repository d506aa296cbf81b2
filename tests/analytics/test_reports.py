"""The reports against a store holding known attempts: every number is checked by hand."""

from __future__ import annotations

import pytest
from paymux.analytics.queries import AnalyticsQuery, percentiles, run_report

from tests.analytics.conftest import NOW

OK = {"status": "captured"}
FUNDS = {
    "status": "declined",
    "code": "insufficient_funds",
    "klass": "issuer_not_now",
    "raw_code": "insufficient_funds",
}
DNH_STRIPE = {
    "status": "declined",
    "code": "do_not_honor",
    "klass": "soft_route",
    "raw_code": "do_not_honor",
}
DNH_ADYEN = {"status": "declined", "code": "do_not_honor", "klass": "soft_route", "raw_code": "2"}
TIMEOUT = {
    "status": "failed",
    "code": "processing_error",
    "klass": "technical",
    "raw_code": "timeout",
    "latency_ms": 2000.0,
}


def on(connector: str, outcome: dict, **kw) -> dict:
    return {"connector": connector, **outcome, **kw}


@pytest.fixture
def traffic(seeded):
    for latency in (100.0, 200.0, 300.0):
        seeded.payment([on("stripe", OK, latency_ms=latency, fee=30)], amount=1000)
    seeded.payment([on("stripe", FUNDS, fee=30)])
    seeded.payment([on("adyen", OK, fee=20)], amount=500, country="FR", brand="mastercard")
    seeded.payment([on("adyen", OK, fee=20)], amount=700, currency="USD", country="US")
    # Recovered by one cascade, and by two.
    seeded.payment([on("stripe", DNH_STRIPE, fee=30), on("adyen", OK, fee=20)], amount=2000)
    seeded.payment(
        [on("stripe", TIMEOUT, fee=30), on("adyen", DNH_ADYEN, fee=20), on("checkout", OK, fee=10)],
        amount=3000,
    )
    # Outside the window: must not count.
    seeded.payment([on("checkout", FUNDS)], at=NOW - 7200)
    return seeded


def query(**kw) -> AnalyticsQuery:
    return AnalyticsQuery(**{"from_ts": NOW - 3600, "to_ts": NOW, **kw})


def by_key(body, dim="connector"):
    return {g["key"][dim]: g for g in body["groups"]}


def test_approval_rates_first_attempt_and_final_per_first_connector(traffic):
    body = run_report(str(traffic.path), "approvals", query())
    stripe, adyen = by_key(body)["stripe"], by_key(body)["adyen"]
    assert stripe["payments"] == 6 and stripe["first_attempt_approved"] == 3
    assert stripe["first_attempt_approval_rate"] == 0.5
    assert stripe["approved"] == 5 and stripe["failed"] == 1  # two recovered by a cascade
    assert stripe["approval_rate"] == round(5 / 6, 4)
    assert stripe["volume"] == {"EUR": 3 * 1000 + 2000 + 3000}
    assert stripe["attempts"] == 6 and stripe["attempts_declined"] == 2
    assert stripe["attempts_failed"] == 1
    assert adyen["payments"] == 2 and adyen["approval_rate"] == 1.0
    assert adyen["volume"] == {"EUR": 500, "USD": 700}
    assert adyen["attempts"] == 4 and adyen["attempts_approved"] == 3
    checkout = by_key(body)["checkout"]  # it only ever ran as a fallback: no first attempts
    assert checkout["payments"] == 0 and checkout["first_attempt_approval_rate"] is None
    assert checkout["attempts"] == 1 and checkout["attempt_approval_rate"] == 1.0
    assert body["totals"]["payments"] == 8 and body["totals"]["approved"] == 7
    assert body["totals"]["volume"] == {"EUR": 8500, "USD": 700}
    assert body["totals"]["attempts"] == 11


def test_declines_name_the_normalized_code_class_and_raw_codes(traffic):
    body = run_report(str(traffic.path), "declines", query())
    reasons = {r["normalized_code"]: r for r in body["totals"]["reasons"]}
    dnh = reasons["do_not_honor"]
    assert dnh["count"] == 2 and dnh["decline_class"] == "soft_route"
    assert {(r["connector"], r["raw_code"]) for r in dnh["raw_codes"]} == {
        ("stripe", "do_not_honor"),
        ("adyen", "2"),
    }
    assert reasons["insufficient_funds"]["count"] == 1
    assert reasons["processing_error"]["decline_class"] == "technical"
    assert body["totals"]["declines"] == 4 and body["totals"]["attempts"] == 11
    assert body["totals"]["classes"] == {"soft_route": 2, "issuer_not_now": 1, "technical": 1}
    stripe = by_key(body)["stripe"]
    assert stripe["declines"] == 3 and stripe["decline_rate"] == 0.5
    top1 = run_report(str(traffic.path), "declines", query(top=1))
    assert [r["normalized_code"] for r in top1["totals"]["reasons"]] == ["do_not_honor"]


def test_failover_counts_recoveries_and_each_path(traffic):
    body = run_report(str(traffic.path), "failover", query())
    stripe = by_key(body)["stripe"]
    assert stripe["payments"] == 6 and stripe["cascaded"] == 2 and stripe["recovered"] == 2
    assert stripe["attempts_per_payment"] == round(9 / 6, 4)
    paths = {p["path"]: p for p in body["paths"]}
    assert paths["stripe->adyen"]["triggered"] == 2
    assert paths["stripe->adyen"]["approved"] == 1
    assert paths["adyen->checkout"] == {
        "path": "adyen->checkout",
        "from": "adyen",
        "to": "checkout",
        "triggered": 1,
        "approved": 1,
        "approval_rate": 1.0,
    }
    assert body["totals"]["recovery_rate"] == 1.0


def test_latency_percentiles_per_connector(traffic):
    body = run_report(str(traffic.path), "latency", query())
    stripe = by_key(body)["stripe"]
    # stripe: 100, 200, 300, 100, 100, 2000 ms
    assert stripe["count"] == 6
    assert stripe["p50_ms"] == 100.0 and stripe["p95_ms"] == 2000.0
    assert stripe["p99_ms"] == 2000.0 and stripe["max_ms"] == 2000.0
    assert stripe["mean_ms"] == round(2800 / 6, 3)


def test_percentiles_are_nearest_rank():
    hist = [(float(v), 1) for v in range(1, 101)]
    assert percentiles(hist, (0.5, 0.95, 0.99)) == [50.0, 95.0, 99.0]
    assert percentiles([], (0.5,)) == [None]


def test_fees_and_cost_per_approved_payment_per_currency(traffic):
    body = run_report(str(traffic.path), "fees", query())
    rows = {(g["key"]["connector"], g["currency"]): g for g in body["groups"]}
    assert rows[("stripe", "EUR")]["fees"] == 6 * 30
    assert rows[("stripe", "EUR")]["approved"] == 3
    assert rows[("stripe", "EUR")]["cost_per_approved"] == 60.0
    assert rows[("adyen", "USD")]["fees"] == 20
    assert body["totals"]["EUR"]["fees"] == 180 + 3 * 20 + 10
    assert body["totals"]["EUR"]["approved"] == 6


def test_timeseries_buckets_at_the_chosen_resolution(traffic):
    traffic.payment([on("adyen", OK)], at=NOW - 1800)
    body = run_report(str(traffic.path), "timeseries", query(resolution=600))
    adyen = next(s for s in body["series"] if s["key"]["connector"] == "adyen")
    assert [p["t"] % 600 for p in adyen["points"]] == [0, 0]
    assert sum(p["attempts"] for p in adyen["points"]) == 5
    assert adyen["points"][0]["attempts"] == 1 and adyen["points"][0]["approval_rate"] == 1.0


def test_filters_and_group_by_country_and_brand(traffic):
    body = run_report(
        str(traffic.path),
        "approvals",
        query(group_by=("country", "brand"), filters={"connector": ("adyen",)}),
    )
    keys = {(g["key"]["country"], g["key"]["brand"]): g for g in body["groups"]}
    assert set(keys) == {("FR", "mastercard"), ("US", "visa"), ("DE", "visa")}
    assert keys[("DE", "visa")]["payments"] == 0  # adyen only ran there as a fallback
    assert keys[("DE", "visa")]["attempts"] == 2
    assert keys[("FR", "mastercard")]["volume"] == {"EUR": 500}
    only_fr = run_report(
        str(traffic.path), "approvals", query(group_by=(), filters={"country": ("FR",)})
    )
    assert only_fr["totals"]["payments"] == 1 and only_fr["groups"][0]["key"] == {}


def test_health_reports_error_rate_and_latency(traffic):
    body = run_report(str(traffic.path), "health", query())
    stripe = by_key(body)["stripe"]
    assert stripe["attempts"] == 6 and stripe["errors"] == 1
    assert stripe["error_rate"] == round(1 / 6, 4) and stripe["approval_rate"] == 0.5


def test_empty_window_gives_empty_groups(seeded):
    for name in ("approvals", "declines", "failover", "latency", "fees", "timeseries"):
        body = run_report(str(seeded.path), name, query())
        assert body["object"] == f"analytics.{name}"
        assert body.get("groups", body.get("series")) == []


def test_groups_spanning_several_connectors_add_up_the_same(traffic):
    path = str(traffic.path)
    by_connector, by_country, overall = (query(), query(group_by=("country",)), query(group_by=()))
    for name in ("approvals", "declines", "failover", "latency", "fees"):
        totals = [run_report(path, name, q)["totals"] for q in (by_connector, by_country, overall)]
        assert totals[0] == totals[1] == totals[2], name
    de = {g["key"]["country"]: g for g in run_report(path, "latency", by_country)["groups"]}["DE"]
    assert de["count"] == 9 and de["p95_ms"] == 2000.0  # stripe, adyen and checkout attempts
    series = run_report(path, "timeseries", query(group_by=(), resolution=3600))["series"]
    assert [p["attempts"] for p in series[0]["points"]] == [11]
    health = run_report(path, "health", query(group_by=()))["groups"]
    assert health[0]["attempts"] == 11 and health[0]["errors"] == 1
