"""Gateway vs direct: N payments through `paymux serve` (one worker) and the same N authorizations
straight at the sandbox's Stripe endpoint, in one run; prints throughput, p50/p99 and the added
latency (paymux - direct). Figures only: nothing here asserts a time.

    .venv/bin/python benchmarks/bench_gateway.py [-n 2000] [-c 1,8] [--pin] [--baseline REF] [--ref REF]

Both targets run as subprocesses in a temp dir: the sandbox (`paymux sandbox`, default scenario,
no simulated latency) and the gateway (embedded-default config with its own SQLite file, vault keys
and demo merchant, pointing at that sandbox; routing replaced by priority stripe, adyen, checkout
so both sides do the same Stripe authorization). The load generator is Python (aiohttp on uvloop,
closed loop at a fixed concurrency), in this process. `--baseline REF` also starts a gateway
from the `python/` tree of a git commit, so before/after figures come from one run on one
machine state; `--ref REF` runs the measured side from a commit too (other people's uncommitted
edits in a shared working tree then stay out of the figures). Run `make build-prod` first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from statistics import median
from typing import Any

import uvloop

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from proxy.loadgen import (
    MakeRequest,
    Result,
    closed_loop,
    new_run_id,
    payment_request,
    stripe_request,
)
from proxy.stack import (
    SANDBOX_STRIPE_KEY,
    Proc,
    cpu_seconds,
    demo_key,
    export_tree,
    start_gateway,
    start_sandbox,
)


def row(res: Result) -> str:
    other = sum(v for k, v in res.statuses.items() if not 200 <= k < 300) + sum(res.errors.values())
    cpu = "   ".join(f"{name} {us:5.0f} us" for name, us in res.cpu_us_per_request.items())
    return (
        f"  {res.label:<9} {res.rps:7.0f} req/s   p50 {res.pct(50):7.3f} ms   "
        f"p99 {res.pct(99):7.3f} ms   ok {res.ok}/{res.sent}   non-2xx/errors {other}   "
        f"CPU per request: {cpu}"
    )


async def run_side(
    label: str, make: MakeRequest, pids: dict[str, int], n: int, concurrency: int, warmup: int
) -> Result:
    """One closed-loop run, with the CPU time each server process spent on it."""
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
    sides: dict[str, tuple[str, Proc | None]],
    sandbox: Proc,
    sandbox_url: str,
    n: int,
    concurrency: int,
    warmup: int,
    rounds: int,
) -> list[dict[str, Result]]:
    """`rounds` rounds; each runs every side once, in a rotated order."""
    out = []
    names = list(sides)
    for r in range(rounds):
        # Rotate the order so no side always runs on a warmer (or busier) machine.
        order = names[r % len(names) :] + names[: r % len(names)]
        results: dict[str, Result] = {}
        for name in order:
            url, gateway = sides[name]
            pids = {"sandbox": sandbox.pid}
            if gateway is None:
                make = stripe_request(sandbox_url, SANDBOX_STRIPE_KEY, new_run_id())
            else:
                make = payment_request(url, demo_key(), new_run_id())
                pids = {"gateway": gateway.pid, **pids}
            results[name] = await run_side(name, make, pids, n, concurrency, warmup)
        out.append({name: results[name] for name in names})
    return out


def report(args: argparse.Namespace, concurrency: int, rounds: list[dict[str, Result]]) -> dict:
    print(
        f"\nconcurrency {concurrency}: {args.n} payments per side per round, {args.rounds} "
        f"rounds, gateway log level {args.log_level}{', pinned' if args.pin else ''}"
    )
    summary: list[dict[str, Any]] = []
    for i, sides in enumerate(rounds, 1):
        print(f" round {i}")
        direct = sides["direct"]
        entry: dict[str, Any] = {"direct": direct.summary()}
        for name, res in sides.items():
            print(row(res))
            if name == "direct":
                continue
            added50 = res.pct(50) - direct.pct(50)
            added99 = res.pct(99) - direct.pct(99)
            cpu = res.cpu_us_per_request["gateway"]
            print(
                f"  {'':<9} added p50 {added50:+.3f} ms   added p99 {added99:+.3f} ms   "
                f"throughput {name}/direct {res.rps / direct.rps:.2f}"
            )
            entry[name] = {
                **res.summary(),
                "added_p50_ms": round(added50, 3),
                "added_p99_ms": round(added99, 3),
                "throughput_vs_direct": round(res.rps / direct.rps, 3),
                "gateway_cpu_us_per_payment": round(cpu),
            }
        summary.append(entry)
    medians: dict[str, Any] = {}
    for name in rounds[0]:
        if name == "direct":
            continue
        medians[name] = {
            key: round(median(e[name][key] for e in summary), 3)
            for key in ("added_p50_ms", "added_p99_ms", "gateway_cpu_us_per_payment", "rps")
        }
        m = medians[name]
        print(
            f" median {name}: added p50 {m['added_p50_ms']:+.3f} ms, added p99 "
            f"{m['added_p99_ms']:+.3f} ms, {m['rps']:.0f} req/s, gateway CPU "
            f"{m['gateway_cpu_us_per_payment']:.0f} us per payment"
        )
    if "baseline" in medians:
        b, p = medians["baseline"], medians["paymux"]
        print(
            f" paymux vs baseline: CPU per payment {p['gateway_cpu_us_per_payment'] / b['gateway_cpu_us_per_payment']:.2f}x, "
            f"throughput {p['rps'] / b['rps']:.2f}x, added p50 {p['added_p50_ms'] - b['added_p50_ms']:+.3f} ms"
        )
    return {"concurrency": concurrency, "rounds": summary, "medians": medians}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="payments per side per round")
    parser.add_argument(
        "-c", "--concurrency", default="1,8", help="requests in flight (comma-separated list)"
    )
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured requests per side")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each side once per round")
    parser.add_argument(
        "--pin", action="store_true", help="gateway on CPU 0, sandbox and load generator on CPU 1"
    )
    parser.add_argument("--log-level", default="info", help="the gateway's log level")
    parser.add_argument(
        "--baseline",
        metavar="GIT_REF",
        help="also run a gateway from this commit's python/ tree (same run, same sandbox)",
    )
    parser.add_argument(
        "--baseline-log-level",
        help="the baseline gateway's log level (default: --log-level); with --baseline set to the "
        "same commit as --ref this measures what logging costs",
    )
    parser.add_argument(
        "--ref",
        metavar="GIT_REF",
        help="run the `paymux` side from this commit's python/ tree instead of the working tree",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix="paymux-bench-") as tmp:
        work = Path(tmp)
        (work / "paymux").mkdir()
        sandbox, sandbox_port = start_sandbox(work, "1" if args.pin else None)
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        procs: list[Proc] = [sandbox]
        try:
            gw_cpus = "0" if args.pin else None
            ref_tree = export_tree(args.ref, work / "paymux") if args.ref else None
            gateway, port = start_gateway(
                work / "paymux",
                sandbox_port,
                gw_cpus,
                log_level=args.log_level,
                tree=ref_tree,
                stripe_first=True,
            )
            procs.append(gateway)
            sides: dict[str, tuple[str, Proc | None]] = {
                "direct": (sandbox_url, None),
                "paymux": (f"http://127.0.0.1:{port}", gateway),
            }
            if args.baseline:
                (work / "baseline").mkdir()
                tree = export_tree(args.baseline, work / "baseline")
                base, base_port = start_gateway(
                    work / "baseline",
                    sandbox_port,
                    gw_cpus,
                    log_level=args.baseline_log_level or args.log_level,
                    tree=tree,
                    stripe_first=True,
                )
                procs.append(base)
                sides["baseline"] = (f"http://127.0.0.1:{base_port}", base)
            if args.pin:
                os.sched_setaffinity(0, {1})
            for c in (int(x) for x in args.concurrency.split(",")):
                rounds = uvloop.run(
                    measure(sides, sandbox, sandbox_url, args.n, c, args.warmup, args.rounds)
                )
                results.append(report(args, c, rounds))
        finally:
            for proc in reversed(procs):
                proc.stop()
    print("\n(target: added p50 <= 1 ms at moderate load, one worker)")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"n": args.n, "ref": args.ref, "baseline": args.baseline, "runs": results}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
