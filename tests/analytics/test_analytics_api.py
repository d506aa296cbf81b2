"""The admin analytics API over real traffic through the gateway and the sandbox PSPs."""

from __future__ import annotations

import pytest

from tests.analytics.traffic import ADMIN_KEY, SCENARIO, drive, expected

pytestmark = [
    pytest.mark.gateway_config(admin_api_key=ADMIN_KEY),
    pytest.mark.sandbox_scenario(SCENARIO),
]


async def admin_get(gateway, path, key=ADMIN_KEY):
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with gateway.session.get(gateway.url + path, headers=headers) as r:
        return r.status, await r.json()


async def test_analytics_match_the_traffic_driven_through_each_psp(gateway):
    payments = await drive(gateway)
    want = expected(payments)
    # The scenario really produced what the test is about: approvals and declines on every
    # connector, and failovers that recovered.
    assert set(want["per"]) == {"stripe", "adyen", "checkout"}
    assert want["recovered"] == 2 and want["paths"]["stripe->adyen"] >= 3

    status, body = await admin_get(gateway, "/admin/analytics/approvals")
    assert status == 200, body
    got = {g["key"]["connector"]: g for g in body["groups"]}
    for name, w in want["per"].items():
        g = got[name]
        assert g["payments"] == w["payments"], name
        assert g["first_attempt_approved"] == w["first_attempt_approved"], name
        assert g["approved"] == w["approved"], name
        assert g["attempts"] == w["attempts"], name
        assert g["attempts_approved"] == w["attempts_approved"], name
        assert g["volume"] == dict(w["volume"]), name
    assert body["totals"]["payments"] == len(payments)

    status, body = await admin_get(gateway, "/admin/analytics/declines?top=20")
    assert status == 200, body
    assert {r["normalized_code"]: r["count"] for r in body["totals"]["reasons"]} == want["codes"]
    funds = next(
        r for r in body["totals"]["reasons"] if r["normalized_code"] == "insufficient_funds"
    )
    assert funds["decline_class"] == "issuer_not_now"
    assert funds["raw_codes"] and funds["raw_codes"][0]["connector"] == "stripe"

    status, body = await admin_get(gateway, "/admin/analytics/failover")
    assert status == 200, body
    assert {p["path"]: p["triggered"] for p in body["paths"]} == want["paths"]
    assert body["totals"]["recovered"] == want["recovered"]

    status, body = await admin_get(gateway, "/admin/analytics/latency")
    assert status == 200, body
    lat = {g["key"]["connector"]: g for g in body["groups"]}
    for name, w in want["per"].items():
        assert lat[name]["count"] == w["attempts"]
        assert 0 <= lat[name]["p50_ms"] <= lat[name]["p95_ms"] <= lat[name]["p99_ms"]

    status, body = await admin_get(gateway, "/admin/analytics/timeseries?resolution=60")
    assert status == 200, body
    assert sum(p["attempts"] for s in body["series"] for p in s["points"]) == sum(
        w["attempts"] for w in want["per"].values()
    )

    status, body = await admin_get(gateway, "/admin/analytics/fees")
    assert status == 200, body
    assert {g["key"]["connector"] for g in body["groups"]} == set(want["per"])

    status, body = await admin_get(gateway, "/admin/analytics/health")
    assert status == 200, body
    health = {g["key"]["connector"]: g for g in body["groups"]}
    assert set(health) == {"stripe", "adyen", "checkout"}
    assert all(g["breaker"] == "closed" for g in health.values())

    status, body = await admin_get(
        gateway, "/admin/analytics/approvals?group_by=country,currency&country=us,fr"
    )
    assert status == 200, body
    assert {(g["key"]["country"], g["key"]["currency"]) for g in body["groups"]} == {
        ("US", "USD"),
        ("FR", "EUR"),
    }
    assert body["filters"] == {"country": ["US", "FR"]}


@pytest.mark.parametrize("who", ["none", "merchant", "wrong"])
async def test_analytics_need_the_admin_key(gateway, who):
    key = {"none": None, "merchant": gateway.keys["m_alpha"], "wrong": "adm_nope"}[who]
    status, body = await admin_get(gateway, "/admin/analytics/approvals", key=key)
    assert status == 401
    assert body["error"]["type"] == "authentication_error"


@pytest.mark.gateway_config(admin_api_key="")
async def test_admin_api_is_closed_when_no_admin_key_is_configured(gateway):
    status, body = await admin_get(gateway, "/admin/analytics/approvals", key="")
    assert status == 401
    status, body = await admin_get(gateway, "/admin/analytics/approvals", key="anything")
    assert status == 401 and body["error"]["code"] == "admin_api_disabled"


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("from=yesterday", "from"),
        ("to=NaN", "to"),
        ("from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z", "from"),
        ("group_by=planet", "group_by"),
        ("group_by=connector,connector", "group_by"),
        ("top=0", "top"),
        ("top=ten", "top"),
        ("resolution=0", "resolution"),
        ("country=<script>", "country"),
        ("colour=red", "colour"),
    ],
)
async def test_bad_parameters_are_400_with_the_param_named(gateway, query, param):
    status, body = await admin_get(gateway, f"/admin/analytics/approvals?{query}")
    assert status == 400, body
    error = body["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert error["code"] in ("parameter_invalid", "parameter_unknown") and error["message"]


async def test_too_fine_a_resolution_and_an_unknown_report_are_rejected(gateway):
    status, body = await admin_get(gateway, "/admin/analytics/timeseries?from=7d&resolution=1")
    assert status == 400 and body["error"]["param"] == "resolution"
    status, body = await admin_get(gateway, "/admin/analytics/refunds")
    assert status == 404 and body["error"]["code"] == "resource_missing"
