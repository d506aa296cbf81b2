"""The README's "Drop-in modes" snippets, run as written against the real gateway and sandbox:
only the gateway's address, the key and the token are replaced (the placeholders the README
names). If a snippet stops working, this fails."""

from __future__ import annotations

import contextlib
import io
import json
import re
import tomllib
from pathlib import Path

import requests
from aiohttp import web
from paymux.cli.keys import shaped_secret

from tests.compat.harness import running_gateway
from tests.gateway.conftest import free_port
from tests.passthrough.conftest import vault

README = Path(__file__).resolve().parents[2] / "README.md"
ADDRESS = "http://127.0.0.1:8080"


def snippets(lang: str) -> list[str]:
    text = README.read_text()
    section = text[text.index("## Drop-in modes\n") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(rf"```{lang}\n(.*?)```", section, re.DOTALL)


def run(code: str, **replace: str) -> str:
    for old, new in replace.items():
        assert old in code, old
        code = code.replace(old, new)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - the README's own snippet
    return out.getvalue()


def test_the_three_snippets_are_there():
    assert len(snippets("python")) == 2 and len(snippets("toml")) == 1


def test_stripe_sdk_snippet(gw):
    stripe_code = snippets("python")[0]
    printed = run(stripe_code, **{ADDRESS: gw.url, "sk_test_your_paymux_key": gw.keys["m_alpha"]})
    intent, status, connector = printed.split()
    assert intent.startswith("pi_") and status == "succeeded" and connector == "stripe"


def test_adyen_pass_through_snippet(gw):
    key = gw.add_key("m_alpha:adyen", shaped_secret("adyen", "test"))
    token = vault(gw, merchant_key="m_alpha:adyen")
    adyen_code = snippets("python")[1]
    printed = run(adyen_code, **{ADDRESS: gw.url, "AQE_your_paymux_key_in_adyen_shape": key,
                                 "tok_your_paymux_token": token})  # fmt: skip
    assert printed.strip() == "Authorised"
    [paid] = gw.ledger("adyen")
    assert paid["card"] == "424242******4242"


def test_inbound_route_snippet(tmp_path: Path):
    [route_toml] = snippets("toml")
    port = free_port()
    config = tomllib.loads(route_toml.replace("127.0.0.1:9000", f"127.0.0.1:{port}"))
    [route] = config["redact_routes"]
    seen: list[bytes] = []

    async def orders(request: web.Request) -> web.Response:
        seen.append(await request.read())
        return web.json_response({"order": "ord_1"}, status=201)

    backend = web.Application()
    backend.router.add_post("/orders", orders)
    with running_gateway(tmp_path, upstream=backend, upstream_port=port,
                         redact_routes=[route]) as gw:  # fmt: skip
        key = gw.add_key(route["merchant"], "sk_test_" + "r" * 30)
        r = requests.post(gw.url + route["path"], timeout=5,
                          headers={"Origin": route["cors_origins"][0]},
                          json={"payment": {"card": {"number": "4242424242424242",
                                                     "exp_month": 12, "exp_year": 2034,
                                                     "cvc": "123"}}})  # fmt: skip
        assert r.status_code == 201, r.text
        body = json.loads(seen[-1])
        token = body["payment"]["card"]["number"]
        assert token.startswith("tok_") and "cvc" not in body["payment"]["card"]
        paid = requests.post(gw.url + "/v1/payments", timeout=10,
                             headers={"Authorization": f"Bearer {key}"},
                             json={"amount": 1000, "currency": "EUR",
                                   "payment_method": {"token": token}})  # fmt: skip
        assert paid.status_code == 200 and paid.json()["status"] == "succeeded", paid.text
