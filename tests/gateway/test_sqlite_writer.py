"""The SQLite store's writer: batched commits in submission order, and an event loop that never
waits for a write lock held by another process."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest
from paymux.domain.records import Merchant
from paymux.store.sqlite import SqliteStore, _connect


@pytest.fixture
async def store(tmp_path):
    s = SqliteStore(str(tmp_path / "paymux.db"))
    await s.open()
    yield s
    await s.close()


def _insert_note(text: str):
    def op(conn: sqlite3.Connection) -> int:
        cur = conn.execute("INSERT INTO notes (text) VALUES (?)", (text,))
        return cur.lastrowid

    return op


def _fail(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO notes (text) VALUES ('never')")
    raise ValueError("this operation fails")


async def _make_notes_table(store: SqliteStore) -> None:
    await store._write(
        lambda c: c.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    )


async def test_writes_of_one_turn_commit_together_in_order_and_a_failure_spoils_only_itself(store):
    await _make_notes_table(store)
    futures = [store._write(_insert_note(f"n{i}")) for i in range(5)]
    failing = store._write(_fail)
    futures.append(store._write(_insert_note("n5")))
    ids = await asyncio.gather(*futures)
    with pytest.raises(ValueError, match="this operation fails"):
        await failing
    assert ids == sorted(ids)
    rows = [r[0] for r in _connect(store.path).execute("SELECT text FROM notes ORDER BY id")]
    assert rows == [f"n{i}" for i in range(6)]


async def test_a_lock_held_by_another_process_never_blocks_the_loop_and_order_is_kept(store):
    await _make_notes_table(store)
    other = _connect(store.path)  # stands for a second worker process
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO notes (text) VALUES ('other-worker')")

    first = [store._write(_insert_note(f"a{i}")) for i in range(3)]
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(20):
            await asyncio.sleep(0.01)
            ticks += 1

    tick_task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    # Submitted while the earlier batch waits for the lock: must still commit after it.
    second = [store._write(_insert_note(f"b{i}")) for i in range(3)]
    await asyncio.sleep(0.05)
    assert not any(f.done() for f in first + second)  # waiting for the lock...
    assert ticks >= 5  # ...without stopping the loop

    threading.Timer(0.05, other.execute, ("COMMIT",)).start()
    await asyncio.wait_for(asyncio.gather(*first, *second), timeout=10)
    await tick_task
    texts = [r[0] for r in _connect(store.path).execute("SELECT text FROM notes ORDER BY id")]
    assert texts == ["other-worker", "a0", "a1", "a2", "b0", "b1", "b2"]

    # Caught up: the next write runs on the loop again and is visible at once.
    await store.ensure_merchant(Merchant(id="m_after", name="After", created_at=time.time()))
    assert await store.get_merchant("m_after") is not None
    other.close()


async def test_close_commits_what_was_submitted(tmp_path):
    s = SqliteStore(str(tmp_path / "paymux.db"))
    await s.open()
    fut = s._write(
        lambda c: c.execute(
            "INSERT INTO merchants (id, name, created_at) VALUES ('m_last', 'Last', 1)"
        )
    )
    await s.close()
    assert fut.done() and fut.exception() is None
    assert _connect(s.path).execute("SELECT name FROM merchants WHERE id = 'm_last'").fetchone()
