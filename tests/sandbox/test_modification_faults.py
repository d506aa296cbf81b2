"""`[psps.<name>.modifications]`: validation, defaults, and what each fault does on the wire and
in the ledger, driven by the official SDKs' transport (plain HTTP here) over real sockets."""

from __future__ import annotations

import msgspec
import pytest
import requests
import stripe
from paymux.sandbox.scenario import (
    DEFAULT_CREDENTIALS,
    Modifications,
    compile_scenario,
    load_scenario,
    scenario_from_dict,
)

from tests.sandbox.sandbox_harness import running_sandbox

STRIPE_KEY = DEFAULT_CREDENTIALS["stripe"]["api_key"]
AUTH = {"Authorization": f"Bearer {STRIPE_KEY}"}


def stripe_client(sb):
    return stripe.StripeClient(
        STRIPE_KEY, base_addresses={"api": sb.url("/stripe")}, max_network_retries=0
    )


def manual_intent(client, amount=5000):
    return client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "eur",
            "confirm": True,
            "capture_method": "manual",
            "payment_method": "pm_card_visa",
        }
    )


def with_faults(**modifications):
    return {"psps": {"stripe": {"wire": "stripe", "modifications": modifications}}}


@pytest.mark.parametrize(
    "modifications",
    [
        {"error_rate": 1.5},
        {"garbage_rate": -0.1},
        {"error_rate": 0.6, "timeout_rate": 0.5},
        {"timeout_ms": -1},
        {"operations": ["chargeback"]},
        {"garbage": "binary"},
        {"unknown_key": 1},
    ],
)
def test_bad_modification_faults_are_rejected(modifications, tmp_path):
    with pytest.raises((ValueError, msgspec.ValidationError)):
        compile_scenario(scenario_from_dict(with_faults(**modifications)))


def test_bad_modification_faults_are_rejected_when_loading_a_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[psps.s]\nwire = "stripe"\n[psps.s.modifications]\nreset_rate = 2\n')
    with pytest.raises(ValueError, match="reset_rate"):
        load_scenario(path)


def test_a_live_patch_with_bad_faults_is_a_400_and_changes_nothing(sandbox):
    bad = requests.post(
        sandbox.url("/_sandbox/scenario"),
        json={"psps": {"stripe": {"modifications": {"error_rate": 0.7, "reset_rate": 0.7}}}},
        timeout=5,
    )
    assert bad.status_code == 400 and "sum" in bad.text
    assert (
        "modifications"
        not in requests.get(sandbox.url("/_sandbox/scenario")).json()["psps"]["stripe"]
    )


def test_defaults_are_zero_and_leave_the_scenario_as_it_was():
    assert msgspec.to_builtins(Modifications()) == {}
    compiled = compile_scenario(scenario_from_dict({}))
    assert all(not p.modifications.bounds for p in compiled.psps.values())
    assert "modifications" not in msgspec.to_builtins(scenario_from_dict({}))["psps"]["stripe"]


def test_timeout_and_mode_inherit_the_psp_default():
    compiled = compile_scenario(
        scenario_from_dict(
            {
                "psps": {
                    "stripe": {
                        "wire": "stripe",
                        "default": {"timeout_ms": 1234, "timeout_mode": "drop"},
                        "modifications": {"timeout_rate": 0.5},
                    }
                }
            }
        )
    )
    m = compiled.psps["stripe"].modifications
    assert (m.timeout_s, m.timeout_mode) == (1.234, "drop")


