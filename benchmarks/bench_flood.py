"""Valid traffic with and without an invalid-key flood, side by side: throughput and p99 of the
valid merchants' payments, in alternating rounds (target: within 10% and 20%). Figures only.

    make build-prod && .venv/bin/python benchmarks/bench_flood.py [-n 3000] [-c 16] [--pairs 3]

Built for a small shared machine (2 CPUs): the gateway (`paymux serve`, one worker, the embedded
default config and its default rate limits) is pinned to CPU 0; the sandbox, this process (the
valid load: a closed loop of `POST /v1/payments` from 127.0.0.1) and the flood process are pinned
to CPU 1, so the gateway's CPU is the one under test and the load generators compete with each
other only. After a warm-up, `--pairs` pairs of runs alternate (no flood, flood; then flood, no
flood; ...: drift cancels), each printed side by side, then the median ratios.

The flood is one process sending, from a fresh source address each round (127.0.0.2, .3, ...: so
that every round includes the part before the ban), pipelined requests with invalid keys on
`--flood-connections` connections as fast as it can, reconnecting at once whenever one is closed
or refused. First its capacity is measured against a sink that reads and discards (the highest
rate the generator produces here); that rate and the rate it reached at the gateway are printed.
Past the ban threshold the gateway closes the flood's connections and its socket filter drops
the source's new connections in the kernel, so the rest of the flood costs the gateway nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import re
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from proxy import stack
from proxy.loadgen import Result, closed_loop, new_run_id, payment_request
from proxy.stack import demo_key, start_sandbox

GATEWAY_CPU, LOAD_CPU = 0, 1
BATCH = 32


def pin(cpu: int) -> bool:
    """Pin this process to `cpu` (False where the OS cannot, or has fewer CPUs)."""
    try:
        if cpu in os.sched_getaffinity(0) or os.cpu_count() and cpu < os.cpu_count():
            os.sched_setaffinity(0, {cpu})
            return True
    except (AttributeError, OSError):
        pass
    return False


def cpus_available() -> bool:
    try:
        return len(os.sched_getaffinity(0)) >= 2
    except AttributeError:
        return False


# -- the flood ----------------------------------------------------------------------------------


async def _flood(
    host: str, port: int, source: str, connections: int, stop_at: float, counts: dict[str, int]
) -> None:
    async def one(n: int) -> None:
        request = (
            f"GET /v1/payments HTTP/1.1\r\nHost: gw\r\n"
            f"Authorization: Bearer sk_test_flood{n:04d}{'x' * 24}\r\n\r\n"
        ).encode()
        batch = request * BATCH
        while time.monotonic() < stop_at:
            counts["connect_attempts"] += 1
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port, local_addr=(source, 0)), timeout=0.25
                )
            except (TimeoutError, OSError):
                counts["connect_failed"] += 1
                continue
            counts["connections"] += 1
            try:
                while time.monotonic() < stop_at:
                    writer.write(batch)
                    counts["sent"] += BATCH
                    await writer.drain()
                    data = await reader.read(1 << 16)
                    if not data:
                        break
                    counts["answered"] += data.count(b"HTTP/1.1 ")
            except OSError:
                pass
            finally:
                writer.close()

    await asyncio.gather(*(one(i) for i in range(connections)))


def flood_process(
    host: str, port: int, source: str, connections: int, seconds: float, out: dict
) -> None:
    pin(LOAD_CPU)
    counts = {"sent": 0, "answered": 0, "connections": 0, "connect_attempts": 0}
    counts["connect_failed"] = 0
    t0 = time.monotonic()
    uvloop.run(_flood(host, port, source, connections, t0 + seconds, counts))
    counts["seconds"] = time.monotonic() - t0  # type: ignore[assignment]
    out.update(counts)


def _sink_process(sock: socket.socket) -> None:
    """A server that reads and discards (and answers nothing): the flood's ceiling."""
    pin(GATEWAY_CPU)

    async def serve() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while await reader.read(1 << 16):
                    writer.write(b"HTTP/1.1 ")  # one "answer" per read keeps the client writing
            writer.close()

        server = await asyncio.start_server(handle, sock=sock)
        await server.serve_forever()

    uvloop.run(serve())


