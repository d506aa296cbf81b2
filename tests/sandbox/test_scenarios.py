"""Scenario-driven behaviour: shared issuer declines, determinism, outages, ambiguity, idempotency."""

from __future__ import annotations

import glob
import os
import random

import pytest
import requests
from paymux.sandbox import load_scenario
from paymux.sandbox.cards import luhn_ok
from paymux.sandbox.scenario import DEFAULT_CREDENTIALS

from tests.sandbox.sandbox_harness import running_sandbox

REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
STRIPE_KEY = DEFAULT_CREDENTIALS["stripe"]["api_key"]
ADYEN = DEFAULT_CREDENTIALS["adyen"]
CKO_KEY = DEFAULT_CREDENTIALS["checkout"]["api_key"]


def luhn_card(rng: random.Random, prefix: str = "4000") -> str:
    """A Luhn-valid test number (never a real card: generated under a test prefix)."""
    while True:
        body = prefix + "".join(rng.choice("0123456789") for _ in range(15 - len(prefix)))
        for check in "0123456789":
            if luhn_ok(body + check):
                return body + check


def pay_stripe(base, number, amount=1000, reference=None, psp="stripe", timeout=5.0, key=None):
    data = {"amount": amount, "currency": "eur", "confirm": "true",
            "payment_method_data[type]": "card", "payment_method_data[card][number]": number,
            "payment_method_data[card][exp_month]": "12", "payment_method_data[card][exp_year]": "2031"}  # fmt: skip
    if reference:
        data["metadata[paymux_reference]"] = reference
    headers = {"Authorization": f"Bearer {STRIPE_KEY}"}
    if key:
        headers["Idempotency-Key"] = key
    r = requests.post(
        f"{base}/{psp}/v1/payment_intents", data=data, headers=headers, timeout=timeout
    )
    body = r.json()
    if r.status_code == 200:
        return "approved"
    if r.status_code == 402:
        return body["error"].get("decline_code") or body["error"]["code"]
    return f"http_{r.status_code}"


STRIPE_NAMES = {"insufficient_funds": "insufficient_funds", "lost_card": "lost_card",
                "do_not_honor": "do_not_honor", "expired_card": "expired_card"}  # fmt: skip
ADYEN_NAMES = {"Not enough balance": "insufficient_funds", "Blocked Card": "lost_card",
               "Refused": "do_not_honor", "Expired Card": "expired_card"}  # fmt: skip
CKO_NAMES = {"20051": "insufficient_funds", "30041": "lost_card", "20005": "do_not_honor",
             "20054": "expired_card"}  # fmt: skip


def pay_adyen(base, number, amount=1000, reference="r", timeout=5.0):
    body = {"amount": {"value": amount, "currency": "EUR"}, "reference": reference,
            "merchantAccount": ADYEN["merchant_account"],
            "paymentMethod": {"type": "scheme", "number": number, "expiryMonth": "12",
                              "expiryYear": "2031"}}  # fmt: skip
    r = requests.post(f"{base}/adyen/v72/payments", json=body,
                      headers={"X-API-Key": ADYEN["api_key"]}, timeout=timeout).json()  # fmt: skip
    return (
        "approved"
        if r["resultCode"] == "Authorised"
        else ADYEN_NAMES.get(r["refusalReason"], r["refusalReason"])
    )


def pay_checkout(base, number, amount=1000, reference="r", psp="checkout", timeout=5.0, key=None):
    body = {"source": {"type": "card", "number": number, "expiry_month": 12, "expiry_year": 2031},
            "amount": amount, "currency": "EUR", "reference": reference}  # fmt: skip
    headers = {"Authorization": f"Bearer {CKO_KEY}"}
    if key:
        headers["Cko-Idempotency-Key"] = key
    r = requests.post(f"{base}/{psp}/payments", json=body, headers=headers, timeout=timeout)
    if r.status_code >= 500:
        return f"http_{r.status_code}"
    r = r.json()
    return "approved" if r["approved"] else CKO_NAMES.get(r["response_code"], r["response_code"])


ISSUER_HEAVY = {
    "issuer": {"moment_s": 3600, "default": {"decline_rate": 0.5, "declines": {
        "insufficient_funds": 0.5, "lost_card": 0.2, "do_not_honor": 0.2, "expired_card": 0.1}}},
}  # fmt: skip


