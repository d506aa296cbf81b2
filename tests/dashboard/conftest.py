"""Dashboard fixtures: the gateway fixture (real sandbox + real gateway) reused."""

from tests.gateway.conftest import gateway, pytest_configure  # noqa: F401 - reused fixture
