"""Fixtures: the gateway + sandbox (harness.py) with two merchants, and a Stripe SDK client
pointed at the Stripe-compatible front with merchant m_alpha's paymux key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import stripe
from paymux.api.app import new_api_key_secret

from tests.compat.harness import Running, running_gateway


@pytest.fixture
def gw(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Running]:
    marker = request.node.get_closest_marker("gateway_config")
    overrides = marker.kwargs if marker else {}
    with running_gateway(tmp_path, **overrides) as running:
        running.add_key("m_alpha", new_api_key_secret())
        running.add_key("m_beta", new_api_key_secret())
        yield running


def stripe_client(gw: Running, merchant: str = "m_alpha", retries: int = 0) -> stripe.StripeClient:
    return stripe.StripeClient(
        gw.keys[merchant],
        base_addresses={"api": gw.url + "/compat/stripe"},
        max_network_retries=retries,
    )


@pytest.fixture
def client(gw: Running) -> stripe.StripeClient:
    return stripe_client(gw)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gateway_config(**sections): override gateway config")
