"""Fuzzing with hypothesis over what parses untrusted bytes: the strict JSON check (Rust) against
its pure-Python reference, the body decoder, the sandbox's Stripe form decoder and the connectors'
webhook parsers. Each must answer or refuse with its own error type, never raise anything else.

CI runs a bounded number of examples; `PAYMUX_FUZZ_EXAMPLES=20000 pytest tests/edge/
test_fuzz_parsers.py` is the longer run (README, "Fuzzing").
"""

from __future__ import annotations

import json
import os
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paymux import _core
from paymux.api import schemas
from paymux.api.errors import ApiError, from_validation
from paymux.api.strict_json import check_body, reference_issue
from paymux.connectors.base import ConnectorConfig, WebhookError
from paymux.connectors.registry import create_connector
from paymux.sandbox.stripe_api import StripeError, parse_form

EXAMPLES = int(os.environ.get("PAYMUX_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(
            st.tuples(st.sampled_from(["a", "b", "amount", "é", "\\u0061"]), inner), max_size=4
        )
    ),
    max_leaves=20,
)


def _dump(value: Any) -> str:
    """JSON text; a list of (key, value) pairs becomes an object that may repeat keys."""
    if isinstance(value, list) and value and all(isinstance(x, tuple) for x in value):
        items = (
            f"{json.dumps(k) if k != chr(92) + 'u0061' else chr(34) + k + chr(34)}: {_dump(v)}"
            for k, v in value
        )
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_dump(x) for x in value) + "]"
    return json.dumps(value)


@FUZZ
@given(json_value)
def test_rust_check_agrees_with_the_reference_on_json(value):
    body = _dump(value).encode()
    rust, ref = _core.json_issue(body), reference_issue(body)
    assert (rust is None) == (ref is None), (body, rust, ref)
    if rust is not None:
        assert rust[0] == ref[0] == "duplicate_key", (body, rust, ref)


@FUZZ
@given(st.binary(max_size=300))
def test_rust_check_agrees_on_utf8_and_never_fails_on_bytes(body):
    rust = _core.json_issue(body)
    ref = reference_issue(body)
    if ref is not None and ref[0] == "invalid_utf8":
        assert rust == ("invalid_utf8", None)
    if rust is None:
        assert ref is None or ref[0] != "invalid_utf8"


_decoder = msgspec.json.Decoder(schemas.CreatePayment)


def _decode(body: bytes) -> None:
    check_body(body)
    try:
        _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise from_validation(exc) from None
    except msgspec.DecodeError:
        raise ApiError(400, "invalid_request_error", "invalid_json", "bad") from None


@FUZZ
@given(
    st.binary(max_size=400)
    | json_value.map(lambda v: _dump({"x": 1} if v is None else v).encode())
    | st.fixed_dictionaries(
        {"amount": st.integers() | st.text(max_size=3), "currency": st.text(max_size=4)}
    ).map(lambda d: json.dumps({**d, "payment_method": {"token": "tok_x"}}).encode())
)
def test_body_decoder_only_ever_raises_api_errors(body):
    try:
        _decode(body)
    except ApiError as exc:
        assert 400 <= exc.status < 500
        assert "4242424242424242" not in exc.body.message


@FUZZ
@given(st.binary(max_size=300) | st.text(alphabet="ab[]=&%5BD0 ", max_size=60).map(str.encode))
def test_stripe_form_decoder_never_raises_unexpectedly(body):
    try:
        parsed = parse_form(body)
    except StripeError:
        return
    assert isinstance(parsed, dict)


def _connector(kind: str):
    return create_connector(
        ConnectorConfig(
            name=kind,
            kind=kind,
            base_url="http://127.0.0.1:9",
            api_key="sk_test_fuzz",
            merchant_account="Fuzz",
            webhook_secret="whsec_fuzz" if kind != "adyen" else "44782DEF547AAA06C910C43932B1EB0C",
        )
    )


@pytest.mark.parametrize(
    "kind",
    [
        "stripe",
        "adyen",
        "checkout",
    ],
)
def test_webhook_parsers_only_ever_raise_webhook_errors(kind):
    connector = _connector(kind)

    @FUZZ
    @given(
        body=st.binary(max_size=400) | json_value.map(lambda v: _dump(v).encode()),
        headers=st.dictionaries(
            st.sampled_from(
                ["Stripe-Signature", "Cko-Signature", "Content-Type", "Authorization", "X-Other"]
            ),
            st.text(max_size=80) | st.just("t=1,v1=00"),
            max_size=3,
        ),
    )
    def check(body, headers):
        try:
            events = connector.parse_webhook(headers, body)
        except WebhookError:
            return
        assert isinstance(events, list)

    check()


@pytest.mark.parametrize("signature", ["é" * 64, "\u2603", " ünïcode ", "\udcff"])
def test_checkout_non_ascii_signature_is_an_invalid_signature(signature):
    """What the fuzzer found: a non-ASCII Cko-Signature is a signature that does not match
    (WebhookError), not a TypeError from hmac.compare_digest."""
    with pytest.raises(WebhookError, match="does not match"):
        _connector("checkout").parse_webhook({"Cko-Signature": signature}, b'{"data": {}}')
