"""Run the Locust load test against a fresh paymux: start the sandbox PSP and `paymux serve` in a
temp dir (embedded-default config, demo merchant key), run Locust headless for a fixed time, then
print requests/s, failures and p50/p95/p99 per endpoint from Locust's CSV, the business declines,
and the gateway's RSS (VmRSS) at start and end.

    .venv/bin/python loadtests/run.py                  # 60 s, 20 users
    .venv/bin/python loadtests/run.py -u 50 -r 10 -t 120
    .venv/bin/python loadtests/run.py --soak 600       # 10-minute soak: RSS sampled every 10 s

Run `make build-prod` first for figures worth comparing.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from proxy.stack import demo_key, start_stack, tree_rss_kb

LOCUST = str(Path(sys.executable).with_name("locust"))
WARM_S = 60  # the soak's growth is judged from this point, once caches and pools have filled


class RssSampler(threading.Thread):
    """The gateway's RSS (its workers' included) every `every_s` seconds."""

    def __init__(self, pid: int, every_s: float) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.every_s = every_s
        self.samples: list[tuple[float, int]] = []
        self.started = time.monotonic()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((time.monotonic() - self.started, tree_rss_kb(self.pid)))
            self._halt.wait(self.every_s)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.samples.append((time.monotonic() - self.started, tree_rss_kb(self.pid)))


def summarize(prefix: str) -> list[str]:
    """Requests/s, failures and p50/p95/p99 per endpoint from `<prefix>_stats.csv`."""
    rows = list(csv.DictReader(Path(f"{prefix}_stats.csv").read_text().splitlines()))
    lines = [
        (
            f"{'endpoint':<42} {'requests':>8} {'fails':>6} {'req/s':>8} {'p50 ms':>7} "
            f"{'p95 ms':>7} {'p99 ms':>7}"
        )
    ]
    for row in rows:
        name = row["Name"] if row["Name"] == "Aggregated" else f"{row['Type']} {row['Name']}"
        name = name.replace("POST POST ", "POST ").replace("GET GET ", "GET ")
        lines.append(
            f"{name:<42} {row['Request Count']:>8} {row['Failure Count']:>6} "
            f"{float(row['Requests/s']):8.1f} {row['50%']:>7} {row['95%']:>7} {row['99%']:>7}"
        )
    failures = Path(f"{prefix}_failures.csv")
    if failures.exists():
        fails = list(csv.DictReader(failures.read_text().splitlines()))
        for row in fails[:10]:
            lines.append(
                f"  failure x{row['Occurrences']}: {row['Method']} {row['Name']}: "
                f"{row['Error'][:120]}"
            )
    declines = Path(f"{prefix}_declines.json")
    if declines.exists():
        d = json.loads(declines.read_text())
        lines.append(
            f"business declines (HTTP 402, status failed; not failures): {d['total']} "
            f"{d['by_code']}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-u", "--users", type=int, default=20)
    parser.add_argument("-r", "--spawn-rate", type=float, default=10)
    parser.add_argument("-t", "--run-time", default="60s", help="Locust run time, e.g. 60s, 5m")
    parser.add_argument(
        "--soak", type=int, metavar="SECONDS", help="soak mode: run this long and report RSS growth"
    )
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    parser.add_argument("--csv-dir", help="keep Locust's CSV files here (default: temp dir)")
    parser.add_argument("--out", help="also write the summary to this file")
    args = parser.parse_args()
    run_time = f"{args.soak}s" if args.soak else args.run_time

    with tempfile.TemporaryDirectory(prefix="paymux-locust-") as tmp:
        workdir = Path(tmp)
        csv_dir = Path(args.csv_dir) if args.csv_dir else workdir
        csv_dir.mkdir(parents=True, exist_ok=True)
        prefix = str(csv_dir / "paymux")
        stack = start_stack(workdir, workers=args.workers)
        assert stack.gateway is not None
        sampler = RssSampler(stack.gateway.pid, 10.0)
        sampler.start()
        cmd = [
            LOCUST,
            "--config",
            str(HERE / "locust.conf"),
            "-f",
            str(HERE / "locustfile.py"),
            "--host",
            stack.gateway_url,
            "--headless",
            "-u",
            str(args.users),
            "-r",
            str(args.spawn_rate),
            "-t",
            run_time,
            "--csv",
            prefix,
            "--only-summary",
        ]
        started = time.monotonic()
        try:
            proc = subprocess.run(
                cmd,
                env={**os.environ, "PAYMUX_API_KEY": demo_key()},
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            sampler.stop()
            stack.stop()
        elapsed = time.monotonic() - started
        if not Path(f"{prefix}_stats.csv").exists():
            print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
            return 1
        lines = [
            (
                f"paymux load test: {args.users} users, spawn rate {args.spawn_rate}/s, "
                f"{run_time} ({elapsed:.0f} s wall), {args.workers} gateway worker(s), "
                f"locust exit code {proc.returncode}"
            ),
            "",
        ]
        lines += summarize(prefix)
        samples = sampler.samples
        start_kb, end_kb = samples[0][1], samples[-1][1]
        lines.append("")
        lines.append(
            f"gateway RSS: start {start_kb / 1024:.1f} MiB, end {end_kb / 1024:.1f} MiB "
            f"({(end_kb - start_kb) * 100 / start_kb:+.1f}% from start)"
        )
        if args.soak:
            warm = next((kb for t, kb in samples if t >= WARM_S), samples[0][1])
            peak = max(kb for _, kb in samples)
            lines.append(
                f"soak: RSS after {WARM_S} s warm-up {warm / 1024:.1f} MiB, end "
                f"{end_kb / 1024:.1f} MiB, growth {(end_kb - warm) * 100 / warm:+.1f}% "
                f"after warm-up (target < 10%), peak {peak / 1024:.1f} MiB"
            )
            lines.append(
                "RSS samples (s, MiB): "
                + ", ".join(
                    f"{t:.0f}:{kb / 1024:.1f}" for t, kb in samples[:: max(1, len(samples) // 20)]
                )
            )
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if proc.returncode in (0, 1) else proc.returncode


if __name__ == "__main__":
    sys.exit(main())
