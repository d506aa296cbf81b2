"""Card data through the Python bindings: golden numbers, IIN edges, masking, BIN, expiry, errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from paymux import _core
from paymux.reference import card as ref

# Untyped handle for calls that pass wrong types on purpose.
UNTYPED: Any = _core

CARD_RS = Path(__file__).resolve().parents[2] / "rust_core" / "src" / "card.rs"


def _golden_from_rust() -> list[tuple[str, str]]:
    """The golden table of published test numbers, read from card.rs so there is one copy."""
    source = CARD_RS.read_text()
    table = source[source.index("const GOLDEN") : source.index("];", source.index("const GOLDEN"))]
    rows = re.findall(r'\("(\d+)", Brand::(\w+)\)', table)
    return [(number, brand.lower()) for number, brand in rows]


GOLDEN = _golden_from_rust()


def luhn_complete(prefix: str, length: int) -> str:
    """Pad `prefix` with zeros and a Luhn check digit: synthetic, never a real card."""
    body = prefix.ljust(length - 1, "0")
    return next(body + str(d) for d in range(10) if ref.luhn_valid(body + str(d)))


def test_golden_table_is_read_from_the_rust_tests() -> None:
    assert len(GOLDEN) >= 16
    assert {brand for _, brand in GOLDEN} == {
        "visa",
        "mastercard",
        "amex",
        "discover",
        "diners",
        "jcb",
        "unionpay",
    }


@pytest.mark.parametrize(("number", "brand"), GOLDEN)
def test_published_test_number_validates_to_its_brand(number: str, brand: str) -> None:
    info = _core.inspect_card(number)
    assert (info.brand, info.length, info.last4) == (brand, len(number), number[-4:])
    assert _core.luhn_valid(number)
    assert _core.card_brand(number) == brand
    assert ref.inspect_card(number) == ref.CardInfo(info.brand, info.bin, info.last4, info.length)


def test_mastercard_2_series_range_is_detected() -> None:
    assert _core.card_brand("2221000000000000") == "mastercard"
    assert _core.card_brand("2720990000000000") == "mastercard"
    assert _core.card_brand("2220990000000000") is None
    assert _core.card_brand("2721000000000000") is None
    assert _core.inspect_card("2223003122003222").brand == "mastercard"


def test_co_branded_unionpay_discover_range_is_reported_as_unionpay() -> None:
    for prefix in ("622126", "622500", "622925"):
        assert _core.inspect_card(luhn_complete(prefix, 16)).brand == "unionpay"
    assert _core.card_brand("6229260000000000") == "unionpay"


def test_discover_ranges_6011_644_to_649_and_65() -> None:
    assert _core.card_brand("6011000000000000") == "discover"
    assert _core.card_brand("6012000000000000") is None
    assert _core.card_brand("6440000000000000") == "discover"
    assert _core.card_brand("6499000000000000") == "discover"
    assert _core.card_brand("6430000000000000") is None
    assert _core.card_brand("6500000000000000") == "discover"


def test_maestro_and_diners_and_jcb_edges() -> None:
    assert _core.card_brand("6767700000000000") == "maestro"
    assert _core.card_brand("6767710000000000") is None
    assert _core.card_brand("6304000000000000") == "maestro"
    assert _core.card_brand("3095000000000000") == "diners"
    assert _core.card_brand("3060000000000000") is None
    assert _core.card_brand("3528000000000000") == "jcb"
    assert _core.card_brand("3590000000000000") is None


def test_brand_length_rules_are_enforced() -> None:
    with pytest.raises(_core.CardError) as amex16:
        _core.inspect_card(luhn_complete("37", 16))
    assert amex16.value.code == "invalid_length_for_brand"
    with pytest.raises(_core.CardError) as visa14:
        _core.inspect_card(luhn_complete("4", 14))
    assert visa14.value.code == "invalid_length_for_brand"
    assert _core.inspect_card(luhn_complete("4", 19)).length == 19
    assert _core.inspect_card(luhn_complete("50", 12)).brand == "maestro"


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("4242", "invalid_number"),
        ("", "invalid_number"),
        ("42424242424242424242", "invalid_number"),
        ("4242.4242.4242.4242", "invalid_number"),
        ("4242_4242_4242_4242", "invalid_number"),
        ("４２４２424242424242", "invalid_number"),  # full-width digits are not ASCII digits
        ("4242424242424241", "luhn_failed"),
        (luhn_complete("9", 16), "unsupported_brand"),
        (luhn_complete("37", 16), "invalid_length_for_brand"),
    ],
)
def test_refused_number_raises_card_error_with_code(number: str, code: str) -> None:
    with pytest.raises(_core.CardError) as err:
        _core.inspect_card(number)
    assert err.value.code == code
    with pytest.raises(ref.CardError) as ref_err:
        ref.inspect_card(number)
    assert ref_err.value.code == code


def test_spaces_and_dashes_are_stripped() -> None:
    assert _core.inspect_card("4242 4242 4242 4242").last4 == "4242"
    assert _core.inspect_card(" 4242-4242-4242-4242 ").bin == "42424242"
    assert _core.luhn_valid("4242 4242-4242 4242")
    assert not _core.luhn_valid("4242\t4242424242424242")


def test_bin_is_8_digits_from_16_digit_pans_and_6_below() -> None:
    assert _core.card_bin("4242424242424242") == "42424242"
    assert _core.card_bin("378282246310005") == "378282"
    assert _core.card_bin("36227206271667") == "362272"
    assert _core.inspect_card("5555555555554444").bin == "55555555"


def test_mask_shows_first_six_and_last_four_only() -> None:
    assert _core.mask_pan("4242424242424242") == "424242******4242"
    assert _core.mask_pan("378282246310005") == "378282*****0005"
    assert _core.mask_pan("4242-4242-4242-4242") == "424242******4242"
    with pytest.raises(_core.CardError) as err:
        _core.mask_pan("4242424242")  # 10 digits: a mask would show all of them
    assert err.value.code == "invalid_number"


def test_expiry_two_digit_year_is_normalized() -> None:
    assert _core.check_expiry(5, 26, 2026, 5) == (5, 2026)
    assert _core.check_expiry(12, 2031, 2026, 5) == (12, 2031)


@pytest.mark.parametrize(
    ("month", "year", "code"),
    [
        (4, 2026, "expired_card"),
        (12, 25, "expired_card"),
        (0, 2030, "invalid_expiry"),
        (13, 2030, "invalid_expiry"),
        (1, 202, "invalid_expiry"),
        (1, -5, "invalid_expiry"),
        (1, 10000, "invalid_expiry"),
    ],
)
def test_bad_or_past_expiry_is_refused(month: int, year: int, code: str) -> None:
    with pytest.raises(_core.CardError) as err:
        _core.check_expiry(month, year, 2026, 5)
    assert err.value.code == code


def test_invalid_now_is_a_plain_value_error() -> None:
    with pytest.raises(ValueError) as err:
        _core.check_expiry(1, 30, 26, 5)
    assert not isinstance(err.value, _core.CardError)
    with pytest.raises(ValueError):
        _core.check_expiry(1, 30, 2026, 13)


def test_card_error_is_a_value_error_whose_message_hides_the_number() -> None:
    assert issubclass(_core.CardError, ValueError)
    with pytest.raises(_core.CardError) as err:
        _core.inspect_card("4000056655665557")
    for text in (str(err.value), repr(err.value), repr(err.value.args)):
        assert "4000056655665557" not in text
        assert "665566" not in text


def test_unencodable_number_is_invalid_number_without_the_input_attached() -> None:
    with pytest.raises(_core.CardError) as err:
        _core.inspect_card("4242424242424242\ud800")
    assert err.value.code == "invalid_number"
    assert err.value.__context__ is None and err.value.__cause__ is None
    assert not _core.luhn_valid("4242424242424242\ud800")
    assert _core.card_brand("4242\ud800") is None


@pytest.mark.parametrize(
    "call",
    [
        lambda: UNTYPED.inspect_card(4242424242424242),
        lambda: UNTYPED.mask_pan(None),
        lambda: UNTYPED.card_bin(b"4242424242424242"),
        lambda: UNTYPED.luhn_valid(4242),
        lambda: UNTYPED.check_expiry("12", 30, 2026, 5),
    ],
)
def test_wrong_types_raise_type_error_without_the_value(call) -> None:
    with pytest.raises(TypeError) as err:
        call()
    assert "4242424242424242" not in str(err.value)


def test_card_info_is_frozen_and_its_repr_shows_brand_and_last4_only() -> None:
    info = _core.inspect_card("4242424242424242")
    with pytest.raises(AttributeError):
        info.brand = "amex"  # type: ignore[misc]
    assert repr(info) == "CardInfo(brand='visa', last4='4242', length=16)"
    assert info == _core.inspect_card("4242 4242 4242 4242")
    assert hash(info) == hash(_core.inspect_card("4242 4242 4242 4242"))


def test_iin_table_and_lengths_match_the_reference() -> None:
    assert _core.iin_table() == list(ref.IIN_TABLE)
    for brand, lengths in ref.BRAND_LENGTHS.items():
        assert _core.brand_lengths(brand) == list(lengths)
    with pytest.raises(ValueError):
        _core.brand_lengths("bankcard")
