"""Valid traffic with and without an invalid-key flood, side by side: throughput and p99 of the
valid merchants' payments in both runs (target: within 10% and 20%). Figures only.

    .venv/bin/python benchmarks/bench_flood.py [-n 3000] [-c 16] [--flood-connections 64]

The sandbox and `paymux serve` (one worker, the embedded-default config: default rate limits)
run as subprocesses; the valid load is a closed loop of `POST /v1/payments` from 127.0.0.1 in this
process; the flood is another process sending, from 127.0.0.2, pipelined requests with invalid
keys on `--flood-connections` connections as fast as it can, reconnecting whenever one is closed.
Past the ban threshold the gateway closes the flood's connections and its socket filter drops
the source's new connections in the kernel, so the rest of the flood costs the gateway nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import uvloop

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from proxy.loadgen import Result, closed_loop, new_run_id, payment_request
from proxy.stack import demo_key, start_gateway, start_sandbox

FLOOD_SOURCE = "127.0.0.2"


async def _flood(port: int, connections: int, stop_at: float, counts: dict[str, int]) -> None:
    async def one(n: int) -> None:
        request = (
            f"GET /v1/payments HTTP/1.1\r\nHost: gw\r\n"
            f"Authorization: Bearer sk_test_flood{n:04d}{'x' * 24}\r\n\r\n"
        ).encode()
        batch = request * 32
        while time.monotonic() < stop_at:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port, local_addr=(FLOOD_SOURCE, 0)),
                    timeout=1.0,
                )
            except (TimeoutError, OSError):
                counts["connect_failed"] += 1
                continue
            counts["connections"] += 1
            try:
                while time.monotonic() < stop_at:
                    writer.write(batch)
                    counts["sent"] += 32
                    data = await reader.read(1 << 16)
                    if not data:
                        break
                    counts["answered"] += data.count(b"HTTP/1.1 ")
                    await writer.drain()
            except OSError:
                pass
            finally:
                writer.close()

    await asyncio.gather(*(one(i) for i in range(connections)))


def flood_process(port: int, connections: int, seconds: float, out: dict) -> None:
    counts = {"sent": 0, "answered": 0, "connections": 0, "connect_failed": 0}
    uvloop.run(_flood(port, connections, time.monotonic() + seconds, counts))
    out.update(counts)


def measure(url: str, key: str, n: int, c: int, label: str) -> Result:
    return uvloop.run(closed_loop(label, payment_request(url, key, new_run_id()), n, c))


def line(name: str, r: Result) -> str:
    return (
        f"  {name:<18} {r.rps:9.1f} req/s   p50 {r.pct(50):7.2f} ms   p99 {r.pct(99):7.2f} ms"
        f"   non-2xx {sum(v for s, v in r.statuses.items() if s >= 300)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3000, help="valid payments per run")
    parser.add_argument("-c", type=int, default=16, help="valid requests in flight")
    parser.add_argument("--flood-connections", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="paymux-flood-") as tmp:
        work = Path(tmp)
        sandbox, sandbox_port = start_sandbox(work)
        gateway, port = start_gateway(work, sandbox_port, log_level="warning", stripe_first=True)
        url, key = f"http://127.0.0.1:{port}", demo_key()
        try:
            measure(url, key, args.warmup, args.c, "warmup")
            quiet = measure(url, key, args.n, args.c, "no flood")
            manager = multiprocessing.Manager()
            counts = manager.dict()
            seconds = max(5.0, quiet.duration_s * 3)
            flood = multiprocessing.Process(
                target=flood_process, args=(port, args.flood_connections, seconds, counts)
            )
            flood.start()
            time.sleep(0.5)  # the flood is at full rate before the measured run starts
            flooded = measure(url, key, args.n, args.c, "with flood")
            flood.join()
        finally:
            gateway.stop()
            sandbox.stop()
    print(f"valid merchants: {args.n} payments at concurrency {args.c}, one gateway worker")
    print(line("no flood", quiet))
    print(line("with flood", flooded))
    print(
        f"  change             throughput {100 * (flooded.rps / quiet.rps - 1):+6.1f}%   "
        f"p99 {100 * (flooded.pct(99) / quiet.pct(99) - 1):+6.1f}%   (targets: -10% / +20%)"
    )
    print(
        f"flood from {FLOOD_SOURCE}: {counts.get('sent', 0)} invalid-key requests written on "
        f"{counts.get('connections', 0)} connections, {counts.get('answered', 0)} answered "
        f"(401/429) before the ban, {counts.get('connect_failed', 0)} connection attempts "
        f"dropped or refused after it"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
