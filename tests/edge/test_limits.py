"""Server limits over real sockets: slow-loris headers and bodies, idle keep-alive, header and
body sizes (Content-Length refused before reading, `Expect: 100-continue` refused instead of
`100 Continue`), and the connection cap. The test config sets every limit low."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.edge.conftest import Raw, parse_response

POST_HEAD = (
    "POST /v1/payments HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
    "Authorization: Bearer {key}\r\nContent-Length: {length}\r\n{extra}\r\n"
)


def _error(data: bytes) -> tuple[int, dict[str, str], dict]:
    status, headers, body = parse_response(data)
    return status, headers, json.loads(body)


async def test_trickled_headers_are_cut_off_with_408(edge_gw):
    raw = await Raw.open(edge_gw.port)
    await raw.send(b"GET /health HTTP/1.1\r\nX-Slow: ")
    data = b""
    for _ in range(200):  # one byte at a time, far slower than the header timeout allows
        try:
            await raw.send(b"x")
            data = await asyncio.wait_for(raw.reader.read(65536), 0.05)
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            pass
        break
    status, headers, body = _error(data + await raw.read_all())
    assert status == 408 and body["error"]["code"] == "request_timeout"
    assert headers["connection"] == "close"


async def test_a_silent_connection_is_closed(edge_gw):
    raw = await Raw.open(edge_gw.port)
    data = await raw.read_all()  # the server closes: the read ends
    assert data == b"" or data.startswith(b"HTTP/1.1 408")


async def test_trickled_body_is_cut_off_with_408_and_nothing_written(edge_gw):
    raw = await Raw.open(edge_gw.port)
    await raw.send(
        POST_HEAD.format(key=edge_gw.keys["m_alpha"], length=400, extra="").encode() + b'{"am'
    )
    status, _, body = _error(await raw.read_all())
    assert status == 408 and body["error"]["code"] == "request_timeout"
    assert "body_timeout" in edge_gw.log_lines()


async def test_idle_keep_alive_connection_is_closed(edge_gw):
    raw = await Raw.open(edge_gw.port)
    await raw.send(b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n")
    status, _, _ = await raw.read_response()
    assert status == 200
    assert await raw.read_all() == b""  # then idle: closed by the server, no response


async def test_content_length_over_the_limit_is_refused_before_the_body(edge_gw):
    raw = await Raw.open(edge_gw.port)
    # Only the headers are sent: the answer cannot depend on reading the body.
    await raw.send(POST_HEAD.format(key=edge_gw.keys["m_alpha"], length=10**9, extra="").encode())
    status, headers, body = _error(await raw.read_all())
    assert status == 413 and body["error"]["code"] == "body_too_large"
    assert "x-request-id" in headers


async def test_expect_100_continue_gets_the_refusal_instead_of_continue(edge_gw):
    raw = await Raw.open(edge_gw.port)
    await raw.send(
        POST_HEAD.format(
            key=edge_gw.keys["m_alpha"], length=10**9, extra="Expect: 100-continue\r\n"
        ).encode()
    )
    data = await raw.read_all()
    assert b"100 Continue" not in data
    status, _, body = _error(data)
    assert status == 413 and body["error"]["code"] == "body_too_large"


async def test_expect_100_continue_within_the_limit_continues(edge_gw):
    body = json.dumps({"amount": 1000}).encode()
    raw = await Raw.open(edge_gw.port)
    await raw.send(
        POST_HEAD.format(
            key=edge_gw.keys["m_alpha"], length=len(body), extra="Expect: 100-continue\r\n"
        ).encode()
    )
    line = await asyncio.wait_for(raw.reader.readuntil(b"\r\n\r\n"), 10)
    assert line.startswith(b"HTTP/1.1 100 Continue")
    await raw.send(body)
    status, _, answer = await raw.read_response()
    assert status == 400 and json.loads(answer)["error"]["param"] == "currency"


async def test_chunked_body_over_the_limit_is_413(edge_gw):
    raw = await Raw.open(edge_gw.port)
    head = (
        "POST /v1/payments HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {edge_gw.keys['m_alpha']}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * 4000
    await raw.send(head.encode() + b"".join(b"fa0\r\n" + chunk + b"\r\n" for _ in range(4)))
    status, _, body = await raw.read_response()
    assert status == 413 and json.loads(body)["error"]["code"] == "body_too_large"


async def test_oversized_headers_get_431(edge_gw):
    raw = await Raw.open(edge_gw.port)
    many = "".join(f"X-Filler-{i}: {'a' * 200}\r\n" for i in range(30))  # 6 KB > 4 KB
    await raw.send(f"GET /health HTTP/1.1\r\nHost: gw\r\n{many}\r\n".encode())
    status, _, body = _error(await raw.read_all())
    assert status == 431 and body["error"]["code"] == "headers_too_large"


async def test_one_overlong_header_line_gets_431(edge_gw):
    raw = await Raw.open(edge_gw.port)
    await raw.send(f"GET /health HTTP/1.1\r\nHost: gw\r\nX-Long: {'a' * 3000}\r\n\r\n".encode())
    status, _, body = _error(await raw.read_all())
    assert status == 431 and body["error"]["code"] == "headers_too_large"


@pytest.mark.edge_config(server={"max_connections": 3, "header_timeout_s": 30.0})
async def test_connections_beyond_the_cap_get_503_and_the_worker_keeps_serving(edge_gw):
    held = [await Raw.open(edge_gw.port) for _ in range(3)]
    await asyncio.sleep(0)  # let the server see them
    extra = await Raw.open(edge_gw.port)
    status, headers, body = _error(await extra.read_all())
    assert status == 503 and body["error"]["code"] == "too_many_connections"
    assert headers["retry-after"] == "1"
    for raw in held:
        raw.close()
    for _ in range(100):  # the worker recovers as soon as the held ones are gone
        async with edge_gw.session.get(edge_gw.url + "/health") as r:
            if r.status == 200:
                break
        await asyncio.sleep(0.02)
    assert r.status == 200


async def test_malformed_framing_gets_400_json(edge_gw):
    for bad in (
        b"GET /health HTTP/1.1\r\nHost: gw\r\nBad Header\r\n\r\n",
        b"NOT-HTTP\x00\x01\r\n\r\n",
        (
            b"POST /v1/payments HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        ),
    ):
        raw = await Raw.open(edge_gw.port)
        await raw.send(bad)
        status, _, body = _error(await raw.read_all())
        assert status == 400 and body["error"]["code"] == "malformed_request", bad
