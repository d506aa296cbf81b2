"""The PostgreSQL store on a real throwaway cluster: what several nodes on one database rely on.

Each "node" here is a PostgresStore of its own (its own pool), all on one database: migrations
applied once when they open together, an Idempotency-Key claimed by exactly one of many
concurrent claims, one active routing version whatever the writers, refunds that never take more
than was captured, a watch claimed by one node only. Also: the backend is chosen from the config
and PAYMUX_DATABASE, and a PAN never reaches a column in plaintext."""

from __future__ import annotations

import asyncio
import subprocess
import time

import asyncpg
import pytest
from paymux.api.app import open_store
from paymux.config import ConfigError, config_from_dict
from paymux.domain.records import (
    AttemptRecord,
    Conflict,
    EventRecord,
    IdempotencyClaim,
    IdempotencyState,
    IdempotencyTaken,
    Merchant,
    PaymentRecord,
    ReconcileWatch,
    RefundRecord,
    StoredAnswer,
)
from paymux.store.base import StoreUnavailable
from paymux.store.postgres import PostgresStore, redact_url
from paymux.store.sqlite import SqliteStore


async def _nodes(url: str, n: int) -> list[PostgresStore]:
    stores = [PostgresStore(url, pool_min=1, pool_max=5) for _ in range(n)]
    await asyncio.gather(*(s.open() for s in stores))
    return stores


async def _close(stores: list[PostgresStore]) -> None:
    await asyncio.gather(*(s.close() for s in stores))


def _payment(pid: str, status: str = "succeeded", received: int = 1000) -> PaymentRecord:
    return PaymentRecord(
        id=pid,
        merchant_id="m_alpha",
        status=status,
        amount=1000,
        currency="EUR",
        capture_method="automatic",
        amount_received=received,
        connector="stripe",
        created_at=time.time(),
        updated_at=time.time(),
    )


async def test_nodes_opening_together_migrate_once(pg_url):
    stores = await _nodes(pg_url, 4)
    try:
        conn = await asyncpg.connect(pg_url)
        try:
            versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")]
            kinds = {
                r["column_name"]: r["data_type"]
                for r in await conn.fetch(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = 'payments'"
                )
            }
        finally:
            await conn.close()
        assert sorted(versions) == sorted(set(versions)) and versions
        assert kinds["amount"] == "bigint"  # minor units beyond 2^31 (KRW, IDR)
        assert kinds["created_at"] == "double precision"  # never a 4-byte REAL
    finally:
        await _close(stores)


async def test_one_claim_of_many_concurrent_ones_wins_across_nodes(pg_url):
    stores = await _nodes(pg_url, 3)
    try:
        await stores[0].ensure_merchant(Merchant(id="m_alpha", name="a", created_at=0.0))
        now = time.time()
        results = await asyncio.gather(
            *(
                stores[i % 3].begin_idempotent("m_alpha", "k-race", "h1", now, 3600.0)
                for i in range(60)
            )
        )
        states = [state for state, _ in results]
        assert states.count(IdempotencyState.NEW) == 1
        assert set(states) == {IdempotencyState.NEW, IdempotencyState.IN_PROGRESS}
        state, _ = await stores[1].begin_idempotent("m_alpha", "k-race", "other", now, 3600.0)
        assert state is IdempotencyState.MISMATCH
        # Expired: the key is free again, in one statement.
        state, _ = await stores[2].begin_idempotent("m_alpha", "k-race", "h2", now + 7200, 3600.0)
        assert state is IdempotencyState.NEW
    finally:
        await _close(stores)


async def test_a_claim_bound_to_a_payment_is_taken_once_and_answered_in_its_transaction(pg_url):
    stores = await _nodes(pg_url, 2)
    try:
        await stores[0].ensure_merchant(Merchant(id="m_alpha", name="a", created_at=0.0))
        now = time.time()
        claim = IdempotencyClaim(
            merchant_id="m_alpha", key="k-bound", request_hash="h", now=now, ttl_s=3600.0
        )

        async def create(i: int) -> str:
            pid = f"pay_{i}"
            payment = _payment(pid, status="processing", received=0)
            event = EventRecord(payment_id=pid, merchant_id="m_alpha", type="payment.created")
            try:
                await stores[i % 2].create_payment(payment, None, [event], claim=claim)
            except IdempotencyTaken as exc:
                return str(exc.state)
            return "created"

        outcomes = await asyncio.gather(*(create(i) for i in range(20)))
        assert outcomes.count("created") == 1
        winner = f"pay_{outcomes.index('created')}"
        record = await stores[1].get_idempotent("m_alpha", "k-bound", now, 3600.0)
        assert record is not None and record.payment_id == winner
        assert record.status == "in_progress"
        attempt = AttemptRecord(
            id="att_1",
            payment_id=winner,
            merchant_id="m_alpha",
            seq=1,
            connector="stripe",
            reference="ref_1",
            status="started",
            amount=1000,
            currency="EUR",
            created_at=now,
            updated_at=now,
        )
        await stores[0].start_attempt(
            attempt, EventRecord(payment_id=winner, merchant_id="m_alpha", type="attempt.started")
        )
        attempt.status = "captured"
        attempt.ambiguous = True
        payment = _payment(winner)
        answer = StoredAnswer(payment_id=winner, operation_id=None, status=200, body=b"{}")
        await stores[1].finish_attempt(attempt, payment, [], answer)
        record = await stores[0].get_idempotent("m_alpha", "k-bound", now, 3600.0)
        assert record is not None and record.status == "completed"
        assert record.response_body == b"{}"
        (stored,) = await stores[0].list_attempts(winner)
        assert stored.status == "captured" and stored.ambiguous is True
        assert (await stores[0].list_attempts_of([winner, "nope"]))["nope"] == []
        assert len(await stores[1].list_events(winner)) == 2
    finally:
        await _close(stores)


