"""Proxy overhead on loopback, all in one run against the same sandbox PSP: (1) direct to the
sandbox, (2) through nginx, (3) through a bare aiohttp + uvloop pass-through proxy, (4) through
paymux's full `POST /v1/payments` path, and the drop-in modes (issue 14): (5) paymux's transparent
pass-through, `POST /proxy/stripe/v1/payment_intents` with a paymux token in the card-number field
(revealed from the vault on the way out, PANs masked on the way back, the answer parsed into the
health windows and stored), and (6) the Stripe-compatible front, `POST /compat/stripe/v1/
payment_intents` with `confirm=true`, form-encoded, a raw card (the same payment as (4)). Prints
figures and ratios; writes benchmarks/results/proxy.md and proxy.json. Nothing here asserts a time.

    .venv/bin/python benchmarks/bench_proxy.py [--duration 10] [--connections 32,64] [--no-pin]

- Throughput at saturation: wrk (one thread), closed loop, `--connections` each, `--duration` s,
  with benchmarks/proxy/unique_post.lua giving every request its own body and Idempotency-Key.
- Latency at a fixed rate: an open-loop Python generator (benchmarks/proxy/loadgen.py: aiohttp on
  uvloop, requests sent on schedule whatever the answers do) at half of paymux's saturation rate
  (the highest of the wrk runs), the same rate for every target. wrk2 is not packaged in Debian.
- paymux runs the embedded-default config with its routing replaced by priority stripe, adyen,
  checkout, so its payments make the same Stripe call as the other targets.
- Pinning (default): the proxy under test (nginx, the bare proxy or paymux) on CPU 0; the sandbox
  and the load generators on CPU 1. The 2-worker comparison runs unpinned, since both workers
  need both CPUs. Each target gets a fresh sandbox (an empty ledger).
- CPU per request of every server process comes from /proc/<pid>/stat over the wrk run: it is the
  least noisy figure on a shared machine.

wrk and nginx come from scripts/install-bench-tools.sh (apt-get), which this script runs first.
Run `make build-prod` first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import uvloop

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from proxy.loadgen import (
    CARD,
    front_form,
    front_request,
    new_run_id,
    open_loop,
    payment_request,
    stripe_form,
    stripe_request,
)
from proxy.stack import (
    PYTHON,
    SANDBOX_STRIPE_KEY,
    Proc,
    Stack,
    demo_key,
    export_tree,
    free_port,
    pinned,
    spawn,
    start_gateway,
    start_sandbox,
    tree_cpu_seconds,
    wait_http,
)

LUA = HERE / "proxy" / "unique_post.lua"
NGINX_TEMPLATE = HERE / "proxy" / "nginx.conf.template"
BARE_PROXY = HERE / "proxy" / "bare_proxy.py"
RESULTS = HERE / "results"
TARGETS = ("direct", "nginx", "bare_aiohttp", "paymux", "passthrough", "stripe_front")
#: The targets served by a paymux gateway, and the path each posts to.
GATEWAY_PATHS = {
    "paymux": "/v1/payments",
    "passthrough": "/proxy/stripe/v1/payment_intents",
    "stripe_front": "/compat/stripe/v1/payment_intents",
}
PINNING = "proxy under test on CPU 0, sandbox + load generators on CPU 1"


def install_tools() -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "install-bench-tools.sh")], check=True)


def machine() -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def source_version(ref: str | None = None) -> str:
    """The commit measured, and whether the working tree's python/ differed from it."""

    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
        )
        return out.stdout.strip()

    if ref is not None:
        return git("rev-parse", "--short", ref) + " (exported from git)"
    dirty = git("status", "--porcelain", "--", "python")
    return git("rev-parse", "--short", "HEAD") + (
        " (working tree, python/ modified)" if dirty else ""
    )


# -- the targets --------------------------------------------------------------------------------


