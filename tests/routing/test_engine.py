"""RoutingEngine: rules -> capability filter -> order -> breakers, learning, fees, explain."""

from __future__ import annotations

import pytest
from paymux.connectors.base import Capabilities
from paymux.domain.outcomes import AttemptStatus, DeclineClass
from paymux.routing import (
    PaymentAttributes,
    RoutingConfig,
    RoutingConfigError,
    RoutingEngine,
    outcome_for,
)

NAMES = ["adyen", "stripe", "checkout"]
ANY = {n: Capabilities() for n in NAMES}


def engine(raw=None, capabilities=None, **dynamic):
    raw = dict(raw or {})
    raw.setdefault("dynamic", {}).update({"seed": 7, **dynamic})
    return RoutingEngine(RoutingConfig.from_dict(raw), capabilities or ANY)


def pay(pid="pay_1", amount=10_000, currency="EUR", brand="visa", country="DE", **kw):
    return PaymentAttributes(
        payment_id=pid, amount=amount, currency=currency, brand=brand, country=country, **kw
    )


DYNAMIC = {"default": {"strategy": "dynamic", "connectors": NAMES}}


def teach(e, connector, approvals, declines, attrs=None, now=1.0):
    attrs = attrs or pay()
    for _ in range(approvals):
        e.observe(connector, attrs, "approved", 200.0, now)
    for _ in range(declines):
        e.observe(connector, attrs, "soft_route", 200.0, now)


# ---- strategies ----


def test_without_rules_payments_go_to_every_connector_in_configured_order():
    plan = engine().plan(pay(), 1.0)
    assert (plan.connectors, plan.rule, plan.strategy) == (NAMES, "default", "priority")


def test_default_order_is_kept_for_backwards_compatibility():
    plan = engine({"default_order": ["checkout", "adyen"]}).plan(pay(), 1.0)
    assert plan.connectors == ["checkout", "adyen"]
    assert plan.strategy == "priority"


def test_first_matching_rule_decides_and_priority_keeps_its_order():
    e = engine(
        {
            "rules": [
                {"name": "gbp", "when": {"currency": ["GBP"]}, "then": {"connectors": ["stripe"]}},
                {
                    "name": "eur",
                    "when": {"currency": ["EUR"]},
                    "then": {"connectors": ["checkout", "adyen"]},
                },
            ],
            "default": {"connectors": ["adyen"]},
        }
    )
    assert e.plan(pay(currency="EUR"), 1.0).connectors == ["checkout", "adyen"]
    assert e.plan(pay(currency="EUR"), 1.0).rule == "eur"
    assert e.plan(pay(currency="USD"), 1.0).rule == "default"


def test_split_is_stable_per_payment_and_follows_the_weights():
    e = engine({"default": {"strategy": "split", "weights": {"adyen": 80, "stripe": 20}}})
    first = [e.plan(pay(pid=f"pay_{i}"), 1.0).connectors[0] for i in range(2000)]
    assert 0.75 < first.count("adyen") / len(first) < 0.85
    assert e.plan(pay(pid="pay_42"), 1.0) == e.plan(pay(pid="pay_42"), 2.0)


def test_dynamic_learns_which_psp_approves_more():
    e = engine(DYNAMIC, exploration=0.0)
    teach(e, "adyen", 60, 40)
    teach(e, "stripe", 95, 5)
    teach(e, "checkout", 80, 20)
    plan = e.plan(pay(), 2.0)
    assert plan.connectors == ["stripe", "checkout", "adyen"]
    assert plan.strategy == "dynamic"
    assert [c.connector for c in plan.estimates] == NAMES
    assert plan.estimates[1].segment == "visa|DE|EUR"


def test_dynamic_weighs_fees_against_approval():
    e = engine(
        {**DYNAMIC, "fees": {"stripe": [{"percent_bps": 1000}]}},  # 10%: not worth 2 points
        exploration=0.0,
    )
    teach(e, "adyen", 90, 10)
    teach(e, "stripe", 92, 8)
    teach(e, "checkout", 50, 50)
    assert e.plan(pay(), 2.0).connectors[0] == "adyen"


