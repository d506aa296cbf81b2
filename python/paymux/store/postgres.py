"""PostgreSQL store (asyncpg): several gateway nodes on one database.

Same semantics as the SQLite store, made safe for concurrent writers on other nodes rather than
by a single writer:

- every write method is one transaction (READ COMMITTED); a conditional write either locks the
  payment row first (``SELECT ... FOR UPDATE``: a second writer waits, then sees the new status
  and gets Conflict) or is one conditional UPDATE (operations, refunds, watches: a second writer
  re-checks the condition on the row the first committed);
- an Idempotency-Key is claimed by ``INSERT ... ON CONFLICT``: of 100 identical requests over
  any number of nodes one inserts, the others wait for its transaction and then read its row;
- routing version changes are serialized by a transaction-level advisory lock, so exactly one
  version is active whichever nodes write;
- migrations run under a session advisory lock: nodes starting together migrate once.

The database failing is expected: connection errors, a server shutting down or still starting,
an exhausted pool or a statement timeout raise StoreUnavailable (the API answers 503 with
Retry-After). The pool drops its broken connections and reconnects on the next call. A
deadlock or serialization failure retries the transaction (each write is a pure function of its
arguments, so running it again is safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeAlias, TypeVar

import asyncpg  # type: ignore[import-untyped]
import msgspec

from paymux.domain.records import (
    ApiKey,
    AttemptRecord,
    Conflict,
    EventRecord,
    IdempotencyClaim,
    IdempotencyRecord,
    IdempotencyState,
    IdempotencyTaken,
    Merchant,
    OperationRecord,
    PaymentFilter,
    PaymentRecord,
    ReconcileWatch,
    RefundRecord,
    RoutingVersion,
    StoredAnswer,
    TokenRecord,
    idempotency_state,
)
from paymux.store.base import Store, StoreUnavailable
from paymux.store.migrations import POSTGRESQL, migrations_for
from paymux.store.rows import FIXED_AT_INSERT, JSON_COLUMNS, to_row

T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record]"

_json_encode = msgspec.json.encode
_json_decode = msgspec.json.decode

# Advisory lock keys (any 64-bit numbers, fixed for paymux).
MIGRATION_LOCK = 0x7061796D75780001
ROUTING_LOCK = 0x7061796D75780002


#: What "the database cannot be reached" looks like to asyncpg.
_DOWN: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    TimeoutError,  # connect, acquire or command timeout
    asyncpg.PostgresConnectionError,  # class 08: the connection failed or does not exist
    asyncpg.OperatorInterventionError,  # class 57: shutting down, starting up, crash recovery
    asyncpg.TooManyConnectionsError,
    asyncpg.QueryCanceledError,  # statement_timeout: the database is overloaded
    # A connection that broke mid-protocol (the server restarted under it) surfaces as one.
    asyncpg.InternalClientError,
)
_RETRY = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_TX_ATTEMPTS = 3


def _is_down(exc: BaseException) -> bool:
    if isinstance(exc, _DOWN):
        return True
    # asyncpg says "connection is closed" / "pool is closing" as an InterfaceError.
    return isinstance(exc, asyncpg.InterfaceError) and "clos" in str(exc)


def _from_record(cls: type[S], rec: asyncpg.Record) -> S:
    values: dict[str, Any] = {}
    for name in cls.__struct_fields__:
        try:
            value = rec[name]
        except KeyError:
            continue
        if name in JSON_COLUMNS and value is not None:
            value = _json_decode(value)
        values[name] = value
    return msgspec.convert(values, cls, strict=False)


def _count(status: str) -> int:
    """Rows touched, from a command status ("UPDATE 1", "INSERT 0 1", "DELETE 3")."""
    try:
        return int(status.rsplit(" ", 1)[1])
    except (IndexError, ValueError):
        return 0


# SQL text by (verb, table, columns, where): built once.
_SQL: dict[tuple[str, str, tuple[str, ...], str], str] = {}


async def _insert(conn: Conn, table: str, record: msgspec.Struct) -> None:
    row = to_row(record)
    if "id" in row and row["id"] is None:  # identity ids (events)
        del row["id"]
    key = ("insert", table, tuple(row), "")
    sql = _SQL.get(key)
    if sql is None:
        cols = ", ".join(row)
        marks = ", ".join(f"${i}" for i in range(1, len(row) + 1))
        sql = _SQL[key] = f"INSERT INTO {table} ({cols}) VALUES ({marks})"
    await conn.execute(sql, *row.values())


async def _insert_events(conn: Conn, events: list[EventRecord]) -> None:
    if len(events) == 1:
        await _insert(conn, "events", events[0])
        return
    for event in events:
        await _insert(conn, "events", event)


async def _update(conn: Conn, table: str, record: msgspec.Struct, where: str = "") -> int:
    row = to_row(record)
    fixed = FIXED_AT_INSERT.get(table, frozenset({"id"}))
    cols = [c for c in row if c != "id" and c not in fixed]
    key = ("update", table, tuple(row), where)
    sql = _SQL.get(key)
    if sql is None:
        sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(cols, start=1))
        sql = _SQL[key] = f"UPDATE {table} SET {sets} WHERE id = ${len(cols) + 1} {where}"
    return _count(await conn.execute(sql, *(row[c] for c in cols), row["id"]))


async def _claim_idempotent(
    conn: Conn,
    claim: IdempotencyClaim,
    payment_id: str | None = None,
    operation_id: str | None = None,
) -> tuple[IdempotencyState, IdempotencyRecord | None]:
    # One statement: a new key is inserted, an expired record is replaced (it no longer binds
    # the key), a live one is left alone. A concurrent claim of the same key on any node waits
    # here for this transaction, then finds the row.
    for _ in range(3):
        row = await conn.fetchrow(
            "INSERT INTO idempotency AS i (merchant_id, key, request_hash, status, created_at, "
            "payment_id, operation_id) VALUES ($1, $2, $3, 'in_progress', $4, $5, $6) "
            "ON CONFLICT (merchant_id, key) DO UPDATE SET request_hash = EXCLUDED.request_hash, "
            "status = 'in_progress', created_at = EXCLUDED.created_at, response_status = NULL, "
            "response_body = NULL, payment_id = EXCLUDED.payment_id, "
            "operation_id = EXCLUDED.operation_id WHERE i.created_at < $7 RETURNING 1",
            claim.merchant_id,
            claim.key,
            claim.request_hash,
            claim.now,
            payment_id,
            operation_id,
            claim.now - claim.ttl_s,
        )
        if row is not None:
            return IdempotencyState.NEW, None
        found = await conn.fetchrow(
            "SELECT * FROM idempotency WHERE merchant_id = $1 AND key = $2",
            claim.merchant_id,
            claim.key,
        )
        if found is not None:
            record = _from_record(IdempotencyRecord, found)
            return idempotency_state(record, claim.request_hash), record
        # released between the two statements: claim again
    raise StoreUnavailable("idempotency key contended")


async def _bind_claim(
    conn: Conn,
    claim: IdempotencyClaim | None,
    payment_id: str,
    operation_id: str | None = None,
) -> None:
    if claim is None:
        return
    state, record = await _claim_idempotent(conn, claim, payment_id, operation_id)
    if state is not IdempotencyState.NEW:
        assert record is not None
        raise IdempotencyTaken(state, record)


async def _answer_bound(
    conn: Conn,
    answer: StoredAnswer | None,
    release: tuple[str, str | None] | None = None,
) -> None:
    if answer is not None:
        await conn.execute(
            "UPDATE idempotency SET status = $1, response_status = $2, response_body = $3 "
            "WHERE payment_id = $4 AND operation_id IS NOT DISTINCT FROM $5 "
            "AND status != 'completed'",
            "completed" if answer.final else "provisional",
            answer.status,
            answer.body,
            answer.payment_id,
            answer.operation_id,
        )
    if release is not None:
        await conn.execute(
            "DELETE FROM idempotency WHERE payment_id = $1 "
            "AND operation_id IS NOT DISTINCT FROM $2",
            *release,
        )


async def _expect_status(conn: Conn, payment_id: str, expected: tuple[str, ...]) -> None:
    """Lock the payment row for this transaction and check its status: a concurrent writer on
    any node waits here, then sees what this one committed."""
    status = await conn.fetchval("SELECT status FROM payments WHERE id = $1 FOR UPDATE", payment_id)
    if status is None or status not in expected:
        raise Conflict("payment_state_changed", "the payment changed state meanwhile")


async def _payment_row(conn: Conn, payment_id: str) -> PaymentRecord:
    row = await conn.fetchrow("SELECT * FROM payments WHERE id = $1", payment_id)
    return _from_record(PaymentRecord, row)


def _routing_version(row: asyncpg.Record) -> RoutingVersion:
    return RoutingVersion(
        version=row["version"],
        config=_json_decode(row["config"]),
        created_at=row["created_at"],
        source=row["source"],
        active=bool(row["active"]),
    )


def redact_url(url: str) -> str:
    """The URL with its password masked (for logs and errors)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"