class Target:
    """One thing wrk talks to, in front of (or being) a fresh sandbox."""

    def __init__(
        self, name: str, workdir: Path, pin: bool, workers: int = 1, tree: Path | None = None
    ) -> None:
        self.name = name
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        cpu_front = "0" if pin else None
        cpu_back = "1" if pin else None
        sandbox, sandbox_port = start_sandbox(self.workdir, cpu_back)
        self.stack = Stack(self.workdir, sandbox_port, sandbox)
        self.procs: dict[str, Proc] = {"sandbox": sandbox}
        try:
            if name == "direct":
                self.url = self.stack.sandbox_url + "/stripe/v1/payment_intents"
            elif name == "nginx":
                port = free_port()
                conf = self.workdir / "nginx.conf"
                user = "user root;" if os.getuid() == 0 else ""
                conf.write_text(NGINX_TEMPLATE.read_text().replace("{user}", user)
                                .replace("{workdir}", str(self.workdir))
                                .replace("{upstream_port}", str(sandbox_port))
                                .replace("{port}", str(port)))  # fmt: skip
                self.procs["nginx"] = spawn(
                    "nginx",
                    ["nginx", "-c", str(conf), "-p", str(self.workdir)],
                    self.workdir,
                    cpu_front,
                )
                self.stack.extra.append(self.procs["nginx"])
                wait_http(
                    f"http://127.0.0.1:{port}/_sandbox/ledger", proc=self.procs["nginx"].popen
                )
                self.url = f"http://127.0.0.1:{port}/stripe/v1/payment_intents"
            elif name == "bare_aiohttp":
                port = free_port()
                self.procs["bare_aiohttp"] = spawn(
                    "bare_proxy",
                    [
                        PYTHON,
                        str(BARE_PROXY),
                        "--port",
                        str(port),
                        "--upstream",
                        self.stack.sandbox_url,
                    ],
                    self.workdir,
                    cpu_front,
                )
                self.stack.extra.append(self.procs["bare_aiohttp"])
                wait_http(
                    f"http://127.0.0.1:{port}/_sandbox/ledger",
                    proc=self.procs["bare_aiohttp"].popen,
                )
                self.url = f"http://127.0.0.1:{port}/stripe/v1/payment_intents"
            else:
                gateway, port = start_gateway(
                    self.workdir, sandbox_port, cpu_front, workers, tree=tree, stripe_first=True
                )
                self.stack.gateway, self.stack.gateway_port = gateway, port
                self.procs["paymux"] = gateway
                self.gateway_url = f"http://127.0.0.1:{port}"
                self.url = self.gateway_url + GATEWAY_PATHS[name]
                if name == "passthrough":
                    self.token = vault_token(self.gateway_url)
        except BaseException:
            self.stack.stop()
            raise

    @property
    def is_paymux(self) -> bool:
        return self.name in GATEWAY_PATHS

    def wrk_args(self, run: str) -> list[str]:
        template = self.workdir / "body.tmpl"
        form_headers = ["Accept: application/json",
                        "Content-Type: application/x-www-form-urlencoded"]  # fmt: skip
        if self.name == "paymux":
            template.write_text(
                '{"amount": {amount}, "currency": "EUR", "reference": "{key}", '
                f'"payment_method": {{"card": {{"number": "{CARD}", "exp_month": 12, '
                '"exp_year": 2034, "cvc": "123"}}}'
            )
            headers = [f"Authorization: Bearer {demo_key()}", "Content-Type: application/json"]
        elif self.name == "stripe_front":
            template.write_text(_templated(front_form(0, "KEYTOKEN")))
            headers = [f"Authorization: Bearer {demo_key()}", *form_headers]
        elif self.name == "passthrough":
            template.write_text(_templated(stripe_form(0, "KEYTOKEN", number=self.token)))
            headers = [f"Authorization: Bearer {demo_key()}", *form_headers]
        else:
            template.write_text(_templated(stripe_form(0, "KEYTOKEN")))
            headers = [f"Authorization: Bearer {SANDBOX_STRIPE_KEY}", *form_headers]
        return ["--", run, str(template), *headers]

    def make_request(self):
        if self.name == "paymux":
            return payment_request(self.gateway_url, demo_key(), new_run_id())
        if self.name == "stripe_front":
            return front_request(self.gateway_url, demo_key(), new_run_id())
        if self.name == "passthrough":
            return stripe_request(self.gateway_url + "/proxy", demo_key(), new_run_id(),
                                  number=self.token)  # fmt: skip
        base = self.url.removesuffix("/stripe/v1/payment_intents")
        return stripe_request(base, SANDBOX_STRIPE_KEY, new_run_id())

    def cpu(self) -> dict[str, float]:
        return {name: tree_cpu_seconds(p.pid) for name, p in self.procs.items()}

    def stop(self) -> None:
        self.stack.stop()


def _templated(form: bytes) -> str:
    """A form body as a wrk template: {key} for the per-request key, {amount} for the amount."""
    text = form.decode().replace("KEYTOKEN", "{key}")
    return re.sub(r"(^|&)amount=\d+", r"\1amount={amount}", text)