def test_merchant_rules_come_first_and_fall_through_without_a_default():
    e = engine(
        {
            "default": {"connectors": ["adyen", "stripe"]},
            "merchants": {
                "m_acme": {
                    "rules": [
                        {
                            "name": "usd",
                            "when": {"currency": ["USD"]},
                            "then": {"connectors": ["checkout"]},
                        }
                    ]
                },
                "m_solo": {"default": {"connectors": ["stripe"]}},
            },
        }
    )
    acme_usd = e.plan(pay(currency="USD", merchant_id="m_acme"), 1.0)
    assert (acme_usd.rule, acme_usd.connectors) == ("m_acme:usd", ["checkout"])
    acme_eur = e.plan(pay(currency="EUR", merchant_id="m_acme"), 1.0)
    assert (acme_eur.rule, acme_eur.connectors) == ("default", ["adyen", "stripe"])
    solo = e.plan(pay(merchant_id="m_solo"), 1.0)
    assert (solo.rule, solo.connectors) == ("m_solo:default", ["stripe"])


def test_rules_naming_an_unconfigured_connector_are_refused():
    with pytest.raises(RoutingConfigError, match="unknown connectors"):
        engine({"default": {"connectors": ["adyen", "paypal"]}})
    with pytest.raises(RoutingConfigError, match="fees.paypal"):
        engine({"fees": {"paypal": [{"fixed": 1}]}})


# ---- capability filter ----


def test_connectors_that_cannot_take_the_payment_are_excluded_with_the_reason():
    caps = {
        "adyen": Capabilities(currencies=frozenset({"EUR"})),
        "stripe": Capabilities(brands=frozenset({"visa", "mastercard"})),
        "checkout": Capabilities(countries=frozenset({"US"})),
    }
    e = engine(capabilities=caps)
    plan = e.plan(pay(currency="USD", brand="amex", country="DE"), 1.0)
    assert plan.connectors == []
    assert plan.excluded == {
        "adyen": "capability:currency",
        "stripe": "capability:brand",
        "checkout": "capability:country",
    }
    assert e.plan(pay(currency="EUR", brand="visa", country="DE"), 1.0).connectors == [
        "adyen",
        "stripe",
    ]


def test_payment_method_is_a_capability():
    e = engine()
    plan = e.plan(pay(method="sepa_debit"), 1.0)
    assert plan.connectors == [] and set(plan.excluded.values()) == {"capability:method"}


# ---- breakers ----


def trip(e, connector, now=1.0):
    for _ in range(5):
        e.observe(connector, pay(), "technical", 50.0, now)


@pytest.mark.parametrize("strategy", ["priority", "dynamic"])
def test_an_open_breaker_is_excluded(strategy):
    e = engine({"default": {"strategy": strategy, "connectors": NAMES}})
    trip(e, "adyen")
    plan = e.plan(pay(), 1.5)
    assert "adyen" not in plan.connectors
    assert plan.excluded == {"adyen": "breaker_open"}
    assert e.breaker_states(1.5)["adyen"] == "open"


@pytest.mark.parametrize("strategy", ["priority", "dynamic"])
def test_when_every_breaker_is_open_the_payment_still_has_somewhere_to_go(strategy):
    e = engine({"default": {"strategy": strategy, "connectors": NAMES}})
    for c in NAMES:
        trip(e, c)
    assert sorted(e.plan(pay(), 1.5).connectors) == sorted(NAMES)


@pytest.mark.parametrize("strategy", ["priority", "dynamic"])
def test_a_half_open_connector_is_probed_first(strategy):
    e = engine({"default": {"strategy": strategy, "connectors": NAMES}})
    trip(e, "checkout")
    now = 1.0 + e.config.health.breaker_open_seconds + 0.1
    plan = e.plan(pay(), now)
    assert plan.connectors[0] == "checkout"


def test_cascaded_attempts_feed_the_breaker_but_not_the_estimate():
    e = engine(DYNAMIC, exploration=0.0)
    for _ in range(50):
        e.observe("stripe", pay(), "soft_route", 100.0, 1.0, attempt=2)
    est = {c.connector: c for c in e.plan(pay(), 1.0).estimates}
    assert est["stripe"].samples == 0
    for _ in range(5):
        e.observe("stripe", pay(), "timeout", 100.0, 1.0, attempt=3)
    assert e.breaker_states(1.0)["stripe"] == "open"


# ---- segments ----


