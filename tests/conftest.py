"""Shared pytest configuration. Subsystem fixtures live in each test folder's own conftest.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import PgCluster, PgUnavailable, unavailable

_PG: dict[str, object] = {}


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway PostgreSQL cluster for the whole session, started on first use (tests/pg.py);
    stopped and removed at the end."""
    if "error" in _PG:
        unavailable(str(_PG["error"]))
    cluster = PgCluster()
    try:
        cluster.start()
    except (PgUnavailable, OSError) as exc:
        _PG["error"] = str(exc)
        unavailable(str(exc))
    try:
        yield cluster
    finally:
        cluster.stop(remove=True)


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, empty database of the session's cluster, dropped after the test."""
    url = pg_cluster.new_database()
    try:
        yield url
    finally:
        try:
            pg_cluster.drop_database(url)
        except RuntimeError:
            pass  # the cluster is down (a failure test): it goes with the cluster
