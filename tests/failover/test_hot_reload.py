"""Routing hot reload through the admin API: versions, validation, rollback, every worker, the
config file, and the dry-run explain."""

from __future__ import annotations

import asyncio
import os

import pytest
from paymux.api.admin_routing import ROUTING_ADMIN
from paymux.api.app import build_gateway
from paymux.api.http import SERVICE
from paymux.config import config_from_dict, load_config, load_secrets

from tests.failover.conftest import ADMIN_KEY
from tests.failover.helpers import admin, events, eventually, payment_body
from tests.gateway.conftest import gateway_config, start_app

CHECKOUT_FIRST = {"default_order": ["checkout", "adyen", "stripe"]}
GBP_TO_ADYEN = {
    "rules": [
        {
            "name": "gbp-to-adyen",
            "when": {"currency": ["GBP"]},
            "then": {"strategy": "priority", "connectors": ["adyen", "checkout"]},
        }
    ],
    "default": {"strategy": "priority", "connectors": ["stripe", "adyen", "checkout"]},
}


async def first_connector(gw, **kw) -> str:
    status, pay = await gw.post("/v1/payments", payment_body(**kw))
    assert status == 200, pay
    return pay["attempts"][0]["connector"]


async def test_put_routing_applies_to_the_next_payments_and_is_versioned(gw):
    assert await first_connector(gw) == "stripe"
    status, body = await admin(gw, "GET", "/admin/routing")
    assert status == 200 and body["version"] == 1 and body["source"] == "config"

    status, body = await admin(gw, "PUT", "/admin/routing", CHECKOUT_FIRST)
    assert status == 200, body
    assert body["version"] == 2 and body["active"] is True and body["config"] == CHECKOUT_FIRST
    status, pay = await gw.post("/v1/payments", payment_body())
    assert pay["attempts"][0]["connector"] == "checkout"
    created = events(gw.db_path, pay["id"])[0]
    assert created["data"]["version"] == 2 and created["data"]["order"][0] == "checkout"

    status, body = await admin(gw, "PUT", "/admin/routing", GBP_TO_ADYEN)
    assert status == 200 and body["version"] == 3
    assert await first_connector(gw, currency="GBP") == "adyen"
    assert await first_connector(gw, currency="EUR") == "stripe"
    status, pay = await gw.post("/v1/payments", payment_body(currency="GBP"))
    assert events(gw.db_path, pay["id"])[0]["data"]["rule"] == "gbp-to-adyen"


@pytest.mark.parametrize(
    "config, param",
    [
        ({"default_order": ["stripe", "paypal"]}, "routing"),
        (
            {
                "rules": [
                    {"name": "x", "when": {"currncy": ["EUR"]}, "then": {"connectors": ["adyen"]}}
                ],
                "default": {"connectors": ["stripe"]},
            },
            "routing.rules['x'].when.currncy",
        ),
        ({"dynamic": {"exploration": 3}}, "routing.dynamic.exploration"),
        ({"no_such_key": 1}, "routing"),
    ],
)
async def test_a_broken_config_is_rejected_and_the_old_one_keeps_serving(gw, config, param):
    status, body = await admin(gw, "PUT", "/admin/routing", CHECKOUT_FIRST)
    assert status == 200
    status, body = await admin(gw, "PUT", "/admin/routing", config)
    assert status == 400, body
    err = body["error"]
    assert err["type"] == "invalid_request_error" and err["code"] == "routing_config_invalid"
    assert err["param"].startswith(param.split("[")[0]), err
    assert err["message"]
    status, body = await admin(gw, "GET", "/admin/routing")
    assert body["version"] == 2 and body["config"] == CHECKOUT_FIRST
    assert await first_connector(gw) == "checkout"
    status, versions = await admin(gw, "GET", "/admin/routing/versions")
    assert [v["version"] for v in versions["data"]] == [2, 1]


