"""Object ids: a type prefix, then time-ordered hex so ids sort by creation (keyset pagination).

The random part comes from the OS CSPRNG, read 4 KiB at a time: one ``getrandom`` per id was a
syscall (with a GIL release) several times per payment.
The buffer is dropped in a forked child so that worker processes never share random bytes.
"""

from __future__ import annotations

import os
import threading
import time

_CHUNK = 4096
_pool = b""
_offset = 0
_lock = threading.Lock()  # ids may be made off the event loop thread too


def _drop_pool() -> None:
    global _pool, _offset, _lock
    _pool, _offset, _lock = b"", 0, threading.Lock()


os.register_at_fork(after_in_child=_drop_pool)


def random_hex(nbytes: int) -> str:
    """``nbytes`` bytes from the OS CSPRNG, as hex (what ``secrets.token_hex`` returns)."""
    global _pool, _offset
    with _lock:
        end = _offset + nbytes
        if end > len(_pool):
            _pool, _offset, end = os.urandom(max(_CHUNK, nbytes)), 0, nbytes
        chunk = _pool[_offset:end]
        _offset = end
    return chunk.hex()


def new_id(prefix: str) -> str:
    return f"{prefix}_{time.time_ns() // 1_000_000:011x}{random_hex(8)}"