def flood_capacity(connections: int, seconds: float = 2.0) -> float:
    """Invalid-key requests per second the flood generator writes to a discarding sink."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    ctx = multiprocessing.get_context("fork")
    sink = ctx.Process(target=_sink_process, args=(sock,), daemon=True)
    sink.start()
    counts = ctx.Manager().dict()
    gen = ctx.Process(
        target=flood_process,
        args=("127.0.0.1", sock.getsockname()[1], "127.0.0.9", connections, seconds, counts),
    )
    gen.start()
    gen.join()
    sink.kill()
    sink.join()
    sock.close()
    return counts.get("sent", 0) / max(1e-9, counts.get("seconds", seconds))


# -- the valid load -----------------------------------------------------------------------------


def measure(url: str, key: str, n: int, c: int, label: str) -> Result:
    return uvloop.run(closed_loop(label, payment_request(url, key, new_run_id()), n, c))


def flooded(
    url: str, port: int, key: str, args: argparse.Namespace, source: str
) -> tuple[Result, dict]:
    ctx = multiprocessing.get_context("fork")
    counts = ctx.Manager().dict()
    # Long enough to cover the measured run (estimated from the quiet ones), then stopped.
    seconds = max(5.0, args.n / max(1.0, args.expected_rps) * 2.5)
    proc = ctx.Process(
        target=flood_process,
        args=("127.0.0.1", port, source, args.flood_connections, seconds, counts),
    )
    proc.start()
    time.sleep(0.5)  # the flood is at full rate before the measured run starts
    result = measure(url, key, args.n, args.c, "with flood")
    proc.join()
    return result, dict(counts)


def start_gateway(work: Path, sandbox_port: int, cpus: str | None) -> tuple[stack.Proc, int]:
    """`paymux serve` (default config, its rate limits) with the merchant bucket above the
    valid load's rate: the valid merchant is measured, not its own limit."""
    original = stack.gateway_config_text

    def config_text(*a, **kw) -> str:
        text = original(*a, **kw)
        text = re.sub(
            r"^merchant_rps = [0-9.]+", "merchant_rps = 100000.0", text, flags=re.MULTILINE
        )
        return re.sub(r"^merchant_burst = \d+", "merchant_burst = 100000", text, flags=re.MULTILINE)

    stack.gateway_config_text = config_text
    try:
        return stack.start_gateway(
            work, sandbox_port, cpus=cpus, log_level="warning", stripe_first=True
        )
    finally:
        stack.gateway_config_text = original


def line(name: str, r: Result) -> str:
    return (
        f"{name:<11} {r.rps:8.1f} req/s  p50 {r.pct(50):6.2f} ms  p99 {r.pct(99):6.2f} ms"
        f"  non-2xx {sum(v for s, v in r.statuses.items() if s >= 300)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3000, help="valid payments per run")
    parser.add_argument("-c", type=int, default=16, help="valid requests in flight")
    parser.add_argument("--pairs", type=int, default=3, help="no-flood/flood pairs")
    parser.add_argument("--flood-connections", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=1000)
    args = parser.parse_args()
    pinned = cpus_available()
    gateway_cpus = str(GATEWAY_CPU) if pinned else None
    load_cpus = str(LOAD_CPU) if pinned else None
    if pinned:
        pin(LOAD_CPU)
    capacity = flood_capacity(args.flood_connections)
    pairs: list[tuple[Result, Result, dict]] = []
    with tempfile.TemporaryDirectory(prefix="paymux-flood-") as tmp:
        work = Path(tmp)
        sandbox, sandbox_port = start_sandbox(work, cpus=load_cpus)
        gateway, port = start_gateway(work, sandbox_port, gateway_cpus)
        url, key = f"http://127.0.0.1:{port}", demo_key()
        try:
            warm = measure(url, key, args.warmup, args.c, "warmup")
            args.expected_rps = warm.rps
            for i in range(args.pairs):
                source = f"127.0.0.{2 + i}"
                if i % 2 == 0:
                    quiet = measure(url, key, args.n, args.c, "no flood")
                    loud, counts = flooded(url, port, key, args, source)
                else:
                    loud, counts = flooded(url, port, key, args, source)
                    quiet = measure(url, key, args.n, args.c, "no flood")
                pairs.append((quiet, loud, counts | {"source": source}))
        finally:
            gateway.stop()
            sandbox.stop()
    where = (
        f"gateway on CPU {GATEWAY_CPU}; sandbox, valid load and flood on CPU {LOAD_CPU}"
        if pinned
        else "not pinned (fewer than 2 CPUs available)"
    )
    print(
        f"valid merchant: {args.n} payments per run at concurrency {args.c}, one gateway "
        f"worker; {where}; warm-up {args.warmup} payments ({warm.rps:.0f} req/s)"
    )
    print(
        f"flood generator: {args.flood_connections} connections, {BATCH} pipelined invalid-key "
        f"requests per write; its ceiling here (to a discarding sink): {capacity:,.0f} req/s"
    )
    rps_ratios, p99_ratios = [], []
    for i, (quiet, loud, counts) in enumerate(pairs, start=1):
        secs = max(1e-9, counts.get("seconds", 1.0))
        rps_ratios.append(loud.rps / quiet.rps)
        p99_ratios.append(loud.pct(99) / quiet.pct(99))
        print(f"pair {i}:  {line('no flood', quiet)}")
        print(f"         {line('with flood', loud)}")
        print(
            f"         change: throughput {100 * (rps_ratios[-1] - 1):+6.1f}%  "
            f"p99 {100 * (p99_ratios[-1] - 1):+6.1f}%   flood from {counts['source']}: "
            f"{counts.get('sent', 0) / secs:,.0f} req/s written, "
            f"{counts.get('answered', 0)} answered (401/429) before the ban, "
            f"{counts.get('connect_attempts', 0) / secs:,.0f} connection attempts/s "
            f"({counts.get('connect_failed', 0)} dropped or refused)"
        )
    rps_med, p99_med = statistics.median(rps_ratios), statistics.median(p99_ratios)
    rps_ok, p99_ok = rps_med >= 0.90, p99_med <= 1.20
    print(
        f"median of {len(pairs)} pairs: throughput {100 * (rps_med - 1):+.1f}% "
        f"(target >= -10%: {'met' if rps_ok else 'NOT met'}), p99 {100 * (p99_med - 1):+.1f}% "
        f"(target <= +20%: {'met' if p99_ok else 'NOT met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
