"""Malformed requests carrying a real-looking API key, the admin key and a test PAN in every place
(headers, query, path, body, chunk framing): none of them reaches any log line, and no traceback
is logged. aiohttp's own loggers are routed through the scrubbing handler too."""

from __future__ import annotations

import asyncio
import logging

from tests.edge.conftest import ADMIN_KEY, Raw

PAN = "4242424242424242"
PAN_SPACED = "4242 4242 4242 4242"


def _requests(key: str) -> list[bytes]:
    auth = f"Authorization: Bearer {key}\r\n"
    admin = f"Authorization: Bearer {ADMIN_KEY}\r\n"
    body = (
        f'{{"amount": 1000, "currency": "EUR", "payment_method": {{"card": {{"number": "{PAN}", '
        '"exp_month": 12, "exp_year": 2034, "cvc": "123"}}}'
    )
    return [
        # bad header bytes, the key and the PAN in headers
        f"POST /v1/payments HTTP/1.1\r\nHost: gw\r\n{auth}X-Card: {PAN}\r\nBad\x01Header: {PAN}"
        f"\r\n\r\n".encode(),
        # the PAN in the path and the query, the admin key in a header, a broken header line
        f"GET /v1/{PAN}?card={PAN}&key={key} HTTP/1.1\r\nHost: gw\r\n{admin}"
        f"broken line {key}\r\n\r\n".encode(),
        # broken chunk framing with secrets in the chunk-size line and the data
        f"POST /v1/payments HTTP/1.1\r\nHost: gw\r\n{auth}Content-Type: application/json\r\n"
        f"Transfer-Encoding: chunked\r\n\r\n{PAN};{key}\r\n{body}\r\nzz\r\n".encode(),
        # a valid chunk with the body, then garbage instead of the next size
        f"POST /v1/payments HTTP/1.1\r\nHost: gw\r\n{auth}Content-Type: application/json\r\n"
        f"Transfer-Encoding: chunked\r\n\r\n{len(body):x}\r\n{body}\r\n{PAN_SPACED}\r\n".encode(),
        # Content-Length and Transfer-Encoding together, the admin key in the body
        f"POST /admin/routing HTTP/1.1\r\nHost: gw\r\n{admin}Content-Length: 10\r\n"
        f"Transfer-Encoding: chunked\r\n\r\n{ADMIN_KEY}".encode(),
        # an invalid method and version, the secrets in the request line
        f"{PAN} /{key} HTTP/9.9\r\n{auth}\r\n".encode(),
        # a request line over the limit made of the PAN, a header line over it made of the key
        f"GET /{PAN * 200} HTTP/1.1\r\nHost: gw\r\n\r\n".encode(),
        f"GET /health HTTP/1.1\r\nHost: gw\r\nX-Key: {key * 100}\r\n\r\n".encode(),
        # a body declared too large, with secrets in it
        f"POST /v1/payments HTTP/1.1\r\nHost: gw\r\n{auth}Content-Type: application/json\r\n"
        f"Content-Length: 99999999\r\n\r\n{body}".encode(),
        # invalid UTF-8 and a duplicate key in a body that carries the PAN
        f"POST /v1/payments HTTP/1.1\r\nHost: gw\r\n{auth}Content-Type: application/json\r\n"
        f"Content-Length: {len(body) + 40}\r\n\r\n".encode()
        + body.encode()[:-1]
        + b', "number": "\xff'
        + PAN.encode()
        + b'"'
        + b" " * 10
        + b"}",
        # a valid request with the wrong key in the Authorization header and the PAN in the body
        f"POST /v1/payments HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}".encode(),
    ]


async def test_no_secret_reaches_any_log_line(edge_gw, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    key = edge_gw.keys["m_alpha"]
    for data in _requests(key):
        raw = await Raw.open(edge_gw.port)
        try:
            await raw.send(data)
        except (ConnectionResetError, BrokenPipeError):
            pass
        answer = await raw.read_all()
        raw.close()
        assert answer.startswith(b"HTTP/1."), data[:60]
        assert b" 500 " not in answer.split(b"\r\n", 1)[0], data[:60]
        for secret in (key, ADMIN_KEY, PAN):
            assert secret.encode() not in answer, (secret, data[:60])
    # a client that goes away mid-body, with the secrets in what it sent
    raw = await Raw.open(edge_gw.port)
    await raw.send(
        f"POST /v1/payments HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {key}\r\n"
        f'Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{{"number": "{PAN}'.encode()
    )
    await asyncio.sleep(0.05)
    raw.writer.transport.abort()
    await asyncio.sleep(0.1)
    out, err = capfd.readouterr()
    text = "\n".join(
        [edge_gw.log_lines(), out, err, caplog.text, *(r.getMessage() for r in caplog.records)]
    )
    assert "request_refused" in text  # the malformed requests were logged, by type
    for secret in (key, key[12:], ADMIN_KEY, PAN, PAN_SPACED, PAN[4:]):
        assert secret not in text, secret
    assert "Traceback" not in text
    assert '"level":"error"' not in edge_gw.log_lines()


async def test_library_records_are_reduced_to_a_scrubbed_template(edge_gw):
    key = edge_gw.keys["m_alpha"]
    try:
        raise ValueError(f"boom {key} {PAN}")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request %s %s", key, PAN)
    logging.getLogger("asyncio").error(f"Task failed with {PAN} and Bearer {key}\nsecond {key}")
    text = edge_gw.log_lines()
    assert '"logger":"aiohttp.server"' in text and '"exception":"ValueError"' in text
    assert key not in text and PAN not in text and "boom" not in text
