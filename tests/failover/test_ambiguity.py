"""Answers that never arrive: sync before cascading, the reconciler, late authorizations."""

from __future__ import annotations

import sqlite3

import pytest
from paymux.api.app import RECONCILER

from tests.failover.helpers import (
    attempt_rows,
    events,
    eventually,
    payment_body,
    sandbox_patch,
)

# Stripe authorizes, then holds its answer for 3 s and drops the connection: the connector gives
# up after its 1 s timeout, not knowing whether the payment went through.
STRIPE_SILENT_AFTER_AUTHORIZING = {
    "psps": {
        "stripe": {"default": {"timeout_rate": 1.0, "timeout_ms": 3000, "timeout_mode": "drop"}}
    }
}


def held(ledger, psp):
    return [p for p in ledger["psps"][psp]["payments"] if p["authorized"] and not p["voided"]]


async def test_timeout_after_authorizing_is_found_by_sync_and_not_charged_twice(gw):
    await sandbox_patch(gw, STRIPE_SILENT_AFTER_AUTHORIZING)
    status, pay = await gw.post("/v1/payments", payment_body(capture_method="manual"))
    assert status == 200, pay
    assert pay["status"] == "requires_capture" and pay["connector"] == "stripe"
    assert len(pay["attempts"]) == 1 and pay["attempts"][0]["outcome"] == "authorized"
    ledger = await gw.ledger()
    assert len(held(ledger, "stripe")) == 1
    assert held(ledger, "stripe")[0]["id"] == pay["connector_reference"]
    assert ledger["psps"]["stripe"]["stats"]["timeouts"] == 1
    assert ledger["psps"]["adyen"]["stats"]["requests"] == 0
    assert ledger["psps"]["checkout"]["stats"]["requests"] == 0


@pytest.mark.stripe_search_lag(lag_s=2.5)
async def test_late_authorization_is_voided_by_the_reconciler(gw):
    # Stripe authorizes but the answer is lost; Stripe's search index has not caught up yet, so
    # the sync right after the timeout says "not found" and the payment goes to Adyen. When the
    # search catches up, the reconciler finds the Stripe authorization and voids it.
    await sandbox_patch(gw, STRIPE_SILENT_AFTER_AUTHORIZING)
    status, pay = await gw.post("/v1/payments", payment_body(capture_method="manual"))
    assert status == 200, pay
    assert pay["status"] == "requires_capture" and pay["connector"] == "adyen"
    stripe_attempt = pay["attempts"][0]
    assert stripe_attempt["connector"] == "stripe" and stripe_attempt["outcome"] == "failed"
    assert stripe_attempt["next_action"] == "cascade_on:technical->adyen"
    assert gw.extra["proxy"].hidden >= 1
    ledger = await gw.ledger()
    assert len(held(ledger, "stripe")) == 1  # the double authorization, for now

    async def voided() -> bool:
        return attempt_rows(gw.db_path, pay["id"])[0]["status"] == "voided"

    await eventually(voided, timeout_s=10)
    assert len(held(await gw.ledger(), "stripe")) == 0
    rows = attempt_rows(gw.db_path, pay["id"])
    assert rows[0]["status"] == "voided"
    assert rows[0]["next_action"] == "late_authorization_voided"
    late = [
        e for e in events(gw.db_path, pay["id"]) if e["type"] == "attempt.late_authorization_voided"
    ]
    assert len(late) == 1 and late[0]["attempt_id"] == rows[0]["id"]
    status, again = await gw.get(f"/v1/payments/{pay['id']}")
    assert again["status"] == "requires_capture" and again["connector"] == "adyen"
    assert again["attempts"][0]["next_action"] == "late_authorization_voided"
    ledger = await gw.ledger()
    assert len(held(ledger, "adyen")) == 1


