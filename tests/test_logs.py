"""The JSON log handler: one line per record, written in one batch per event-loop turn."""

import asyncio
import io
import logging

import orjson
from paymux.observability import logs


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


def lines(stream: io.StringIO) -> list[dict]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_outside_an_event_loop_each_line_is_written_at_once():
    stream = CountingStream()
    logs.configure("info", stream)
    logs.log("gateway_started", port=8080)
    assert [line["event"] for line in lines(stream)] == ["gateway_started"]
    assert stream.writes == 1


def test_lines_of_one_loop_turn_go_out_in_one_write_and_none_is_lost():
    stream = CountingStream()
    logs.configure("info", stream)

    async def one_payment(n: int) -> None:
        logs.log("attempt", payment_id=f"pay_{n}")
        logs.log("request", status=200, payment_id=f"pay_{n}")
        await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(one_payment(n) for n in range(50)))
        await asyncio.sleep(0)

    asyncio.run(main())
    events = lines(stream)
    assert len(events) == 100
    assert {e["payment_id"] for e in events} == {f"pay_{n}" for n in range(50)}
    assert stream.writes < 10

    # A new loop after the first one closed still gets its lines written.
    async def later() -> None:
        logs.log("reloaded")
        await asyncio.sleep(0)

    asyncio.run(later())
    assert lines(stream)[-1]["event"] == "reloaded"


def test_debug_lines_are_dropped_below_the_configured_level():
    stream = CountingStream()
    logs.configure("warning", stream)
    logs.log("attempt")
    assert stream.getvalue() == ""


def test_structured_and_stdlib_lines_share_one_shape_and_order():
    stream = CountingStream()
    logs.configure("info", stream)
    logs.log("attempt", connector="stripe", latency_ms=1.5)
    logging.getLogger("paymux.connectors.stripe").warning("psp call failed code=%s", "timeout")
    logs.log("request", logging.WARNING, status=502)
    events = lines(stream)
    assert [(e["event"], e["level"]) for e in events] == [
        ("attempt", "info"),
        ("psp call failed code=timeout", "warning"),
        ("request", "warning"),
    ]
    assert events[0]["connector"] == "stripe" and events[2]["status"] == 502
    assert all(isinstance(e["ts"], float) for e in events)
