"""SQLite store, the embedded default: WAL, writes batched into one commit per loop turn, inline reads.

Writes from every coroutine are queued and run together, in submission order, in one transaction
at the next turn of the event loop (see ``_Writer``): persistence costs one commit per batch, not
per payment, and no thread hop. Point reads by primary key run inline on a separate read
connection: they take microseconds in WAL mode.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

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
from paymux.store.base import Store
from paymux.store.migrations import SQLITE, migrations_for
from paymux.store.rows import FIXED_AT_INSERT, JSON_COLUMNS, to_row

T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)
_Outcome = tuple[bool, Any]  # (ok, the operation's value or its exception)

_json_encode = msgspec.json.encode
_json_decode = msgspec.json.decode

# Columns stored as JSON text.
_MAX_BATCH = 256
_CHECKPOINT_EVERY_S = 1.0
_BACKSTOP_CHECKPOINT_PAGES = 10_000  # ~40 MB of WAL


def _from_row(cls: type[S], row: sqlite3.Row) -> S:
    values: dict[str, Any] = {}
    keys = row.keys()
    for name in cls.__struct_fields__:
        if name not in keys:
            continue
        value = row[name]
        if name in JSON_COLUMNS and value is not None:
            value = _json_decode(value)
        values[name] = value
    return msgspec.convert(values, cls, strict=False)


# SQL text by (verb, table, columns, where): built once, not on every write.
_SQL: dict[tuple[str, str, tuple[str, ...], str], str] = {}


def _insert(conn: sqlite3.Connection, table: str, record: msgspec.Struct) -> None:
    row = to_row(record)
    if row.get("id", 0) is None:  # autoincrement ids
        del row["id"]
    key = ("insert", table, tuple(row), "")
    sql = _SQL.get(key)
    if sql is None:
        cols = ", ".join(row)
        marks = ", ".join(f":{c}" for c in row)
        sql = _SQL[key] = f"INSERT INTO {table} ({cols}) VALUES ({marks})"
    conn.execute(sql, row)


def _update(conn: sqlite3.Connection, table: str, record: msgspec.Struct, where: str = "") -> int:
    row = to_row(record)
    key = ("update", table, tuple(row), where)
    sql = _SQL.get(key)
    if sql is None:
        fixed = FIXED_AT_INSERT.get(table, frozenset({"id"}))
        sets = ", ".join(f"{c} = :{c}" for c in row if c != "id" and c not in fixed)
        sql = _SQL[key] = f"UPDATE {table} SET {sets} WHERE id = :id {where}"
    cur = conn.execute(sql, row)
    return cur.rowcount


def _claim_idempotent(
    conn: sqlite3.Connection,
    claim: IdempotencyClaim,
    payment_id: str | None = None,
    operation_id: str | None = None,
) -> tuple[IdempotencyState, IdempotencyRecord | None]:
    # An expired record no longer binds the key.
    conn.execute(
        "DELETE FROM idempotency WHERE merchant_id = ? AND key = ? AND created_at < ?",
        (claim.merchant_id, claim.key, claim.now - claim.ttl_s),
    )
    cur = conn.execute(
        "INSERT OR IGNORE INTO idempotency (merchant_id, key, request_hash, status, created_at, "
        "payment_id, operation_id) VALUES (?, ?, ?, 'in_progress', ?, ?, ?)",
        (claim.merchant_id, claim.key, claim.request_hash, claim.now, payment_id, operation_id),
    )
    if cur.rowcount == 1:
        return IdempotencyState.NEW, None
    row = conn.execute(
        "SELECT * FROM idempotency WHERE merchant_id = ? AND key = ?",
        (claim.merchant_id, claim.key),
    ).fetchone()
    record = _from_row(IdempotencyRecord, row)
    return idempotency_state(record, claim.request_hash), record


def _complete_idempotent(
    conn: sqlite3.Connection, merchant_id: str, key: str, status: int, body: bytes
) -> None:
    conn.execute(
        "UPDATE idempotency SET status = 'completed', response_status = ?, response_body = ? "
        "WHERE merchant_id = ? AND key = ?",
        (status, body, merchant_id, key),
    )


def _bind_claim(
    conn: sqlite3.Connection,
    claim: IdempotencyClaim | None,
    payment_id: str,
    operation_id: str | None = None,
) -> None:
    """Claim a key for what this transaction creates; IdempotencyTaken (the transaction rolls
    back, nothing written) if it is bound already."""
    if claim is None:
        return
    state, record = _claim_idempotent(conn, claim, payment_id, operation_id)
    if state is not IdempotencyState.NEW:
        assert record is not None
        raise IdempotencyTaken(state, record)


def _answer_bound(
    conn: sqlite3.Connection,
    answer: StoredAnswer | None,
    release: tuple[str, str | None] | None = None,
) -> None:
    """Complete (or, with ``release``, forget) the keys bound to a payment or an operation."""
    if answer is not None:
        # A completed key keeps its answer (a replay is exact); an in-progress or provisional
        # one takes this one.
        conn.execute(
            "UPDATE idempotency SET status = ?, response_status = ?, response_body = ? "
            "WHERE payment_id = ? AND operation_id IS ? AND status != 'completed'",
            (
                "completed" if answer.final else "provisional",
                answer.status,
                answer.body,
                answer.payment_id,
                answer.operation_id,
            ),
        )
    if release is not None:
        conn.execute("DELETE FROM idempotency WHERE payment_id = ? AND operation_id IS ?", release)


def _expect_status(conn: sqlite3.Connection, payment_id: str, expected: tuple[str, ...]) -> None:
    marks = ", ".join("?" for _ in expected)
    row = conn.execute(
        f"SELECT 1 FROM payments WHERE id = ? AND status IN ({marks})", (payment_id, *expected)
    ).fetchone()
    if row is None:
        raise Conflict("payment_state_changed", "the payment changed state meanwhile")


def _payment_row(conn: sqlite3.Connection, payment_id: str) -> PaymentRecord:
    row = conn.execute("SELECT * FROM payments WHERE id = ?", (payment_id,)).fetchone()
    return _from_row(PaymentRecord, row)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    # NORMAL in WAL mode: a commit is durable against a process crash (SIGKILL), and a power cut
    # can lose only the last batch; FULL would fsync every batch.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


class _Job:
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], future: asyncio.Future[Any]):
        self.fn = fn
        self.future = future


def _run_batch(conn: sqlite3.Connection, batch: list[_Job], begun: bool = False) -> list[_Outcome]:
    """Run ``batch`` in one transaction; one (ok, value or exception) per job."""
    try:
        if not begun:
            conn.execute("BEGIN IMMEDIATE")
        if len(batch) == 1:  # its own transaction isolates it: no savepoint needed
            try:
                outcomes: list[_Outcome] = [(True, batch[0].fn(conn))]
            except Exception as exc:  # noqa: BLE001 - the operation's own failure, for its caller
                conn.execute("ROLLBACK")
                return [(False, exc)]
        else:
            outcomes = []
            for job in batch:
                conn.execute("SAVEPOINT op")
                try:
                    outcomes.append((True, job.fn(conn)))
                except Exception as exc:  # noqa: BLE001 - reported to that operation's caller
                    conn.execute("ROLLBACK TO op")
                    outcomes.append((False, exc))
                conn.execute("RELEASE op")
        conn.execute("COMMIT")
        return outcomes
    except Exception as exc:  # noqa: BLE001 - the transaction failed: so did every operation in it
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        return [(False, exc)] * len(batch)


def _settle_batch(batch: list[_Job], outcomes: list[_Outcome]) -> None:
    for job, (ok, value) in zip(batch, outcomes):
        if job.future.done():  # the caller was cancelled; the write happened (or not) all the same
            continue
        if ok:
            job.future.set_result(value)
        else:
            job.future.set_exception(value)


def _is_busy(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class _Writer:
    """The single writer: runs write operations in batched transactions, in submission order.

    The operations submitted during one turn of the event loop run together in one transaction
    (each in its own savepoint, so one failing operation never spoils the others) at the start
    of the next turn, on the loop's own thread. An uncontended commit in WAL mode without fsync
    costs 30-50 us there, where handing each write to a thread and back cost about 150 us of
    CPU (a futex wake, a self-pipe write and two GIL hand-offs), several times per payment.

    The loop never waits for a lock, though. When another process (another worker) holds the
    database's write lock, the batch goes to a helper thread that waits for the lock with the
    busy timeout, and the batches after it follow it there until it has caught up, so operations
    always commit in the order they were submitted.
    """

    def __init__(self, path: str) -> None:
        self.conn = _connect(path)
        self.conn.execute("PRAGMA busy_timeout = 0")  # a held lock sends the batch to the helper
        # Checkpoints run in _Checkpointer, so a commit never waits for a checkpoint's fsyncs;
        # this much larger threshold is only the backstop should that thread fall behind.
        self.conn.execute(f"PRAGMA wal_autocheckpoint = {_BACKSTOP_CHECKPOINT_PAGES}")
        self._pending: list[_Job] = []
        self._scheduled = False
        self._handed_off = 0  # batches given to the helper and not yet settled on the loop
        self._helper = _LockWaiter(path, self)
        self._helper.start()

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._pending.append(_Job(fn, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._run_pending)
        return fut

    def _run_pending(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
        if self._pending:  # more than one batch's worth: the rest on the next turn
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run_pending)
        if not batch:
            return
        if self._handed_off == 0:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                if not _is_busy(exc):
                    _settle_batch(batch, [(False, exc)] * len(batch))
                    return
            else:
                _settle_batch(batch, _run_batch(self.conn, batch, begun=True))
                return
        self._handed_off += 1
        self._helper.jobs.put((batch, asyncio.get_running_loop()))

    def _helper_done(self, batch: list[_Job], outcomes: list[_Outcome]) -> None:
        self._handed_off -= 1
        _settle_batch(batch, outcomes)

    async def aclose(self) -> None:
        if self._pending:
            self._run_pending()
        await asyncio.to_thread(self._helper.stop)
        await asyncio.sleep(0)  # let the helper's last settlements run
        self.conn.close()


class _LockWaiter(threading.Thread):
    """Runs the batches that found the write lock held, waiting for it with the busy timeout."""

    def __init__(self, path: str, owner: _Writer) -> None:
        super().__init__(name="paymux-sqlite-writer", daemon=True)
        self.conn = _connect(path)
        self.conn.execute(f"PRAGMA wal_autocheckpoint = {_BACKSTOP_CHECKPOINT_PAGES}")
        self.owner = owner
        self.jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            item = self.jobs.get()
            if item is None:
                break
            batch, loop = item
            outcomes = _run_batch(self.conn, batch)
            try:
                loop.call_soon_threadsafe(self.owner._helper_done, batch, outcomes)
            except RuntimeError:  # the loop has closed: nobody is waiting any more
                pass
        self.conn.close()

    def stop(self) -> None:
        self.jobs.put(None)
        self.join()


class _Checkpointer(threading.Thread):
    """Copies the WAL back into the database every second, in a thread of its own.

    With SQLite's automatic checkpoint, the commit that crosses 1000 WAL pages runs the
    checkpoint and its fsyncs itself (a few milliseconds that every queued write then waits
    for, several times a second under load). A PASSIVE checkpoint from its own connection runs
    beside the writer without blocking it and without changing what a commit guarantees.
    """

    def __init__(self, path: str) -> None:
        super().__init__(name="paymux-sqlite-checkpoint", daemon=True)
        self.conn = _connect(path)
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(_CHECKPOINT_EVERY_S):
            try:
                self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                pass  # busy or locked: the next round checkpoints what is left
        self.conn.close()

    def stop(self) -> None:
        self.halt.set()
        self.join()


class SqliteStore(Store):
    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: _Writer | None = None
        self._checkpointer: _Checkpointer | None = None
        self._reader: sqlite3.Connection | None = None

    # lifecycle

    async def open(self) -> None:
        conn = _connect(self.path)
        try:
            _migrate(conn)
        finally:
            conn.close()
        self._writer = _Writer(self.path)
        self._checkpointer = _Checkpointer(self.path)
        self._checkpointer.start()
        self._reader = _connect(self.path)

    async def close(self) -> None:
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
            self._checkpointer = None
        if self._writer is not None:
            await self._writer.aclose()
            self._writer = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        assert self._writer is not None, "store is not open"
        return self._writer.submit(fn)

    def _one(self, cls: type[S], sql: str, params: tuple[Any, ...]) -> S | None:
        assert self._reader is not None, "store is not open"
        row = self._reader.execute(sql, params).fetchone()
        return None if row is None else _from_row(cls, row)

    def _many(self, cls: type[S], sql: str, params: tuple[Any, ...]) -> list[S]:
        assert self._reader is not None, "store is not open"
        return [_from_row(cls, r) for r in self._reader.execute(sql, params).fetchall()]

    # merchants and keys

    async def ensure_merchant(self, merchant: Merchant) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO merchants (id, name, created_at) VALUES (?, ?, ?)",
                (merchant.id, merchant.name, merchant.created_at),
            )

        await self._write(op)

    async def get_merchant(self, merchant_id: str) -> Merchant | None:
        return self._one(Merchant, "SELECT * FROM merchants WHERE id = ?", (merchant_id,))

    async def add_api_key(self, key: ApiKey) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR IGNORE INTO api_keys (id, merchant_id, key_hash, prefix, mode, "
                "created_at, revoked_at) VALUES (:id, :merchant_id, :key_hash, :prefix, "
                ":mode, :created_at, :revoked_at)",
                to_row(key),
            )

        await self._write(op)

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        return self._one(
            ApiKey, "SELECT * FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", (key_hash,)
        )

    async def list_api_keys(self, merchant_id: str) -> list[ApiKey]:
        return self._many(
            ApiKey,
            "SELECT * FROM api_keys WHERE merchant_id = ? ORDER BY created_at",
            (merchant_id,),
        )

    # tokens

    async def insert_token(self, token: TokenRecord) -> None:
        await self._write(lambda conn: _insert(conn, "tokens", token))

    async def get_token(self, merchant_id: str, token_id: str) -> TokenRecord | None:
        return self._one(
            TokenRecord,
            "SELECT * FROM tokens WHERE id = ? AND merchant_id = ? AND deleted_at IS NULL",
            (token_id, merchant_id),
        )

    async def delete_token(self, merchant_id: str, token_id: str, now: float) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            # The ciphertext goes with the token: a deleted card cannot be revealed again.
            cur = conn.execute(
                "UPDATE tokens SET deleted_at = ?, ciphertext = X'' "
                "WHERE id = ? AND merchant_id = ? AND deleted_at IS NULL",
                (now, token_id, merchant_id),
            )
            return cur.rowcount == 1

        return await self._write(op)

    # idempotency

    async def begin_idempotent(
        self, merchant_id: str, key: str, request_hash: str, now: float, ttl_s: float
    ) -> tuple[IdempotencyState, IdempotencyRecord | None]:
        claim = IdempotencyClaim(
            merchant_id=merchant_id, key=key, request_hash=request_hash, now=now, ttl_s=ttl_s
        )
        return await self._write(lambda conn: _claim_idempotent(conn, claim))

    async def get_idempotent(
        self, merchant_id: str, key: str, now: float, ttl_s: float
    ) -> IdempotencyRecord | None:
        return self._one(
            IdempotencyRecord,
            "SELECT * FROM idempotency WHERE merchant_id = ? AND key = ? AND created_at >= ?",
            (merchant_id, key, now - ttl_s),
        )

    async def complete_idempotent(
        self, merchant_id: str, key: str, status: int, body: bytes
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            _complete_idempotent(conn, merchant_id, key, status, body)

        await self._write(op)

    async def release_idempotent(self, merchant_id: str, key: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM idempotency WHERE merchant_id = ? AND key = ? AND "
                "status = 'in_progress' AND payment_id IS NULL",
                (merchant_id, key),
            )

        await self._write(op)

    async def forget_idempotent(self, merchant_id: str, key: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM idempotency WHERE merchant_id = ? AND key = ?", (merchant_id, key)
            )

        await self._write(op)

    async def stale_idempotency_records(self) -> list[IdempotencyRecord]:
        return self._many(
            IdempotencyRecord, "SELECT * FROM idempotency WHERE status = 'in_progress'", ()
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
        def op(conn: sqlite3.Connection) -> None:
            _bind_claim(conn, claim, payment.id)
            if token is not None:
                _insert(conn, "tokens", token)
            _insert(conn, "payments", payment)
            for event in events:
                _insert(conn, "events", event)
            if first_attempt is not None:
                _insert(conn, "attempts", first_attempt[0])
                _insert(conn, "events", first_attempt[1])
            _answer_bound(conn, answer)

        await self._write(op)

    async def confirm_payment(
        self,
        payment: PaymentRecord,
        expected_status: tuple[str, ...],
        token: TokenRecord | None,
        events: list[EventRecord],
        first_attempt: tuple[AttemptRecord, EventRecord],
        claim: IdempotencyClaim | None = None,
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            _expect_status(conn, payment.id, expected_status)
            _bind_claim(conn, claim, payment.id)
            if token is not None:
                _insert(conn, "tokens", token)
            # The card columns are fixed once a payment is confirmed, so _update skips them.
            conn.execute(
                "UPDATE payments SET token_id = ?, card_brand = ?, card_bin = ?, card_last4 = ?, "
                "card_exp_month = ?, card_exp_year = ?, routing = ? WHERE id = ?",
                (
                    payment.token_id,
                    payment.card_brand,
                    payment.card_bin,
                    payment.card_last4,
                    payment.card_exp_month,
                    payment.card_exp_year,
                    _json_encode(payment.routing).decode() if payment.routing else None,
                    payment.id,
                ),
            )
            _update(conn, "payments", payment)
            for event in events:
                _insert(conn, "events", event)
            _insert(conn, "attempts", first_attempt[0])
            _insert(conn, "events", first_attempt[1])

        await self._write(op)

    async def update_payment_details(self, payment: PaymentRecord, event: EventRecord) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE payments SET metadata = ?, description = ?, updated_at = ? WHERE id = ?",
                (
                    _json_encode(payment.metadata).decode(),
                    payment.description,
                    payment.updated_at,
                    payment.id,
                ),
            )
            _insert(conn, "events", event)

        await self._write(op)

    async def start_attempt(self, attempt: AttemptRecord, event: EventRecord) -> None:
        def op(conn: sqlite3.Connection) -> None:
            _insert(conn, "attempts", attempt)
            _insert(conn, "events", event)

        await self._write(op)

    async def finish_attempt(
        self,
        attempt: AttemptRecord,
        payment: PaymentRecord | None,
        events: list[EventRecord],
        answer: StoredAnswer | None = None,
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            _update(conn, "attempts", attempt)
            if payment is not None:
                _update(conn, "payments", payment)
            for event in events:
                _insert(conn, "events", event)
            _answer_bound(conn, answer)

        await self._write(op)

    async def transition_payment(
        self,
        payment: PaymentRecord,
        expected_status: tuple[str, ...],
        events: list[EventRecord],
        answer: StoredAnswer | None = None,
        claim: IdempotencyClaim | None = None,
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            _expect_status(conn, payment.id, expected_status)
            _bind_claim(conn, claim, payment.id)
            _update(conn, "payments", payment)
            for event in events:
                _insert(conn, "events", event)
            _answer_bound(conn, answer)

        await self._write(op)

    # captures and voids

    async def start_operation(
        self,
        payment: PaymentRecord,
        expected_status: tuple[str, ...],
        operation: OperationRecord,
        events: list[EventRecord],
        claim: IdempotencyClaim | None = None,
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            _expect_status(conn, payment.id, expected_status)
            _bind_claim(conn, claim, payment.id, operation.id)
            _insert(conn, "operations", operation)
            _update(conn, "payments", payment)
            for event in events:
                _insert(conn, "events", event)

        await self._write(op)

    async def finish_operation(
        self,
        payment: PaymentRecord,
        expected_status: tuple[str, ...],
        operation: OperationRecord,
        events: list[EventRecord],
        answer: StoredAnswer | None = None,
        release_claim: bool = False,
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            _expect_status(conn, payment.id, expected_status)
            if _update(conn, "operations", operation, "AND status = 'pending'") != 1:
                raise Conflict("operation_settled", "the operation was settled meanwhile")
            _update(conn, "payments", payment)
            for event in events:
                _insert(conn, "events", event)
            _answer_bound(conn, answer, (payment.id, operation.id) if release_claim else None)

        await self._write(op)

    async def update_operation(self, operation: OperationRecord) -> None:
        await self._write(
            lambda conn: _update(conn, "operations", operation, "AND status = 'pending'")
        )

    async def pending_operations(self) -> list[OperationRecord]:
        return self._many(
            OperationRecord,
            "SELECT * FROM operations WHERE status = 'pending' ORDER BY created_at",
            (),
        )

    async def list_operations(self, payment_id: str) -> list[OperationRecord]:
        return self._many(
            OperationRecord,
            "SELECT * FROM operations WHERE payment_id = ? ORDER BY created_at",
            (payment_id,),
        )

    async def get_payment(self, merchant_id: str, payment_id: str) -> PaymentRecord | None:
        return self._one(
            PaymentRecord,
            "SELECT * FROM payments WHERE id = ? AND merchant_id = ?",
            (payment_id, merchant_id),
        )

    async def list_payments(self, merchant_id: str, flt: PaymentFilter) -> list[PaymentRecord]:
        sql = ["SELECT * FROM payments WHERE merchant_id = ?"]
        params: list[Any] = [merchant_id]
        if flt.status is not None:
            sql.append("AND status = ?")
            params.append(flt.status)
        if flt.connector is not None:
            sql.append("AND connector = ?")
            params.append(flt.connector)
        if flt.created_gte is not None:
            sql.append("AND created_at >= ?")
            params.append(flt.created_gte)
        if flt.created_lt is not None:
            sql.append("AND created_at < ?")
            params.append(flt.created_lt)
        if flt.starting_after is not None:
            sql.append("AND id < ?")  # ids are time-ordered: newest first, keyset pagination
            params.append(flt.starting_after)
        sql.append("ORDER BY id DESC LIMIT ?")
        params.append(flt.limit)
        return self._many(PaymentRecord, " ".join(sql), tuple(params))

    async def list_attempts(self, payment_id: str) -> list[AttemptRecord]:
        return self._many(
            AttemptRecord, "SELECT * FROM attempts WHERE payment_id = ? ORDER BY seq", (payment_id,)
        )

    async def list_attempts_of(self, payment_ids: list[str]) -> dict[str, list[AttemptRecord]]:
        found: dict[str, list[AttemptRecord]] = {pid: [] for pid in payment_ids}
        if not payment_ids:
            return found
        marks = ", ".join("?" for _ in payment_ids)
        for attempt in self._many(
            AttemptRecord,
            f"SELECT * FROM attempts WHERE payment_id IN ({marks}) ORDER BY payment_id, seq",
            tuple(payment_ids),
        ):
            found[attempt.payment_id].append(attempt)
        return found

    async def payments_touched_since(
        self, since: float, connector: str | None = None
    ) -> list[PaymentRecord]:
        sql = "SELECT * FROM payments WHERE updated_at >= ?"
        params: tuple[Any, ...] = (since,)
        if connector is not None:
            sql += " AND connector = ?"
            params += (connector,)
        return self._many(PaymentRecord, sql + " ORDER BY created_at", params)

    async def list_events(self, payment_id: str) -> list[EventRecord]:
        return self._many(
            EventRecord, "SELECT * FROM events WHERE payment_id = ? ORDER BY id", (payment_id,)
        )

    async def payments_in_status(self, status: str) -> list[PaymentRecord]:
        return self._many(PaymentRecord, "SELECT * FROM payments WHERE status = ?", (status,))

    async def unfinished_attempts(self) -> list[AttemptRecord]:
        return self._many(
            AttemptRecord, "SELECT * FROM attempts WHERE status = 'started' ORDER BY created_at", ()
        )

    # refunds

    async def reserve_refund(
        self,
        refund: RefundRecord,
        events: list[EventRecord],
        claim: IdempotencyClaim | None = None,
    ) -> PaymentRecord:
        def op(conn: sqlite3.Connection) -> PaymentRecord:
            # One conditional UPDATE: two concurrent refunds cannot both take the last cent.
            cur = conn.execute(
                "UPDATE payments SET amount_refunded = amount_refunded + ?, updated_at = ? "
                "WHERE id = ? AND status = 'succeeded' "
                "AND amount_refunded + ? <= amount_received",
                (refund.amount, refund.created_at, refund.payment_id, refund.amount),
            )
            if cur.rowcount != 1:
                payment = _payment_row(conn, refund.payment_id)
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
            _bind_claim(conn, claim, refund.payment_id, refund.id)
            _insert(conn, "refunds", refund)
            for event in events:
                _insert(conn, "events", event)
            return _payment_row(conn, refund.payment_id)

        return await self._write(op)

    async def finish_refund(
        self,
        refund: RefundRecord,
        events: list[EventRecord],
        answer: StoredAnswer | None = None,
        release_claim: bool = False,
    ) -> PaymentRecord:
        def op(conn: sqlite3.Connection) -> PaymentRecord:
            if _update(conn, "refunds", refund, "AND status = 'pending'") != 1:
                raise Conflict("refund_settled", "the refund was settled meanwhile")
            if refund.status == "failed":  # its reservation is released
                conn.execute(
                    "UPDATE payments SET amount_refunded = amount_refunded - ?, updated_at = ? "
                    "WHERE id = ?",
                    (refund.amount, refund.updated_at, refund.payment_id),
                )
            for event in events:
                _insert(conn, "events", event)
            _answer_bound(conn, answer, (refund.payment_id, refund.id) if release_claim else None)
            return _payment_row(conn, refund.payment_id)

        return await self._write(op)

    async def update_refund(self, refund: RefundRecord) -> None:
        await self._write(lambda conn: _update(conn, "refunds", refund, "AND status = 'pending'"))

    async def get_refund(self, merchant_id: str, refund_id: str) -> RefundRecord | None:
        return self._one(
            RefundRecord,
            "SELECT * FROM refunds WHERE id = ? AND merchant_id = ?",
            (refund_id, merchant_id),
        )

    async def list_refunds(self, payment_id: str) -> list[RefundRecord]:
        return self._many(
            RefundRecord,
            "SELECT * FROM refunds WHERE payment_id = ? ORDER BY created_at",
            (payment_id,),
        )

    async def pending_refunds(self) -> list[RefundRecord]:
        return self._many(RefundRecord, "SELECT * FROM refunds WHERE status = 'pending'", ())

    # routing versions

    def _routing_rows(self, where: str, params: tuple[Any, ...]) -> list[RoutingVersion]:
        assert self._reader is not None, "store is not open"
        rows = self._reader.execute(
            f"SELECT * FROM routing_versions {where} ORDER BY version", params
        ).fetchall()
        return [_routing_version(r) for r in rows]

    async def routing_versions(self) -> list[RoutingVersion]:
        return self._routing_rows("", ())

    async def get_routing_version(self, version: int) -> RoutingVersion | None:
        found = self._routing_rows("WHERE version = ?", (version,))
        return found[0] if found else None

    async def active_routing_version(self) -> RoutingVersion | None:
        found = self._routing_rows("WHERE active = 1", ())
        return found[0] if found else None

    async def active_routing_version_id(self) -> int | None:
        assert self._reader is not None, "store is not open"
        row = self._reader.execute(
            "SELECT version FROM routing_versions WHERE active = 1"
        ).fetchone()
        return None if row is None else int(row[0])

    async def add_routing_version(
        self,
        config: dict[str, Any],
        source: str,
        now: float,
        activate: bool = True,
        unless_active_equals: bool = False,
    ) -> RoutingVersion:
        text = _json_encode(config, order="sorted").decode()

        def op(conn: sqlite3.Connection) -> RoutingVersion:
            if unless_active_equals:
                row = conn.execute("SELECT * FROM routing_versions WHERE active = 1").fetchone()
                if row is not None and row["config"] == text:
                    return _routing_version(row)
            if activate:
                conn.execute("UPDATE routing_versions SET active = 0 WHERE active = 1")
            cur = conn.execute(
                "INSERT INTO routing_versions (config, created_at, source, active) "
                "VALUES (?, ?, ?, ?)",
                (text, now, source, int(activate)),
            )
            return RoutingVersion(
                version=int(cur.lastrowid or 0),
                config=config,
                created_at=now,
                source=source,
                active=activate,
            )

        return await self._write(op)

    async def activate_routing_version(self, version: int) -> RoutingVersion | None:
        def op(conn: sqlite3.Connection) -> RoutingVersion | None:
            row = conn.execute(
                "SELECT * FROM routing_versions WHERE version = ?", (version,)
            ).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE routing_versions SET active = 0 WHERE active = 1")
            conn.execute("UPDATE routing_versions SET active = 1 WHERE version = ?", (version,))
            found = _routing_version(row)
            found.active = True
            return found

        return await self._write(op)

    # the reconciler's watch list

    async def watch_attempt(self, watch: ReconcileWatch) -> None:
        def op(conn: sqlite3.Connection) -> None:
            row = to_row(watch)
            conn.execute(
                "INSERT OR REPLACE INTO reconcile_watch ("
                + ", ".join(row)
                + ") VALUES ("
                + ", ".join(f":{c}" for c in row)
                + ")",
                row,
            )

        await self._write(op)

    async def due_watches(self, now: float, limit: int = 100) -> list[ReconcileWatch]:
        return self._many(
            ReconcileWatch,
            "SELECT * FROM reconcile_watch WHERE state = 'open' AND next_check_at <= ? "
            "ORDER BY next_check_at LIMIT ?",
            (now, limit),
        )

    async def claim_watch(self, attempt_id: str, seen_next_check_at: float, until: float) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE reconcile_watch SET next_check_at = ? WHERE attempt_id = ? AND "
                "next_check_at = ? AND state = 'open'",
                (until, attempt_id, seen_next_check_at),
            )
            return cur.rowcount == 1

        return await self._write(op)

    async def update_watch(self, watch: ReconcileWatch) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE reconcile_watch SET state = ?, checks = ?, next_check_at = ?, note = ?, "
                "updated_at = ? WHERE attempt_id = ?",
                (
                    watch.state,
                    watch.checks,
                    watch.next_check_at,
                    watch.note,
                    watch.updated_at,
                    watch.attempt_id,
                ),
            )

        await self._write(op)

    async def list_watches(self, payment_id: str) -> list[ReconcileWatch]:
        return self._many(
            ReconcileWatch,
            "SELECT * FROM reconcile_watch WHERE payment_id = ? ORDER BY created_at",
            (payment_id,),
        )

    def read_connection(self) -> sqlite3.Connection:
        """The read connection, for analytics queries run off the event loop."""
        assert self._reader is not None, "store is not open"
        return self._reader


def _routing_version(row: sqlite3.Row) -> RoutingVersion:
    return RoutingVersion(
        version=row["version"],
        config=_json_decode(row["config"]),
        created_at=row["created_at"],
        source=row["source"],
        active=bool(row["active"]),
    )


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
        "applied_at REAL NOT NULL)"
    )
    applied = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
    for version, statements in migrations_for(SQLITE):
        if version in applied:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (version, time.time()),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
