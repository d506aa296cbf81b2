"""The gateway's routing adapter: payment records in, the engine's decisions out."""

from __future__ import annotations

import pytest
from paymux.config import ConfigError, config_from_dict
from paymux.connectors.base import Capabilities
from paymux.domain.records import AttemptRecord, PaymentRecord
from paymux.routing.router import Router, RoutingCompileError


class FakeConnector:
    def __init__(self, name: str, caps: Capabilities | None = None) -> None:
        self.name = name
        self.capabilities = caps or Capabilities()


CONNECTORS = {
    "stripe": FakeConnector("stripe"),
    "adyen": FakeConnector("adyen", Capabilities(currencies=frozenset({"EUR", "GBP"}))),
    "checkout": FakeConnector("checkout"),
}


def payment(**kw) -> PaymentRecord:
    values = {
        "id": "pay_1",
        "merchant_id": "m_alpha",
        "status": "processing",
        "amount": 10_000,
        "currency": "EUR",
        "capture_method": "automatic",
        "card_brand": "visa",
        "card_bin": "42424242",
        "billing_country": "DE",
    }
    values.update(kw)
    return PaymentRecord(**values)


def attempt(connector: str, status: str, decline_class: str | None = None) -> AttemptRecord:
    return AttemptRecord(
        id="att_1",
        payment_id="pay_1",
        merchant_id="m_alpha",
        seq=1,
        connector=connector,
        reference="att_1",
        status=status,
        amount=10_000,
        currency="EUR",
        decline_class=decline_class,
        latency_ms=12.0,
    )


def test_default_order_still_works_and_filters_by_capability():
    router = Router(CONNECTORS, {"default_order": ["adyen", "stripe"]})
    plan = router.plan(payment())
    assert plan.connectors == ["adyen", "stripe"] and plan.rule == "default"
    plan = router.plan(payment(currency="USD"))
    assert plan.connectors == ["stripe"]
    assert plan.excluded == {"adyen": "capability:currency"}
    assert router.record(plan)["excluded"] == {"adyen": "capability:currency"}


def test_the_old_list_signature_is_accepted():
    assert Router(CONNECTORS, ["checkout"]).plan(payment()).connectors == ["checkout"]


def test_pinned_connector_bypasses_rules_but_not_capabilities():
    router = Router(CONNECTORS, {"default_order": ["stripe"]})
    assert router.plan(payment(), pinned="adyen").connectors == ["adyen"]
    assert router.plan(payment(currency="USD"), pinned="adyen").connectors == []


def test_fee_is_none_without_a_fee_table_and_computed_with_one():
    router = Router(
        CONNECTORS,
        {"default_order": ["stripe"], "fees": {"stripe": [{"percent_bps": 150, "fixed": 25}]}},
    )
    assert router.fee("stripe", payment()) == 175
    assert router.fee("adyen", payment()) is None


def test_dynamic_plan_records_estimates():
    router = Router(
        CONNECTORS,
        {
            "default": {"strategy": "dynamic", "connectors": ["stripe", "adyen", "checkout"]},
            "dynamic": {"exploration": 0.0, "seed": 1},
        },
    )
    record = router.record(router.plan(payment()))
    assert record["strategy"] == "dynamic" and len(record["estimates"]) == 3
    assert {e["connector"] for e in record["estimates"]} == {"stripe", "adyen", "checkout"}


def test_technical_outcomes_open_the_breaker_issuer_declines_do_not():
    router = Router(CONNECTORS, {"default_order": ["stripe", "adyen"]})
    for _ in range(10):
        router.observe(attempt("adyen", "declined", "issuer_not_now"), payment())
    for _ in range(5):
        router.observe(attempt("stripe", "failed", "technical"), payment())
    states = router.breaker_states()
    assert states["stripe"] == "open" and states["adyen"] == "closed"
    plan = router.plan(payment())
    assert plan.connectors == ["adyen"] and plan.excluded == {"stripe": "breaker_open"}
    router.observe(attempt("stripe", "pending"), payment())  # says nothing: ignored


def test_reload_keeps_health_and_a_bad_config_changes_nothing():
    router = Router(CONNECTORS, {"default_order": ["stripe", "adyen"]}, version=1)
    for _ in range(5):
        router.observe(attempt("stripe", "failed", "technical"), payment())
    router.reload({"default_order": ["checkout", "stripe"]}, 2)
    assert router.version == 2 and router.breaker_states()["stripe"] == "open"
    with pytest.raises(RoutingCompileError) as exc:
        router.reload({"default_order": ["paypal"]}, 3)
    assert "paypal" in str(exc.value)
    assert router.version == 2 and router.plan(payment()).connectors == ["checkout"]


def test_config_file_routing_is_checked_at_load():
    connectors = [{"name": "stripe", "kind": "stripe", "base_url": "http://x"}]
    config_from_dict({"connectors": connectors, "routing": {"default_order": ["stripe"]}})
    with pytest.raises(ConfigError, match="unknown connectors"):
        config_from_dict({"connectors": connectors, "routing": {"default_order": ["adyen"]}})
    with pytest.raises(ConfigError, match="exploration"):
        config_from_dict({"connectors": connectors, "routing": {"dynamic": {"exploration": 2}}})


def test_an_answer_found_by_sync_after_a_timeout_still_counts_as_a_timeout():
    router = Router(CONNECTORS, {"default_order": ["stripe", "adyen"]})
    for _ in range(5):
        router.observe(attempt("stripe", "authorized"), payment(), "timeout")
    assert router.breaker_states()["stripe"] == "open"
