"""Ids: time-ordered, unique, and never repeated across a fork (worker processes)."""

import os

from paymux.domain import ids


def test_ids_are_unique_and_sort_by_creation():
    made = [ids.new_id("pay") for _ in range(20_000)]
    assert len(set(made)) == len(made)
    assert all(m.startswith("pay_") and len(m) == 4 + 11 + 16 for m in made)
    assert [m[:15] for m in made] == sorted(m[:15] for m in made)


def test_a_forked_worker_does_not_reuse_the_parents_random_bytes():
    ids.random_hex(8)  # the parent has a pool now
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what it would use next
        os.write(write_end, ids.random_hex(32).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read_end, 64).decode()
    assert len(child) == 64
    assert child != ids.random_hex(32)
