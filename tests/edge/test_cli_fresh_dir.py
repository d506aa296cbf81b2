"""Every `paymux` subcommand, run in an empty directory: it creates what it needs or says in one
line what is missing, and never prints a traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import paymux
import pytest
from paymux.cli.main import COMMANDS

PAYMUX = [sys.executable, "-m", "paymux.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMUX_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def _run(cwd, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PAYMUX, *args],
        check=False,
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _clean(out: str) -> None:
    assert "Traceback" not in out, out
    assert "Error:" not in out.replace("error:", ""), out


# one-shot commands: (argv, expected return code, what it must say or create)
ONE_SHOT = [
    (["keys", "list", "--merchant", "acme"], 2, "no store at"),
    (["keys", "create", "--merchant", "acme"], 0, "sk_test_"),
    (["report"], None, "no store at"),
    (["report", "--json"], None, "no store at"),
    (["reconcile"], None, "no store at"),
    (["keys"], 2, "usage:"),
    (["serve"], 2, "no connectors configured"),
    (["nope"], 2, "unknown command"),
    ([], 0, "usage:"),
]


@pytest.mark.parametrize(("argv", "code", "says"), ONE_SHOT)
def test_one_shot_commands_in_an_empty_directory(tmp_path, argv, code, says):
    out = _run(tmp_path, *argv)
    text = out.stdout + out.stderr
    _clean(text)
    if code is not None:
        assert out.returncode == code, text
    assert says in text
    if out.returncode != 0:  # the refusal's first line says what is wrong (usage may follow)
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert says in lines[0] or lines[0].startswith("usage:"), out.stderr


def test_keys_create_makes_its_data_folder_then_list_finds_it(tmp_path):
    created = _run(tmp_path, "keys", "create", "--merchant", "acme")
    assert created.returncode == 0 and (tmp_path / ".paymux" / "paymux.db").exists()
    listed = _run(tmp_path, "keys", "list", "--merchant", "acme")
    assert listed.returncode == 0 and created.stdout.strip()[:12] in listed.stdout


def _serve_until_up(cwd, argv: list[str], url: str) -> str:
    proc = subprocess.Popen(
        [*PAYMUX, *argv],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(300):
            if proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status < 500:
                        break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail(f"{argv} did not come up")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    return out


def test_long_running_commands_start_in_an_empty_directory(tmp_path):
    covered = {"keys", "report", "reconcile"}
    port, sandbox_port = _free_port(), _free_port()
    (tmp_path / "a").mkdir()
    config = tmp_path / "gateway.toml"  # the documented config, outside the empty directory
    default = (Path(paymux.__file__).parent / "default.toml").read_text()
    config.write_text(default.replace(":8090/", f":{sandbox_port}/"))
    out = _serve_until_up(
        tmp_path / "a",
        ["serve", "--config", str(config), "--port", str(port)],
        f"http://127.0.0.1:{port}/health",
    )
    _clean(out)
    assert (tmp_path / "a" / ".paymux" / "keys.json").exists()  # created what it needed
    covered.add("serve")
    (tmp_path / "b").mkdir()
    out = _serve_until_up(
        tmp_path / "b",
        ["sandbox", "--port", str(sandbox_port)],
        f"http://127.0.0.1:{sandbox_port}/_sandbox/ledger",
    )
    _clean(out)
    covered.add("sandbox")
    (tmp_path / "c").mkdir()
    port, sandbox_port = _free_port(), _free_port()
    out = _serve_until_up(
        tmp_path / "c",
        ["run-default", "--port", str(port), "--sandbox-port", str(sandbox_port)],
        f"http://127.0.0.1:{port}/health",
    )
    _clean(out)
    covered.add("run-default")
    (tmp_path / "d").mkdir()
    port, sandbox_port = _free_port(), _free_port()
    demo = _run(
        tmp_path / "d",
        "demo",
        "--duration",
        "1",
        "--rate",
        "5",
        "--exit",
        "--no-live",
        "--port",
        str(port),
        "--sandbox-port",
        str(sandbox_port),
    )
    _clean(demo.stdout + demo.stderr)
    assert demo.returncode == 0, demo.stderr
    covered.add("demo")
    assert covered == set(COMMANDS)  # a new subcommand needs a line here
