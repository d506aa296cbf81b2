"""Garbage, silence and broken sockets become technical results, never exceptions.

Runs the same misbehaviours against all three connectors on a real loopback server.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from paymux.connectors.base import SyncRequest
from paymux.domain.outcomes import AttemptStatus, DeclineClass

from .conftest import (
    AUTHORIZE_PATH,
    CLASSES,
    PAN,
    Canned,
    assert_no_card_data,
    authorize_request,
    free_port,
    make_config,
)


def _failed(result, code, *, ambiguous):
    assert result.status is AttemptStatus.FAILED, result
    assert result.decline_class is DeclineClass.TECHNICAL
    assert result.normalized_code == code, result
    assert result.ambiguous is ambiguous, result
    assert PAN not in repr(result)


@pytest.mark.parametrize(
    ("canned", "code"),
    [
        (
            Canned(
                200, "<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"
            ),
            "invalid_response",
        ),
        (
            Canned(
                200, b'{"id": "pi_3Punit", "status": "requires_cap', content_type="application/json"
            ),
            "invalid_response",
        ),
        (Canned(200, b"", content_type="application/json"), "invalid_response"),
        (Canned(200, b"[1, 2, 3]", content_type="application/json"), "invalid_response"),
        (Canned(200, b'{"unexpected": true}', content_type="application/json"), "invalid_response"),
        (
            Canned(500, b'{"error": {"type": "api_error"}}', content_type="application/json"),
            "psp_server_error",
        ),
        (
            Canned(503, "<html>Service Unavailable</html>", content_type="text/html"),
            "psp_server_error",
        ),
    ],
    ids=["html", "truncated-json", "empty", "json-array", "json-unrelated", "500", "503"],
)
async def test_malformed_answers_are_technical_and_ambiguous(
    psp, any_connector, canned, code, caplog
):
    psp.on("POST", AUTHORIZE_PATH[any_connector.kind], canned)
    with caplog.at_level(logging.WARNING, logger="paymux"):
        result = await any_connector.authorize(authorize_request())
    _failed(result, code, ambiguous=True)
    assert result.detail
    assert_no_card_data(result.detail, caplog.text)
    assert "psp call failed" in caplog.text


async def test_timeout_after_sending_is_ambiguous(psp, any_connector):
    psp.on("POST", AUTHORIZE_PATH[any_connector.kind], Canned(200, {}, delay_s=2.0))
    result = await any_connector.authorize(authorize_request())
    _failed(result, "timeout", ambiguous=True)
    assert 400 <= result.latency_ms < 1900


async def test_reset_mid_request_is_ambiguous(psp, any_connector):
    psp.on("POST", AUTHORIZE_PATH[any_connector.kind], Canned(reset=True))
    result = await any_connector.authorize(authorize_request())
    _failed(result, "connection_error", ambiguous=True)


async def test_body_cut_short_is_ambiguous(psp, any_connector):
    psp.on(
        "POST",
        AUTHORIZE_PATH[any_connector.kind],
        Canned(200, b'{"id": "pay_1", "sta', cut_short=True),
    )
    result = await any_connector.authorize(authorize_request())
    _failed(result, "connection_error", ambiguous=True)


async def test_connection_refused_is_not_ambiguous():
    for kind, cls in CLASSES.items():
        conn = cls(make_config(kind, f"http://127.0.0.1:{free_port()}"))
        await conn.start()
        try:
            result = await conn.authorize(authorize_request())
            _failed(result, "connection_error", ambiguous=False)
            sync = await conn.sync(
                SyncRequest(
                    reference="att_x",
                    connector_reference="id_x",
                    original=authorize_request("att_x"),
                )
            )
            assert sync.status is AttemptStatus.FAILED and not sync.ambiguous
        finally:
            await conn.close()


async def test_dns_failure_is_not_ambiguous():
    conn = CLASSES["checkout"](make_config("checkout", "http://paymux-no-such-host.invalid"))
    await conn.start()
    try:
        result = await conn.authorize(authorize_request())
        _failed(result, "connection_error", ambiguous=False)
    finally:
        await conn.close()


async def test_waiting_for_a_pooled_connection_past_the_connect_timeout_is_not_ambiguous(psp):
    # One connection in the pool, held by a slow call: the second call never gets a socket, so it
    # never sent anything and the PSP surely did not see it.
    from .test_stripe import payment_intent

    psp.on(
        "POST", "/v1/payment_intents", Canned(200, payment_intent("requires_capture"), delay_s=0.6)
    )
    conn = CLASSES["stripe"](
        make_config("stripe", psp.url, max_connections=1, connect_timeout_s=0.1, timeout_s=1.0)
    )
    await conn.start()
    try:
        slow = asyncio.create_task(conn.authorize(authorize_request("att_slow")))
        await asyncio.sleep(0.1)
        starved = await conn.authorize(authorize_request("att_starved"))
        assert starved.status is AttemptStatus.FAILED
        assert starved.normalized_code == "timeout"
        assert starved.ambiguous is False
        assert (await slow).status is AttemptStatus.AUTHORIZED
        assert [r.headers["Idempotency-Key"] for r in psp.requests] == ["att_slow"]
    finally:
        await conn.close()


async def test_many_concurrent_calls_share_one_pool(psp, stripe):
    from .test_stripe import payment_intent

    psp.on(
        "POST", "/v1/payment_intents", Canned(200, payment_intent("requires_capture"), delay_s=0.05)
    )
    session = stripe._session
    results = await asyncio.gather(
        *(stripe.authorize(authorize_request(f"att_{i}")) for i in range(30))
    )
    assert all(r.status is AttemptStatus.AUTHORIZED for r in results)
    assert stripe._session is session
    assert session.connector.limit == 10
    assert session.timeout.total == 0.5 and session.timeout.connect == 0.5
