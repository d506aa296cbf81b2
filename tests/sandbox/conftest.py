"""Sandbox fixtures: `sandbox` is a default sandbox served on a loopback port for one test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sandbox.sandbox_harness import RunningSandbox, running_sandbox


@pytest.fixture
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running
