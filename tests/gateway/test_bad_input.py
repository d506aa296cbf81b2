"""Every malformed request gets a 4xx with a machine-readable error and writes nothing."""

from __future__ import annotations

import sqlite3

import pytest

from tests.gateway.conftest import card


def _count_rows(db) -> dict[str, int]:
    conn = sqlite3.connect(db)
    try:
        return {
            t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("payments", "attempts", "tokens", "refunds", "events")
        }
    finally:
        conn.close()


VALID = {"amount": 1000, "currency": "EUR", "payment_method": card()}

BAD_BODIES = [
    ({**VALID, "amount": -5}, "parameter_invalid", "amount"),
    ({**VALID, "amount": 0}, "parameter_invalid", "amount"),
    ({**VALID, "amount": 10.5}, "parameter_invalid", "amount"),
    ({**VALID, "amount": "1000"}, "parameter_invalid", "amount"),
    ({**VALID, "amount": True}, "parameter_invalid", "amount"),
    ({**VALID, "amount": 10**30}, "parameter_invalid", "amount"),
    ({**VALID, "currency": "XYZ"}, "invalid_currency", "currency"),
    ({**VALID, "currency": "eur"}, "parameter_invalid", "currency"),
    ({k: v for k, v in VALID.items() if k != "amount"}, "parameter_missing", "amount"),
    ({**VALID, "surprise": 1}, "parameter_unknown", "surprise"),
    ({**VALID, "capture_method": "later"}, "parameter_invalid", "capture_method"),
    ({**VALID, "payment_method": {}}, "parameter_invalid", "payment_method"),
    (
        {**VALID, "payment_method": {"card": {**card()["card"], "number": "4242424242424241"}}},
        "invalid_number",
        "payment_method.card.number",
    ),
    (
        {**VALID, "payment_method": {"card": {**card()["card"], "exp_year": 2001}}},
        "expired_card",
        "payment_method.card.number",
    ),
    (
        {**VALID, "payment_method": {"card": {**card()["card"], "exp_month": 13}}},
        "parameter_invalid",
        "payment_method.card.exp_month",
    ),
    (
        {**VALID, "payment_method": {"card": {**card()["card"], "cvc": "12a"}}},
        "parameter_invalid",
        "payment_method.card.cvc",
    ),
    ({**VALID, "metadata": {"k": {"nested": "x"}}}, "parameter_invalid", "metadata"),
    ({**VALID, "connector": "nope"}, "unknown_connector", "connector"),
    (
        {**VALID, "payment_method": {"token": "tok_doesnotexist"}},
        "resource_missing",
        "payment_method.token",
    ),
]


@pytest.mark.parametrize("body,code,param", BAD_BODIES)
async def test_malformed_payment_is_rejected_with_code_and_param(gateway, body, code, param):
    before = _count_rows(gateway.db_path)
    status, err = await gateway.post("/v1/payments", body)
    assert 400 <= status < 500, err
    assert err["error"]["code"] == code
    assert err["error"]["param"] == param
    assert set(err["error"]) >= {"type", "code", "message"}
    assert _count_rows(gateway.db_path) == before


RAW_BODIES = [
    (b"", "application/json", 400, "body_missing"),
    (b"{not json", "application/json", 400, "invalid_json"),
    (b'{"amount": 1', "application/json", 400, "invalid_json"),
    (b"[]", "application/json", 400, "parameter_invalid"),
    (b'{"amount": 1000}', "text/plain", 415, "unsupported_media_type"),
    (b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "application/json", 413, "body_too_large"),
    (b'{"x":' + b"[" * 5000 + b"]" * 5000 + b"}", "application/json", 400, "parameter_unknown"),
]


@pytest.mark.parametrize("raw,ctype,status,code", RAW_BODIES)
async def test_unparseable_bodies_get_clear_errors(gateway, raw, ctype, status, code):
    headers = {**gateway.headers(), "Content-Type": ctype}
    async with gateway.session.post(gateway.url + "/v1/payments", data=raw, headers=headers) as r:
        assert r.status == status
        err = await r.json()
    assert err["error"]["code"] == code
    assert "Traceback" not in str(err)


@pytest.mark.parametrize(
    "header,code",
    [
        (None, "api_key_missing"),
        ("Bearer sk_test_wrong", "api_key_invalid"),
        ("Basic Zm9vOmJhcg==", "api_key_missing"),
    ],
)
async def test_missing_or_wrong_key_is_401(gateway, header, code):
    headers = {} if header is None else {"Authorization": header}
    async with gateway.session.post(gateway.url + "/v1/payments", json=VALID, headers=headers) as r:
        assert r.status == 401
        assert (await r.json())["error"]["code"] == code


async def test_unknown_route_and_wrong_method_are_json_errors(gateway):
    async with gateway.session.get(gateway.url + "/v1/nothing", headers=gateway.headers()) as r:
        assert r.status == 404 and (await r.json())["error"]["code"] == "route_not_found"
    async with gateway.session.put(gateway.url + "/v1/payments", headers=gateway.headers()) as r:
        assert r.status == 405 and (await r.json())["error"]["code"] == "method_not_allowed"


async def test_idempotency_key_too_long_is_rejected(gateway):
    status, err = await gateway.post("/v1/payments", VALID, idem="k" * 300)
    assert status == 400 and err["error"]["code"] == "idempotency_key_invalid"