async def test_concurrent_transitions_of_one_payment_let_exactly_one_through(pg_url):
    stores = await _nodes(pg_url, 3)
    try:
        await stores[0].ensure_merchant(Merchant(id="m_alpha", name="a", created_at=0.0))
        await stores[0].create_payment(_payment("pay_t", "requires_capture", 0), None, [])

        async def cancel(i: int) -> bool:
            payment = _payment("pay_t", "canceled", 0)
            try:
                await stores[i % 3].transition_payment(payment, ("requires_capture",), [])
            except Conflict:
                return False
            return True

        assert sum(await asyncio.gather(*(cancel(i) for i in range(12)))) == 1
    finally:
        await _close(stores)


async def test_refunds_on_several_nodes_never_exceed_the_captured_amount(pg_url):
    stores = await _nodes(pg_url, 3)
    try:
        await stores[0].ensure_merchant(Merchant(id="m_alpha", name="a", created_at=0.0))
        await stores[0].create_payment(_payment("pay_r"), None, [])

        async def refund(i: int) -> bool:
            record = RefundRecord(
                id=f"re_{i}",
                payment_id="pay_r",
                merchant_id="m_alpha",
                amount=300,
                currency="EUR",
                status="pending",
                connector="stripe",
                reference=f"rref_{i}",
                created_at=time.time(),
            )
            try:
                await stores[i % 3].reserve_refund(record, [])
            except Conflict:
                return False
            return True

        assert sum(await asyncio.gather(*(refund(i) for i in range(10)))) == 3
        payment = await stores[1].get_payment("m_alpha", "pay_r")
        assert payment is not None and payment.amount_refunded == 900
        assert len(await stores[2].pending_refunds()) == 3
    finally:
        await _close(stores)


async def test_routing_versions_written_by_several_nodes_keep_one_active(pg_url):
    stores = await _nodes(pg_url, 3)
    try:
        configs = [{"default_order": ["stripe"], "n": i} for i in range(15)]
        await asyncio.gather(
            *(
                stores[i % 3].add_routing_version(c, "admin", time.time())
                for i, c in enumerate(configs)
            )
        )
        versions = await stores[0].routing_versions()
        assert len(versions) == 15 and sum(v.active for v in versions) == 1
        same = {"default_order": ["adyen"]}
        found = await asyncio.gather(
            *(
                stores[i % 3].add_routing_version(
                    same, "config", time.time(), unless_active_equals=True
                )
                for i in range(6)
            )
        )
        assert len({v.version for v in found}) == 1  # stored once, whoever reloaded it
        ids = await asyncio.gather(*(s.active_routing_version_id() for s in stores))
        assert set(ids) == {found[0].version}
        back = await stores[2].activate_routing_version(versions[0].version)
        assert back is not None and back.active
        assert await stores[0].active_routing_version_id() == versions[0].version
        assert await stores[0].activate_routing_version(10**6) is None
    finally:
        await _close(stores)


