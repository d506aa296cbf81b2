"""Captures, voids and refunds through the three connectors against the real paymux sandbox, with
each ``[psps.<name>.modifications]`` fault, then ``sync_operation`` and the sandbox's ledger.

An operation the PSP applied is found as applied whatever happened to its answer (5xx after
applying, held past the client's timeout, reset, garbage); one that 5xx'd before applying is
NOT_FOUND at Stripe and Checkout.com, and at Adyen (which has no lookup) the idempotent re-send
processes it now. The ledger shows exactly what was applied.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiohttp import web
from paymux.connectors.base import (
    AuthorizeRequest,
    CaptureRequest,
    CardDetails,
    ConnectorConfig,
    OperationSyncRequest,
    RefundRequest,
    VoidRequest,
)
from paymux.connectors.registry import create_connector
from paymux.domain.outcomes import AttemptStatus
from paymux.sandbox import DEFAULT_CREDENTIALS, SANDBOX_KEY, build_app
from paymux.sandbox.scenario import merge_patch, scenario_from_dict, scenario_to_dict

KINDS = ["stripe", "adyen", "checkout"]
AUTHORIZED = 10_000

# Each fault, as the scenario patch that makes every modification hit it.
FAULTS: dict[str, dict[str, Any]] = {
    "none": {},
    "error": {"error_rate": 1.0},
    "error_after_apply": {"error_after_apply_rate": 1.0},
    "timeout": {"timeout_rate": 1.0, "timeout_ms": 700, "timeout_mode": "drop"},
    "reset": {"reset_rate": 1.0},
    "garbage_html": {"garbage_rate": 1.0, "garbage": "html"},
    "garbage_truncated": {"garbage_rate": 1.0, "garbage": "truncated"},
}

# operation -> (paymux operation, amount of the operation, capture on authorize)
OPERATIONS = {
    "capture": ("capture", AUTHORIZED, False),
    "partial_capture": ("capture", 4_000, False),
    "void": ("void", AUTHORIZED, False),
    "refund": ("refund", AUTHORIZED, True),
    "partial_refund": ("refund", 3_000, True),
}


class Sandbox:
    def __init__(self, app: web.Application, url: str) -> None:
        self.state = app[SANDBOX_KEY]
        self.url = url

    def faults(self, kind: str, modifications: dict[str, Any] | None) -> None:
        """Set (or with None clear) this PSP's modification faults, keeping its payments."""
        raw = scenario_to_dict(self.state.scenario)
        raw["psps"][kind].pop("modifications", None)
        if modifications:
            raw = merge_patch(raw, {"psps": {kind: {"modifications": modifications}}})
        self.state.load(scenario_from_dict(raw))

    def payment(self, kind: str, psp_id: str) -> dict[str, Any]:
        (found,) = [
            p for p in self.state.ledger(kind)["psps"][kind]["payments"] if p["id"] == psp_id
        ]
        return found


@pytest.fixture
async def sandbox():
    app = build_app(seed=11)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield Sandbox(app, f"http://127.0.0.1:{runner.addresses[0][1]}")
    await runner.cleanup()


def _config(kind: str, url: str) -> ConnectorConfig:
    creds = DEFAULT_CREDENTIALS[kind]
    return ConnectorConfig(
        name=f"{kind}_sandbox",
        kind=kind,
        base_url=f"{url}/{kind}",
        api_key=creds["api_key"],
        merchant_account=creds.get("merchant_account"),
        timeout_s=0.4,
        connect_timeout_s=0.5,
        max_connections=8,
    )


@pytest.fixture(params=KINDS)
async def connector(request, sandbox):
    conn = create_connector(_config(request.param, sandbox.url))
    await conn.start()
    yield conn
    await conn.close()


def _ref(prefix: str = "op") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


async def _authorize(conn, *, capture: bool) -> str:
    result = await conn.authorize(
        AuthorizeRequest(
            reference=_ref("att"),
            payment_id=_ref("pay"),
            amount=AUTHORIZED,
            currency="EUR",
            card=CardDetails("4242424242424242", 12, 2034, "123", "Grace Hopper"),
            capture=capture,
        )
    )
    expected = AttemptStatus.CAPTURED if capture else AttemptStatus.AUTHORIZED
    assert result.status is expected, result
    assert result.connector_reference
    return result.connector_reference