class PostgresStore(Store):
    """asyncpg pool; one transaction per write method. See the module docstring."""

    dialect = POSTGRESQL

    def __init__(
        self,
        url: str,
        *,
        pool_min: int = 2,
        pool_max: int = 10,
        connect_timeout_s: float = 5.0,
        acquire_timeout_s: float = 5.0,
        statement_timeout_s: float = 15.0,
        analytics_connections: int = 2,
    ) -> None:
        self.url = url
        self.pool_min = pool_min
        self.pool_max = pool_max
        self.connect_timeout_s = connect_timeout_s
        self.acquire_timeout_s = acquire_timeout_s
        self.statement_timeout_s = statement_timeout_s
        self.analytics_connections = analytics_connections
        self._pool: asyncpg.Pool | None = None
        self._analytics: asyncpg.Pool | None = None

    def __repr__(self) -> str:
        return f"PostgresStore({redact_url(self.url)!r})"

    # lifecycle

    async def open(self) -> None:
        settings = {
            "application_name": "paymux",
            "statement_timeout": str(int(self.statement_timeout_s * 1000)),
            # A node that dies mid-transaction never leaves its row locks behind for long.
            "idle_in_transaction_session_timeout": "30000",
        }
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=self.pool_min,
                max_size=self.pool_max,
                timeout=self.connect_timeout_s,
                command_timeout=self.statement_timeout_s + 5.0,
                max_inactive_connection_lifetime=60.0,
                server_settings=settings,
            )
            await self._migrate()
        except BaseException as exc:
            if self._pool is not None:
                self._pool.terminate()
                self._pool = None
            if _is_down(exc):
                raise StoreUnavailable(
                    f"cannot reach PostgreSQL at {redact_url(self.url)}: {exc}"
                ) from None
            raise

    async def close(self) -> None:
        for pool in (self._analytics, self._pool):
            if pool is not None:
                try:
                    await asyncio.wait_for(pool.close(), timeout=5.0)
                except BaseException as exc:  # closing a pool whose server is down
                    if not _is_down(exc):
                        raise
                    pool.terminate()
        self._pool = self._analytics = None

    async def _migrate(self) -> None:
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            # Nodes starting together: one migrates, the others wait here and find it done.
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, "
                    "applied_at DOUBLE PRECISION NOT NULL)"
                )
                applied = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
                for version, statements in migrations_for(POSTGRESQL):
                    if version in applied:
                        continue
                    async with conn.transaction():
                        for statement in statements:
                            await conn.execute(statement)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                            version,
                            time.time(),
                        )
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)

    @contextlib.contextmanager
    def _mapped(self) -> Iterator[None]:
        try:
            yield
        except StoreUnavailable:
            raise
        except BaseException as exc:
            if not _is_down(exc):
                raise
            if self._pool is not None:
                # The server went away: every idle connection is as dead as this one.
                self._pool.expire_connections()
            raise StoreUnavailable(f"PostgreSQL unavailable: {type(exc).__name__}") from None

    def _the_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable("store is not open")
        return self._pool

    async def _tx(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``fn`` in one transaction (again on a deadlock or serialization failure)."""
        pool = self._the_pool()
        for attempt in range(_TX_ATTEMPTS):
            with self._mapped():
                try:
                    async with (
                        pool.acquire(timeout=self.acquire_timeout_s) as conn,
                        conn.transaction(),
                    ):
                        return await fn(conn)
                except _RETRY:
                    if attempt == _TX_ATTEMPTS - 1:
                        raise StoreUnavailable("write contended: deadlock or serialization")
                    await asyncio.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        pool = self._the_pool()
        with self._mapped():
            async with pool.acquire(timeout=self.acquire_timeout_s) as conn:
                return await conn.fetch(sql, *args)

    async def _one(self, cls: type[S], sql: str, *args: Any) -> S | None:
        rows = await self._fetch(sql, *args)
        return _from_record(cls, rows[0]) if rows else None

    async def _many(self, cls: type[S], sql: str, *args: Any) -> list[S]:
        return [_from_record(cls, r) for r in await self._fetch(sql, *args)]

    # merchants and keys

    async def ensure_merchant(self, merchant: Merchant) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO merchants (id, name, created_at) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING",
                merchant.id,
                merchant.name,
                merchant.created_at,
            )

        await self._tx(op)

    async def get_merchant(self, merchant_id: str) -> Merchant | None:
        return await self._one(Merchant, "SELECT * FROM merchants WHERE id = $1", merchant_id)

    async def add_api_key(self, key: ApiKey) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO api_keys (id, merchant_id, key_hash, prefix, mode, created_at, "
                "revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                key.id,
                key.merchant_id,
                key.key_hash,
                key.prefix,
                key.mode,
                key.created_at,
                key.revoked_at,
            )

        await self._tx(op)

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        return await self._one(
            ApiKey, "SELECT * FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", key_hash
        )

    async def list_api_keys(self, merchant_id: str) -> list[ApiKey]:
        return await self._many(
            ApiKey, "SELECT * FROM api_keys WHERE merchant_id = $1 ORDER BY created_at", merchant_id
        )

    # tokens

    async def insert_token(self, token: TokenRecord) -> None:
        async def op(conn: Conn) -> None:
            await _insert(conn, "tokens", token)

        await self._tx(op)

    async def get_token(self, merchant_id: str, token_id: str) -> TokenRecord | None:
        return await self._one(
            TokenRecord,
            "SELECT * FROM tokens WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL",
            token_id,
            merchant_id,
        )

    async def delete_token(self, merchant_id: str, token_id: str, now: float) -> bool:
        async def op(conn: Conn) -> bool:
            # The ciphertext goes with the token: a deleted card cannot be revealed again.
            status = await conn.execute(
                "UPDATE tokens SET deleted_at = $1, ciphertext = ''::bytea "
                "WHERE id = $2 AND merchant_id = $3 AND deleted_at IS NULL",
                now,
                token_id,
                merchant_id,
            )
            return _count(status) == 1

        return await self._tx(op)

    # idempotency

    async def begin_idempotent(
        self, merchant_id: str, key: str, request_hash: str, now: float, ttl_s: float
    ) -> tuple[IdempotencyState, IdempotencyRecord | None]:
        claim = IdempotencyClaim(
            merchant_id=merchant_id, key=key, request_hash=request_hash, now=now, ttl_s=ttl_s
        )
        return await self._tx(lambda conn: _claim_idempotent(conn, claim))

    async def get_idempotent(
        self, merchant_id: str, key: str, now: float, ttl_s: float
    ) -> IdempotencyRecord | None:
        return await self._one(
            IdempotencyRecord,
            "SELECT * FROM idempotency WHERE merchant_id = $1 AND key = $2 AND created_at >= $3",
            merchant_id,
            key,
            now - ttl_s,
        )

    async def complete_idempotent(
        self, merchant_id: str, key: str, status: int, body: bytes
    ) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "UPDATE idempotency SET status = 'completed', response_status = $1, "
                "response_body = $2 WHERE merchant_id = $3 AND key = $4",
                status,
                body,
                merchant_id,
                key,
            )

        await self._tx(op)

    async def release_idempotent(self, merchant_id: str, key: str) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "DELETE FROM idempotency WHERE merchant_id = $1 AND key = $2 AND "
                "status = 'in_progress' AND payment_id IS NULL",
                merchant_id,
                key,
            )

        await self._tx(op)

    async def forget_idempotent(self, merchant_id: str, key: str) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "DELETE FROM idempotency WHERE merchant_id = $1 AND key = $2", merchant_id, key
            )

        await self._tx(op)

    async def stale_idempotency_records(self) -> list[IdempotencyRecord]:
        return await self._many(
            IdempotencyRecord, "SELECT * FROM idempotency WHERE status = 'in_progress'"
        )

    # payments and attempts

    async def create_payment(
        self,
        payment: PaymentRecord,
        token: TokenRecord | None,
        events: list[EventRecord],
        first_attempt: tuple[AttemptRecord, EventRecord] | None = None,
        claim: IdempotencyClaim | None = None,
        answer: StoredAnswer | None = None,
    ) -> None:
        async def op(conn: Conn) -> None:
            await _bind_claim(conn, claim, payment.id)
            if token is not None:
                await _insert(conn, "tokens", token)
            await _insert(conn, "payments", payment)
            await _insert_events(conn, events)
            if first_attempt is not None:
                await _insert(conn, "attempts", first_attempt[0])
                await _insert(conn, "events", first_attempt[1])
            await _answer_bound(conn, answer)

        await self._tx(op)

    async def confirm_payment(
        self,
        payment: PaymentRecord,
        expected_status: tuple[str, ...],
        token: TokenRecord | None,
        events: list[EventRecord],
        first_attempt: tuple[AttemptRecord, EventRecord],
        claim: IdempotencyClaim | None = None,
    ) -> None:
        async def op(conn: Conn) -> None:
            await _expect_status(conn, payment.id, expected_status)
            await _bind_claim(conn, claim, payment.id)
            if token is not None:
                await _insert(conn, "tokens", token)
            # The card columns are fixed once a payment is confirmed, so _update skips them.
            await conn.execute(
                "UPDATE payments SET token_id = $1, card_brand = $2, card_bin = $3, "
                "card_last4 = $4, card_exp_month = $5, card_exp_year = $6, routing = $7 "
                "WHERE id = $8",
                payment.token_id,
                payment.card_brand,
                payment.card_bin,
                payment.card_last4,
                payment.card_exp_month,
                payment.card_exp_year,
                _json_encode(payment.routing).decode() if payment.routing else None,
                payment.id,
            )
            await _update(conn, "payments", payment)
            await _insert_events(conn, events)
            await _insert(conn, "attempts", first_attempt[0])
            await _insert(conn, "events", first_attempt[1])

        await self._tx(op)

    async def update_payment_details(self, payment: PaymentRecord, event: EventRecord) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "UPDATE payments SET metadata = $1, description = $2, updated_at = $3 "
                "WHERE id = $4",
                _json_encode(payment.metadata).decode(),
                payment.description,
                payment.updated_at,
                payment.id,
            )
            await _insert(conn, "events", event)

        await self._tx(op)

    async def start_attempt(self, attempt: AttemptRecord, event: EventRecord) -> None:
        async def op(conn: Conn) -> None:
            await _insert(conn, "attempts", attempt)
            await _insert(conn, "events", event)

        await self._tx(op)

    async def finish_attempt(
        self,
        attempt: AttemptRecord,
        payment: PaymentRecord | None,
        events: list[EventRecord],
        answer: StoredAnswer | None = None,
    ) -> None:
        async def op(conn: Conn) -> None:
            await _update(conn, "attempts", attempt)
            if payment is not None:
                await _update(conn, "payments", payment)
            await _insert_events(conn, events)
            await _answer_bound(conn, answer)

        await self._tx(op)

    async def transition_payment(
        self,
        payment: PaymentRecord,
        expected_status: tuple[str, ...],
        events: list[EventRecord],
        answer: StoredAnswer | None = None,
        claim: IdempotencyClaim | None = None,
    ) -> None:
        async def op(conn: Conn) -> None:
            await _expect_status(conn, payment.id, expected_status)
            await _bind_claim(conn, claim, payment.id)
            await _update(conn, "payments", payment)
            await _insert_events(conn, events)
            await _answer_bound(conn, answer)

        await self._tx(op)

    async def get_payment(self, merchant_id: str, payment_id: str) -> PaymentRecord | None:
        return await self._one(
            PaymentRecord,
            "SELECT * FROM payments WHERE id = $1 AND merchant_id = $2",
            payment_id,
            merchant_id,
        )

    async def list_payments(self, merchant_id: str, flt: PaymentFilter) -> list[PaymentRecord]:
        sql = ["SELECT * FROM payments WHERE merchant_id = $1"]
        params: list[Any] = [merchant_id]

        def add(clause: str, value: Any) -> None:
            params.append(value)
            sql.append(clause.replace("?", f"${len(params)}"))

        if flt.status is not None:
            add("AND status = ?", flt.status)
        if flt.connector is not None:
            add("AND connector = ?", flt.connector)
        if flt.created_gte is not None:
            add("AND created_at >= ?", float(flt.created_gte))
        if flt.created_lt is not None:
            add("AND created_at < ?", float(flt.created_lt))
        if flt.starting_after is not None:
            add("AND id < ?", flt.starting_after)  # ids are time-ordered: newest first
        add("ORDER BY id DESC LIMIT ?", flt.limit)
        return await self._many(PaymentRecord, " ".join(sql), *params)

    async def list_attempts(self, payment_id: str) -> list[AttemptRecord]:
        return await self._many(
            AttemptRecord, "SELECT * FROM attempts WHERE payment_id = $1 ORDER BY seq", payment_id
        )

    async def list_attempts_of(self, payment_ids: list[str]) -> dict[str, list[AttemptRecord]]:
        found: dict[str, list[AttemptRecord]] = {pid: [] for pid in payment_ids}
        if not payment_ids:
            return found
        for attempt in await self._many(
            AttemptRecord,
            "SELECT * FROM attempts WHERE payment_id = ANY($1::text[]) ORDER BY payment_id, seq",
            list(payment_ids),
        ):
            found[attempt.payment_id].append(attempt)
        return found

    async def payments_touched_since(
        self, since: float, connector: str | None = None
    ) -> list[PaymentRecord]:
        if connector is None:
            return await self._many(
                PaymentRecord,
                "SELECT * FROM payments WHERE updated_at >= $1 ORDER BY created_at",
                float(since),
            )
        return await self._many(
            PaymentRecord,
            "SELECT * FROM payments WHERE updated_at >= $1 AND connector = $2 ORDER BY created_at",
            float(since),
            connector,
        )

    async def list_events(self, payment_id: str) -> list[EventRecord]:
        return await self._many(
            EventRecord, "SELECT * FROM events WHERE payment_id = $1 ORDER BY id", payment_id
        )

    async def payments_in_status(self, status: str) -> list[PaymentRecord]:
        return await self._many(PaymentRecord, "SELECT * FROM payments WHERE status = $1", status)

    async def unfinished_attempts(self) -> list[AttemptRecord]:
        return await self._many(
            AttemptRecord, "SELECT * FROM attempts WHERE status = 'started' ORDER BY created_at"
        )

    # captures and voids

    async def start_operation(
        self,
        payment: PaymentRecord,
        expected_status: tuple[str, ...],
        operation: OperationRecord,
        events: list[EventRecord],
        claim: IdempotencyClaim | None = None,
    ) -> None:
        async def op(conn: Conn) -> None:
            await _expect_status(conn, payment.id, expected_status)
            await _bind_claim(conn, claim, payment.id, operation.id)
            await _insert(conn, "operations", operation)
            await _update(conn, "payments", payment)
            await _insert_events(conn, events)

        await self._tx(op)

    async def finish_operation(
        self,
        payment: PaymentRecord,
        expected_status: tuple[str, ...],
        operation: OperationRecord,
        events: list[EventRecord],
        answer: StoredAnswer | None = None,
        release_claim: bool = False,
    ) -> None:
        async def op(conn: Conn) -> None:
            await _expect_status(conn, payment.id, expected_status)
            if await _update(conn, "operations", operation, "AND status = 'pending'") != 1:
                raise Conflict("operation_settled", "the operation was settled meanwhile")
            await _update(conn, "payments", payment)
            await _insert_events(conn, events)
            await _answer_bound(conn, answer, (payment.id, operation.id) if release_claim else None)

        await self._tx(op)

    async def update_operation(self, operation: OperationRecord) -> None:
        async def op(conn: Conn) -> None:
            await _update(conn, "operations", operation, "AND status = 'pending'")

        await self._tx(op)

    async def pending_operations(self) -> list[OperationRecord]:
        return await self._many(
            OperationRecord,
            "SELECT * FROM operations WHERE status = 'pending' ORDER BY created_at",
        )

    async def list_operations(self, payment_id: str) -> list[OperationRecord]:
        return await self._many(
            OperationRecord,
            "SELECT * FROM operations WHERE payment_id = $1 ORDER BY created_at",
            payment_id,
        )

    # refunds

    async def reserve_refund(
        self,
        refund: RefundRecord,
        events: list[EventRecord],
        claim: IdempotencyClaim | None = None,
    ) -> PaymentRecord:
        async def op(conn: Conn) -> PaymentRecord:
            # One conditional UPDATE: two refunds on any nodes cannot both take the last cent
            # (the second waits for the first's row lock, then re-checks the condition).
            status = await conn.execute(
                "UPDATE payments SET amount_refunded = amount_refunded + $1, updated_at = $2 "
                "WHERE id = $3 AND status = 'succeeded' "
                "AND amount_refunded + $1 <= amount_received",
                refund.amount,
                refund.created_at,
                refund.payment_id,
            )
            if _count(status) != 1:
                payment = await _payment_row(conn, refund.payment_id)
                if payment.status != "succeeded":
                    raise Conflict(
                        "payment_not_refundable",
                        f"a payment in status {payment.status} has nothing to refund",
                    )
                raise Conflict(
                    "refund_exceeds_captured",
                    f"refunds would total {payment.amount_refunded + refund.amount}, more than "
                    f"the {payment.amount_received} captured",
                )
            await _bind_claim(conn, claim, refund.payment_id, refund.id)
            await _insert(conn, "refunds", refund)
            await _insert_events(conn, events)
            return await _payment_row(conn, refund.payment_id)

        return await self._tx(op)

    async def finish_refund(
        self,
        refund: RefundRecord,
        events: list[EventRecord],
        answer: StoredAnswer | None = None,
        release_claim: bool = False,
    ) -> PaymentRecord:
        async def op(conn: Conn) -> PaymentRecord:
            if await _update(conn, "refunds", refund, "AND status = 'pending'") != 1:
                raise Conflict("refund_settled", "the refund was settled meanwhile")
            if refund.status == "failed":  # its reservation is released
                await conn.execute(
                    "UPDATE payments SET amount_refunded = amount_refunded - $1, updated_at = $2 "
                    "WHERE id = $3",
                    refund.amount,
                    refund.updated_at,
                    refund.payment_id,
                )
            await _insert_events(conn, events)
            await _answer_bound(
                conn, answer, (refund.payment_id, refund.id) if release_claim else None
            )
            return await _payment_row(conn, refund.payment_id)

        return await self._tx(op)

    async def update_refund(self, refund: RefundRecord) -> None:
        async def op(conn: Conn) -> None:
            await _update(conn, "refunds", refund, "AND status = 'pending'")

        await self._tx(op)

    async def get_refund(self, merchant_id: str, refund_id: str) -> RefundRecord | None:
        return await self._one(
            RefundRecord,
            "SELECT * FROM refunds WHERE id = $1 AND merchant_id = $2",
            refund_id,
            merchant_id,
        )

    async def list_refunds(self, payment_id: str) -> list[RefundRecord]:
        return await self._many(
            RefundRecord,
            "SELECT * FROM refunds WHERE payment_id = $1 ORDER BY created_at",
            payment_id,
        )

    async def pending_refunds(self) -> list[RefundRecord]:
        return await self._many(RefundRecord, "SELECT * FROM refunds WHERE status = 'pending'")

    # routing versions

    async def _routing_rows(self, where: str, *args: Any) -> list[RoutingVersion]:
        rows = await self._fetch(f"SELECT * FROM routing_versions {where} ORDER BY version", *args)
        return [_routing_version(r) for r in rows]

    async def routing_versions(self) -> list[RoutingVersion]:
        return await self._routing_rows("")

    async def get_routing_version(self, version: int) -> RoutingVersion | None:
        found = await self._routing_rows("WHERE version = $1", version)
        return found[0] if found else None

    async def active_routing_version(self) -> RoutingVersion | None:
        found = await self._routing_rows("WHERE active = 1")
        return found[0] if found else None

    async def active_routing_version_id(self) -> int | None:
        rows = await self._fetch("SELECT version FROM routing_versions WHERE active = 1")
        return None if not rows else int(rows[0][0])

    async def add_routing_version(
        self,
        config: dict[str, Any],
        source: str,
        now: float,
        activate: bool = True,
        unless_active_equals: bool = False,
    ) -> RoutingVersion:
        text = _json_encode(config, order="sorted").decode()

        async def op(conn: Conn) -> RoutingVersion:
            # Every node's routing writes one at a time: exactly one version stays active.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", ROUTING_LOCK)
            if unless_active_equals:
                row = await conn.fetchrow("SELECT * FROM routing_versions WHERE active = 1")
                if row is not None and row["config"] == text:
                    return _routing_version(row)
            if activate:
                await conn.execute("UPDATE routing_versions SET active = 0 WHERE active = 1")
            version = await conn.fetchval(
                "INSERT INTO routing_versions (config, created_at, source, active) "
                "VALUES ($1, $2, $3, $4) RETURNING version",
                text,
                now,
                source,
                int(activate),
            )
            return RoutingVersion(
                version=int(version), config=config, created_at=now, source=source, active=activate
            )

        return await self._tx(op)

    async def activate_routing_version(self, version: int) -> RoutingVersion | None:
        async def op(conn: Conn) -> RoutingVersion | None:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", ROUTING_LOCK)
            row = await conn.fetchrow("SELECT * FROM routing_versions WHERE version = $1", version)
            if row is None:
                return None
            await conn.execute("UPDATE routing_versions SET active = 0 WHERE active = 1")
            await conn.execute("UPDATE routing_versions SET active = 1 WHERE version = $1", version)
            found = _routing_version(row)
            found.active = True
            return found

        return await self._tx(op)

    # the reconciler's watch list

    async def watch_attempt(self, watch: ReconcileWatch) -> None:
        row = to_row(watch)
        cols = list(row)
        sql = (
            f"INSERT INTO reconcile_watch ({', '.join(cols)}) VALUES "
            f"({', '.join(f'${i}' for i in range(1, len(cols) + 1))}) "
            "ON CONFLICT (attempt_id) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c != "attempt_id")
        )

        async def op(conn: Conn) -> None:
            await conn.execute(sql, *row.values())

        await self._tx(op)

    async def due_watches(self, now: float, limit: int = 100) -> list[ReconcileWatch]:
        return await self._many(
            ReconcileWatch,
            "SELECT * FROM reconcile_watch WHERE state = 'open' AND next_check_at <= $1 "
            "ORDER BY next_check_at LIMIT $2",
            float(now),
            limit,
        )

    async def claim_watch(self, attempt_id: str, seen_next_check_at: float, until: float) -> bool:
        async def op(conn: Conn) -> bool:
            # A lease: of the nodes that read the same due row, the first to push its next
            # check wins; the others' UPDATE re-checks next_check_at on the new row and misses.
            status = await conn.execute(
                "UPDATE reconcile_watch SET next_check_at = $1 WHERE attempt_id = $2 AND "
                "next_check_at = $3 AND state = 'open'",
                float(until),
                attempt_id,
                float(seen_next_check_at),
            )
            return _count(status) == 1

        return await self._tx(op)

    async def update_watch(self, watch: ReconcileWatch) -> None:
        async def op(conn: Conn) -> None:
            await conn.execute(
                "UPDATE reconcile_watch SET state = $1, checks = $2, next_check_at = $3, "
                "note = $4, updated_at = $5 WHERE attempt_id = $6",
                watch.state,
                watch.checks,
                float(watch.next_check_at),
                watch.note,
                float(watch.updated_at),
                watch.attempt_id,
            )

        await self._tx(op)

    async def list_watches(self, payment_id: str) -> list[ReconcileWatch]:
        return await self._many(
            ReconcileWatch,
            "SELECT * FROM reconcile_watch WHERE payment_id = $1 ORDER BY created_at",
            payment_id,
        )

    # analytics

    @contextlib.asynccontextmanager
    async def analytics_connection(self) -> AsyncIterator[Conn]:
        """A connection of the analytics pool (its own few connections, so a report never
        takes one a payment needs): read-only, no JIT (it costs more than it saves on these
        scans), more work_mem for the grouped scans."""
        if self._analytics is None:
            with self._mapped():
                self._analytics = await asyncpg.create_pool(
                    self.url,
                    min_size=0,
                    max_size=self.analytics_connections,
                    timeout=self.connect_timeout_s,
                    command_timeout=60.0,
                    max_inactive_connection_lifetime=60.0,
                    server_settings={
                        "application_name": "paymux-analytics",
                        "default_transaction_read_only": "on",
                        "jit": "off",
                        "work_mem": "64MB",
                        "statement_timeout": "30000",
                    },
                )
        with self._mapped():
            async with self._analytics.acquire(timeout=self.acquire_timeout_s) as conn:
                yield conn
