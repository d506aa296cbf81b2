"""Transcript scrubbing and the decline tables as data."""

from __future__ import annotations

from urllib.parse import urlencode

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paymux.connectors.errors import DeclineTable, TableError, load_table, normalize_advice
from paymux.connectors.scrub import scrub, scrub_detail
from paymux.connectors.stripe import encode_form
from paymux.domain.outcomes import DeclineClass

PAN = "4242424242424242"
AMEX = "378282246310005"


def test_scrubs_stripe_form_bodies():
    form = urlencode(
        encode_form(
            {"payment_method_data": {"card": {"number": PAN, "cvc": "314", "exp_month": 12}}}
        )
    )
    out = scrub(form)
    assert PAN not in out and "314" not in out
    assert "exp_month%5D=12" in out


def test_scrubs_json_bodies_adyen_and_checkout():
    body = orjson.dumps(
        {"paymentMethod": {"number": AMEX, "cvc": "7373"}, "source": {"number": PAN, "cvv": 100}}
    ).decode()
    out = scrub(body)
    for secret in (AMEX, PAN, "7373", '"cvv":100'):
        assert secret not in out


def test_scrubs_headers_and_keys():
    text = "Authorization: Bearer sk_test_51Habc123XYZ\nX-API-Key: AQEyhmfxK4\nsee sk_live_abcdef123456 and whsec_abc123456"
    out = scrub(text, secrets=["AQEyhmfxK4"])
    for secret in ("sk_test_51Habc123XYZ", "AQEyhmfxK4", "sk_live_abcdef123456", "whsec_abc123456"):
        assert secret not in out


def test_scrubs_pans_in_free_text_keeping_last4():
    out = scrub(f"card 4242 4242 4242 4242 and {AMEX} declined")
    assert "4242 4242 4242 4242" not in out and AMEX not in out
    assert "[PAN ****4242]" in out and "[PAN ****0005]" in out


def test_detail_is_truncated_without_leaving_half_a_pan():
    raw = "x" * (512 * 4 - 8) + PAN + "y" * 100
    out = scrub_detail(raw)
    assert "42424242" not in out
    assert len(out) <= 512 + len("...[truncated]")


@settings(max_examples=200, deadline=None)
@given(
    pan=st.from_regex(r"[2-6][0-9]{12,18}", fullmatch=True),
    prefix=st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=40),
    suffix=st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=40),
)
def test_no_pan_survives_scrub_detail(pan, prefix, suffix):
    out = scrub_detail(prefix + pan + suffix)
    assert pan not in out
    assert pan[:-4] not in out


def test_every_builtin_table_loads_with_a_version():
    for name in ("stripe", "adyen", "checkout"):
        table = load_table(name)
        assert table.connector == name and table.version
        assert table.declines
        assert load_table(name) is table  # loaded once


@pytest.mark.parametrize("name", ["stripe", "adyen", "checkout"])
def test_mastercard_do_not_retry_advice_is_hard_in_every_table(name):
    table = load_table(name)
    for advice in ("03", "21", "3", "03: Do not try again", "21 : Payment Cancellation"):
        assert table.apply_advice(DeclineClass.SOFT_ROUTE, advice) is DeclineClass.HARD
    assert table.apply_advice(DeclineClass.SOFT_ROUTE, None) is DeclineClass.SOFT_ROUTE
    assert table.apply_advice(DeclineClass.HARD, "02") is DeclineClass.HARD


def test_fallbacks_keep_unknown_codes_classified():
    table = load_table("stripe")
    assert table.decline("never_seen") == ("unknown_decline", DeclineClass.SOFT_ROUTE)
    assert table.error("never_seen") == ("unknown_error", DeclineClass.TECHNICAL)
    assert table.decline(None) == ("unknown_decline", DeclineClass.SOFT_ROUTE)


def test_table_validation_names_the_bad_entry():
    with pytest.raises(TableError, match="unknown decline class 'maybe'"):
        DeclineTable.from_toml(
            'connector = "x"\nversion = "1"\n[declines]\n"05" = { code = "do_not_honor", class = "maybe" }\n'
        )
    with pytest.raises(TableError, match="missing top-level key"):
        DeclineTable.from_toml("[declines]\n")


def test_advice_normalization():
    assert normalize_advice("3") == "03"
    assert normalize_advice("03 : Do not try again") == "03"
    assert normalize_advice("do_not_try_again") == "do_not_try_again"
    assert normalize_advice("  ") is None
