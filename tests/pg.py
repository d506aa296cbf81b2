"""A real, throwaway PostgreSQL cluster for the tests (scripts/install-postgres.sh start/stop).

One cluster per test session (the `pg_cluster` fixture in tests/conftest.py), a fresh database
per test or module (`PgCluster.new_database`), everything stopped and removed at the end. The
cluster can be stopped and started again on the same port and data (the database-failure tests).
Never a mock: where PostgreSQL cannot be had, the tests that need it skip with the reason, and
fail instead under CI=true.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "install-postgres.sh"


class PgUnavailable(RuntimeError):
    pass


class PgCluster:
    def __init__(self) -> None:
        self.dir: str | None = None
        self.url = ""  # the maintenance database (postgres)
        self.databases: list[str] = []

    def start(self) -> None:
        """Start (or start again: same data, same port)."""
        cmd = [str(SCRIPT), "start"] + ([self.dir] if self.dir else [])
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise PgUnavailable(f"cannot start PostgreSQL: {done.stderr.strip()[-2000:]}")
        self.dir, self.url = done.stdout.split()[-2:]

    def stop(self, remove: bool = False) -> None:
        if self.dir is None:
            return
        cmd = [str(SCRIPT), "stop", self.dir] + (["--remove"] if remove else [])
        subprocess.run(cmd, capture_output=True, timeout=120, check=False)
        if remove:
            self.dir = None

    def url_of(self, database: str) -> str:
        return self.url.rsplit("/", 1)[0] + "/" + database

    def new_database(self, prefix: str = "t") -> str:
        """CREATE DATABASE with a fresh name; its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self._psql(f"CREATE DATABASE {name}")
        self.databases.append(name)
        return self.url_of(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self._psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if name in self.databases:
            self.databases.remove(name)

    def _psql(self, sql: str) -> None:
        done = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.url, "-c", sql],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {done.stderr.strip()}")


def install_hint() -> str:
    return "PostgreSQL unavailable (run scripts/install-postgres.sh as root)"


def unavailable(reason: str) -> None:
    """Skip, or fail under CI, where both backends must run."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)