def test_rates_are_shares_of_modifications_and_deterministic_for_a_seed():
    def run(seed):
        scenario = with_faults(error_rate=0.25, error_after_apply_rate=0.25, garbage_rate=0.25)
        with running_sandbox(scenario, seed=seed) as sb:
            client = stripe_client(sb)
            codes = []
            for _ in range(40):
                pi = manual_intent(client)
                r = requests.post(
                    sb.url(f"/stripe/v1/payment_intents/{pi.id}/capture"), headers=AUTH, timeout=5
                )
                codes.append((r.status_code, r.headers.get("Content-Type", "").split(";")[0]))
            stats = sb.ledger("stripe")["psps"]["stripe"]["stats"]
        return codes, stats

    codes, stats = run(3)
    assert run(3)[0] == codes
    faults = (
        stats["modification_errors"],
        stats["modification_errors_after_apply"],
        stats["modification_garbage"],
    )
    assert all(f > 2 for f in faults), stats
    assert stats["captures"] == 40 - stats["modification_errors"]  # a 5xx before applying only
    assert stats["errors"] == 0 and stats["timeouts"] == 0  # authorization counters untouched


def test_error_before_applying_is_not_kept_under_the_key_and_a_retry_applies(sandbox):
    client = stripe_client(sandbox)
    pi = manual_intent(client)
    sandbox.admin("/_sandbox/scenario", {"psps": {"stripe": {"modifications": {"error_rate": 1}}}})
    url = sandbox.url(f"/stripe/v1/payment_intents/{pi.id}/capture")
    headers = {**AUTH, "Idempotency-Key": "cap-1"}
    first = requests.post(url, data={"amount_to_capture": "3000"}, headers=headers, timeout=5)
    assert first.status_code == 500 and first.json()["error"]["type"] == "api_error"
    assert sandbox.payments("stripe")[0]["captured"] == 0
    sandbox.admin("/_sandbox/scenario", {"psps": {"stripe": {"modifications": {"error_rate": 0}}}})
    retry = requests.post(url, data={"amount_to_capture": "3000"}, headers=headers, timeout=5)
    assert retry.status_code == 200 and retry.json()["amount_received"] == 3000
    assert "Idempotent-Replayed" not in retry.headers
    assert sandbox.payments("stripe")[0]["captured"] == 3000


@pytest.mark.parametrize(
    ("faults", "check"),
    [
        ({"error_after_apply_rate": 1}, lambda r: r.status_code == 500),
        (
            {"garbage_rate": 1, "garbage": "html"},
            lambda r: r.status_code == 200 and r.text.startswith("<html>"),
        ),
        (
            {"garbage_rate": 1, "garbage": "truncated"},
            lambda r: r.status_code == 200 and r.text.startswith("{") and not r.text.endswith("}"),
        ),
        ({"garbage_rate": 1, "garbage": "empty"}, lambda r: r.status_code == 200 and not r.text),
    ],
    ids=["error-after-apply", "html", "truncated", "empty"],
)
def test_a_fault_after_applying_keeps_the_real_answer_under_the_key(sandbox, faults, check):
    client = stripe_client(sandbox)
    pi = manual_intent(client)
    sandbox.admin("/_sandbox/scenario", {"psps": {"stripe": {"modifications": faults}}})
    url = sandbox.url(f"/stripe/v1/payment_intents/{pi.id}/capture")
    headers = {**AUTH, "Idempotency-Key": "cap-2"}
    first = requests.post(url, data={"amount_to_capture": "2000"}, headers=headers, timeout=5)
    assert check(first), first.text
    assert sandbox.payments("stripe")[0]["captured"] == 2000  # applied all the same
    retry = requests.post(url, data={"amount_to_capture": "2000"}, headers=headers, timeout=5)
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["status"] == "succeeded" and retry.json()["amount_received"] == 2000
    assert sandbox.payments("stripe")[0]["captured"] == 2000  # once


