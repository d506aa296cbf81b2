"""Strict request bodies: a JSON content type, valid UTF-8, and no key twice in any object.

Decoders keep the last of two equal keys, so `{"amount": 1, "amount": 100000}` would mean whatever
the last parser in a chain decides (a WAF, a log pipeline, this gateway). Such bodies are refused
with 400 `duplicate_key` naming the key. The check runs in the Rust core (`_core.json_issue`, one
pass over the bytes, about a microsecond for a payment body: benchmarks/bench_strict_json.py);
`reference_issue` is the pure-Python reference the property tests compare it with.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from paymux import _core
from paymux.api.errors import ApiError, invalid

JSON_TYPES = ("application/json",)


def check_content_type(request: web.Request) -> None:
    """415 unless the request says its body is JSON (`application/json` or `*/*+json`, UTF-8)."""
    if "Content-Type" not in request.headers:
        raise invalid(
            "unsupported_media_type",
            "Content-Type must be application/json, got none",
            status=415,
        )
    ctype = request.content_type
    if ctype not in JSON_TYPES and not (
        ctype.startswith("application/") and ctype.endswith("+json")
    ):
        raise invalid(
            "unsupported_media_type",
            f"Content-Type must be application/json, got {ctype[:60]}",
            status=415,
        )
    charset = request.charset
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise invalid(
            "unsupported_media_type", "A JSON body must be UTF-8 (charset=utf-8)", status=415
        )


def check_body(body: bytes) -> None:
    """400 for invalid UTF-8, a repeated key or absurd nesting; other syntax errors are left to
    the decoder, which says what is wrong."""
    issue = _core.json_issue(body)
    if issue is None or issue[0] == "too_deep":
        # Deeper than any field the API reads (64 levels): the decoder, which skips unknown
        # fields and has its own recursion limit, decides.
        return
    raise issue_error(*issue)


def issue_error(code: str, detail: str | None) -> ApiError:
    if code == "duplicate_key":
        key = (detail or "")[:200]
        return invalid("duplicate_key", f"The key {key!r} appears more than once", key)
    if code == "invalid_utf8":
        return invalid("invalid_utf8", "The request body is not valid UTF-8")
    if code == "too_deep":
        return invalid("invalid_json", "The request body nests too deeply")
    return invalid("invalid_json", "The request body is not valid JSON")


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _Duplicate(key)
        seen[key] = value
    return seen


def reference_issue(body: bytes) -> tuple[str, str | None] | None:
    """The pure-Python reference of `_core.json_issue` (same verdicts; for a duplicate, the last
    segment of the path may differ when several objects repeat keys)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return ("invalid_utf8", None)
    try:
        json.loads(text, object_pairs_hook=_pairs)
    except _Duplicate as dup:
        return ("duplicate_key", dup.key)
    except (ValueError, RecursionError):
        return ("invalid_json", None)
    return None
