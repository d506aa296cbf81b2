"""Hypothesis: the Rust card checks and the pure-Python reference agree on arbitrary input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paymux import _core
from paymux.reference import card as ref

# Moderate example counts: the whole file runs in a few seconds.
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """A comparable result: the value, or which error with which code."""
    try:
        value = fn(*args)
    except (_core.CardError, ref.CardError) as err:
        return ("card_error", err.code)
    except ValueError:
        return ("value_error", None)
    if isinstance(value, _core.CardInfo | ref.CardInfo):
        return ("ok", (value.brand, value.bin, value.last4, value.length))
    return ("ok", value)


def both_agree(rust_fn: Callable[..., Any], ref_fn: Callable[..., Any], *args: Any) -> None:
    assert outcome(rust_fn, *args) == outcome(ref_fn, *args), args


PAIRS = [
    (_core.luhn_valid, ref.luhn_valid),
    (_core.card_brand, ref.card_brand),
    (_core.card_bin, ref.card_bin),
    (_core.mask_pan, ref.mask_pan),
    (_core.inspect_card, ref.inspect_card),
]


def with_luhn_digit(body: str) -> str:
    return next(body + str(d) for d in range(10) if ref.luhn_valid(body + str(d)))


@st.composite
def iin_prefixed(draw: st.DrawFn, luhn: bool) -> str:
    """A digit string that starts inside a random IIN table row, 10-20 digits long."""
    start, end, prefix_len, _ = draw(st.sampled_from(ref.IIN_TABLE))
    prefix = str(draw(st.integers(start, end))).zfill(prefix_len)
    length = draw(st.integers(max(10, prefix_len + 1), 20))
    rest = draw(st.text("0123456789", min_size=length - prefix_len, max_size=length - prefix_len))
    digits = prefix + rest
    return with_luhn_digit(digits[:-1]) if luhn else digits


digit_strings = st.text("0123456789", min_size=0, max_size=22)
noisy_strings = st.text(st.sampled_from("0123456789 -- x.\t٣"), min_size=0, max_size=24)


@PROPERTY
@given(st.one_of(digit_strings, noisy_strings, iin_prefixed(luhn=False), iin_prefixed(luhn=True)))
def test_rust_and_reference_agree_on_every_card_function(number: str) -> None:
    for rust_fn, ref_fn in PAIRS:
        both_agree(rust_fn, ref_fn, number)


@PROPERTY
@given(iin_prefixed(luhn=True))
def test_luhn_completed_numbers_from_the_iin_table_agree_on_validation(number: str) -> None:
    assert _core.luhn_valid(number)
    assert _core.card_brand(number) is not None
    both_agree(_core.inspect_card, ref.inspect_card, number)


@PROPERTY
@given(st.text("0123456789", min_size=1, max_size=30))
def test_a_single_changed_digit_breaks_luhn(digits: str) -> None:
    number = with_luhn_digit(digits)
    i = len(number) // 2
    changed = number[:i] + str((int(number[i]) + 1) % 10) + number[i + 1 :]
    assert _core.luhn_valid(number)
    assert not _core.luhn_valid(changed)


@PROPERTY
@given(
    st.text("0123456789", min_size=12, max_size=19),
    st.lists(st.sampled_from(" -"), max_size=4),
)
def test_mask_never_reveals_more_than_bin6_and_last4(digits: str, separators: list[str]) -> None:
    spaced = "".join(separators) + digits
    masked = _core.mask_pan(spaced)
    assert len(masked) == len(digits)
    assert masked[:6] == digits[:6]
    assert masked[-4:] == digits[-4:]
    assert set(masked[6:-4]) <= {"*"}
    assert sum(ch != "*" for ch in masked) == 10
    assert masked == ref.mask_pan(spaced)


@PROPERTY
@given(
    st.integers(-3, 15),
    st.one_of(st.integers(-5, 120), st.integers(990, 10_010)),
    st.integers(995, 10_005),
    st.integers(-1, 14),
)
def test_expiry_checks_agree(month: int, year: int, now_year: int, now_month: int) -> None:
    both_agree(_core.check_expiry, ref.check_expiry, month, year, now_year, now_month)


@PROPERTY
@given(st.integers(1, 12), st.integers(0, 99), st.integers(2000, 2099), st.integers(1, 12))
def test_two_digit_years_behave_like_their_four_digit_form(
    month: int, yy: int, now_year: int, now_month: int
) -> None:
    short = outcome(_core.check_expiry, month, yy, now_year, now_month)
    full = outcome(_core.check_expiry, month, 2000 + yy, now_year, now_month)
    assert short == full
