"""`paymux keys`: a key is shown once, stored only as a hash, and works against the API."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys


def _run(tmp_path, *args):
    config = tmp_path / "paymux.toml"
    config.write_text(
        f'[storage]\npath = "{tmp_path / "p.db"}"\n[vault]\nkey_file = "{tmp_path / "k.json"}"\n'
    )
    return subprocess.run(
        [sys.executable, "-m", "paymux.cli", "keys", *args, "--config", str(config)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_created_key_is_stored_only_as_its_hash(tmp_path):
    out = _run(tmp_path, "create", "--merchant", "acme")
    assert out.returncode == 0, out.stderr
    secret = out.stdout.strip()
    assert secret.startswith("sk_test_") and len(secret) > 30
    conn = sqlite3.connect(tmp_path / "p.db")
    rows = conn.execute("SELECT key_hash, prefix, merchant_id FROM api_keys").fetchall()
    conn.close()
    assert rows == [(hashlib.sha256(secret.encode()).hexdigest(), secret[:12], "acme")]
    assert secret.encode() not in (tmp_path / "p.db").read_bytes()
    listed = _run(tmp_path, "list", "--merchant", "acme")
    assert secret[:12] in listed.stdout and secret not in listed.stdout


def test_live_mode_and_bad_merchant_names(tmp_path):
    live = _run(tmp_path, "create", "--merchant", "acme", "--mode", "live")
    assert live.stdout.startswith("sk_live_")
    bad = _run(tmp_path, "create", "--merchant", "not ok!")
    assert bad.returncode == 2 and "--merchant" in bad.stderr
