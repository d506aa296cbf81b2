"""schemathesis hooks for the gateway's OpenAPI document (loaded with SCHEMATHESIS_HOOKS).

`payment-card-number` is the document's format for a card number: Luhn-valid, of a known brand,
of that brand's length. Positive data draws from published test PANs the sandbox approves and
every configured connector takes (spaced and dashed forms too: the server strips them); negative
data may still send anything, which the server must refuse."""

from __future__ import annotations

import itertools
import os
import re

import schemathesis
from hypothesis import strategies as st
from schemathesis.transport.prepare import get_exclude_headers

#: Published test PANs (Stripe's, Adyen's) of brands all three sandbox connectors take, that the
#: sandbox approves.
TEST_PANS = (
    "4242424242424242",  # visa
    "4000056655665556",  # visa debit
    "4111111111111111",  # visa
    "5555555555554444",  # mastercard
    "5200828282828210",  # mastercard debit
    "2223003122003222",  # mastercard 2-series
    "378282246310005",  # amex
    "371449635398431",  # amex
    "6011111111111117",  # discover
    "3566002020360505",  # jcb
    "3056930009020004",  # diners
    "36227206271667",  # diners (14 digits)
)


def _spaced(pan: str, sep: str) -> str:
    return sep.join(pan[i : i + 4] for i in range(0, len(pan), 4))


def luhn_ok(pan: str) -> bool:
    digits = [int(c) for c in pan if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


assert all(luhn_ok(p) for p in TEST_PANS)

card_numbers = st.sampled_from(TEST_PANS).flatmap(
    lambda pan: st.sampled_from([pan, _spaced(pan, " "), _spaced(pan, "-")])
)

schemathesis.openapi.format("payment-card-number", card_numbers)


_KEY = re.compile(r"^[!-~]([ -~]*[!-~])?$")
_calls = itertools.count()


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    """A valid Idempotency-Key made unique per request (a valid one stays valid): schemathesis
    sends one generated key with many bodies, and the server rightly answers those 422 (key
    reused with other parameters) before validating anything else. Replays have their own tests
    (tests/gateway); an invalid key is left as generated, for the server to refuse, and so is
    every key of a case that leaves a header out (changing such a case would put it back)."""
    headers = case.headers
    if not headers or get_exclude_headers(case):
        return
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and len(key) <= 255 and _KEY.match(key):
        headers["Idempotency-Key"] = f"{key[:230]}.st{os.getpid()}.{next(_calls)}"
