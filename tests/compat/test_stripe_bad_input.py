"""Bad input at the Stripe front, over raw HTTP: Stripe's 4xx error objects naming the
parameter, never a 5xx, nothing stored half-way."""

from __future__ import annotations

import requests

from tests.compat.harness import Running


def post(gw: Running, path: str, body: bytes | str, **headers: str) -> requests.Response:
    h = {"Authorization": f"Bearer {gw.keys['m_alpha']}",
         "Content-Type": "application/x-www-form-urlencoded", **headers}  # fmt: skip
    return requests.post(gw.url + "/compat/stripe/v1" + path, data=body, headers=h, timeout=10)


def error(r: requests.Response) -> dict:
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    return r.json()["error"]


def test_malformed_and_too_deep_forms(gw):
    e = error(post(gw, "/payment_intents", "amount=10%zz&currency=eur"))
    assert e["type"] == "invalid_request_error" and e["code"] == "parameter_invalid"
    e = error(post(gw, "/payment_intents", "amount=100&currency=eur&metadata[a][b][c][d][e]=1"))
    assert "nested too deeply" in e["message"]
    e = error(post(gw, "/payment_intents", "amount=100&currency=eur&metadata[a=1"))
    assert e["code"] == "parameter_invalid"
    e = error(post(gw, "/payment_intents", "amount=abc&currency=eur"))
    assert (e["code"], e["param"]) == ("parameter_invalid_integer", "amount")
    e = error(post(gw, "/payment_intents", "currency=eur"))
    assert (e["code"], e["param"]) == ("parameter_missing", "amount")
    e = error(post(gw, "/payment_intents", "amount=100&currency=eur&amount=200"))
    assert e["param"] == "amount"
    e = error(post(gw, "/payment_intents", b"amount=100&currency=\xff"))
    assert e["code"] == "parameter_invalid"
    r = requests.get(gw.url + "/compat/stripe/v1/payment_intents",
                     headers={"Authorization": f"Bearer {gw.keys['m_alpha']}"}, timeout=5)  # fmt: skip
    assert r.json()["data"] == []  # nothing was stored


def test_oversized_body_and_json_body(gw):
    r = post(gw, "/payment_intents", "amount=100&currency=eur&description=" + "x" * 70_000)
    assert r.status_code == 413
    e = error(post(gw, "/payment_intents", '{"amount": 1}', **{"Content-Type": "application/json"}))
    assert e["code"] == "invalid_content_type"


def test_unknown_intent_and_bad_card(gw):
    r = requests.get(gw.url + "/compat/stripe/v1/payment_intents/pi_nothere",
                     headers={"Authorization": f"Bearer {gw.keys['m_alpha']}"}, timeout=5)  # fmt: skip
    e = error(r)
    assert r.status_code == 404 and e["code"] == "resource_missing" and e["param"] == "intent"
    r = post(
        gw,
        "/payment_intents",
        "amount=100&currency=eur&confirm=true"
        "&payment_method_data[type]=card&payment_method_data[card][number]=4242424242424241"
        "&payment_method_data[card][exp_month]=12&payment_method_data[card][exp_year]=2034",
    )
    e = error(r)
    assert r.status_code == 402 and e["type"] == "card_error" and e["code"] == "incorrect_number"
    assert "4242424242424241" not in r.text


def test_missing_key_is_stripes_authentication_error(gw):
    r = requests.get(gw.url + "/compat/stripe/v1/payment_intents", timeout=5)
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