@pytest.mark.stripe_search_lag(lag_s=2.5)
async def test_late_capture_is_refunded_by_the_reconciler(gw):
    await sandbox_patch(gw, STRIPE_SILENT_AFTER_AUTHORIZING)
    status, pay = await gw.post("/v1/payments", payment_body())
    assert status == 200 and pay["status"] == "succeeded" and pay["connector"] == "adyen"

    async def refunded() -> bool:
        return attempt_rows(gw.db_path, pay["id"])[0]["status"] == "refunded"

    await eventually(refunded, timeout_s=10)
    (p,) = (await gw.ledger())["psps"]["stripe"]["payments"]
    assert p["refunded"] == p["captured"] == pay["amount"]
    rows = attempt_rows(gw.db_path, pay["id"])
    assert rows[0]["next_action"] == "late_capture_refunded"


@pytest.mark.stripe_search_lag(down_s=2.0)
async def test_pending_payment_is_settled_by_the_reconciler_when_the_psp_answers(gw):
    # The answer is lost and the lookup is down too: the payment stays processing (going to
    # another PSP could charge twice). The reconciler syncs until Stripe says authorized.
    await sandbox_patch(gw, STRIPE_SILENT_AFTER_AUTHORIZING)
    body = payment_body(capture_method="manual")
    status, pay = await gw.post("/v1/payments", body, idem="k-settled-later")
    assert status == 202, pay  # in flight: the reconciler settles it
    assert pay["status"] == "processing" and pay["connector"] == "stripe"
    assert pay["attempts"][0]["next_action"] == "await_psp"

    async def settled() -> bool:
        _, now = await gw.get(f"/v1/payments/{pay['id']}")
        return now["status"] == "requires_capture"

    await eventually(settled, timeout_s=10)
    # The key now replays the settled state, written in the reconciler's transaction.
    status, replay = await gw.post("/v1/payments", body, idem="k-settled-later")
    assert status == 200 and replay["id"] == pay["id"]
    assert replay["status"] == "requires_capture"
    _, now = await gw.get(f"/v1/payments/{pay['id']}")
    assert now["connector_reference"] == held(await gw.ledger(), "stripe")[0]["id"]
    assert now["attempts"][0]["outcome"] == "authorized"
    assert now["attempts"][0]["next_action"] == "reconciled:authorized"
    assert "payment.reconciled" in [e["type"] for e in events(gw.db_path, pay["id"])]


@pytest.mark.stripe_search_lag(down_s=1.5)
async def test_pending_payment_fails_when_the_psp_never_saw_it(gw):
    # An outage that drops connections: nothing is authorized, the lookup is down at first.
    await sandbox_patch(
        gw,
        {
            "psps": {
                "stripe": {
                    "outages": [{"start_s": 0, "error_rate": 1.0, "kind": "timeout"}],
                    "default": {"timeout_ms": 3000},
                }
            }
        },
    )
    status, pay = await gw.post("/v1/payments", payment_body())
    assert status == 202 and pay["status"] == "processing", pay

    async def failed() -> bool:
        _, now = await gw.get(f"/v1/payments/{pay['id']}")
        return now["status"] == "failed"

    await eventually(failed, timeout_s=10)
    _, now = await gw.get(f"/v1/payments/{pay['id']}")
    assert now["error"]["code"] == "not_processed"
    assert now["attempts"][0]["next_action"] == "reconciled:not_found"


@pytest.mark.stripe_search_lag(down_s=1.5)
async def test_a_processing_payment_without_a_watch_row_is_adopted(gw):
    # The process stopped between storing the attempt and adding it to the watch list.
    await sandbox_patch(gw, STRIPE_SILENT_AFTER_AUTHORIZING)
    status, pay = await gw.post("/v1/payments", payment_body(capture_method="manual"))
    assert status == 202 and pay["status"] == "processing"
    conn = sqlite3.connect(gw.db_path)
    with conn:
        conn.execute("DELETE FROM reconcile_watch WHERE payment_id = ?", (pay["id"],))
    conn.close()
    assert await gw.app[RECONCILER].adopt_orphans() == 1
    assert await gw.app[RECONCILER].adopt_orphans() == 0

    async def settled() -> bool:
        _, now = await gw.get(f"/v1/payments/{pay['id']}")
        return now["status"] == "requires_capture"

    await eventually(settled, timeout_s=10)
