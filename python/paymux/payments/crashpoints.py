"""Named points in the payment flow where the crash tests SIGKILL the gateway.

``PAYMUX_CRASH_AT=capture.after_psp`` (a comma-separated list) makes the process kill itself
with SIGKILL the first time it reaches that point (``PAYMUX_CRASH_AFTER=N``: the N-th time), so
a test can stop the gateway at an exact place in an operation: before the PSP call
(``*.before_psp``), while it is in flight (``*.during_psp``: the kill comes 50 ms after the
request left), after the PSP answered and before the commit (``*.after_psp``), and after the
commit and before the response (``*.after_commit``). Operations: authorize, capture, void,
refund. Unset (always, in production), ``reached`` is one dictionary lookup that finds nothing.
"""

from __future__ import annotations

import asyncio
import os
import signal

POINTS = tuple(
    f"{op}.{where}"
    for op in ("authorize", "capture", "void", "refund")
    for where in ("before_psp", "during_psp", "after_psp", "after_commit")
)

_ARMED: dict[str, int] = {
    name.strip(): int(os.environ.get("PAYMUX_CRASH_AFTER", "1"))
    for name in os.environ.get("PAYMUX_CRASH_AT", "").split(",")
    if name.strip()
}
_DURING_DELAY_S = 0.05


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def reached(point: str) -> None:
    """The flow is at ``point``; die here if a crash test armed it."""
    if not _ARMED or point not in _ARMED:
        return
    _ARMED[point] -= 1
    if _ARMED[point] > 0:
        return
    if point.endswith(".during_psp"):
        asyncio.get_running_loop().call_later(_DURING_DELAY_S, _kill)
    else:
        _kill()
