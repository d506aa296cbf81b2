"""Property tests: the Rust RuleSet and the pure-Python reference agree on random rule sets,
random payments and random broken configs."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paymux import _core
from paymux.reference import rules as ref

CURRENCIES = ["EUR", "USD", "GBP", "JPY", "eur"]
BRANDS = ["visa", "mastercard", "amex", "Visa"]
CARD_TYPES = ["credit", "debit", "prepaid"]
COUNTRIES = ["DE", "FR", "US", "gb"]
MERCHANTS = ["m1", "m2", "m3"]
CONNECTORS = ["stripe", "adyen", "checkout", "worldpay"]
META_KEYS = ["channel", "tier"]
META_VALUES = ["web", "app", "gold"]
BINS = ["4", "42", "424242", "51", "510000-519999", "2221-2720", "4000-4999"]
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def subset(pool):
    return st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True)


hhmm = st.builds(
    lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 59])
)


@st.composite
def time_window(draw):
    out = {}
    if draw(st.booleans()):
        out["days"] = draw(subset(DAYS))
    if draw(st.booleans()):
        frm, to = draw(hhmm), draw(hhmm)
        if frm == to:
            to = "24:00" if frm != "00:00" else "12:00"
        out["from"], out["to"] = frm, to
    return out or {"days": ["mon"]}


@st.composite
def amount_range(draw):
    lo = draw(st.none() | st.integers(0, 50_000))
    hi = draw(st.none() | st.integers(0, 100_000))
    if lo is None and hi is None:
        lo = 0
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    return {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}


conditions = st.fixed_dictionaries(
    {},
    optional={
        "currency": subset(CURRENCIES),
        "amount": amount_range(),
        "brand": subset(BRANDS),
        "card_type": subset(CARD_TYPES),
        "bin": subset(BINS),
        "country": subset(COUNTRIES),
        "merchant": subset(MERCHANTS),
        "metadata": st.dictionaries(
            st.sampled_from(META_KEYS), st.sampled_from(META_VALUES), min_size=1
        ),
        "time": time_window(),
    },
)


@st.composite
def action(draw):
    strategy = draw(st.sampled_from(["priority", "split", "dynamic"]))
    connectors = draw(st.lists(st.sampled_from(CONNECTORS), min_size=1, max_size=4, unique=True))
    if strategy != "split":
        return {"strategy": strategy, "connectors": connectors}
    weights = {c: draw(st.integers(0, 100)) for c in connectors}
    if sum(weights.values()) == 0:
        weights[connectors[0]] = 1
    out = {"strategy": "split", "weights": weights}
    if draw(st.booleans()):
        out["connectors"] = list(reversed(connectors))
    return out


@st.composite
def rule_sets(draw):
    n = draw(st.integers(0, 12))
    rules = []
    for i in range(n):
        rule = {"name": f"r{i}", "then": draw(action())}
        if draw(st.booleans()):
            rule["priority"] = draw(st.integers(-3, 3))
        when = draw(conditions)
        if when or draw(st.booleans()):
            rule["when"] = when
        rules.append(rule)
    config = {"rules": rules, "default": draw(action())}
    if draw(st.booleans()):
        config["utc_offset_minutes"] = draw(st.integers(-720, 840))
    return config


payments = st.fixed_dictionaries(
    {
        "currency": st.sampled_from(CURRENCIES + ["usd", "CHF"]),
        "amount": st.integers(0, 120_000),
        "brand": st.none() | st.sampled_from(BRANDS + ["VISA", "discover"]),
        "card_type": st.none() | st.sampled_from(CARD_TYPES + ["Debit", "unknown"]),
        "bin": st.none()
        | st.sampled_from(
            ["424242", "42424242", "4000", "510000", "519999", "52", "2500", "27209999", "3"]
        ),
        "country": st.none() | st.sampled_from(COUNTRIES + ["fr", "GB", "JP"]),
        "merchant_id": st.none() | st.sampled_from(MERCHANTS + ["m9"]),
        "metadata": st.none()
        | st.dictionaries(st.sampled_from(META_KEYS), st.sampled_from(META_VALUES)),
        "now": st.floats(0, 4e9, allow_nan=False) | st.integers(0, 4_000_000_000).map(float),
        "payment_id": st.text(max_size=12),
    }
)


def decision(d):
    return (d.rule, d.strategy, list(d.connectors))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=rule_sets(), batch=st.lists(payments, min_size=1, max_size=15))
def test_rust_and_reference_route_every_payment_the_same_way(config, batch):
    rust = _core.RuleSet(config)
    py = ref.RuleSet(config)
    assert rust.rule_count == py.rule_count
    assert rust.rule_names() == py.rule_names()
    assert rust.connector_names() == py.connector_names()
    for p in batch:
        assert decision(rust.evaluate(**p)) == decision(py.evaluate(**p)), p


BREAKAGES = [
    ("rules", 0, "when", "currency", ["EURO"]),
    ("rules", 0, "when", "colour", ["red"]),
    ("rules", 0, "when", "amount", {"min": "1"}),
    ("rules", 0, "when", "bin", ["12a"]),
    ("rules", 0, "when", "time", {"from": "9:00", "to": "10:00"}),
    ("rules", 0, "when", "time", {"from": "09:00"}),
    ("rules", 0, "when", "country", []),
    ("rules", 0, "then", "strategy", 3),
    ("rules", 0, "then", "weights", {"a": -1}),
    ("rules", 0, "then", "connectors", ["a", "a"]),
    ("rules", 0, "priority", None, 1.5),
    ("rules", 0, "name", None, ""),
    ("rules", 0, "name", None, "default"),
    ("default", None, "connectors", None, "stripe"),
    ("utc_offset_minutes", None, None, None, True),
]


@settings(max_examples=150, deadline=None)
@given(config=rule_sets(), breakage=st.sampled_from(BREAKAGES))
def test_rust_and_reference_reject_broken_configs_naming_the_same_rule_and_field(config, breakage):
    config = copy.deepcopy(config)
    top, index, key, sub, value = breakage
    if top == "rules":
        if not config["rules"]:
            config["rules"].append({"name": "only", "then": {"connectors": ["a"]}})
        target = config["rules"][index]
        if sub is None:
            target[key] = value
        else:
            target.setdefault(key, {})[sub] = value
    elif top == "default":
        config["default"] = {key: value}
    else:
        config[top] = value
    errors = []
    for impl in (_core, ref):
        try:
            impl.RuleSet(config)
            errors.append(None)
        except impl.RuleError as e:
            errors.append((e.rule, e.field))
    assert errors[0] == errors[1]
    assert errors[0] is not None