def test_timeout_and_reset_after_applying_are_in_the_ledger():
    scenario = {
        "psps": {
            "checkout": {
                "wire": "checkout",
                "modifications": {"timeout_rate": 1.0, "timeout_ms": 800, "operations": ["void"]},
            }
        }
    }
    key = DEFAULT_CREDENTIALS["checkout"]["api_key"]
    headers = {"Authorization": f"Bearer {key}"}
    with running_sandbox(scenario) as sb:
        body = {
            "source": {
                "type": "card",
                "number": "4242424242424242",
                "expiry_month": 12,
                "expiry_year": 2031,
            },
            "amount": 900,
            "currency": "EUR",
            "reference": "att-v",
            "capture": False,
        }
        pay = requests.post(sb.url("/checkout/payments"), json=body, headers=headers).json()
        with pytest.raises(requests.Timeout):
            requests.post(
                sb.url(f"/checkout/payments/{pay['id']}/voids"),
                json={"reference": "void-1"},
                headers=headers,
                timeout=0.3,
            )
        (p,) = sb.payments("checkout")
        assert (p["voided"], p["voided_amount"], p["status"]) == (True, 900, "voided")
        (void,) = [e for e in p["events"] if e["type"] == "void"]
        assert (void["delivery"], void["reference"]) == ("timeout", "void-1")
        actions = requests.get(
            sb.url(f"/checkout/payments/{pay['id']}/actions"), headers=headers
        ).json()
        newest = actions[0]
        assert (newest["type"], newest.get("reference"), newest["approved"]) == (
            "Void",
            "void-1",
            True,
        )
        totals = sb.ledger("checkout")["psps"]["checkout"]["totals"]
        assert totals == {"authorized": 900, "captured": 0, "refunded": 0, "voided": 900}


def test_stripe_refund_list_with_the_sdk_filters_by_intent_keeps_metadata_and_pages(sandbox):
    client = stripe_client(sandbox)
    pi = client.v1.payment_intents.create(
        params={
            "amount": 3000,
            "currency": "eur",
            "confirm": True,
            "payment_method": "pm_card_visa",
        }
    )
    other = client.v1.payment_intents.create(
        params={
            "amount": 3000,
            "currency": "eur",
            "confirm": True,
            "payment_method": "pm_card_visa",
        }
    )
    made = [
        client.v1.refunds.create(
            params={
                "payment_intent": pi.id,
                "amount": 500 + i,
                "metadata": {"paymux_reference": f"ref-{i}"},
            }
        )
        for i in range(3)
    ]
    client.v1.refunds.create(params={"payment_intent": other.id, "amount": 100})
    listed = client.v1.refunds.list(params={"payment_intent": pi.id, "limit": 2})
    assert listed.object == "list" and listed.url == "/v1/refunds" and listed.has_more is True
    assert [r.id for r in listed.data] == [made[2].id, made[1].id]  # newest first
    assert listed.data[0].metadata["paymux_reference"] == "ref-2"
    rest = client.v1.refunds.list(
        params={"payment_intent": pi.id, "limit": 2, "starting_after": made[1].id}
    )
    assert [r.id for r in rest.data] == [made[0].id] and rest.has_more is False
    everything = [
        r.id for r in client.v1.refunds.list(params={"payment_intent": pi.id}).auto_paging_iter()
    ]
    assert everything == [m.id for m in reversed(made)]
    assert client.v1.refunds.retrieve(made[0].id).metadata["paymux_reference"] == "ref-0"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.list(params={"payment_intent": "pi_nope"})
    ledger = next(p for p in sandbox.payments("stripe") if p["id"] == pi.id)
    assert (ledger["captured"], ledger["refunded"]) == (3000, 1503)
    refunds = [e for e in ledger["events"] if e["type"] == "refund"]
    assert [e["metadata"]["paymux_reference"] for e in refunds] == ["ref-0", "ref-1", "ref-2"]


def test_the_ledger_after_a_reset_forgets_refunds_too(sandbox):
    client = stripe_client(sandbox)
    pi = client.v1.payment_intents.create(
        params={
            "amount": 3000,
            "currency": "eur",
            "confirm": True,
            "payment_method": "pm_card_visa",
        }
    )
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 500})
    sandbox.admin("/_sandbox/reset")
    r = requests.get(sandbox.url(f"/stripe/v1/refunds/{refund.id}"), headers=AUTH, timeout=5)
    assert r.status_code == 404
