"""Routing rules through the Python binding: compile errors, each condition, priority, split."""

from __future__ import annotations

import tomllib
from collections import Counter

import pytest
from paymux import _core
from paymux.reference import rules as ref

EXAMPLE = """
utc_offset_minutes = 60

[[rules]]
name = "eur-debit-to-adyen"
priority = 10
[rules.when]
currency = ["EUR"]
amount = { min = 100, max = 500000 }
brand = ["visa", "mastercard"]
card_type = ["debit"]
bin = ["424242", "510000-519999"]
country = ["DE", "FR"]
merchant = ["m_acme"]
metadata = { channel = "web" }
time = { days = ["mon","tue","wed","thu","fri"], from = "09:00", to = "17:30" }
[rules.then]
strategy = "priority"
connectors = ["adyen", "stripe"]

[[rules]]
name = "gbp-split"
priority = 20
[rules.when]
currency = ["GBP"]
[rules.then]
strategy = "split"
connectors = ["adyen", "stripe"]
weights = { adyen = 70, stripe = 30 }

[[rules]]
name = "usd-dynamic"
[rules.when]
currency = ["USD"]
[rules.then]
strategy = "dynamic"
connectors = ["stripe", "checkout", "adyen"]

[default]
strategy = "priority"
connectors = ["stripe", "adyen", "checkout"]
"""

# Wednesday 2024-01-10 10:00 local (UTC+1) = 09:00 UTC
WEDNESDAY_10AM = 1_704_844_800.0 + 9 * 3600

EUR_DEBIT = {
    "currency": "EUR",
    "amount": 2_000,
    "brand": "visa",
    "card_type": "debit",
    "bin": "42424242",
    "country": "DE",
    "merchant_id": "m_acme",
    "metadata": {"channel": "web"},
    "now": WEDNESDAY_10AM,
}


@pytest.fixture(params=["rust", "reference"])
def impl(request):
    return _core if request.param == "rust" else ref


def test_the_documented_toml_example_compiles_and_routes(impl):
    rules = impl.RuleSet(tomllib.loads(EXAMPLE))
    assert rules.rule_count == 3
    assert rules.connector_names() == ["adyen", "stripe", "checkout"]
    assert rules.rule_names() == ["usd-dynamic", "eur-debit-to-adyen", "gbp-split"]
    d = rules.evaluate(**EUR_DEBIT)
    assert (d.rule, d.strategy, d.connectors) == (
        "eur-debit-to-adyen",
        "priority",
        ["adyen", "stripe"],
    )
    d = rules.evaluate(currency="USD", amount=1)
    assert (d.rule, d.strategy) == ("usd-dynamic", "dynamic")
    d = rules.evaluate(currency="JPY", amount=1)
    assert (d.rule, d.connectors) == ("default", ["stripe", "adyen", "checkout"])


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 99},
        {"amount": 500_001},
        {"brand": "amex"},
        {"brand": None},
        {"card_type": "credit"},
        {"card_type": None},
        {"bin": "52000000"},
        {"bin": None},
        {"country": "US"},
        {"merchant_id": "m_other"},
        {"metadata": {"channel": "app"}},
        {"metadata": None},
        {"now": WEDNESDAY_10AM + 8 * 3600},  # 18:00 local
        {"now": WEDNESDAY_10AM + 3 * 86400},  # Saturday
    ],
)
def test_every_condition_must_hold(impl, change):
    rules = impl.RuleSet(tomllib.loads(EXAMPLE))
    assert rules.evaluate(**{**EUR_DEBIT, **change}).rule == "default"


def test_bin_ranges_and_case_insensitive_codes(impl):
    rules = impl.RuleSet(tomllib.loads(EXAMPLE))
    hit = {
        **EUR_DEBIT,
        "bin": "51555555",
        "brand": "MasterCard",
        "currency": "eur",
        "country": "fr",
    }
    assert rules.evaluate(**hit).rule == "eur-debit-to-adyen"


def test_split_is_stable_per_payment_id_and_follows_weights(impl):
    rules = impl.RuleSet(tomllib.loads(EXAMPLE))
    firsts = Counter()
    for i in range(4000):
        d = rules.evaluate(currency="GBP", amount=100, payment_id=f"pay_{i}")
        assert d == rules.evaluate(currency="GBP", amount=100, payment_id=f"pay_{i}")
        assert sorted(d.connectors) == ["adyen", "stripe"]
        firsts[d.connectors[0]] += 1
    assert abs(firsts["adyen"] / 4000 - 0.7) < 0.03


