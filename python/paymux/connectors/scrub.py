"""Scrub card data and credentials out of PSP transcripts before they reach a log or a result.

Like ActiveMerchant's ``scrub()``: request and response text is filtered by field name (JSON keys,
form fields with bracket notation, HTTP headers) and then by shape (any 13-19 digit run, API key
prefixes), so a PAN, CVC or secret never lands in a log line or in ``ConnectorResult.detail``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

FILTERED = "[FILTERED]"

# Field names that carry a PAN or a CVC in the three wire formats (and common variants).
_CARD_FIELDS = r"(?:number|card_number|cardNumber|encryptedCardNumber|pan|cvc|cvv|cvc2|cvv2|cvn|securityCode|encryptedSecurityCode)"

# JSON: "number": "4242424242424242"  or  "cvc": 123
_JSON_FIELD = re.compile(
    r'("' + _CARD_FIELDS + r'"\s*:\s*)("(?:[^"\\]|\\.)*"|[0-9 \-]+)', re.IGNORECASE
)
# Form, raw or percent-encoded brackets: card[number]=4242..., card%5Bcvc%5D=123, cvc=123
_FORM_FIELD = re.compile(
    r"((?:^|[&?\s])(?:[\w\[\]%]*?(?:\[|%5B))?" + _CARD_FIELDS + r"(?:\]|%5D)?=)([^&\s]*)",
    re.IGNORECASE,
)
# Headers and key=value credentials.
_HEADERS = re.compile(
    r"((?:authorization|x-api-key|cko-signature|stripe-signature|proxy-authorization)\s*[:=]\s*)"
    r"(?:(bearer|basic)\s+)?([^\s,\"'&]+)",
    re.IGNORECASE,
)
# Secrets by shape: Stripe keys, webhook secrets, Checkout.com keys.
_KEY_SHAPES = re.compile(
    r"\b(?:sk|rk|pk|whsec)_(?:test_|live_)?[A-Za-z0-9_]{6,}\b|\bsk_sbox_[A-Za-z0-9_\-]+\b"
)
# Any 13-19 digit run, optionally split by single spaces or dashes: a PAN by shape.
_DIGIT_RUN = re.compile(r"(?<![0-9])(?:[0-9][ \-]?){12,18}[0-9](?![0-9])")


def _mask_digits(match: re.Match[str]) -> str:
    digits = re.sub(r"[^0-9]", "", match.group(0))
    return f"[PAN ****{digits[-4:]}]"


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with PANs, CVCs, API keys and the given configured secrets removed."""
    if not text:
        return text
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, FILTERED)
    text = _JSON_FIELD.sub(lambda m: m.group(1) + '"' + FILTERED + '"', text)
    text = _FORM_FIELD.sub(lambda m: m.group(1) + FILTERED, text)
    text = _HEADERS.sub(
        lambda m: m.group(1) + (m.group(2) + " " if m.group(2) else "") + FILTERED, text
    )
    text = _KEY_SHAPES.sub(FILTERED, text)
    text = _DIGIT_RUN.sub(_mask_digits, text)
    return text


def scrub_detail(
    raw: bytes | str | None, secrets: Iterable[str | None] = (), limit: int = 512
) -> str | None:
    """A scrubbed, truncated, printable excerpt of a PSP body or an exception text."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw[: limit * 4 + 1].decode("utf-8", errors="replace")
    if len(raw) > limit * 4:
        # A cut through a PAN would leave a short digit run the shape rule cannot see: drop it.
        raw = re.sub(r"[0-9 \-]+$", "", raw[: limit * 4])
    # Scrub before the final truncation, so the cut cannot split a PAN into unmatched halves.
    text = scrub(raw, secrets)
    text = text.replace("\r", " ").replace("\n", " ")
    if len(text) > limit:
        text = text[:limit] + "...[truncated]"
    return text
