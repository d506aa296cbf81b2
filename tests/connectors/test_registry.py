"""Connector discovery through the ``paymux.connectors`` entry-point group."""

from __future__ import annotations

import logging
import sys
import textwrap
from pathlib import Path

import pytest
from paymux.connectors.adyen import AdyenConnector
from paymux.connectors.base import ConnectorConfig
from paymux.connectors.checkout import CheckoutConnector
from paymux.connectors.registry import UnknownConnectorError, create_connector, load_connectors
from paymux.connectors.stripe import StripeConnector

PLUGIN = '''
"""A third-party connector that approves everything, to prove discovery."""
from paymux.connectors.base import Capabilities, Connector, ConnectorResult
from paymux.domain.outcomes import AttemptStatus, DeclineClass


class ExampleConnector(Connector):
    kind = "example"
    capabilities = Capabilities(currencies=frozenset({"EUR"}), partial_capture=False)

    async def authorize(self, request):
        return ConnectorResult(status=AttemptStatus.AUTHORIZED, connector_reference="ex_" + request.reference)

    async def capture(self, request):
        return ConnectorResult(status=AttemptStatus.CAPTURED)

    async def void(self, request):
        return ConnectorResult(status=AttemptStatus.VOIDED)

    async def refund(self, request):
        return ConnectorResult(status=AttemptStatus.REFUNDED)

    async def sync(self, request):
        return ConnectorResult(status=AttemptStatus.NOT_FOUND)

    def parse_webhook(self, headers, body):
        return []

    def map_error(self, raw_code):
        return ("unknown_decline", DeclineClass.SOFT_ROUTE)
'''


ACME = """
from pathlib import Path

from paymux.connectors.http import HttpConnector
from paymux.connectors.stripe import StripeConnector


class AcmeConnector(StripeConnector):
    \"\"\"A Stripe-compatible PSP with its own decline table.\"\"\"

    kind = "acme"
    table_path = str(Path(__file__).with_name("acme.toml"))
"""

ACME_TABLE = """
connector = "acme"
version = "7"
[declines]
"51" = { code = "insufficient_funds", class = "issuer_not_now" }
[advice]
"03" = "hard"
"""


def _distribution(
    root: Path, name: str, version: str, entry_points: str, modules: dict[str, str]
) -> None:
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n"
    )
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    _distribution(
        tmp_path,
        "example_connector",
        "1.0",
        "[paymux.connectors]\nexample = example_connector:ExampleConnector\n",
        {"example_connector": PLUGIN},
    )
    _distribution(
        tmp_path,
        "broken_connector",
        "0.1",
        "[paymux.connectors]\nbroken = broken_connector:BrokenConnector\n",
        {"broken_connector": 'raise RuntimeError("broken on import: missing PSP SDK")\n'},
    )
    _distribution(
        tmp_path,
        "liar_connector",
        "0.1",
        "[paymux.connectors]\nliar = liar_connector:NotAConnector\n",
        {"liar_connector": "class NotAConnector:\n    kind = 'liar'\n"},
    )
    _distribution(
        tmp_path,
        "acme_connector",
        "2.0",
        "[paymux.connectors]\nacme = acme_connector:AcmeConnector\n",
        {"acme_connector": ACME},
    )
    (tmp_path / "acme.toml").write_text(ACME_TABLE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for mod in ("example_connector", "broken_connector", "liar_connector", "acme_connector"):
        sys.modules.pop(mod, None)


def test_builtins_register_through_entry_points():
    connectors, errors = load_connectors()
    assert connectors["stripe"] is StripeConnector
    assert connectors["adyen"] is AdyenConnector
    assert connectors["checkout"] is CheckoutConnector
    assert errors == []


def test_third_party_plugin_is_found_beside_the_builtins(plugin_path):
    connectors, _ = load_connectors()
    assert {"stripe", "adyen", "checkout", "example"} <= set(connectors)
    assert connectors["example"].__module__ == "example_connector"


def test_broken_plugins_are_reported_and_do_not_break_the_others(plugin_path, caplog):
    with caplog.at_level(logging.WARNING, logger="paymux.connectors.registry"):
        connectors, errors = load_connectors()
    assert "example" in connectors and "stripe" in connectors
    by_name = {e.name: e for e in errors}
    assert set(by_name) == {"broken", "liar"}
    assert "RuntimeError: broken on import: missing PSP SDK" in by_name["broken"].error
    assert by_name["broken"].value == "broken_connector:BrokenConnector"
    assert "not a subclass" in by_name["liar"].error
    assert "broken on import" in caplog.text and "'broken'" in caplog.text


async def test_create_connector_builds_a_plugin_instance(plugin_path):
    conn = create_connector(ConnectorConfig(name="ex1", kind="example", base_url="http://unused"))
    assert conn.kind == "example" and conn.name == "ex1"
    assert conn.capabilities.supports(method="card", brand="visa", currency="EUR", country=None)
    assert not conn.capabilities.supports(method="card", brand="visa", currency="USD", country=None)


def test_create_connector_explains_a_broken_or_missing_kind(plugin_path):
    with pytest.raises(UnknownConnectorError, match="broken on import"):
        create_connector(ConnectorConfig(name="b", kind="broken", base_url="http://unused"))
    with pytest.raises(UnknownConnectorError, match="no connector plugin of kind 'nope'"):
        create_connector(ConnectorConfig(name="n", kind="nope", base_url="http://unused"))


def test_plugin_http_connector_uses_its_own_table(plugin_path):
    from paymux.domain.outcomes import DeclineClass

    conn = create_connector(ConnectorConfig(name="acme1", kind="acme", base_url="http://unused"))
    assert conn.table.version == "7"
    assert conn.map_error("51") == ("insufficient_funds", DeclineClass.ISSUER_NOT_NOW)
    assert conn.map_error("zz") == ("unknown_decline", DeclineClass.SOFT_ROUTE)
