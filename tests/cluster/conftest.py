"""Several gateway nodes on one PostgreSQL database, as real processes: three `paymux serve`
subprocesses with the same config (database, vault keys, demo merchant), one sandbox process,
everything on 127.0.0.1 and stopped at the end of the module, also on failure."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from paymux.config import config_from_dict, load_secrets

from tests.gateway.conftest import (
    GatewayProcess,
    SandboxProcess,
    free_port,
    process_gateway_config,
    toml_text,
)
from tests.pg import PgCluster

API_KEY = "sk_test_cluster_nodes_key_0123456789"
ADMIN_KEY = "adm_test_cluster_key"
NODES = 3


@dataclass
class Cluster:
    pg: PgCluster
    database_url: str
    sandbox: SandboxProcess
    nodes: list[GatewayProcess]
    tmp: Path
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def headers(self, idem: str | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {API_KEY}"}
        if idem:
            h["Idempotency-Key"] = idem
        return h

    async def ledger(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        async with session.get(self.sandbox.url + "/_sandbox/ledger") as r:
            return await r.json()


def node_config(tmp: Path, port: int, sandbox_port: int, database_url: str) -> dict[str, Any]:
    return process_gateway_config(
        tmp,
        port,
        sandbox_port,
        API_KEY,
        admin_api_key=ADMIN_KEY,
        storage={"backend": "postgresql", "url": database_url, "pool_min": 1, "pool_max": 8},
        # A dead node's in-flight payment is taken over once its request's budget has passed:
        # connector timeout + sync + 1 s for an attempt (3 s here), deadline + sync for a
        # payment left between attempts (6 s here).
        payments={"sync_timeout_s": 1.0, "deadline_s": 5.0},
    )


@pytest.fixture(scope="module")
def cluster(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    database_url = pg_cluster.new_database("cluster")
    sandbox = SandboxProcess(free_port(), seed=16)
    nodes: list[GatewayProcess] = []
    try:
        sandbox.start()
        for i in range(NODES):
            port = free_port()
            raw = node_config(tmp, port, sandbox.port, database_url)
            if i == 0:  # the vault keys every node shares (a file here; the environment in prod)
                config = config_from_dict(raw)
                load_secrets(config.vault)
            path = tmp / f"node{i}.toml"
            path.write_text(toml_text(raw))
            nodes.append(GatewayProcess(path, port))

        async def start_all() -> None:
            await asyncio.gather(*(n.start() for n in nodes))  # migrations: one advisory lock

        asyncio.run(start_all())
        yield Cluster(pg_cluster, database_url, sandbox, nodes, tmp)
    finally:
        for node in nodes:
            node.stop()
        sandbox.stop()
        try:
            pg_cluster.drop_database(database_url)
        except RuntimeError:
            pass