def test_a_thin_segment_falls_back_to_a_coarser_level():
    e = engine(DYNAMIC, exploration=0.0)
    for c in NAMES:
        teach(e, c, 40, 10, attrs=pay(country="FR"))  # visa|FR|EUR, visa|FR, visa, *
    est = {c.connector: c for c in e.plan(pay(country="DE"), 2.0).estimates}
    assert est["adyen"].segment == "visa"
    teach(e, "adyen", 30, 5, attrs=pay(country="DE"))
    est = {c.connector: c for c in e.plan(pay(country="DE"), 2.0).estimates}
    assert est["adyen"].segment == "visa|DE|EUR"
    assert est["stripe"].segment == "visa"


def test_segment_keys_follow_the_configured_levels():
    e = engine({"dynamic": {"segment_levels": [["brand", "card_type"], []]}})
    assert e.segments(pay(brand="VISA", card_type="debit")) == ["visa|debit", "*"]
    assert e.segments(pay(brand=None)) == ["?|?", "*"]


# ---- fees ----


def test_first_matching_fee_rule_wins():
    e = engine(
        {
            "fees": {
                "adyen": [
                    {"percent_bps": 100, "fixed": 5, "brand": ["amex"]},
                    {"percent_bps": 150, "fixed": 10, "region": "EEA"},
                    {"percent_bps": 290, "fixed": 30, "currency": ["USD"]},
                    {"percent_bps": 300, "fixed": 0},
                ]
            }
        }
    )
    assert e.fee("adyen", pay(brand="amex", country="US", currency="USD")) == 105
    assert e.fee("adyen", pay(country="NO")) == 160  # Norway is in the EEA
    assert e.fee("adyen", pay(country="US", currency="USD")) == 320
    assert e.fee("adyen", pay(country="US", currency="CAD")) == 300
    assert e.fee("stripe", pay()) == 0  # no fee table


def test_percentage_fees_round_half_up_in_minor_units():
    e = engine({"fees": {"adyen": [{"percent_bps": 125}]}})
    assert e.fee("adyen", pay(amount=1000)) == 13  # 12.5 -> 13
    assert e.fee("adyen", pay(amount=999)) == 12  # 12.4875 -> 12


# ---- explain, reload ----


def test_explain_says_why_and_changes_nothing():
    e = engine(
        {**DYNAMIC, "fees": {"adyen": [{"percent_bps": 100}]}},
        capabilities={**ANY, "checkout": Capabilities(currencies=frozenset({"USD"}))},
    )
    trip(e, "stripe")
    teach(e, "adyen", 40, 2)
    twin = engine(
        {**DYNAMIC, "fees": {"adyen": [{"percent_bps": 100}]}},
        capabilities={**ANY, "checkout": Capabilities(currencies=frozenset({"USD"}))},
    )
    trip(twin, "stripe")
    teach(twin, "adyen", 40, 2)
    now = 1.0 + e.config.health.breaker_open_seconds + 0.1  # stripe half-open
    before = e.breaker_states(now)
    for _ in range(10):
        report = e.explain(pay(), now)
    assert report["rule"] == "default" and report["strategy"] == "dynamic"
    assert report["excluded"] == {"checkout": "capability:currency"}
    assert report["order"][0] == "stripe"  # would be probed first
    adyen = next(x for x in report["estimates"] if x["connector"] == "adyen")
    # samples: the 42 attempts' age-weighted evidence ([routing.health] evidence_half_life)
    assert adyen["fee"] == 100 and 40 <= adyen["samples"] <= 42
    assert e.breaker_states(now) == before
    # the probe slots are untouched and the random stream too: plan agrees with a twin's
    assert e.plan(pay(), now) == twin.plan(pay(), now)
    assert e.plan(pay(pid="x"), now) == twin.plan(pay(pid="x"), now)


def test_with_config_compiles_new_rules_and_keeps_live_health():
    e = engine(DYNAMIC)
    trip(e, "adyen")
    teach(e, "stripe", 30, 0)
    reloaded = e.with_config(RoutingConfig.from_dict({"default_order": ["adyen", "checkout"]}))
    assert reloaded.health is e.health
    assert reloaded.breaker_states(1.5)["adyen"] == "open"
    plan = reloaded.plan(pay(), 1.5)
    assert (plan.strategy, plan.connectors) == ("priority", ["checkout"])