def vault_token(gateway_url: str) -> str:
    """A paymux token of the benchmark card (the demo merchant's), for the pass-through."""
    body = json.dumps({"card": {"number": CARD, "exp_month": 12, "exp_year": 2034}}).encode()
    req = urllib.request.Request(
        gateway_url + "/v1/tokens",
        data=body,
        headers={"Authorization": f"Bearer {demo_key()}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["id"]


# -- the measurements ---------------------------------------------------------------------------


def wrk(target: Target, connections: int, duration: int, pin: bool) -> dict[str, Any]:
    cmd = pinned(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(LUA),
            target.url,
            *target.wrk_args(new_run_id()),
        ],
        "1" if pin else None,
    )
    before = target.cpu()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=False)
    after = target.cpu()
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {out.stdout}\n{out.stderr}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    seconds = data["duration_us"] / 1e6
    good = data["requests"] - data["errors"]["status"]
    return {
        "connections": connections,
        "rps": round(good / seconds, 1),
        "requests": data["requests"],
        "non_2xx": data["errors"]["status"],
        "socket_errors": {k: v for k, v in data["errors"].items() if k != "status" and v},
        "p50_ms": data["latency_us"]["p50"] / 1000,
        "p99_ms": data["latency_us"]["p99"] / 1000,
        "cpu_us_per_request": {
            name: round((after[name] - before[name]) * 1e6 / max(data["requests"], 1))
            for name in before
        },
        "command": " ".join(shlex.quote(c) for c in cmd),
    }


