"""The strict-JSON check's cost per payment body: the Rust core vs the pure-Python reference, and
msgspec's decode of the same body for scale. Figures only.

    .venv/bin/python benchmarks/bench_strict_json.py
"""

from __future__ import annotations

import timeit

import msgspec
from paymux import _core
from paymux.api import schemas
from paymux.api.strict_json import reference_issue

BODY = (
    b'{"amount": 1999, "currency": "EUR", "reference": "order-1001", "capture_method": "manual", '
    b'"payment_method": {"card": {"number": "4242424242424242", "exp_month": 12, '
    b'"exp_year": 2034, "cvc": "123"}}, "billing": {"country": "DE", "postal_code": "10115"}, '
    b'"metadata": {"order": "1001", "channel": "web"}}'
)


def per_call_us(fn, n: int = 200_000) -> float:
    return min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e6


def main() -> None:
    decoder = msgspec.json.Decoder(schemas.CreatePayment)
    assert _core.json_issue(BODY) is None and reference_issue(BODY) is None
    rust = per_call_us(lambda: _core.json_issue(BODY))
    python = per_call_us(lambda: reference_issue(BODY), 50_000)
    decode = per_call_us(lambda: decoder.decode(BODY))
    print(f"payment body, {len(BODY)} bytes")
    print(f"  duplicate-key + UTF-8 check, Rust      {rust:6.2f} us")
    print(f"  same check, Python reference (json)    {python:6.2f} us")
    print(f"  msgspec decode into CreatePayment      {decode:6.2f} us")


if __name__ == "__main__":
    main()