async def _call(conn, operation: str, reference: str, psp_id: str, amount: int):
    kw = {
        "reference": reference,
        "connector_reference": psp_id,
        "amount": amount,
        "currency": "EUR",
    }
    if operation == "capture":
        return await conn.capture(CaptureRequest(**kw))
    if operation == "void":
        return await conn.void(VoidRequest(**kw))
    return await conn.refund(RefundRequest(**kw))


def _sync(operation: str, reference: str, psp_id: str, amount: int) -> OperationSyncRequest:
    return OperationSyncRequest(
        operation=operation,
        reference=reference,
        connector_reference=psp_id,
        amount=amount,
        currency="EUR",
    )


DONE = {
    "capture": AttemptStatus.CAPTURED,
    "void": AttemptStatus.VOIDED,
    "refund": AttemptStatus.REFUNDED,
}


def _applied(ledger: dict[str, Any], operation: str, amount: int, capture: bool) -> dict:
    """What the ledger must show for one payment after ``operation`` of ``amount`` (or none)."""
    captured = AUTHORIZED if capture else 0
    out = {
        "authorized": AUTHORIZED,
        "captured": captured,
        "refunded": 0,
        "voided": False,
        "voided_amount": 0,
    }
    if operation == "capture" and amount:
        out["captured"] = amount
    elif operation == "void" and amount:
        out.update(voided=True, voided_amount=AUTHORIZED)
    elif operation == "refund" and amount:
        out["refunded"] = amount
    return out


def _amounts(payment: dict[str, Any]) -> dict[str, Any]:
    return {
        k: payment[k] for k in ("authorized", "captured", "refunded", "voided", "voided_amount")
    }


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("name", list(OPERATIONS))
async def test_an_operation_is_found_as_the_psp_left_it(connector, sandbox, name, fault):
    kind = connector.kind
    operation, amount, capture = OPERATIONS[name]
    psp_id = await _authorize(connector, capture=capture)
    sandbox.faults(kind, {**FAULTS[fault], "operations": [operation]} if FAULTS[fault] else None)
    reference = _ref()

    first = await _call(connector, operation, reference, psp_id, amount)
    if fault == "none":
        assert first.status is DONE[operation], first
    else:
        assert first.status is AttemptStatus.FAILED and first.ambiguous, first

    applied_before_sync = fault != "error"
    if fault == "error" and kind == "adyen":
        # Still failing: the re-send is not applied either, and says "cannot tell".
        again = await connector.sync_operation(_sync(operation, reference, psp_id, amount))
        assert again.status is AttemptStatus.FAILED and again.ambiguous, again
        assert _amounts(sandbox.payment(kind, psp_id)) == _applied({}, operation, 0, capture)
    sandbox.faults(kind, None)

    found = await connector.sync_operation(_sync(operation, reference, psp_id, amount))
    ledger = _amounts(sandbox.payment(kind, psp_id))
    if applied_before_sync or kind == "adyen":
        # Applied (at Adyen with error: applied now, by the idempotent re-send).
        assert found.status is DONE[operation], found
        if operation != "void":
            assert found.amount == amount, found
        assert ledger == _applied({}, operation, amount, capture)
    else:
        assert found.status is AttemptStatus.NOT_FOUND, found
        assert ledger == _applied({}, operation, 0, capture)

    # Asking again changes nothing (at Adyen: the re-send is replayed, not applied twice).
    again = await connector.sync_operation(_sync(operation, reference, psp_id, amount))
    assert again.status is found.status
    assert _amounts(sandbox.payment(kind, psp_id)) == ledger


