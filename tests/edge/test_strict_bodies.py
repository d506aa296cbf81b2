"""Strict bodies over real sockets: repeated keys anywhere, a missing or wrong content type,
invalid UTF-8, and 405 with Allow. Nothing of a refused request is written."""

from __future__ import annotations

import sqlite3

import pytest

from tests.edge.conftest import payment_body

CARD = '{"card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}'


def _payments(db) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT COUNT(*) FROM payments").fetchone()[0]
    finally:
        conn.close()


async def _post(gw, path: str, data: bytes, ctype: str | None = "application/json"):
    headers = gw.auth()
    if ctype is not None:
        headers["Content-Type"] = ctype
    async with gw.session.post(gw.url + path, data=data, headers=headers) as r:
        return r.status, await r.json()


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            '{"amount": 1, "amount": 100000, "currency": "EUR", "payment_method": ' + CARD + "}",
            "amount",
        ),
        (
            (
                '{"amount": 1000, "currency": "EUR", "payment_method": {"card": {"number": '
                '"4242424242424242", "number": "4000000000000002", "exp_month": 12, "exp_year": 2034}}}'
            ),
            "payment_method.card.number",
        ),
        (
            '{"amount": 1000, "currency": "EUR", "metadata": {"k": "a", "k": "b"}, '
            '"payment_method": ' + CARD + "}",
            "metadata.k",
        ),
        (
            '{"\\u0061mount": 1, "amount": 1000, "currency": "EUR", "payment_method": '
            + CARD
            + "}",
            "amount",
        ),
    ],
)
async def test_duplicate_keys_anywhere_are_refused_naming_the_key(edge_gw, body, param):
    status, answer = await _post(edge_gw, "/v1/payments", body.encode())
    assert status == 400
    assert answer["error"]["code"] == "duplicate_key" and answer["error"]["param"] == param
    assert "4242424242424242" not in str(answer)
    assert _payments(edge_gw.db_path) == 0


@pytest.mark.parametrize(
    "ctype",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/octet-stream",
        "application/json; charset=latin-1",
    ],
)
async def test_json_endpoints_need_a_json_content_type(edge_gw, ctype):
    import json

    status, answer = await _post(
        edge_gw, "/v1/payments", json.dumps(payment_body()).encode(), ctype
    )
    assert status == 415 and answer["error"]["code"] == "unsupported_media_type"
    assert _payments(edge_gw.db_path) == 0


async def test_json_content_type_variants_are_accepted(edge_gw):
    import json

    for ctype in ("application/json; charset=utf-8", "application/merge-patch+json"):
        status, _ = await _post(edge_gw, "/v1/payments", json.dumps(payment_body()).encode(), ctype)
        assert status == 200, ctype


async def test_invalid_utf8_is_400(edge_gw):
    body = b'{"amount": 1000, "currency": "EUR", "reference": "\xff\xfe", "payment_method": ' + (
        CARD.encode() + b"}"
    )
    status, answer = await _post(edge_gw, "/v1/payments", body)
    assert status == 400 and answer["error"]["code"] == "invalid_utf8"


async def test_deep_nesting_is_400_not_a_crash(edge_gw):
    status, answer = await _post(edge_gw, "/v1/payments", b"[" * 5000)
    assert status == 400 and answer["error"]["code"] in ("invalid_json", "parameter_invalid")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/payments", {"GET", "HEAD", "POST"}),
        ("DELETE", "/v1/refunds", {"POST"}),
        ("POST", "/v1/payments/pay_x", {"GET", "HEAD"}),
    ],
)
async def test_405_carries_allow(edge_gw, method, path, allow):
    async with edge_gw.session.request(method, edge_gw.url + path, headers=edge_gw.auth()) as r:
        assert r.status == 405
        assert {m.strip() for m in r.headers["Allow"].split(",")} == allow
        assert (await r.json())["error"]["code"] == "method_not_allowed"
