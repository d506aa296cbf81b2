"""Gateway vs direct: N payments through `paymux serve` (one worker) and the same N authorizations
straight at the sandbox's Stripe endpoint, in one run; prints throughput, p50/p99 and the added
latency (paymux - direct). Figures only: nothing here asserts a time.

    .venv/bin/python benchmarks/bench_gateway.py [-n 2000] [-c 8] [--pin]

Both targets run as subprocesses in a temp dir: the sandbox (`paymux sandbox`, default scenario,
no simulated latency) and the gateway (embedded-default config with its own SQLite file, vault keys
and demo merchant, pointing at that sandbox). The load generator is Python (aiohttp on uvloop,
closed loop at a fixed concurrency), in this process. Run `make build-prod` first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proxy.loadgen import Result, closed_loop, new_run_id, payment_request, stripe_request
from proxy.stack import SANDBOX_STRIPE_KEY, Stack, cpu_seconds, demo_key, start_stack


def row(res: Result) -> str:
    other = sum(v for k, v in res.statuses.items() if not 200 <= k < 300) + sum(res.errors.values())
    cpu = "   ".join(f"{name} {us:5.0f} us" for name, us in res.cpu_us_per_request.items())
    return (
        f"  {res.label:<8} {res.rps:7.0f} req/s   p50 {res.pct(50):7.3f} ms   "
        f"p99 {res.pct(99):7.3f} ms   ok {res.ok}/{res.sent}   non-2xx/errors {other}   "
        f"CPU per request: {cpu}"
    )


async def run_side(stack: Stack, label: str, make, n: int, concurrency: int, warmup: int) -> Result:
    """One closed-loop run, with the CPU time the gateway and the sandbox spent on it."""
    pids = {"gateway": stack.gateway.pid, "sandbox": stack.sandbox.pid}  # type: ignore[union-attr]
    if warmup:
        await closed_loop(label, make, warmup, concurrency)
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    res = await closed_loop(label, make, n, concurrency, first_index=warmup)
    res.cpu_us_per_request = {
        name: (cpu_seconds(pid) - before[name]) * 1e6 / max(res.sent, 1)
        for name, pid in pids.items()
    }
    return res


async def measure(
    stack: Stack, n: int, concurrency: int, warmup: int, rounds: int
) -> list[tuple[Result, Result]]:
    pairs = []
    for r in range(rounds):
        # Alternate the order so neither side always runs on a warmer (or busier) machine.
        direct_req = stripe_request(stack.sandbox_url, SANDBOX_STRIPE_KEY, new_run_id())
        paymux_req = payment_request(stack.gateway_url, demo_key(), new_run_id())
        if r % 2 == 0:
            direct = await run_side(stack, "direct", direct_req, n, concurrency, warmup)
            paymux = await run_side(stack, "paymux", paymux_req, n, concurrency, warmup)
        else:
            paymux = await run_side(stack, "paymux", paymux_req, n, concurrency, warmup)
            direct = await run_side(stack, "direct", direct_req, n, concurrency, warmup)
        pairs.append((direct, paymux))
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="payments per side per round")
    parser.add_argument("-c", "--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured requests per side")
    parser.add_argument("--rounds", type=int, default=3, help="direct/paymux pairs, alternating")
    parser.add_argument(
        "--pin", action="store_true", help="gateway on CPU 0, sandbox and load generator on CPU 1"
    )
    parser.add_argument("--log-level", default="info", help="the gateway's log level")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="paymux-bench-") as tmp:
        stack = start_stack(
            Path(tmp),
            sandbox_cpus="1" if args.pin else None,
            gateway_cpus="0" if args.pin else None,
            log_level=args.log_level,
        )
        if args.pin:
            os.sched_setaffinity(0, {1})
        try:
            pairs = uvloop.run(measure(stack, args.n, args.concurrency, args.warmup, args.rounds))
        finally:
            stack.stop()

    print(
        f"gateway vs direct: {args.n} payments per side per round, concurrency "
        f"{args.concurrency}, {args.rounds} rounds, gateway log level {args.log_level}"
        f"{', pinned' if args.pin else ''}"
    )
    summary = []
    for i, (direct, paymux) in enumerate(pairs, 1):
        print(f"round {i}")
        print(row(direct))
        print(row(paymux))
        added50 = paymux.pct(50) - direct.pct(50)
        added99 = paymux.pct(99) - direct.pct(99)
        cpu_added = paymux.cpu_us_per_request["gateway"]
        print(
            f"  added    p50 {added50:+.3f} ms   p99 {added99:+.3f} ms   "
            f"throughput paymux/direct {paymux.rps / direct.rps:.2f}   "
            f"gateway CPU per payment {cpu_added:.0f} us"
        )
        summary.append(
            {
                "direct": direct.summary(),
                "paymux": paymux.summary(),
                "added_p50_ms": round(added50, 3),
                "added_p99_ms": round(added99, 3),
                "throughput_ratio": round(paymux.rps / direct.rps, 3),
                "gateway_cpu_us_per_payment": round(cpu_added),
            }
        )
    med = sorted(s["added_p50_ms"] for s in summary)[len(summary) // 2]
    med99 = sorted(s["added_p99_ms"] for s in summary)[len(summary) // 2]
    cpu = sorted(s["gateway_cpu_us_per_payment"] for s in summary)[len(summary) // 2]
    print(
        f"median over rounds: added p50 {med:+.3f} ms, added p99 {med99:+.3f} ms "
        f"(target: added p50 <= 1 ms at moderate load, one worker); "
        f"gateway CPU {cpu} us per payment"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"n": args.n, "concurrency": args.concurrency, "rounds": summary}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
