"""The [routing] table: defaults, every section, and errors that name the field."""

from __future__ import annotations

import tomllib

import pytest
from paymux.routing import RoutingConfig, RoutingConfigError

EXAMPLE = """
default_order = ["stripe", "adyen"]

[[rules]]
name = "eur-to-adyen"
[rules.when]
currency = ["EUR"]
[rules.then]
strategy = "dynamic"
connectors = ["adyen", "stripe", "checkout"]

[default]
strategy = "priority"
connectors = ["stripe", "adyen", "checkout"]

[merchants.m_acme]
rules = [{ name = "acme-usd", when = { currency = ["USD"] }, then = { connectors = ["checkout"] } }]

[dynamic]
exploration = 0.01
min_samples = 40
segment_levels = [["brand", "country", "currency"], ["brand"], []]

[health]
count_window = 300
breaker_max_open_seconds = 20

[fees]
adyen = [{ percent_bps = 120, fixed = 11 }]
checkout = [
  { percent_bps = 160, fixed = 20, region = "EEA" },
  { percent_bps = 210, fixed = 20 },
]
"""


def test_the_documented_example_decodes():
    config = RoutingConfig.from_dict(tomllib.loads(EXAMPLE))
    assert config.dynamic.min_samples == 40
    assert config.dynamic.segment_levels[-1] == []
    assert config.health.count_window == 300
    assert config.fees["checkout"][0].region == "EEA"
    assert config.merchants["m_acme"].default is None


def test_an_empty_table_gives_the_tuned_defaults():
    config = RoutingConfig.from_dict({})
    assert config.dynamic.exploration == 0.02
    assert config.dynamic.segment_levels == [
        ["brand", "country", "currency"],
        ["brand", "country"],
        ["brand"],
        [],
    ]
    assert config.health.count_window == 500
    assert config.health.breaker_max_open_seconds == 15.0


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"bogus": 1}, "bogus"),
        ({"dynamic": {"explore": 0.1}}, "dynamic.explore"),
        ({"dynamic": {"min_samples": "many"}}, "dynamic.min_samples"),
        ({"dynamic": {"exploration": 1.5}}, "dynamic.exploration"),
        ({"dynamic": {"prior_approval": 1.0}}, "dynamic.prior_approval"),
        ({"dynamic": {"segment_levels": [["brand", "colour"]]}}, "dynamic.segment_levels[0]"),
        ({"dynamic": {"segment_levels": []}}, "dynamic.segment_levels"),
        ({"health": {"count_window": 0}}, "health"),
        ({"fees": {"adyen": [{"percent_bps": -1}]}}, "fees.adyen[0]"),
        ({"fees": {"adyen": [{"region": "MARS"}]}}, "fees.adyen[0].region"),
        ({"fees": {"adyen": [{"brand": []}]}}, "fees.adyen[0].brand"),
        (
            {"rules": [{"name": "r", "then": {"connectors": ["a"]}}]},
            "default",
        ),
    ],
)
def test_errors_name_the_field(raw, field):
    with pytest.raises(RoutingConfigError) as info:
        RoutingConfig.from_dict(raw)
    assert info.value.field == field
    assert f"routing.{field}" in str(info.value)


def test_rule_errors_from_the_rust_core_are_passed_through_with_their_path():
    raw = {
        "rules": [{"name": "eur", "when": {"currncy": ["EUR"]}, "then": {"connectors": ["a"]}}],
        "default": {"connectors": ["a"]},
    }
    with pytest.raises(RoutingConfigError) as info:
        RoutingConfig.from_dict(raw)
    assert info.value.field == "rules['eur'].when.currncy"
    assert "unknown key" in str(info.value) and "currncy" in str(info.value)


def test_merchant_rule_errors_name_the_merchant():
    raw = {"merchants": {"m_acme": {"default": {"strategy": "sideways", "connectors": ["a"]}}}}
    with pytest.raises(RoutingConfigError) as info:
        RoutingConfig.from_dict(raw)
    assert info.value.field.startswith("merchants.m_acme.default")


def test_a_routing_config_error_is_a_value_error():
    assert issubclass(RoutingConfigError, ValueError)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"stall": {"seconds": -1}}, "stall.seconds"),
        ({"stall": {"min_attempts": 0}}, "stall.min_attempts"),
        ({"stall": {"seconds": 10, "forget_seconds": 5}}, "stall.forget_seconds"),
    ],
)
def test_stall_settings_are_checked(raw, field):
    with pytest.raises(RoutingConfigError) as info:
        RoutingConfig.from_dict(raw)
    assert info.value.field == field