async def test_a_due_watch_is_claimed_by_one_node(pg_url):
    stores = await _nodes(pg_url, 3)
    try:
        await stores[0].ensure_merchant(Merchant(id="m_alpha", name="a", created_at=0.0))
        await stores[0].create_payment(_payment("pay_w", "processing", 0), None, [])
        now = time.time()
        attempt = AttemptRecord(
            id="att_w",
            payment_id="pay_w",
            merchant_id="m_alpha",
            seq=1,
            connector="stripe",
            reference="ref_w",
            status="failed",
            amount=1000,
            currency="EUR",
        )
        await stores[0].start_attempt(
            attempt, EventRecord(payment_id="pay_w", merchant_id="m_alpha", type="attempt.started")
        )
        watch = ReconcileWatch(
            attempt_id="att_w",
            payment_id="pay_w",
            merchant_id="m_alpha",
            kind="pending",
            next_check_at=now - 1,
            until=now + 60,
        )
        await stores[1].watch_attempt(watch)
        await stores[2].watch_attempt(watch)  # re-opened: one row still
        due = [await s.due_watches(now) for s in stores]
        assert all(len(d) == 1 for d in due)
        won = await asyncio.gather(
            *(s.claim_watch("att_w", d[0].next_check_at, now + 5) for s, d in zip(stores, due))
        )
        assert sorted(won) == [False, False, True]
        assert await stores[0].due_watches(now) == []
        watch.state = "resolved"
        await stores[0].update_watch(watch)
        (stored,) = await stores[1].list_watches("pay_w")
        assert stored.state == "resolved"
    finally:
        await _close(stores)


async def test_no_pan_reaches_the_database_in_plaintext(pg_cluster, pg_url, tmp_path):
    """The PostgreSQL side of tests/gateway's PAN check: a payment and a token through the real
    flow, then every byte of the database dumped and searched."""
    import aiohttp
    from paymux.api.app import build_gateway, new_api_key_secret, register_api_key
    from paymux.api.http import STORE
    from paymux.config import load_secrets
    from paymux.sandbox.app import build_app as build_sandbox

    from tests.gateway.conftest import gateway_config, start_app

    sandbox, port = await start_app(build_sandbox(None, seed=7))
    raw = gateway_config(tmp_path, port)
    raw["storage"] = {"backend": "postgresql", "url": pg_url}
    config = config_from_dict(raw)
    app = build_gateway(config, load_secrets(config.vault))
    runner, gw_port = await start_app(app)
    try:
        store = app[STORE]
        await store.ensure_merchant(Merchant(id="m_alpha", name="a", created_at=0.0))
        secret = new_api_key_secret()
        await register_api_key(store, "m_alpha", secret)
        pan = "4000056655665556"
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {secret}"}) as s:
            card = {"number": pan, "exp_month": 12, "exp_year": 2034, "cvc": "987"}
            body = {"amount": 1200, "currency": "EUR", "payment_method": {"card": card}}
            async with s.post(f"http://127.0.0.1:{gw_port}/v1/payments", json=body) as r:
                assert r.status == 200, await r.text()
            async with s.post(f"http://127.0.0.1:{gw_port}/v1/tokens", json={"card": card}) as r:
                assert r.status == 200, await r.text()
    finally:
        await runner.cleanup()
        await sandbox.cleanup()
    dump = subprocess.run(  # noqa: ASYNC221 - once, after the gateway stopped
        ["pg_dump", "--data-only", pg_url], capture_output=True, timeout=60, check=True
    ).stdout
    assert b"4242" in dump or b"5556" in dump  # the dump has the rows (last4)
    assert pan.encode() not in dump


def test_the_backend_follows_the_config_and_paymux_database(monkeypatch):
    monkeypatch.delenv("PAYMUX_DATABASE", raising=False)
    url = "postgresql://paymux:s3cret@127.0.0.1:5432/paymux"
    config = config_from_dict({"storage": {"path": url}})
    assert (config.storage.backend, config.storage.url, config.storage.path) == (
        "postgresql",
        url,
        "",
    )
    assert isinstance(open_store(config), PostgresStore)
    config = config_from_dict({"storage": {"backend": "postgresql", "url": url, "pool_max": 4}})
    store = open_store(config)
    assert isinstance(store, PostgresStore) and store.pool_max == 4
    assert "s3cret" not in repr(store) and redact_url(url).endswith("***@127.0.0.1:5432/paymux")
    monkeypatch.setenv("PAYMUX_DATABASE", url)
    config = config_from_dict({"storage": {"path": "/tmp/x.db"}})
    assert isinstance(open_store(config), PostgresStore)
    monkeypatch.setenv("PAYMUX_DATABASE", "/tmp/paymux-other.db")
    config = config_from_dict({"storage": {"backend": "postgresql", "url": url}})
    assert isinstance(open_store(config), SqliteStore)
    assert config.storage.path == "/tmp/paymux-other.db"
    monkeypatch.delenv("PAYMUX_DATABASE")
    with pytest.raises(ConfigError):
        config_from_dict({"storage": {"backend": "postgresql"}})
    with pytest.raises(ConfigError):
        config_from_dict({"storage": {"backend": "mysql"}})


async def test_an_unreachable_database_is_store_unavailable(pg_cluster):
    dead = pg_cluster.url.rsplit(":", 1)[0] + ":1/postgres"
    store = PostgresStore(dead, connect_timeout_s=1.0)
    with pytest.raises(StoreUnavailable):
        await store.open()
