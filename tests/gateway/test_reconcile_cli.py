"""`paymux reconcile` as a user runs it: a real process against the real gateway's SQLite store and
the real sandbox (its PSP APIs and its ledger) on loopback. No mocks."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.conftest import SANDBOX_KEYS, Gateway, card, free_port

PAYMUX = [sys.executable, "-m", "paymux.cli", "reconcile"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMUX_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def _write_config(tmp: Path, gateway: Gateway, down: set[str] = frozenset()) -> Path:
    """The CLI's config: the gateway's store and the sandbox's PSPs (``down`` ones on a port
    nothing listens on)."""
    dead = free_port()
    lines = ["[storage]", f'path = "{gateway.db_path}"', "[payments]", "sync_timeout_s = 0.5"]
    for wire, creds in SANDBOX_KEYS.items():
        root = f"http://127.0.0.1:{dead}" if wire in down else gateway.sandbox_url
        lines += [
            "[[connectors]]",
            f'name = "{wire}"',
            f'kind = "{wire}"',
            f'base_url = "{root}/{wire}"',
            "timeout_s = 2.0",
        ]
        lines += [f'{k} = "{v}"' for k, v in creds.items() if isinstance(v, str)]
        if "extra" in creds:
            extra = ", ".join(f'{k} = "{v}"' for k, v in creds["extra"].items())
            lines.append(f"extra = {{ {extra} }}")
    path = tmp / ("reconcile-down.toml" if down else "reconcile.toml")
    path.write_text("\n".join(lines) + "\n")
    return path


async def reconcile(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    # asyncio's subprocess: the gateway and the sandbox it talks to run on this very loop.
    proc = await asyncio.create_subprocess_exec(
        *PAYMUX,
        *args,
        cwd=cwd,
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    text = out.decode() + err.decode()
    assert "Traceback" not in text, text
    assert "4242424242424242" not in text
    return proc.returncode, out.decode(), err.decode()


async def _pay(gateway: Gateway, amount: int, manual: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"amount": amount, "currency": "EUR", "payment_method": card()}
    if manual:
        body["capture_method"] = "manual"
    status, pay = await gateway.post("/v1/payments", body)
    assert status == 200, pay
    return pay


async def _patch_sandbox(gateway: Gateway, patch: dict[str, Any]) -> None:
    async with gateway.session.post(gateway.sandbox_url + "/_sandbox/scenario", json=patch) as r:
        assert r.status == 200, await r.text()


async def _traffic(gateway: Gateway) -> list[dict[str, Any]]:
    """One of each: automatic capture, manual capture, partial capture, void, refunds."""
    auto = await _pay(gateway, 1000)
    manual = await _pay(gateway, 2000, manual=True)
    status, _ = await gateway.post(f"/v1/payments/{manual['id']}/capture", {})
    assert status == 200
    partial = await _pay(gateway, 3000, manual=True)
    status, _ = await gateway.post(f"/v1/payments/{partial['id']}/capture", {"amount": 1200})
    assert status == 200
    voided = await _pay(gateway, 4000, manual=True)
    status, _ = await gateway.post(f"/v1/payments/{voided['id']}/cancel", {})
    assert status == 200
    for amount in (300, 200):
        status, _ = await gateway.post("/v1/refunds", {"payment_id": auto["id"], "amount": amount})
        assert status == 200
    held = await _pay(gateway, 5000, manual=True)
    return [auto, manual, partial, voided, held]


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(
            wire,
            marks=pytest.mark.gateway_config(
                routing={"default_order": [wire, *(w for w in SANDBOX_KEYS if w != wire)]}
            ),
        )
        for wire in SANDBOX_KEYS
    ],
)
async def test_a_clean_run_exits_0_and_prints_no_mismatch(gateway, tmp_path, first):
    payments = await _traffic(gateway)
    config = _write_config(tmp_path, gateway)
    code, out, err = await reconcile("--config", str(config))
    assert code == 0, out + err
    assert f"{len(payments)} payments touched" in out
    assert "sandbox ledger: " + gateway.sandbox_url + "/_sandbox/ledger" in out
    assert "0 mismatches found, 0 fixed, 0 remaining" in out
    assert "[" not in out.split("\n", 1)[1]  # no mismatch line
    if first != "stripe":
        return
    code, out, _ = await reconcile("--config", str(config), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["exit_status"] == 0
    assert doc["mismatches"] == doc["remaining"] == [] and doc["counts"] == {}
    assert doc["payments_checked"] == len(payments)
    assert set(doc["ledgers"]) == set(SANDBOX_KEYS)


async def test_a_captured_amount_edited_in_sqlite_is_reported_and_filtered(gateway, tmp_path):
    pay = await _pay(gateway, 1000)
    other = await _pay(gateway, 700)
    with sqlite3.connect(gateway.db_path) as db:
        db.execute("UPDATE payments SET amount_received = 400 WHERE id = ?", (pay["id"],))
    config = _write_config(tmp_path, gateway)
    code, out, _ = await reconcile("--config", str(config))
    assert code == 1, out
    line = f"{pay['id']} stripe: paymux says captured 400, PSP says captured 1000 (ledger)"
    assert f"{line}  [amount_captured]" in out
    assert other["id"] not in out
    assert "1 mismatch found, 0 fixed, 1 remaining" in out
    assert any(row.split() == ["amount_captured", "1", "0", "1"] for row in out.splitlines())

    code, out, _ = await reconcile("--config", str(config), "--json")
    doc = json.loads(out)
    assert code == 1 and doc["exit_status"] == 1
    assert doc["counts"] == {"amount_captured": {"found": 1, "fixed": 0, "remaining": 1}}
    (m,) = doc["remaining"]
    assert (m["kind"], m["payment_id"], m["connector"]) == ("amount_captured", pay["id"], "stripe")
    assert m["fixable"] is False

    code, out, _ = await reconcile("--config", str(config), "--connector", "adyen")
    assert code == 0, out
    assert "0 payments touched" in out and pay["id"] not in out
    code, out, _ = await reconcile("--config", str(config), "--connector", "stripe")
    assert code == 1 and "[amount_captured]" in out and "2 payments touched" in out

    # --since parses like `paymux report`'s; a window that ends before the payment: nothing
    code, _, err = await reconcile("--config", str(config), "--connector", "paypal")
    assert code == 2 and "'paypal' is not configured" in err and len(err.splitlines()) == 1
    for bad in ("yesterday", "-1h"):
        code, _, err = await reconcile("--config", str(config), f"--since={bad}")
        assert code == 2 and "--since must look like" in err, err
    with sqlite3.connect(gateway.db_path) as db:
        updated = db.execute("SELECT MAX(updated_at) FROM payments").fetchone()[0]
    await asyncio.sleep(max(0.0, updated + 2.5 - time.time()))
    code, out, _ = await reconcile("--config", str(config), "--since", "2s")
    assert code == 0 and "0 payments touched in the last 2s" in out, out
    code, out, _ = await reconcile("--config", str(config), "--since", "1h")
    assert code == 1 and "[amount_captured]" in out


@pytest.mark.gateway_config(reconciler={"enabled": False}, payments={"sync_timeout_s": 1e-6})
async def test_a_capture_left_pending_is_fixed_through_the_state_machine(gateway, tmp_path):
    pay = await _pay(gateway, 1500, manual=True)
    # Stripe applies the capture, then holds its answer past the connector's 2 s timeout; the
    # inline sync gets no time: the capture stays in flight, and no reconciler runs.
    late = {"timeout_rate": 1.0, "timeout_ms": 2500, "timeout_mode": "late"}
    await _patch_sandbox(gateway, {"psps": {"stripe": {"modifications": late}}})
    status, body = await gateway.post(f"/v1/payments/{pay['id']}/capture", {})
    assert status == 202 and body["status"] == "capturing", body
    await _patch_sandbox(gateway, {"psps": {"stripe": {"modifications": {"timeout_rate": 0.0}}}})
    with sqlite3.connect(gateway.db_path) as db:
        cap_id, created_at = db.execute(
            "SELECT id, created_at FROM operations WHERE payment_id = ? AND status = 'pending'",
            (pay["id"],),
        ).fetchone()
    # Until the gateway's own call and sync could still be running (connector timeout 2 s + the
    # CLI config's sync_timeout_s 0.5 s + 1 s), the command leaves it alone.
    await asyncio.sleep(max(0.0, created_at + 3.6 - time.time()))
    config = _write_config(tmp_path, gateway)
    code, out, _ = await reconcile("--config", str(config), "--connector", "stripe")
    assert (
        f"{pay['id']} stripe: paymux says capture {cap_id} pending 1500, PSP says captured 1500"
        "  [operation_state]"
    ) in out
    assert f"fixed: {pay['id']} capture {cap_id} succeeded at the PSP; payment succeeded" in out
    assert "re-checked after 1 fix:" in out and "1 mismatch found, 1 fixed, 0 remaining" in out
    assert code == 0, out
    status, now = await gateway.get(f"/v1/payments/{pay['id']}")
    assert status == 200 and now["status"] == "succeeded" and now["amount_received"] == 1500
    ledger = await gateway.ledger()
    (held,) = [
        p for p in ledger["psps"]["stripe"]["payments"] if p["id"] == pay["connector_reference"]
    ]
    assert held["captured"] == 1500
    code, out, _ = await reconcile("--config", str(config))
    assert code == 0 and "0 mismatches found" in out, out


@pytest.mark.gateway_config(reconciler={"enabled": False}, payments={"sync_timeout_s": 1e-6})
async def test_a_payment_left_processing_is_settled_by_the_reconcilers_check(gateway, tmp_path):
    # Stripe authorizes (and captures), then holds its answer; the sync gets no time.
    late = {"timeout_rate": 1.0, "timeout_ms": 2500, "timeout_mode": "late"}
    await _patch_sandbox(gateway, {"psps": {"stripe": {"default": late}}})
    status, pay = await gateway.post(
        "/v1/payments", {"amount": 2500, "currency": "EUR", "payment_method": card()}
    )
    assert pay["status"] == "processing", (status, pay)
    await _patch_sandbox(gateway, {"psps": {"stripe": {"default": {"timeout_rate": 0.0}}}})
    with sqlite3.connect(gateway.db_path) as db:
        (created_at,) = db.execute(
            "SELECT created_at FROM attempts WHERE payment_id = ?", (pay["id"],)
        ).fetchone()
    config = _write_config(tmp_path, gateway)
    # Until the gateway's own call and sync could still be running, it is left alone.
    await asyncio.sleep(max(0.0, created_at + 3.6 - time.time()))
    code, out, _ = await reconcile("--config", str(config))
    assert f"{pay['id']} stripe: paymux says processing, PSP says captured 2500  [status]" in out
    assert f"fixed: {pay['id']} attempt " in out and "payment succeeded" in out
    assert code == 0, out
    status, now = await gateway.get(f"/v1/payments/{pay['id']}")
    assert now["status"] == "succeeded" and now["amount_received"] == 2500
    code, out, _ = await reconcile("--config", str(config))
    assert code == 0 and "0 mismatches found" in out, out


async def test_a_psp_that_cannot_be_reached_is_reported(gateway, tmp_path):
    pay = await _pay(gateway, 900)
    config = _write_config(tmp_path, gateway, down={"stripe"})
    code, out, _ = await reconcile("--config", str(config))
    assert code == 1, out
    assert f"{pay['id']} stripe: paymux says captured 900, PSP says nothing (" in out
    assert "[psp_unreachable]" in out
    # the other PSPs still answer, and their ledger is still read
    assert "sandbox ledger: " + gateway.sandbox_url in out


async def test_funds_held_at_the_psp_that_paymux_does_not_rely_on_are_reported(gateway, tmp_path):
    pay = await _pay(gateway, 1100, manual=True)
    with sqlite3.connect(gateway.db_path) as db:
        (reference,) = db.execute(
            "SELECT reference FROM attempts WHERE payment_id = ?", (pay["id"],)
        ).fetchone()
    stripe = {"Authorization": f"Bearer {SANDBOX_KEYS['stripe']['api_key']}"}

    async def authorize_at_stripe(ref: str) -> str:
        form = {
            "amount": "777",
            "currency": "eur",
            "confirm": "true",
            "capture_method": "manual",
            "payment_method": "pm_card_visa",
            "metadata[paymux_reference]": ref,
        }
        url = gateway.sandbox_url + "/stripe/v1/payment_intents"
        async with gateway.session.post(url, data=form, headers=stripe) as r:
            body = await r.json()
            assert r.status == 200 and body["status"] == "requires_capture", body
            return body["id"]

    ghost = await authorize_at_stripe("att_never_made_by_paymux")
    second = await authorize_at_stripe(reference)  # a second authorization for our attempt
    code, out, _ = await reconcile("--config", str(_write_config(tmp_path, gateway)), "--json")
    assert code == 1
    doc = json.loads(out)
    kinds = {(m["kind"], m["payment_id"], m["subject"]) for m in doc["remaining"]}
    assert kinds == {
        ("held_without_payment", None, ghost),
        ("double_authorization", pay["id"], second),
    }, doc["remaining"]
    lines = {m["kind"]: m["line"] for m in doc["remaining"]}
    assert lines["held_without_payment"].startswith(
        f"({ghost}) stripe: paymux says nothing, PSP says authorized 777"
    )
    assert f"PSP says authorized 777 ({second})" in lines["double_authorization"]


async def test_in_an_empty_directory_it_says_in_one_line_what_is_missing(tmp_path):
    code, out, err = await reconcile(cwd=tmp_path)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and "no store at .paymux/paymux.db" in err
    assert not (tmp_path / ".paymux").exists()  # it created nothing
    code, out, err = await reconcile("--config", str(tmp_path / "missing.toml"), cwd=tmp_path)
    assert code == 2 and len(err.splitlines()) == 1 and "cannot read config" in err
