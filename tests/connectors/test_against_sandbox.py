"""The three connectors against the real paymux sandbox (``paymux.sandbox.build_app``) on loopback.

Full flows through each PSP's wire format: authorize -> partial capture -> two partial refunds,
authorize -> void, issuer declines by published test card, and a timeout after which ``sync``
recovers the authorization by paymux's reference.
"""

from __future__ import annotations

import uuid

import pytest
from aiohttp import web
from paymux.connectors.base import (
    AuthorizeRequest,
    CaptureRequest,
    CardDetails,
    ConnectorConfig,
    RefundRequest,
    SyncRequest,
    VoidRequest,
)
from paymux.connectors.registry import create_connector
from paymux.domain.outcomes import AttemptStatus, DeclineClass

sandbox = pytest.importorskip("paymux.sandbox")
from paymux.sandbox import DEFAULT_CREDENTIALS, build_app
from paymux.sandbox.scenario import Match, Psp, Scenario, Segment

KINDS = ["stripe", "adyen", "checkout"]
TIMEOUT_AMOUNT = 7777  # the scenario holds answers for this amount past the client's timeout


def _scenario() -> Scenario:
    hold = Segment(
        name="slow",
        match=Match(amount_min=TIMEOUT_AMOUNT, amount_max=TIMEOUT_AMOUNT + 1),
        timeout_rate=1.0,
        timeout_ms=1500.0,
        timeout_mode="late",
    )
    return Scenario(psps={k: Psp(wire=k, segments=[hold]) for k in KINDS})  # type: ignore[arg-type]


