"""schemathesis against a running gateway: positive and negative data, all checks, a bounded
number of examples. The command is the README's ("The edge").

Not yet at zero: schema-valid requests the server still rejects for reasons JSON Schema cannot
express (a card number failing Luhn, `1.0` where msgspec wants an integer, ids of objects that do
not exist without OpenAPI links). Marked xfail (not strict) until those are resolved."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.edge.test_cli_fresh_dir import _env, _free_port, _serve_until_up  # noqa: F401

ST = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")


@pytest.mark.xfail(reason="schema still looser than the server in places (see module doc)")
def test_schemathesis_finds_no_failures(tmp_path):
    if not Path(ST).exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    port, sandbox_port = _free_port(), _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "paymux.cli",
            "run-default",
            "--port",
            str(port),
            "--sandbox-port",
            str(sandbox_port),
        ],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import time
        import urllib.request

        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        out = subprocess.run(
            [
                ST,
                "run",
                f"http://127.0.0.1:{port}/openapi.json",
                "--checks",
                "all",
                "--mode",
                "all",
                "--max-examples",
                "10",
                "--seed",
                "1",
                "-H",
                "Authorization: Bearer sk_test_paymux_demo_key",
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "warning" not in out.stdout.splitlines()[-1].lower(), out.stdout[-2000:]
