"""Stripe's form encoding: ``a[b][c]=1``, ``list[]=x``, ``list[0]=x``, as nested dicts and lists.

Read strictly: malformed percent-encoding, bad UTF-8, brackets that do not close, nesting deeper
than ``MAX_DEPTH``, more than ``MAX_PAIRS`` pairs, a name used both as a value and as a table,
and one scalar given twice are 400s naming the parameter, never a 500 and never a guess.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_to_bytes

from paymux.api.compat_stripe.errors import StripeError

#: Stripe itself refuses deeper nesting; paymux needs four (payment_method_data[billing_details]
#: [address][country]).
MAX_DEPTH = 5
MAX_PAIRS = 1000
_INDEX = re.compile(r"[0-9]{1,3}")
_NAME = re.compile(r"[A-Za-z0-9_\-]*")
_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _decode(raw: bytes, what: str) -> str:
    if b"%" not in raw and b"+" not in raw:  # most values: nothing to unquote
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise StripeError.invalid(
                "parameter_invalid", "The request body is not valid UTF-8", None
            ) from None
    if b"%" in raw and _BAD_PERCENT.search(raw):
        raise StripeError.invalid("parameter_invalid", f"Invalid percent-encoding in {what}", None)
    try:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise StripeError.invalid(
            "parameter_invalid", "The request body is not valid UTF-8", None
        ) from None


def split_name(name: str) -> list[str]:
    """``a[b][]`` -> ``["a", "b", ""]``; a 400 when the brackets are malformed or too deep."""
    head, sep, rest = name.partition("[")
    if not head or not _NAME.fullmatch(head):
        raise StripeError.invalid("parameter_invalid", f"Invalid parameter name: {name}", name)
    parts = [head]
    while sep:
        if "]" not in rest:
            raise StripeError.invalid("parameter_invalid", f"Invalid parameter name: {name}", name)
        inner, _, rest = rest.partition("]")
        if "[" in inner or not _NAME.fullmatch(inner):
            raise StripeError.invalid("parameter_invalid", f"Invalid parameter name: {name}", name)
        parts.append(inner)
        if len(parts) > MAX_DEPTH:
            raise StripeError.invalid(
                "parameter_invalid",
                f"Parameter {name} is nested too deeply (at most {MAX_DEPTH} levels)",
                name,
            )
        if not rest:
            break
        if not rest.startswith("["):
            raise StripeError.invalid("parameter_invalid", f"Invalid parameter name: {name}", name)
        rest = rest[1:]
    return parts


def bracket(parts: list[str]) -> str:
    """``["a", "b"]`` -> ``a[b]``: a parameter's name as Stripe writes it in errors."""
    return parts[0] + "".join(f"[{p}]" for p in parts[1:])


def parse_pairs(body: bytes) -> list[tuple[str, str]]:
    if not body:
        return []
    pairs: list[tuple[str, str]] = []
    for chunk in body.split(b"&"):
        if not chunk:
            continue
        raw_name, _, raw_value = chunk.partition(b"=")
        name = _decode(raw_name, "a parameter name")
        pairs.append((name, _decode(raw_value, name)))
        if len(pairs) > MAX_PAIRS:
            raise StripeError.invalid(
                "parameter_invalid", f"Too many parameters (at most {MAX_PAIRS})", None
            )
    return pairs


#: Bodies ``canonical`` parsed, by identity, with their pairs: the idempotency hash reads a
#: request's body just before its handler does, so the handler's ``parse_form`` reuses (and
#: drops) them. ``forget`` drops what a request left (a replay, an error before its handler):
#: a body may hold a card number, and is not kept past its request.
_parsed: dict[int, tuple[bytes, list[tuple[str, str]]]] = {}


def parse_form(body: bytes) -> dict[str, Any]:
    """The nested parameters of a form body (or of a query string)."""
    kept = _parsed.pop(id(body), None) if _parsed else None
    if kept is not None and kept[0] is body:
        return nest(kept[1])
    return nest(parse_pairs(body))


def pending() -> bool:
    return bool(_parsed)


def forget(body: bytes | None) -> None:
    if body is not None:
        kept = _parsed.get(id(body))
        if kept is not None and kept[0] is body:
            del _parsed[id(body)]
    if len(_parsed) > 1024:  # never expected: a leak guard
        _parsed.clear()


def nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    # Lists are collected as {index: value} first (``[]`` appends), then turned into lists.
    lists: set[int] = set()
    for name, value in pairs:
        parts = split_name(name)
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            key: Any = part
            if isinstance(node, dict) and id(node) in lists:
                if part == "":
                    key = len(node)
                elif _INDEX.fullmatch(part):
                    key = int(part)
                else:
                    raise StripeError.invalid(
                        "parameter_invalid", f"Invalid array index in {name}", bracket(parts[:i])
                    )
            elif i > 0 and (
                part == "" or (_INDEX.fullmatch(part) and not node and parts[i - 1] != "metadata")
            ):
                # The first key under a new table decides: [] or [0] makes it an array.
                if not node:
                    lists.add(id(node))
                    key = len(node) if part == "" else int(part)
                else:
                    raise StripeError.invalid(
                        "parameter_invalid", f"Invalid parameter name: {name}", name
                    )
            if last:
                if key in node:
                    existing = node[key]
                    if isinstance(existing, dict) or existing != value:
                        raise StripeError.invalid(
                            "parameter_invalid",
                            f"Parameter {name} was given more than once",
                            name,
                        )
                node[key] = value
            else:
                child = node.get(key)
                if child is None:
                    child = node[key] = {}
                elif not isinstance(child, dict):
                    raise StripeError.invalid(
                        "parameter_invalid",
                        f"Parameter {bracket(parts[: i + 1])} is both a value and a hash",
                        bracket(parts[: i + 1]),
                    )
                node = child
    return _lists(root, lists)


def _lists(node: Any, lists: set[int]) -> Any:
    if not isinstance(node, dict):
        return node
    if id(node) in lists:
        return [_lists(node[k], lists) for k in sorted(node)]
    return {k: _lists(v, lists) for k, v in node.items()}


def canonical(body: bytes) -> bytes:
    """The form's pairs in sorted order: the same parameters hash the same (Idempotency-Key),
    whatever order the client encoded them in. An unreadable body hashes as itself."""
    try:
        pairs = parse_pairs(body)
    except StripeError:
        return body
    if body:
        _parsed[id(body)] = (body, pairs)
    return "&".join(f"{n}={v}" for n, v in sorted(pairs)).encode()