def test_issuer_declines_are_the_same_at_every_psp_for_the_same_card_and_moment():
    rng = random.Random(1)
    numbers = [luhn_card(rng) for _ in range(40)]
    with running_sandbox(ISSUER_HEAVY, seed=99) as sb:
        outcomes = [
            (pay_stripe(sb.base, n), pay_adyen(sb.base, n), pay_checkout(sb.base, n))
            for n in numbers
        ]
    assert all(s == a == c for s, a, c in outcomes), outcomes
    assert {"approved", "insufficient_funds"} <= {s for s, _, _ in outcomes}


def test_psp_side_declines_are_drawn_per_psp():
    rng = random.Random(2)
    numbers = [luhn_card(rng) for _ in range(60)]
    acquirer_only = {"psps": {w: {"wire": w, "default": {"approval_rate": 0.5}}
                              for w in ("stripe", "adyen", "checkout")}}  # fmt: skip
    with running_sandbox(acquirer_only, seed=5) as sb:
        outcomes = [(pay_stripe(sb.base, n), pay_checkout(sb.base, n)) for n in numbers]
    assert any(s != c for s, c in outcomes)


def run_sequence(seed: int) -> list[str]:
    rng = random.Random(3)
    numbers = [luhn_card(rng) for _ in range(30)]
    scenario = {**ISSUER_HEAVY, "psps": {"stripe": {"wire": "stripe", "default": {
        "approval_rate": 0.7, "error_rate": 0.1}}}}  # fmt: skip
    with running_sandbox(scenario, seed=seed) as sb:
        return [pay_stripe(sb.base, n) for n in numbers]


def test_the_same_seed_gives_the_same_outcomes_and_another_seed_does_not():
    first, again, other = run_sequence(7), run_sequence(7), run_sequence(8)
    assert first == again
    assert first != other
    assert {"approved", "http_500"} <= set(first)


def test_outage_window_fails_requests_inside_it_and_not_after():
    scenario = {"psps": {"stripe": {"wire": "stripe", "outages": [
        {"start_s": 0, "end_s": 0.6, "error_rate": 1.0, "kind": "error"}]}}}  # fmt: skip
    with running_sandbox(scenario) as sb:
        during = pay_stripe(sb.base, "4242424242424242")
        import time

        time.sleep(0.7)
        after = pay_stripe(sb.base, "4242424242424242")
        ledger = sb.ledger("stripe")["psps"]["stripe"]
    assert (during, after) == ("http_500", "approved")
    assert ledger["stats"]["outage_failures"] == 1 and len(ledger["payments"]) == 1


def test_an_outage_started_live_takes_a_psp_down_until_cleared(sandbox):
    sandbox.admin("/_sandbox/outage", {"psp": "checkout", "error_rate": 1.0})
    assert pay_checkout(sandbox.base, "4242424242424242") == "http_502"
    assert pay_stripe(sandbox.base, "4242424242424242") == "approved"
    sandbox.admin("/_sandbox/outage", {"psp": "checkout", "clear": True})
    assert pay_checkout(sandbox.base, "4242424242424242") == "approved"


def test_a_timeout_means_the_psp_did_authorize_and_the_ledger_shows_it():
    scenario = {"psps": {"checkout": {"wire": "checkout", "default": {
        "timeout_rate": 1.0, "timeout_ms": 1000}}}}  # fmt: skip
    with running_sandbox(scenario) as sb:
        with pytest.raises(requests.Timeout):
            pay_checkout(sb.base, "4242424242424242", reference="att-timeout", timeout=0.3)
        found = sb.ledger("checkout", reference="att-timeout")["psps"]["checkout"]["payments"]
        assert [(p["status"], p["delivery"], p["authorized"]) for p in found] == [
            ("captured", "timeout", 1000)]  # fmt: skip
        # ... and the PSP answers a lookup by our reference, as a connector's sync would ask.
        listed = requests.get(sb.url("/checkout/payments"), params={"reference": "att-timeout"},
                              headers={"Authorization": f"Bearer {CKO_KEY}"}).json()  # fmt: skip
        assert listed["total_count"] == 1 and listed["data"][0]["approved"] is True


def test_a_connection_reset_after_authorizing_leaves_the_authorization_in_the_ledger():
    scenario = {"psps": {"stripe": {"wire": "stripe", "default": {"reset_rate": 1.0}}}}
    with running_sandbox(scenario) as sb:
        with pytest.raises(requests.ConnectionError):
            pay_stripe(sb.base, "4242424242424242", reference="att-reset")
        payments = sb.payments("stripe")
    assert [(p["reference"], p["delivery"], p["authorized"]) for p in payments] == [
        ("att-reset", "reset", 1000)]  # fmt: skip