@pytest.fixture
async def sandbox_url():
    runner = web.AppRunner(build_app(_scenario(), seed=7), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def _config(kind: str, url: str, **extra: str) -> ConnectorConfig:
    creds = DEFAULT_CREDENTIALS[kind]
    return ConnectorConfig(
        name=f"{kind}_sandbox",
        kind=kind,
        base_url=f"{url}/{kind}",
        api_key=creds["api_key"],
        merchant_account=creds.get("merchant_account"),
        timeout_s=0.5,
        connect_timeout_s=0.5,
        max_connections=8,
        extra=extra,
    )


@pytest.fixture(params=KINDS)
async def connector(request, sandbox_url):
    conn = create_connector(_config(request.param, sandbox_url))  # through the registry
    await conn.start()
    yield conn
    await conn.close()


def _authorize(
    pan: str = "4242424242424242", *, amount: int = 10_000, capture: bool = False
) -> AuthorizeRequest:
    return AuthorizeRequest(
        reference=f"att_{uuid.uuid4().hex[:20]}",
        payment_id=f"pay_{uuid.uuid4().hex[:12]}",
        amount=amount,
        currency="EUR",
        card=CardDetails(pan, 12, 2034, "123", "Grace Hopper"),
        capture=capture,
    )


def _ref() -> str:
    return f"op_{uuid.uuid4().hex[:20]}"


async def test_authorize_partial_capture_and_two_partial_refunds(connector):
    auth = await connector.authorize(_authorize(amount=10_000))
    assert auth.status is AttemptStatus.AUTHORIZED, auth
    psp_id = auth.connector_reference
    assert psp_id

    cap = await connector.capture(
        CaptureRequest(reference=_ref(), connector_reference=psp_id, amount=6_000, currency="EUR")
    )
    assert cap.status is AttemptStatus.CAPTURED, cap

    for amount in (2_000, 1_500):
        ref = await connector.refund(
            RefundRequest(
                reference=_ref(), connector_reference=psp_id, amount=amount, currency="EUR"
            )
        )
        assert ref.status is AttemptStatus.REFUNDED, ref
        assert ref.amount == amount

    # More than what is left to refund is refused by the PSP, without an exception.
    too_much = await connector.refund(
        RefundRequest(reference=_ref(), connector_reference=psp_id, amount=5_000, currency="EUR")
    )
    assert too_much.status in (AttemptStatus.FAILED, AttemptStatus.DECLINED), too_much
    assert not too_much.ambiguous


async def test_automatic_capture(connector):
    result = await connector.authorize(_authorize(capture=True))
    assert result.status is AttemptStatus.CAPTURED, result


async def test_authorize_then_void(connector):
    auth = await connector.authorize(_authorize())
    assert auth.status is AttemptStatus.AUTHORIZED, auth
    void = await connector.void(
        VoidRequest(
            reference=_ref(),
            connector_reference=auth.connector_reference,
            amount=10_000,
            currency="EUR",
        )
    )
    assert void.status is AttemptStatus.VOIDED, void
    # A voided authorization cannot be captured any more.
    cap = await connector.capture(
        CaptureRequest(
            reference=_ref(),
            connector_reference=auth.connector_reference,
            amount=100,
            currency="EUR",
        )
    )
    assert cap.status in (AttemptStatus.FAILED, AttemptStatus.DECLINED), cap


@pytest.mark.parametrize(
    ("pan", "normalized", "cls"),
    [
        ("4000000000009995", "insufficient_funds", DeclineClass.ISSUER_NOT_NOW),
        ("4000000000000002", "do_not_honor", DeclineClass.SOFT_ROUTE),
        ("4000000000000069", "expired_card", DeclineClass.FIX_DATA),
        ("4000000000000127", "incorrect_cvc", DeclineClass.FIX_DATA),
        ("4000000000000119", "processing_error", DeclineClass.TECHNICAL),
        ("4100000000000019", "fraudulent", DeclineClass.ISSUER_NOT_NOW),
    ],
)
async def test_issuer_declines_are_classified_alike_on_every_psp(connector, pan, normalized, cls):
    result = await connector.authorize(_authorize(pan))
    assert result.status in (AttemptStatus.DECLINED, AttemptStatus.FAILED), result
    assert result.decline_class is cls, result
    assert result.raw_code
    assert not result.ambiguous
    assert result.normalized_code == normalized, result


@pytest.mark.parametrize("pan", ["4000000000009987", "4000000000009979"])
async def test_lost_and_stolen_cards_are_hard_everywhere(connector, pan):
    result = await connector.authorize(_authorize(pan))
    assert result.status is AttemptStatus.DECLINED
    assert result.decline_class is DeclineClass.HARD, result


async def test_wrong_api_key_is_technical_not_ambiguous(sandbox_url):
    for kind in KINDS:
        cfg = _config(kind, sandbox_url)
        conn = create_connector(
            ConnectorConfig(
                **{
                    **{f: getattr(cfg, f) for f in cfg.__struct_fields__},
                    "api_key": "sk_test_wrong_key_000000",
                }
            )
        )
        async with conn:
            result = await conn.authorize(_authorize())
        assert result.status is AttemptStatus.FAILED, (kind, result)
        assert result.normalized_code == "authentication_failed", (kind, result)
        assert not result.ambiguous


async def test_sync_of_an_unknown_reference_is_not_found(sandbox_url):
    for kind, extra in (
        ("stripe", {}),
        ("checkout", {}),
        ("adyen", {"lookup_path": "/v72/_sandbox/payments"}),
    ):
        async with create_connector(_config(kind, sandbox_url, **extra)) as conn:
            result = await conn.sync(SyncRequest(reference="att_never_sent"))
        assert result.status is AttemptStatus.NOT_FOUND, (kind, result)


async def test_timeout_then_sync_recovers_the_authorization(connector):
    request = _authorize(amount=TIMEOUT_AMOUNT)
    lost = await connector.authorize(request)
    assert lost.status is AttemptStatus.FAILED
    assert lost.normalized_code == "timeout" and lost.ambiguous, lost

    synced = await connector.sync(
        SyncRequest(
            reference=request.reference, amount=request.amount, currency="EUR", original=request
        )
    )
    assert synced.status is AttemptStatus.AUTHORIZED, synced
    assert synced.connector_reference
    # Syncing again gives the same answer: it is a read (or, for Adyen, an idempotent replay).
    again = await connector.sync(SyncRequest(reference=request.reference, original=request))
    assert again.status is AttemptStatus.AUTHORIZED
    assert again.connector_reference == synced.connector_reference


async def test_adyen_sync_through_the_sandbox_lookup_after_a_timeout(sandbox_url):
    async with create_connector(
        _config("adyen", sandbox_url, lookup_path="/v72/_sandbox/payments")
    ) as conn:
        request = _authorize(amount=TIMEOUT_AMOUNT)
        lost = await conn.authorize(request)
        assert lost.ambiguous
        synced = await conn.sync(SyncRequest(reference=request.reference))
        assert synced.status is AttemptStatus.AUTHORIZED, synced