# ---- outcomes ----


@pytest.mark.parametrize(
    ("status", "decline_class", "code", "outcome"),
    [
        (AttemptStatus.AUTHORIZED, None, None, "approved"),
        (AttemptStatus.CAPTURED, None, None, "approved"),
        (AttemptStatus.DECLINED, DeclineClass.HARD, "lost_card", "hard"),
        (AttemptStatus.DECLINED, DeclineClass.FIX_DATA, "expired_card", "fix_data"),
        (
            AttemptStatus.DECLINED,
            DeclineClass.ISSUER_NOT_NOW,
            "insufficient_funds",
            "issuer_not_now",
        ),
        (AttemptStatus.DECLINED, DeclineClass.SOFT_ROUTE, "do_not_honor", "soft_route"),
        (AttemptStatus.FAILED, DeclineClass.TECHNICAL, "timeout", "timeout"),
        (AttemptStatus.FAILED, DeclineClass.TECHNICAL, "processing_error", "technical"),
        (AttemptStatus.PENDING, None, None, None),
        (AttemptStatus.REQUIRES_ACTION, None, None, None),
    ],
)
def test_outcome_for_maps_a_connector_result_to_the_health_vocabulary(
    status, decline_class, code, outcome
):
    assert outcome_for(status, decline_class, code) == outcome


# ---- stall detection ----


@pytest.mark.parametrize("strategy", ["priority", "dynamic"])
def test_a_connector_whose_attempts_hang_is_left_out_until_they_finish(strategy):
    e = engine({"default": {"strategy": strategy, "connectors": NAMES}})
    for i in range(3):
        e.attempt_started("adyen", 10.0 + i * 0.01)
    assert "adyen" in e.plan(pay(), 11.0).connectors  # in flight 1 s: still normal
    plan = e.plan(pay(), 11.6)  # three attempts in flight for 1.5 s
    assert "adyen" not in plan.connectors and plan.excluded["adyen"] == "stalled"
    e.observe("adyen", pay(), "timeout", 5000.0, 15.0)  # one of them timed out
    assert "adyen" in e.plan(pay(), 15.0).connectors


def test_fewer_hanging_attempts_than_the_threshold_change_nothing():
    e = engine()
    e.attempt_started("adyen", 10.0)
    e.attempt_started("adyen", 10.0)
    assert e.plan(pay(), 20.0).connectors == NAMES


def test_stalled_never_leaves_a_payment_nowhere_to_go():
    e = engine({"default": {"connectors": ["adyen"]}})
    for _ in range(3):
        e.attempt_started("adyen", 10.0)
    assert e.plan(pay(), 12.0).connectors == ["adyen"]


def test_an_attempt_never_finished_is_forgotten():
    e = engine({"stall": {"forget_seconds": 30.0}})
    for _ in range(3):
        e.attempt_started("adyen", 10.0)
    assert e.stalled(NAMES, 12.0) == ["adyen"]
    assert e.stalled(NAMES, 41.0) == []


def test_attempt_finished_ends_an_attempt_without_an_outcome():
    e = engine()
    for _ in range(3):
        e.attempt_started("adyen", 10.0)
    e.attempt_finished("adyen")  # e.g. a 3DS challenge: pending, nothing to observe
    assert e.stalled(NAMES, 20.0) == []


def test_explain_reports_a_stall_without_forgetting_anything():
    e = engine({"stall": {"forget_seconds": 30.0}})
    for _ in range(3):
        e.attempt_started("adyen", 10.0)
    e.attempt_started("adyen", 25.0)
    e.attempt_started("adyen", 25.0)
    e.attempt_started("adyen", 25.0)
    report = e.explain(pay(), 41.0)  # the first three are past forgetting; the rest hang 16 s
    assert report["excluded"] == {"adyen": "stalled"}
    assert len(e._inflight["adyen"]) == 6  # explain purged nothing


def test_stall_detection_survives_a_reload_and_can_be_turned_off():
    e = engine()
    for _ in range(3):
        e.attempt_started("adyen", 10.0)
    assert e.with_config(RoutingConfig.from_dict({})).stalled(NAMES, 12.0) == ["adyen"]
    off = e.with_config(RoutingConfig.from_dict({"stall": {"seconds": 0}}))
    assert off.stalled(NAMES, 12.0) == []