async def test_bad_requests_to_the_admin_api(gw):
    for key in (None, "wrong", gw.keys["m_alpha"]):
        status, body = await admin(gw, "GET", "/admin/routing", key=key)
        assert status == 401 and body["error"]["type"] == "authentication_error"
        status, body = await admin(gw, "PUT", "/admin/routing", CHECKOUT_FIRST, key=key)
        assert status == 401
    status, body = await admin(gw, "PUT", "/admin/routing", ["stripe"])
    assert status == 400 and body["error"]["code"] == "parameter_invalid"
    async with gw.session.put(
        gw.url + "/admin/routing",
        data=b"{nope",
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
    ) as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_json"
    status, body = await admin(gw, "POST", "/admin/routing/rollback", {"version": 99})
    assert status == 404 and body["error"]["param"] == "version"
    status, body = await admin(gw, "POST", "/admin/routing/rollback", {"version": "one"})
    assert status == 400 and body["error"]["param"] == "version"
    status, body = await admin(gw, "POST", "/admin/routing/explain", {"amount": 100})
    assert status == 400 and body["error"]["code"] == "parameter_missing"
    status, body = await admin(
        gw, "POST", "/admin/routing/explain", {"amount": -5, "currency": "EUR"}
    )
    assert status == 400 and body["error"]["param"] == "amount"
    status, body = await admin(
        gw, "POST", "/admin/routing/explain", {"amount": 5, "currency": "XYZ"}
    )
    assert status == 400 and body["error"]["code"] == "invalid_currency"
    status, body = await admin(
        gw,
        "POST",
        "/admin/routing/explain",
        {"amount": 5, "currency": "EUR", "card": {"number": "4242424242424241"}},
    )
    assert status == 400 and body["error"]["param"] == "card.number"
    assert "4242424242424241" not in str(body) and "4242424242424241" not in gw.log.getvalue()


async def test_rollback_restores_an_older_version(gw):
    await admin(gw, "PUT", "/admin/routing", CHECKOUT_FIRST)
    await admin(gw, "PUT", "/admin/routing", GBP_TO_ADYEN)
    status, body = await admin(gw, "POST", "/admin/routing/rollback", {"version": 2})
    assert status == 200 and body["version"] == 2 and body["active"] is True
    assert await first_connector(gw) == "checkout"
    status, versions = await admin(gw, "GET", "/admin/routing/versions")
    assert versions["active"] == 2
    assert [(v["version"], v["active"]) for v in versions["data"]] == [
        (3, False),
        (2, True),
        (1, False),
    ]
    status, _ = await admin(gw, "POST", "/admin/routing/rollback", {"version": 1})
    assert status == 200 and await first_connector(gw) == "stripe"


@pytest.mark.gateway_config(
    routing={
        "merchants": {
            "m_beta": {"default": {"strategy": "priority", "connectors": ["adyen", "stripe"]}}
        }
    }
)
async def test_merchant_routing_overrides_the_default(gw):
    assert await first_connector(gw) == "stripe"
    status, pay = await gw.post("/v1/payments", payment_body(), merchant="m_beta")
    assert status == 200 and pay["attempts"][0]["connector"] == "adyen"
    assert events(gw.db_path, pay["id"])[0]["data"]["rule"] == "m_beta:default"


async def test_explain_answers_without_side_effects(gw):
    await admin(
        gw,
        "PUT",
        "/admin/routing",
        {
            **GBP_TO_ADYEN,
            "fees": {
                "adyen": [{"percent_bps": 120, "fixed": 10}],
                "checkout": [{"percent_bps": 90}],
            },
        },
    )
    ledger_before = await gw.ledger()
    status, body = await admin(
        gw,
        "POST",
        "/admin/routing/explain",
        {
            "amount": 10000,
            "currency": "GBP",
            "merchant_id": "m_alpha",
            "payment_method": {
                "card": {
                    "number": "4242424242424242",
                    "exp_month": 12,
                    "exp_year": 2034,
                    "cvc": "123",
                }
            },
            "billing": {"country": "GB"},
            "metadata": {"channel": "web"},
            "capture_method": "manual",
        },
    )
    assert status == 200, body
    assert body["rule"] == "gbp-to-adyen" and body["strategy"] == "priority"
    assert body["order"] == ["adyen", "checkout"]
    assert body["eligible"] == ["adyen", "checkout"]
    fees = {e["connector"]: e["fee"] for e in body["estimates"]}
    assert fees == {"adyen": 130, "checkout": 90}
    assert all("approval" in e for e in body["estimates"])
    assert body["attributes"]["brand"] == "visa" and body["attributes"]["bin"] == "42424242"
    assert "4242424242424242" not in str(body) and "4242424242424242" not in gw.log.getvalue()
    # Nothing was sent and nothing was stored.
    ledger_after = await gw.ledger()
    assert ledger_after["psps"] == ledger_before["psps"]
    status, listed = await gw.get("/v1/payments")
    assert listed["data"] == []

    status, body = await admin(
        gw,
        "POST",
        "/admin/routing/explain",
        {"amount": 500, "currency": "EUR", "card": {"brand": "amex"}},
    )
    assert status == 200 and body["rule"] == "default"
    assert body["order"] == ["stripe", "adyen", "checkout"]


