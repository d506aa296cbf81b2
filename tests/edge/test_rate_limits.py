"""Rate limits over real sockets: failed authentications per source address and per key prefix
(429 with Retry-After, before any store access), the per-merchant token bucket, and a flooding
source refused at the connection level. Each source is its own loopback address (127.0.0.x)."""

from __future__ import annotations

import asyncio
import json

import pytest
from paymux.api.http import STORE

from tests.edge.conftest import ADMIN_KEY, Raw, payment_body


def _get(path: str, key: str | None) -> bytes:
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return f"GET {path} HTTP/1.1\r\nHost: gw\r\n{auth}\r\n".encode()


async def _ask(port: int, data: bytes, source: str) -> tuple[int, dict[str, str], dict]:
    raw = await Raw.open(port, source)
    try:
        await raw.send(data)
        status, headers, body = await raw.read_response()
        return status, headers, json.loads(body)
    finally:
        raw.close()


def _count_lookups(gw) -> list[str]:
    store = gw.app[STORE]
    calls: list[str] = []
    original = store.find_api_key

    async def counting(key_hash: str):
        calls.append(key_hash)
        return await original(key_hash)

    store.find_api_key = counting  # type: ignore[method-assign]
    return calls


async def test_failed_auth_per_source_gets_429_before_any_store_access(edge_gw):
    calls = _count_lookups(edge_gw)
    source = "127.0.0.2"
    statuses = []
    for i in range(5):
        status, _, _ = await _ask(
            edge_gw.port, _get("/v1/payments", f"sk_test_bad{i}x" * 3), source
        )
        statuses.append(status)
    assert statuses == [401] * 5 and len(calls) == 5
    status, headers, body = await _ask(
        edge_gw.port, _get("/v1/payments", "sk_test_other" * 3), source
    )
    assert status == 429 and body["error"]["code"] == "too_many_failed_authentications"
    assert int(headers["retry-after"]) >= 1
    assert len(calls) == 5  # refused without asking the store
    # a missing key and a bad admin key count against the same source
    status, _, _ = await _ask(edge_gw.port, _get("/v1/payments", None), source)
    assert status == 429
    status, _, _ = await _ask(edge_gw.port, _get("/admin/routing", "adm_wrong"), source)
    assert status == 429
    # the valid key from that source still works (a recently seen key is answered from cache),
    # and other sources are not affected at all
    status, _, _ = await _ask(
        edge_gw.port, _get("/v1/payments", edge_gw.keys["m_alpha"]), "127.0.0.1"
    )
    assert status == 200
    status, _, _ = await _ask(edge_gw.port, _get("/admin/routing", ADMIN_KEY), "127.0.0.3")
    assert status == 200


async def test_failed_auth_per_key_prefix_across_sources(edge_gw):
    calls = _count_lookups(edge_gw)
    prefix = "sk_test_Zz9Q"
    for i in range(8):  # each from a different address: only the prefix connects them
        status, _, _ = await _ask(
            edge_gw.port, _get("/v1/payments", f"{prefix}{i:030d}"), f"127.0.1.{i + 1}"
        )
        assert status == 401
    status, headers, _ = await _ask(
        edge_gw.port, _get("/v1/payments", f"{prefix}{'9' * 30}"), "127.0.1.50"
    )
    assert status == 429 and "retry-after" in headers
    assert len(calls) == 8


@pytest.mark.edge_config(rate_limits={"merchant_rps": 1.0, "merchant_burst": 3})
async def test_merchant_token_bucket_gives_429_with_retry_after(edge_gw):
    statuses = []
    for _ in range(5):
        async with edge_gw.session.post(
            edge_gw.url + "/v1/payments", json=payment_body(), headers=edge_gw.auth()
        ) as r:
            statuses.append(r.status)
            if r.status == 429:
                assert int(r.headers["Retry-After"]) >= 1
                assert (await r.json())["error"]["code"] == "rate_limited"
    assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:]
    async with edge_gw.session.get(
        edge_gw.url + "/v1/payments", headers=edge_gw.auth("m_beta")
    ) as r:
        assert r.status == 200  # another merchant's bucket is its own


async def test_a_flooding_source_is_refused_at_the_connection_level(edge_gw):
    source = "127.0.0.9"
    raw = await Raw.open(edge_gw.port, source)
    # keep-alive: one connection, many bad keys, until the ban closes it
    closed = False
    for i in range(40):
        try:
            await raw.send(_get("/v1/payments", f"sk_test_flood{i:020d}"))
            status, headers, _ = await raw.read_response()
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError):
            closed = True
            break
        if headers.get("connection") == "close":
            assert status == 429
            closed = await raw.reader.read() == b""
            break
    assert closed
    assert edge_gw.edge.is_banned(source)
    # a new connection from that source: dropped by the kernel (the handshake never completes)
    # or, where socket filters are not available, closed at once without an answer
    try:
        again = await asyncio.wait_for(Raw.open(edge_gw.port, source), 0.5)
    except TimeoutError:
        assert edge_gw.edge.kernel_filtered
    else:
        try:
            await again.send(_get("/health", None))
        except (ConnectionResetError, BrokenPipeError):
            pass
        assert await again.read_all() == b""
    # everyone else is served as before
    async with edge_gw.session.get(edge_gw.url + "/v1/payments", headers=edge_gw.auth()) as r:
        assert r.status == 200
    assert "source_banned" in edge_gw.log_lines()
