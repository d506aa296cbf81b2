"""schemathesis against a running gateway: positive and negative data, all checks, all phases
(examples, coverage, fuzzing, stateful), a bounded number of examples, zero failures and zero
warnings. The longer run is in the README ("The edge").

The gateway is the embedded default (tests/edge/contract_gateway.py: the failed-authentication
limits raised, since schemathesis sends thousands of unauthenticated requests from one address).
Before the run the test seeds it with real objects (a captured payment and one of its refunds, an
authorization to capture, one to void, a token) and adds them to the served document as the
operations' examples, so every id-based operation reaches a real object at least once; the links
in the document carry ids from one operation to the next in the stateful phase. (`POST
/v1/refunds` gets no seeded example: the other phases would reuse its payment with arbitrary
amounts, refused for that payment's state; its refunds come from the links.)

`tests/edge/schemathesis_hooks.py` supplies the `payment-card-number` format's strategy and makes
generated Idempotency-Keys unique per request; `tests/edge/schemathesis.toml` makes warnings
fail the run and says which state-dependent refusals the stateful phase accepts.

    PAYMUX_SCHEMATHESIS_EXAMPLES=10 PAYMUX_SCHEMATHESIS_SEED=1 (the defaults here)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.edge.test_cli_fresh_dir import _env, _free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ST = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
KEY = "sk_test_paymux_demo_key"
EXAMPLES = int(os.environ.get("PAYMUX_SCHEMATHESIS_EXAMPLES", "10"))
SEED = int(os.environ.get("PAYMUX_SCHEMATHESIS_SEED", "1"))
CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}


def _call(base: str, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {KEY}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _created(base: str, path: str, body: Any) -> dict[str, Any]:
    status, doc = _call(base, "POST", path, body)
    assert status == 200, (path, status, doc)
    return doc


def _seed(base: str) -> dict[str, Any]:
    """Real objects for the id-based operations, and the document with them as examples."""
    captured = _created(base, "/v1/payments", {"amount": 5000, "currency": "EUR",
                                               "payment_method": {"card": CARD}})  # fmt: skip
    refund = _created(base, "/v1/refunds", {"payment_id": captured["id"], "amount": 100})
    manual = {"amount": 2000, "currency": "EUR", "capture_method": "manual",
              "payment_method": {"card": CARD}}  # fmt: skip
    to_capture = _created(base, "/v1/payments", manual)
    to_void = _created(base, "/v1/payments", manual)
    token = _created(base, "/v1/tokens", {"card": CARD})
    with urllib.request.urlopen(base + "/openapi.json", timeout=10) as r:
        doc = json.loads(r.read())
    paths = doc["paths"]

    def path_example(path: str, method: str, value: str) -> None:
        for param in paths[path][method]["parameters"]:
            if param["in"] == "path":
                param["examples"] = {"seeded": {"value": value}}

    def body_example(path: str, method: str, value: Any) -> None:
        media = paths[path][method]["requestBody"]["content"]["application/json"]
        media["examples"] = {"seeded": {"value": value}}

    path_example("/v1/payments/{id}", "get", captured["id"])
    path_example("/v1/payments/{id}/capture", "post", to_capture["id"])
    body_example("/v1/payments/{id}/capture", "post", {})
    path_example("/v1/payments/{id}/cancel", "post", to_void["id"])
    body_example("/v1/payments/{id}/cancel", "post", {"reason": "seeded"})
    path_example("/v1/refunds/{id}", "get", refund["id"])
    path_example("/v1/tokens/{id}", "delete", token["id"])
    body_example("/v1/tokens", "post", {"card": CARD})
    body_example("/v1/payments", "post", manual | {"capture_method": "automatic"})
    return doc


def test_schemathesis_finds_no_failures_and_no_warnings(tmp_path: Path) -> None:
    if not Path(ST).exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    port, sandbox_port = _free_port(), _free_port()
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.edge.contract_gateway",
            "--port",
            str(port),
            "--sandbox-port",
            str(sandbox_port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            try:
                urllib.request.urlopen(base + "/health", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        schema = tmp_path / "openapi.json"
        schema.write_text(json.dumps(_seed(base)))
        st_env = env | {"SCHEMATHESIS_HOOKS": "tests.edge.schemathesis_hooks"}
        out = subprocess.run(
            [
                ST,
                "--config-file",
                str(HERE / "schemathesis.toml"),
                "run",
                str(schema),
                "--url",
                base,
                "--checks",
                "all",
                "--mode",
                "all",
                "--max-examples",
                str(EXAMPLES),
                "--seed",
                str(SEED),
                "--no-color",
                "-H",
                f"Authorization: Bearer {KEY}",
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=1800,
            cwd=tmp_path,
            env=st_env,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    summary = out.stdout[out.stdout.rfind("SUMMARY") :]
    counts = re.search(r"Test cases:\s*\n\s*(.+)", summary)
    print(f"schemathesis (max-examples {EXAMPLES}, seed {SEED}):", counts and counts.group(1))
    print(summary.strip().splitlines()[-1] if summary.strip() else out.stdout[-2000:])
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert "Warnings:" not in summary and "warning" not in summary.lower(), summary
    assert "failure" not in summary.splitlines()[-1].lower(), summary
