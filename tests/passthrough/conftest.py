"""Fixtures: the gateway + sandbox (tests/compat/harness.py) and one merchant holding a paymux
key in each PSP's shape (`paymux keys create --shape ...`), plus a vaulted test card."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from paymux.cli.keys import shaped_secret

from tests.compat.harness import Running, running_gateway


@pytest.fixture
def gw(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Running]:
    marker = request.node.get_closest_marker("gateway_config")
    overrides = marker.kwargs if marker else {}
    with running_gateway(tmp_path, **overrides) as running:
        for shape in ("stripe", "adyen", "checkout"):
            running.add_key(f"m_alpha:{shape}", shaped_secret(shape, "test"))
        yield running


def merchant_of(key: str) -> str:
    return key.partition(":")[0]


def vault(gw: Running, number: str = "4242424242424242", merchant_key: str = "m_alpha:stripe",
          exp_year: int = 2034) -> str:  # fmt: skip
    r = requests.post(
        gw.url + "/v1/tokens",
        json={"card": {"number": number, "exp_month": 12, "exp_year": exp_year}},
        headers={"Authorization": f"Bearer {gw.keys[merchant_key]}"},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    return r.json()["id"]