async def test_several_partial_refunds_each_found_and_summed_in_the_ledger(connector, sandbox):
    kind = connector.kind
    psp_id = await _authorize(connector, capture=False)
    capture_ref = _ref()
    cap = await connector.capture(
        CaptureRequest(
            reference=capture_ref, connector_reference=psp_id, amount=8_000, currency="EUR"
        )
    )
    assert cap.status is AttemptStatus.CAPTURED, cap
    refunds = [(_ref(), 1_000), (_ref(), 2_500), (_ref(), 500)]
    faults = ["timeout", "garbage_truncated", "error_after_apply"]
    for (reference, amount), fault in zip(refunds, faults, strict=True):
        sandbox.faults(kind, {**FAULTS[fault], "operations": ["refund"]})
        first = await _call(connector, "refund", reference, psp_id, amount)
        assert first.status is AttemptStatus.FAILED and first.ambiguous, (fault, first)
    sandbox.faults(kind, None)
    for reference, amount in refunds:
        found = await connector.sync_operation(_sync("refund", reference, psp_id, amount))
        assert (found.status, found.amount) == (AttemptStatus.REFUNDED, amount), found
    assert (await connector.sync_operation(_sync("refund", _ref(), psp_id, 100))).status is (
        AttemptStatus.REFUNDED if kind == "adyen" else AttemptStatus.NOT_FOUND
    )
    payment = sandbox.payment(kind, psp_id)
    expected_refunded = 4_000 + (100 if kind == "adyen" else 0)
    assert (payment["authorized"], payment["captured"], payment["refunded"]) == (
        AUTHORIZED,
        8_000,
        expected_refunded,
    )
    events = [
        (e["type"], e["amount"], e["idempotency_key"])
        for e in payment["events"]
        if e["type"] in ("capture", "refund")
    ]
    assert events[:4] == [("capture", 8_000, capture_ref)] + [
        ("refund", amount, reference) for reference, amount in refunds
    ]
    deliveries = [e["delivery"] for e in payment["events"] if e["type"] == "refund"][:3]
    assert deliveries == ["timeout", "garbage_truncated", "error_after"]


async def test_stripe_refund_is_found_by_its_id_too(sandbox):
    conn = create_connector(_config("stripe", sandbox.url))
    await conn.start()
    try:
        psp_id = await _authorize(conn, capture=True)
        reference = _ref()
        refund = await _call(conn, "refund", reference, psp_id, 700)
        found = await conn.sync_operation(
            OperationSyncRequest(
                operation="refund",
                reference=reference,
                connector_reference=psp_id,
                amount=700,
                currency="EUR",
                operation_reference=refund.connector_reference,
            )
        )
        assert (found.status, found.connector_reference) == (
            AttemptStatus.REFUNDED,
            refund.connector_reference,
        )
    finally:
        await conn.close()


async def test_authorization_faults_never_touch_modifications(connector, sandbox):
    kind = connector.kind
    psp_id = await _authorize(connector, capture=False)
    raw = merge_patch(
        scenario_to_dict(sandbox.state.scenario),
        {"psps": {kind: {"default": {"error_rate": 1.0, "timeout_rate": 1.0, "reset_rate": 1.0}}}},
    )
    sandbox.state.load(scenario_from_dict(raw))
    result = await _call(connector, "capture", _ref(), psp_id, 5_000)
    assert result.status is AttemptStatus.CAPTURED, result
    assert sandbox.payment(kind, psp_id)["captured"] == 5_000


async def test_faults_only_hit_the_operations_they_name(connector, sandbox):
    kind = connector.kind
    psp_id = await _authorize(connector, capture=False)
    sandbox.faults(kind, {"error_rate": 1.0, "operations": ["refund"]})
    cap = await _call(connector, "capture", _ref(), psp_id, 6_000)
    assert cap.status is AttemptStatus.CAPTURED, cap
    refund = await _call(connector, "refund", _ref(), psp_id, 1_000)
    assert refund.status is AttemptStatus.FAILED and refund.ambiguous, refund
    payment = sandbox.payment(kind, psp_id)
    assert (payment["captured"], payment["refunded"]) == (6_000, 0)
    stats = sandbox.state.ledger(kind)["psps"][kind]["stats"]
    assert stats["modification_errors"] == 1 and stats["captures"] == 1
