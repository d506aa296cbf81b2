"""A failover policy installed the way a user would (a distribution on sys.path with an entry
point in `paymux.policies`), chosen by name in config, and used by the gateway."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from paymux.api.app import POLICY_ERRORS
from paymux.api.http import SERVICE
from paymux.failover.policy import DefaultPolicy
from paymux.failover.registry import load_policy

from tests.failover.helpers import events, payment_body, sandbox_patch
from tests.failover.test_cascade import STRIPE_REFUSES_MASTERCARD

POLICY = """
from paymux.failover.policy import DefaultPolicy, FailoverDecision


class PreferCheckout(DefaultPolicy):
    \"\"\"The default rules, but a cascade always goes to Checkout.com when it is left.\"\"\"

    name = "prefer_checkout"

    async def decide(self, status, decline_class, advice_code, context):
        decision = await super().decide(status, decline_class, advice_code, context)
        if decision.cascade and "checkout" in context.remaining_candidates:
            return FailoverDecision(cascade=True, next_connector="checkout",
                                    reason=f"prefer_checkout:{decline_class}")
        return decision
"""


def _distribution(root: Path, name: str, entry_points: str, source: str) -> None:
    (root / f"{name}.py").write_text(textwrap.dedent(source))
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture
def policy_plugins(tmp_path_factory, monkeypatch):
    root = tmp_path_factory.mktemp("plugins")
    _distribution(
        root,
        "prefer_checkout_policy",
        "[paymux.policies]\nprefer_checkout = prefer_checkout_policy:PreferCheckout\n",
        POLICY,
    )
    _distribution(
        root,
        "broken_policy",
        "[paymux.policies]\nbroken = broken_policy:Broken\n",
        'raise ImportError("broken on import: missing dependency")\n',
    )
    monkeypatch.syspath_prepend(str(root))
    yield root
    for mod in ("prefer_checkout_policy", "broken_policy"):
        sys.modules.pop(mod, None)


def test_policies_are_found_by_name(policy_plugins):
    policy, errors = load_policy("prefer_checkout")
    assert type(policy).__name__ == "PreferCheckout" and errors == []
    policy, errors = load_policy("default")
    assert type(policy) is DefaultPolicy and errors == []


def test_a_broken_or_missing_policy_falls_back_to_the_default(policy_plugins):
    policy, errors = load_policy("broken")
    assert type(policy) is DefaultPolicy
    assert len(errors) == 1 and "broken on import" in str(errors[0])
    policy, errors = load_policy("nope")
    assert type(policy) is DefaultPolicy and "no entry point" in str(errors[0])


@pytest.mark.gateway_config(payments={"failover_policy": "prefer_checkout"})
async def test_the_gateway_uses_the_configured_policy(policy_plugins, gw):
    assert type(gw.app[SERVICE].policy).__name__ == "PreferCheckout"
    await sandbox_patch(gw, STRIPE_REFUSES_MASTERCARD)
    status, pay = await gw.post("/v1/payments", payment_body("5555555555554444"))
    assert status == 200, pay
    assert [a["connector"] for a in pay["attempts"]] == ["stripe", "checkout"]
    assert pay["attempts"][0]["next_action"] == "prefer_checkout:soft_route"
    cascaded = [e for e in events(gw.db_path, pay["id"]) if e["type"] == "attempt.cascaded"]
    assert cascaded[0]["data"]["policy"] == "prefer_checkout"
    # A hard decline still stops: the plugin kept the default's rules.
    status, pay = await gw.post("/v1/payments", payment_body("4000000000009987"))
    assert status == 402 and len(pay["attempts"]) == 1


@pytest.mark.gateway_config(payments={"failover_policy": "broken"})
async def test_a_broken_policy_is_reported_and_payments_still_fail_over(policy_plugins, gw):
    assert type(gw.app[SERVICE].policy) is DefaultPolicy
    assert "broken on import" in gw.app[POLICY_ERRORS][0]
    assert "failover_policy_load_failed" in gw.log.getvalue()
    await sandbox_patch(gw, STRIPE_REFUSES_MASTERCARD)
    status, pay = await gw.post("/v1/payments", payment_body("5555555555554444"))
    assert status == 200 and [a["connector"] for a in pay["attempts"]] == ["stripe", "adyen"]