def fixed_rate(target: Target, rate: float, duration: int) -> dict[str, Any]:
    res = uvloop.run(open_loop(target.name, target.make_request(), rate, duration))
    s = res.summary()
    return {
        k: s[k]
        for k in (
            "rps",
            "sent",
            "ok",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "mean_ms",
            "statuses",
            "errors",
            "lag_p99_ms",
        )
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "source": source_version(args.ref),
        "pinned": args.pin,
        "duration_s": args.duration,
        "saturation": {},
        "fixed_rate": {},
        "light_rate": {},
        "light_rate_rps": args.light_rate,
    }
    if args.pin:
        os.sched_setaffinity(0, {1})  # the Python generator beside the sandbox
    conns = [int(c) for c in args.connections.split(",")]
    sat: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="paymux-proxy-") as tmp:
        tree = None
        if args.ref:
            (Path(tmp) / "src").mkdir()
            tree = export_tree(args.ref, Path(tmp) / "src")
        for name in TARGETS:
            target = Target(name, Path(tmp), args.pin, tree=tree)
            try:
                sat[name] = []
                wrk(target, conns[0], 2, args.pin)  # warm up connections and code paths
                for c in conns:
                    r = wrk(target, c, args.duration, args.pin)
                    sat[name].append(r)
                    print(
                        f"saturation {name:<13} -c{c:<3} {r['rps']:8.0f} req/s  "
                        f"p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
                        f"non-2xx {r['non_2xx']}  CPU/req {r['cpu_us_per_request']}",
                        flush=True,
                    )
            finally:
                target.stop()
        paymux_sat = max(float(r["rps"]) for r in sat["paymux"])
        rate = round(paymux_sat / 2)
        report["fixed_rate_rps"] = rate
        for name in TARGETS:
            target = Target(name, Path(tmp), args.pin, tree=tree)
            try:
                uvloop.run(open_loop("warmup", target.make_request(), min(rate, 200), 1))
                r = fixed_rate(target, rate, args.duration)
                report["fixed_rate"][name] = r
                print(
                    f"fixed rate {name:<13} {rate} req/s: p50 {r['p50_ms']:.3f} ms  "
                    f"p99 {r['p99_ms']:.3f} ms  ok {r['ok']}/{r['sent']}  "
                    f"generator lag p99 {r['lag_p99_ms']} ms",
                    flush=True,
                )
                if args.light_rate and name in ("direct", "paymux"):
                    light = fixed_rate(target, args.light_rate, args.duration)
                    report["light_rate"][name] = light
                    print(
                        f"light rate {name:<13} {args.light_rate} req/s: p50 "
                        f"{light['p50_ms']:.3f} ms  p99 {light['p99_ms']:.3f} ms",
                        flush=True,
                    )
            finally:
                target.stop()
        workers: dict[str, Any] = {}
        for n in (1, 2):
            target = Target("paymux", Path(tmp) / f"w{n}", pin=False, workers=n, tree=tree)
            try:
                wrk(target, conns[-1], 2, False)
                r = wrk(target, conns[-1], args.duration, False)
                workers[str(n)] = r
                print(
                    f"workers={n} (unpinned) -c{conns[-1]} {r['rps']:8.0f} req/s  "
                    f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms",
                    flush=True,
                )
            finally:
                target.stop()
        report["workers"] = workers
    report["saturation"] = sat
    best = {name: max(float(r["rps"]) for r in rows) for name, rows in sat.items()}
    fr = report["fixed_rate"]
    ratios = {
        "paymux_vs_bare_aiohttp_throughput": round(best["paymux"] / best["bare_aiohttp"], 3),
        "paymux_vs_nginx_throughput": round(best["paymux"] / best["nginx"], 3),
        "paymux_vs_direct_throughput": round(best["paymux"] / best["direct"], 3),
        "added_p50_ms_at_half_saturation": round(
            fr["paymux"]["p50_ms"] - fr["direct"]["p50_ms"], 3
        ),
        "added_p99_ms_at_half_saturation": round(
            fr["paymux"]["p99_ms"] - fr["direct"]["p99_ms"], 3
        ),
        "workers_2_vs_1_throughput": round(
            float(workers["2"]["rps"]) / float(workers["1"]["rps"]), 3
        ),
    }
    light = report["light_rate"]
    if "paymux" in light and "direct" in light:
        ratios["added_p50_ms_at_light_rate"] = round(
            light["paymux"]["p50_ms"] - light["direct"]["p50_ms"], 3
        )
        ratios["added_p99_ms_at_light_rate"] = round(
            light["paymux"]["p99_ms"] - light["direct"]["p99_ms"], 3
        )
    cpu = {name: rows[-1]["cpu_us_per_request"] for name, rows in sat.items()}
    front = {"nginx": "nginx", "bare_aiohttp": "bare_aiohttp", "paymux": "paymux",
             "passthrough": "paymux", "stripe_front": "paymux"}  # fmt: skip
    ratios["paymux_vs_bare_aiohttp_cpu_per_request"] = round(
        cpu["paymux"]["paymux"] / max(cpu["bare_aiohttp"]["bare_aiohttp"], 1), 2
    )
    # The drop-in modes (issue 14), against baselines of this same run.
    ratios["passthrough_vs_bare_aiohttp_cpu_per_request"] = round(
        cpu["passthrough"]["paymux"] / max(cpu["bare_aiohttp"]["bare_aiohttp"], 1), 3
    )
    ratios["stripe_front_vs_v1_cpu_per_payment"] = round(
        cpu["stripe_front"]["paymux"] / max(cpu["paymux"]["paymux"], 1), 3
    )
    ratios["passthrough_vs_bare_aiohttp_throughput"] = round(
        best["passthrough"] / best["bare_aiohttp"], 3
    )
    ratios["stripe_front_vs_v1_throughput"] = round(best["stripe_front"] / best["paymux"], 3)
    report["best_rps"] = best
    report["front_cpu_us_per_request"] = {n: cpu[n][p] for n, p in front.items()}
    report["ratios"] = ratios
    return report


def targets_met(r: dict[str, Any]) -> dict[str, bool]:
    ratios = r["ratios"]
    return {
        "paymux >= 40% of bare aiohttp throughput": ratios["paymux_vs_bare_aiohttp_throughput"]
        >= 0.40,
        "added p50 <= 1 ms at half saturation": ratios["added_p50_ms_at_half_saturation"] <= 1.0,
        "added p99 <= 3 ms at half saturation": ratios["added_p99_ms_at_half_saturation"] <= 3.0,
        "2 workers > 1 worker": ratios["workers_2_vs_1_throughput"] > 1.0,
        "pass-through CPU/request <= 1.5x bare aiohttp's": ratios[
            "passthrough_vs_bare_aiohttp_cpu_per_request"
        ]
        <= 1.5,
        "Stripe front CPU/payment within 15% of /v1's": ratios["stripe_front_vs_v1_cpu_per_payment"]
        <= 1.15,
    }