def test_retrying_a_timed_out_request_with_its_idempotency_key_authorizes_once():
    scenario = {"psps": {"checkout": {"wire": "checkout", "default": {
        "timeout_rate": 1.0, "timeout_ms": 1000}}}}  # fmt: skip
    with running_sandbox(scenario) as sb:
        with pytest.raises(requests.Timeout):
            pay_checkout(sb.base, "4242424242424242", key="attempt-1", timeout=0.3)
        # The retry is replayed from the idempotency store: the same answer, no second auth.
        assert pay_checkout(sb.base, "4242424242424242", key="attempt-1") == "approved"
        ledger = sb.ledger("checkout")["psps"]["checkout"]
    assert len(ledger["payments"]) == 1
    assert ledger["stats"]["authorized"] == 1 and ledger["stats"]["idempotent_replays"] == 1


def test_segments_apply_by_amount_band_and_brand():
    scenario = {"psps": {"stripe": {"wire": "stripe", "segments": [
        {"match": {"amount_min": 100_000}, "approval_rate": 0.0, "declines": {"do_not_honor": 1}},
        {"match": {"brand": ["mastercard"]}, "approval_rate": 0.0,
         "declines": {"card_velocity_exceeded": 1}}]}}}  # fmt: skip
    with running_sandbox(scenario) as sb:
        assert pay_stripe(sb.base, "4242424242424242", amount=150_000) == "do_not_honor"
        assert pay_stripe(sb.base, "4242424242424242", amount=1_000) == "approved"
        assert pay_stripe(sb.base, "5555555555554444") == "card_velocity_exceeded"


def test_a_scenario_patch_changes_behaviour_live_and_reset_forgets_everything(sandbox):
    sandbox.admin("/_sandbox/scenario", {"psps": {"stripe": {"default": {"approval_rate": 0.0}}}})
    assert pay_stripe(sandbox.base, "4242424242424242") in ("do_not_honor", "generic_decline")
    bad = requests.post(sandbox.url("/_sandbox/scenario"),
                        json={"psps": {"stripe": {"default": {"approval_rate": 2}}}})  # fmt: skip
    assert bad.status_code == 400
    sandbox.admin("/_sandbox/reset", {"seed": 4})
    ledger = sandbox.ledger()
    assert ledger["seed"] == 4 and all(not p["payments"] for p in ledger["psps"].values())


def test_three_ds_challenge_is_completed_on_the_sandbox_page():
    scenario = {"psps": {"adyen": {"wire": "adyen", "default": {"challenge_rate": 1.0}}}}
    with running_sandbox(scenario) as sb:
        body = {"amount": {"value": 500, "currency": "EUR"}, "reference": "r3ds",
                "merchantAccount": ADYEN["merchant_account"], "returnUrl": "https://shop.example/back",
                "paymentMethod": {"type": "scheme", "number": "4242424242424242",
                                  "expiryMonth": "12", "expiryYear": "2031"}}  # fmt: skip
        first = requests.post(sb.url("/adyen/v72/payments"), json=body,
                              headers={"X-API-Key": ADYEN["api_key"]}).json()  # fmt: skip
        assert first["resultCode"] == "RedirectShopper"
        page = requests.get(first["action"]["url"], allow_redirects=False)
        assert page.status_code == 302 and "redirectResult=" in page.headers["Location"]
        assert sb.payments("adyen")[0]["status"] == "captured"


def test_the_ledger_never_holds_a_full_card_number(sandbox):
    pay_stripe(sandbox.base, "4242424242424242")
    pay_checkout(sandbox.base, "4000000000009995")
    text = requests.get(sandbox.url("/_sandbox/ledger")).text
    assert "4242424242424242" not in text and "4000000000009995" not in text
    assert "424242******4242" in text


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "examples/scenarios/*.toml"))))
def test_every_example_scenario_loads(path):
    scenario = load_scenario(path)
    assert scenario.psps


def test_an_unknown_decline_name_is_rejected_when_loading(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(
        '[psps.s]\nwire = "stripe"\n[psps.s.default]\ndeclines = { "Not A Code" = 1 }\n'
    )
    with pytest.raises(ValueError):
        load_scenario(path)


@pytest.mark.parametrize(
    "pan,country",
    [
        ("4000000760000002", "BR"),
        ("4000001240000000", "CA"),
        ("4000004840008001", "MX"),
    ],
)
def test_stripe_country_test_cards_resolve_to_their_issuer_country(pan, country):
    from paymux.sandbox.cards import issuer_country

    assert issuer_country(pan, {}, "US") == country
