"""`paymux demo` end to end: a real subprocess on free ports, a short run, the summary it writes,
and the dashboard it leaves serving. Plus the live view rendered from known payments."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, key: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Demo:
    """`python -m paymux.cli demo ...` with its stdout collected line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port, self.sandbox_port = free_port(), free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "paymux.cli",
                "demo",
                "--port",
                str(self.port),
                "--sandbox-port",
                str(self.sandbox_port),
                *args,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                self._reader.join(2)
                if any(text in line for line in self.lines):
                    return
                raise AssertionError(
                    f"demo exited ({self.proc.returncode}) before {text!r}:\n{self.output}"
                )
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} after {timeout}s:\n{self.output}")

    def finish(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(2)
        return code


@pytest.mark.timeout(60)
def test_demo_runs_fails_over_through_the_outage_and_serves_the_dashboard(tmp_path: Path) -> None:
    admin_key = "adm_test_demo_0123456789"
    summary_path = tmp_path / "summary.json"
    demo = Demo(
        "--duration",
        "6",
        "--rate",
        "40",
        "--no-live",
        "--exit",
        "--seed",
        "7",
        "--json",
        str(summary_path),
        "--data-dir",
        str(tmp_path / "data"),
        env={"PAYMUX_ADMIN_KEY": admin_key},
    )
    try:
        # While traffic runs: the dashboard page and the admin API answer with the key.
        demo.wait_for("sent ", timeout=20)
        base = f"http://127.0.0.1:{demo.port}"
        status, page = get(f"{base}/dashboard?key={admin_key}")
        assert status == 200 and b"<html" in page.lower()
        assert get(f"{base}/admin/analytics/health")[0] == 401
        status, body = get(f"{base}/admin/analytics/health", admin_key)
        assert status == 200, body
        assert {g["key"]["connector"] for g in json.loads(body)["groups"]} >= {
            "stripe",
            "adyen",
            "checkout",
        }
    finally:
        code = demo.finish(timeout=45)
    out = demo.output
    assert code == 0, out

    r = json.loads(summary_path.read_text())
    down, degraded = r["outage"]["psp"], r["degraded"]["psp"]
    assert {down, degraded} <= {"stripe", "adyen", "checkout"} and down != degraded, r

    # The plain progress lines, the events, the summary table and the dashboard URL with the key.
    assert out.count("sent ") >= 5
    assert f"{down} outage started" in out and f"{down} outage ended" in out
    assert f"{degraded} degraded" in out and f"{degraded} recovered" in out
    assert "paymux demo: per PSP" in out
    assert f"{base}/dashboard?key={admin_key}" in out

    assert r["dashboard_url"] == f"{base}/dashboard?key={admin_key}"
    assert r["admin_api"] == 200, r  # checked by the demo itself at the end
    assert r["payments"] >= 120, r  # 240 planned; a busy machine may shed some
    assert r["errors"] <= 0.05 * r["payments"], r
    assert r["approved"] >= 0.6 * r["payments"], r
    # Payments were approved on several PSPs, and failover recovered some.
    approving = [n for n, p in r["psps"].items() if p["approved"] > 0]
    assert len(approving) >= 2, r["psps"]
    assert r["cascaded"] > 0 and r["recovered"] > 0, r
    # The outage shows: the PSP that was approving most went down, approved nothing while it was
    # (the outage column holds payments sent and answered within it), and the others took over.
    start, end = r["outage"]["window_s"]
    assert 1.0 < end - start < 2.5, r["outage"]
    dead = r["psps"][down]["phases"]
    assert dead["before"]["share_of_approvals"] > 0.2, dead
    assert dead["outage"]["approved"] == 0, dead
    assert dead["outage"]["share_of_approvals"] == 0, dead
    others_during = sum(
        p["phases"]["outage"]["approved"] for n, p in r["psps"].items() if n != down
    )
    assert others_during > 0, r["psps"]
    assert r["psps"][down]["failed"] > 0  # the 5xx it answered
    # Routing stopped sending it most of the traffic (its breaker opens, or its estimate drops;
    # whether it is back before a 6 s run ends depends on the breaker's open time: not checked).
    assert dead["outage"]["attempts_per_s"] < 0.8 * dead["before"]["attempts_per_s"], dead
    # The rest of a checkout's life went through too.
    assert r["captures"] > 0 and r["refunds"] > 0, r
    assert r["idempotent_replays"] > 0 and r["replay_mismatches"] == 0, r
    # The gateway's own metrics saw the cascades the demo saw.
    assert r["server_cascades"] >= r["cascaded"], r


@pytest.mark.timeout(60)
def test_demo_keeps_serving_the_dashboard_until_ctrl_c(tmp_path: Path) -> None:
    demo = Demo(
        "--duration",
        "2",
        "--rate",
        "15",
        "--no-live",
        "--data-dir",
        str(tmp_path / "data"),
        env={"PAYMUX_ADMIN_KEY": ""},
    )
    try:
        demo.wait_for("Serving the gateway and the sandbox until Ctrl-C", timeout=40)
        url = next(
            line.split("Dashboard:", 1)[1].strip() for line in demo.lines if "Dashboard:" in line
        )
        assert url.startswith(f"http://127.0.0.1:{demo.port}/dashboard?key=adm_")
        key = url.split("key=", 1)[1]
        assert get(url)[0] == 200
        status, body = get(f"http://127.0.0.1:{demo.port}/admin/analytics/approvals?from=1h", key)
        assert status == 200, body
        assert json.loads(body)["totals"]["payments"] > 0
        demo.proc.send_signal(signal.SIGINT)
    finally:
        code = demo.finish(timeout=20)
    assert code == 0, demo.output


def test_the_live_view_renders_payments_breakers_and_events() -> None:
    from paymux.cli import demo as demo_mod
    from rich.console import Console

    args = argparse.Namespace(
        duration=60.0, rate=30.0, live=True, seed=1, outage_psp="stripe", degrade_psp="adyen"
    )

    async def render() -> str:
        d = demo_mod.Demo(args, "http://127.0.0.1:1", "http://127.0.0.1:2", "sk", "adm")
        try:
            d.stats.started = time.monotonic() - 20  # in the outage (18-33 s of a minute)
            d.event("stripe outage started (every request answers 5xx)")
            d.down.add("stripe")
            d.stats.breakers = {"stripe": "open", "adyen": "closed", "checkout": "closed"}
            attempt: dict[str, Any] = {"normalized_code": None, "latency_ms": 120.0}
            d._record(
                19.0,
                {
                    "status": "succeeded",
                    "attempts": [
                        {
                            **attempt,
                            "connector": "stripe",
                            "outcome": "failed",
                            "decline_class": "technical",
                        },
                        {
                            **attempt,
                            "connector": "adyen",
                            "outcome": "captured",
                            "decline_class": None,
                        },
                    ],
                },
            )
            d._record(
                19.5,
                {
                    "status": "failed",
                    "attempts": [
                        {
                            **attempt,
                            "connector": "adyen",
                            "outcome": "declined",
                            "decline_class": "issuer_not_now",
                        }
                    ],
                },
            )
            d.stats.done = 2
            console = Console(record=True, width=160)
            console.print(demo_mod.live_view(d))
            summary = demo_mod.summary(d)
            return console.export_text() + json.dumps(summary)
        finally:
            await d.session.close()

    text = asyncio.run(render())
    assert "stripe (down)" in text
    assert "stripe" in text and "adyen" in text
    assert "open" in text and "closed" in text
    assert "stripe outage started" in text
    assert "cascades 1 (recovered 1)" in text
    assert "50.0%" in text  # one of two payments approved


def test_run_default_generates_the_admin_key_once_and_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from paymux.cli.embedded import admin_key_for, dashboard_url, default_config

    monkeypatch.delenv("PAYMUX_ADMIN_KEY", raising=False)
    config = default_config()
    config.vault.key_file = str(tmp_path / ".paymux" / "keys.json")
    first = admin_key_for(config)
    path = tmp_path / ".paymux" / "admin_key"
    assert first.startswith("adm_") and len(first) > 20
    assert path.read_text().strip() == first
    assert path.stat().st_mode & 0o077 == 0  # like the vault keys: the owner's only
    assert admin_key_for(config) == first  # the same URL works after a restart
    config.admin_api_key = first
    assert dashboard_url(config) == f"http://127.0.0.1:8080/dashboard?key={first}"
    config.admin_api_key = "adm_from_the_config"
    assert admin_key_for(config) == "adm_from_the_config"  # a configured key wins