async def test_every_worker_picks_up_a_new_version(gw, tmp_path):
    # A second worker process on the same database: an app built from the same config.
    config = config_from_dict(
        gateway_config(
            tmp_path,
            int(gw.sandbox_url.rsplit(":", 1)[1]),
            admin_api_key=ADMIN_KEY,
            reconciler={"routing_poll_s": 0.1},
        )
    )
    other = build_gateway(config, load_secrets(config.vault))
    runner, _ = await start_app(other)
    try:
        other_router = other[SERVICE].router
        assert other_router.version == 1
        status, _ = await admin(gw, "PUT", "/admin/routing", CHECKOUT_FIRST)
        assert status == 200

        async def switched() -> bool:
            return other_router.version == 2

        await eventually(switched, timeout_s=3)
        assert other_router.config == CHECKOUT_FIRST
        assert gw.app[SERVICE].router.version == 2
    finally:
        await runner.cleanup()


async def test_config_file_changes_and_sighup_reload_routing(tmp_path, gw):
    sandbox_port = int(gw.sandbox_url.rsplit(":", 1)[1])
    path = tmp_path / "paymux.toml"
    base = gateway_config(
        tmp_path / "second",
        sandbox_port,
        admin_api_key=ADMIN_KEY,
        reconciler={"config_poll_s": 0.1, "routing_poll_s": 0.1},
    )
    (tmp_path / "second").mkdir()

    def write(order_line: str) -> None:
        path.write_text(_toml(base, order_line))
        st = path.stat()
        os.utime(path, (st.st_atime, st.st_mtime + 1))  # an mtime step the poll cannot miss

    write('default_order = ["stripe", "adyen", "checkout"]')
    config = load_config(path)
    app = build_gateway(config, load_secrets(config.vault), config_path=str(path))
    runner, _ = await start_app(app)
    try:
        router = app[SERVICE].router
        assert router.version == 1
        write('default_order = ["adyen", "stripe"]')
        await eventually(lambda: _true(router.version == 2), timeout_s=3)
        assert router.config == {"default_order": ["adyen", "stripe"]}
        write('default_order = ["adyen", "paypal"]')  # does not compile: ignored, logged
        await asyncio.sleep(0.5)
        assert router.version == 2
        assert "routing_config_rejected" in gw.log.getvalue()
        path.write_text(_toml(base, 'default_order = ["checkout"]'))  # same mtime: SIGHUP
        app[ROUTING_ADMIN].trigger_reload()
        await eventually(lambda: _true(router.version == 3), timeout_s=3)
        assert router.config == {"default_order": ["checkout"]}
    finally:
        await runner.cleanup()


async def _true(value: bool) -> bool:
    return value


def _toml(raw: dict, order_line: str) -> str:
    lines = [
        f'admin_api_key = "{raw["admin_api_key"]}"',
        "[storage]",
        f'path = "{raw["storage"]["path"]}"',
        "[vault]",
        f'key_file = "{raw["vault"]["key_file"]}"',
        "[reconciler]",
        "config_poll_s = 0.1",
        "routing_poll_s = 0.1",
        "[routing]",
        order_line,
    ]
    for c in raw["connectors"]:
        lines.append("[[connectors]]")
        for k, v in c.items():
            if isinstance(v, dict):
                inner = ", ".join(f'{ik} = "{iv}"' for ik, iv in v.items())
                lines.append(f"{k} = {{ {inner} }}")
            elif isinstance(v, str):
                lines.append(f'{k} = "{v}"')
            else:
                lines.append(f"{k} = {v}")
    return "\n".join(lines) + "\n"