def write_markdown(r: dict[str, Any], path: Path) -> None:
    m = r["machine"]
    lines = [
        "# Proxy benchmark: direct vs nginx vs bare aiohttp vs paymux (/v1, pass-through, Stripe front)",
        "",
        f"- date: {r['date']}; source: {r.get('source', '?')}",
        (
            f"- machine: {m['nproc']} CPUs, {m['cpu_model']}, kernel {m['kernel']}, "
            f"Python {m['python']}; load average at start {m['load_average_at_start']} "
            "(the machine is shared: compare ratios within this run only)"
        ),
        f"- command: `{r['command']}`",
        f"- pinning: {PINNING if r['pinned'] else 'none'}",
        (
            "- saturation: wrk 1 thread, closed loop, unique body + Idempotency-Key per request "
            f"(benchmarks/proxy/unique_post.lua), {r['duration_s']} s per run"
        ),
        (
            "- fixed rate: open-loop Python generator (aiohttp/uvloop, benchmarks/proxy/loadgen.py)"
            f" at {r['fixed_rate_rps']} req/s = half of paymux's best saturation rate, "
            f"{r['duration_s']} s per target"
        ),
        "",
        "## Throughput at saturation (wrk)",
        "",
        "| target | connections | req/s | p50 ms | p99 ms | non-2xx | CPU us/request (per process) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rows in r["saturation"].items():
        for row in rows:
            cpu = ", ".join(f"{k} {v}" for k, v in row["cpu_us_per_request"].items())
            lines.append(
                f"| {name} | {row['connections']} | {row['rps']:.0f} | {row['p50_ms']:.2f} "
                f"| {row['p99_ms']:.2f} | {row['non_2xx']} | {cpu} |"
            )
    lines += [
        "",
        f"## Latency at a fixed rate ({r['fixed_rate_rps']} req/s, open loop)",
        "",
        "| target | p50 ms | p90 ms | p99 ms | ok/sent | generator lag p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in r["fixed_rate"].items():
        lines.append(
            f"| {name} | {row['p50_ms']:.3f} | {row['p90_ms']:.3f} | {row['p99_ms']:.3f} "
            f"| {row['ok']}/{row['sent']} | {row['lag_p99_ms']} |"
        )
    if r.get("light_rate"):
        lines += [
            "",
            f"Light load, same method, {r['light_rate_rps']} req/s:",
            "",
            "| target | p50 ms | p90 ms | p99 ms | ok/sent | generator lag p99 ms |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in r["light_rate"].items():
            lines.append(
                f"| {name} | {row['p50_ms']:.3f} | {row['p90_ms']:.3f} | {row['p99_ms']:.3f} "
                f"| {row['ok']}/{row['sent']} | {row['lag_p99_ms']} |"
            )
    lines += [
        "",
        "## Workers (paymux, unpinned, wrk -c" + str(r["workers"]["1"]["connections"]) + ")",
        "",
        "| workers | req/s | p50 ms | p99 ms |",
        "|---|---|---|---|",
    ]
    for n, row in r["workers"].items():
        lines.append(f"| {n} | {row['rps']:.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} |")
    lines += [
        "",
        "## Front process CPU per request (us, highest connection count)",
        "",
        "| target | CPU us/request |",
        "|---|---|",
    ]
    for name, us in r["front_cpu_us_per_request"].items():
        lines.append(f"| {name} | {us} |")
    lines += ["", "## Ratios and targets", "", "| figure | value |", "|---|---|"]
    for k, v in r["ratios"].items():
        lines.append(f"| {k} | {v} |")
    lines += ["", "| target | met |", "|---|---|"]
    for k, v in targets_met(r).items():
        lines.append(f"| {k} | {'yes' if v else 'no'} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", default="32,64", help="wrk connection counts")
    parser.add_argument(
        "--light-rate",
        type=int,
        default=100,
        help="also measure direct and paymux at this fixed rate (0: skip)",
    )
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="no taskset pinning")
    parser.add_argument(
        "--ref",
        metavar="GIT_REF",
        help="run paymux from this commit's python/ tree instead of the working tree",
    )
    parser.add_argument(
        "--out",
        default=str(RESULTS / "proxy"),
        help="results path without extension (.md and .json are written)",
    )
    args = parser.parse_args()
    if (os.cpu_count() or 1) < 2:
        args.pin = False
    install_tools()
    started = time.monotonic()
    report = run(args)
    report["wall_s"] = round(time.monotonic() - started)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(report, out.with_suffix(".md"))
    fronts = report["front_cpu_us_per_request"]
    print("\nfront process CPU per request (us, at the highest connection count):")
    for name, us in fronts.items():
        print(f"  {name}: {us}")
    print("\nratios:")
    for k, v in report["ratios"].items():
        print(f"  {k}: {v}")
    for k, v in targets_met(report).items():
        print(f"  target {k}: {'met' if v else 'NOT met'}")
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
