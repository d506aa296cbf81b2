"""The inbound tokenizing route: a real merchant backend (aiohttp) on loopback behind paymux.
The checkout page's card fields reach it as paymux tokens only, and paying with them succeeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
from aiohttp import web

from tests.compat.harness import running_gateway
from tests.gateway.conftest import free_port

PAN = "4242424242424242"
ORIGIN = "https://shop.example"


def backend() -> tuple[web.Application, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    async def orders(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append({"body": body, "headers": dict(request.headers),
                     "content_type": request.content_type})  # fmt: skip
        return web.json_response({"order": "ord_1", "received": len(body)}, status=201)

    app = web.Application()
    app.router.add_post("/orders", orders)
    return app, seen


def test_card_fields_reach_the_backend_as_tokens_and_the_token_pays(tmp_path: Path):
    app, seen = backend()
    port = free_port()
    routes = [{
        "path": "/checkout/orders", "upstream": f"http://127.0.0.1:{port}/orders",
        "merchant": "m_shop", "json_fields": ["payment.card.number"],
        "exp_month_field": "payment.card.exp_month", "exp_year_field": "payment.card.exp_year",
        "cvc_fields": ["payment.card.cvc"], "form_fields": ["card_number"],
        "cors_origins": [ORIGIN],
    }]  # fmt: skip
    with running_gateway(tmp_path, upstream=app, upstream_port=port,
                         redact_routes=routes) as gw:  # fmt: skip
        key = gw.add_key("m_shop", "sk_test_" + "s" * 30)
        pre = requests.options(gw.url + "/checkout/orders", timeout=5, headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type"})  # fmt: skip
        assert pre.status_code == 204
        assert pre.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert (
            requests.options(
                gw.url + "/checkout/orders", timeout=5, headers={"Origin": "https://evil.example"}
            ).status_code
            == 403
        )
        r = requests.post(gw.url + "/checkout/orders", timeout=5, headers={"Origin": ORIGIN},
                          json={"items": ["sku_1"], "payment": {"card": {
                              "number": PAN, "exp_month": 12, "exp_year": 2034,
                              "cvc": "123"}}})  # fmt: skip
        assert r.status_code == 201 and r.json()["order"] == "ord_1"
        assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
        received = seen[-1]
        assert PAN.encode() not in received["body"] and b"123" not in received["body"]
        token = __import__("json").loads(received["body"])["payment"]["card"]["number"]
        assert token.startswith("tok_")
        assert received["headers"]["Paymux-Tokenized"] == "payment.card.number"
        # The merchant's backend pays with the token through /v1.
        paid = requests.post(gw.url + "/v1/payments", timeout=10,
                             headers={"Authorization": f"Bearer {key}"},
                             json={"amount": 1000, "currency": "EUR",
                                   "payment_method": {"token": token}})  # fmt: skip
        assert paid.status_code == 200 and paid.json()["status"] == "succeeded", paid.text
        assert gw.ledger("stripe")[0]["card"] == "424242******4242"
        # A form post; a bad card number is a 400 and nothing is forwarded.
        count = len(seen)
        r = requests.post(gw.url + "/checkout/orders", timeout=5,
                          data={"card_number": "4242424242424241", "qty": "1"})  # fmt: skip
        assert r.status_code == 400 and r.json()["error"]["param"] == "card_number"
        assert len(seen) == count
        assert PAN not in gw.log.getvalue()