def test_rust_and_reference_split_the_same_payment_the_same_way():
    rust, py = _core.RuleSet(tomllib.loads(EXAMPLE)), ref.RuleSet(tomllib.loads(EXAMPLE))
    for i in range(500):
        pid = f"pay_{i}_ü"
        a = rust.evaluate(currency="GBP", amount=1, payment_id=pid)
        b = py.evaluate(currency="GBP", amount=1, payment_id=pid)
        assert a.connectors == b.connectors


@pytest.mark.parametrize(
    ("mutate", "rule", "field"),
    [
        (
            lambda c: c["rules"][0]["when"].update(currncy=["EUR"]),
            "eur-debit-to-adyen",
            "when.currncy",
        ),
        (
            lambda c: c["rules"][0].update(then={"connector": ["a"]}),
            "eur-debit-to-adyen",
            "then.connector",
        ),
        (
            lambda c: c["rules"][0]["when"].update(amount={"min": 5, "max": 1}),
            "eur-debit-to-adyen",
            "when.amount",
        ),
        (
            lambda c: c["rules"][0]["when"].update(card_type=["gold"]),
            "eur-debit-to-adyen",
            "when.card_type",
        ),
        (lambda c: c["rules"][0]["when"].update(bin=["42-5"]), "eur-debit-to-adyen", "when.bin"),
        (
            lambda c: c["rules"][0]["when"]["time"].update(to="25:00"),
            "eur-debit-to-adyen",
            "when.time.to",
        ),
        (
            lambda c: c["rules"][0]["when"]["time"].update(days=["funday"]),
            "eur-debit-to-adyen",
            "when.time.days",
        ),
        (
            lambda c: c["rules"][0]["when"].update(currency="EUR"),
            "eur-debit-to-adyen",
            "when.currency",
        ),
        (
            lambda c: c["rules"][0]["when"].update(metadata={"channel": 1}),
            "eur-debit-to-adyen",
            "when.metadata.channel",
        ),
        (lambda c: c["rules"][1]["then"]["weights"].pop("stripe"), "gbp-split", "then.weights"),
        (lambda c: c["rules"][1]["then"].update(strategy="random"), "gbp-split", "then.strategy"),
        (lambda c: c["rules"][2].pop("name"), 2, "name"),
        (lambda c: c["rules"][2].update(name="gbp-split"), 2, "name"),
        (lambda c: c["rules"][2].update(priority="high"), "usd-dynamic", "priority"),
        (lambda c: c["default"].update(connectors=[]), "default", "default.connectors"),
        (lambda c: c.pop("default"), None, "default"),
        (lambda c: c.update(utc_offset_minutes=5000), None, "utc_offset_minutes"),
        (lambda c: c.update(rule=[]), None, "rule"),
    ],
)
def test_compile_errors_name_the_rule_and_the_field(impl, mutate, rule, field):
    config = tomllib.loads(EXAMPLE)
    mutate(config)
    with pytest.raises(impl.RuleError) as info:
        impl.RuleSet(config)
    assert isinstance(info.value, ValueError)
    assert (info.value.rule, info.value.field) == (rule, field)
    assert field in str(info.value)
    if rule is not None:
        assert str(rule) in str(info.value)


def test_bad_arguments_raise_clear_python_errors():
    rules = _core.RuleSet(tomllib.loads(EXAMPLE))
    with pytest.raises(TypeError):
        _core.RuleSet(["not", "a", "mapping"])
    with pytest.raises(TypeError):
        _core.RuleSet({1: "x"})
    with pytest.raises(ValueError, match="amount"):
        rules.evaluate(currency="EUR", amount=-1)
    with pytest.raises(ValueError, match="now"):
        rules.evaluate(currency="EUR", amount=1, now=float("nan"))
    with pytest.raises(TypeError):
        rules.evaluate(currency="EUR", amount=1.5)
    with pytest.raises(TypeError):
        rules.evaluate(currency="EUR", amount=1, metadata=["channel"])
    with pytest.raises(TypeError):
        rules.evaluate("EUR", 1)  # keyword-only
    cyclic: dict = {"rules": []}
    cyclic["rules"].append(cyclic)
    with pytest.raises(_core.RuleError):
        _core.RuleSet(cyclic)


def test_decisions_are_frozen_and_metadata_is_read_only_when_needed():
    rules = _core.RuleSet(
        {"rules": [{"name": "r", "then": {"connectors": ["a"]}}], "default": {"connectors": ["b"]}}
    )

    class Exploding(dict):
        def get(self, *a):
            raise AssertionError("metadata must not be read")

        def __getitem__(self, k):
            raise AssertionError("metadata must not be read")

    d = rules.evaluate(currency="EUR", amount=1, metadata=Exploding())
    assert d.rule == "r"
    with pytest.raises(AttributeError):
        d.rule = "x"  # type: ignore[misc]
    assert repr(d) == "RouteDecision(rule='r', strategy='priority', connectors=['a'])"
