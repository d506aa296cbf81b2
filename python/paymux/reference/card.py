"""Pure-Python reference for the card checks in rust_core/src/card.rs, with the same semantics.

It exists so property tests can prove the Rust version agrees with something readable, and so
benchmarks can show what the Rust buys. It is not used on the payment path.

Semantics (see the Rust module docs for the reasoning):
- ASCII spaces and dashes are stripped; any other non-digit is invalid; a PAN has 12-19 digits.
- validate() checks, in order: invalid_number, luhn_failed, unsupported_brand,
  invalid_length_for_brand.
- Brand: the longest matching IIN prefix wins; 622126-622925 is "unionpay".
- BIN: 8 digits for PANs of 16+ digits, else 6. Mask: first 6, '*' between, last 4.
- Expiry: month 1-12; year 0-99 means 2000+year, 1000-9999 as is; expired if before "now".
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_PAN_LEN = 12
MAX_PAN_LEN = 19
_ASCII_DIGITS = frozenset("0123456789")
_SEPARATORS = frozenset(" -")

# (range_start, range_end, prefix_len, brand): the same rows as IIN_TABLE in card.rs.
IIN_TABLE: tuple[tuple[int, int, int, str], ...] = (
    (4, 4, 1, "visa"),
    (51, 55, 2, "mastercard"),
    (2221, 2720, 4, "mastercard"),
    (34, 34, 2, "amex"),
    (37, 37, 2, "amex"),
    (6011, 6011, 4, "discover"),
    (644, 649, 3, "discover"),
    (65, 65, 2, "discover"),
    (3528, 3589, 4, "jcb"),
    (300, 305, 3, "diners"),
    (3095, 3095, 4, "diners"),
    (36, 36, 2, "diners"),
    (38, 39, 2, "diners"),
    (62, 62, 2, "unionpay"),
    (622126, 622925, 6, "unionpay"),
    (50, 50, 2, "maestro"),
    (56, 58, 2, "maestro"),
    (6304, 6304, 4, "maestro"),
    (6759, 6759, 4, "maestro"),
    (6761, 6763, 4, "maestro"),
    (676770, 676770, 6, "maestro"),
    (676774, 676774, 6, "maestro"),
)

BRAND_LENGTHS: dict[str, tuple[int, ...]] = {
    "visa": (13, 16, 19),
    "mastercard": (16,),
    "amex": (15,),
    "discover": (16, 17, 18, 19),
    "jcb": (16, 17, 18, 19),
    "diners": (14, 15, 16, 17, 18, 19),
    "unionpay": (16, 17, 18, 19),
    "maestro": (12, 13, 14, 15, 16, 17, 18, 19),
}

_MESSAGES = {
    "invalid_number": "card number must be 12 to 19 digits (spaces and dashes allowed)",
    "luhn_failed": "card number failed the Luhn check",
    "unsupported_brand": "card number does not belong to a supported brand",
    "invalid_length_for_brand": "card number length is not valid for its brand",
    "invalid_expiry": "expiry month must be 1-12 and year two or four digits",
    "expired_card": "card has expired",
}


class CardError(ValueError):
    """A refused card; `code` is machine-readable and the message never holds card data."""

    def __init__(self, code: str) -> None:
        super().__init__(_MESSAGES[code])
        self.code = code


@dataclass(frozen=True)
class CardInfo:
    brand: str
    bin: str
    last4: str
    length: int


def _digits(number: str) -> str | None:
    """The digits with spaces and dashes removed, or None if anything else is present."""
    out = []
    for ch in number:
        if ch in _ASCII_DIGITS:
            out.append(ch)
        elif ch not in _SEPARATORS:
            return None
    return "".join(out)


def _pan(number: str) -> str:
    digits = _digits(number)
    if digits is None or not MIN_PAN_LEN <= len(digits) <= MAX_PAN_LEN:
        raise CardError("invalid_number")
    return digits


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_valid(number: str) -> bool:
    digits = _digits(number)
    return bool(digits) and _luhn(digits or "")


def _brand(digits: str) -> str | None:
    best: tuple[int, str] | None = None
    for start, end, prefix_len, brand in IIN_TABLE:
        if len(digits) < prefix_len:
            continue
        if start <= int(digits[:prefix_len]) <= end and (best is None or prefix_len > best[0]):
            best = (prefix_len, brand)
    return best[1] if best else None


def card_brand(number: str) -> str | None:
    digits = _digits(number)
    return _brand(digits) if digits else None


def bin_len(pan_len: int) -> int:
    return 8 if pan_len >= 16 else 6


def card_bin(number: str) -> str:
    digits = _pan(number)
    return digits[: bin_len(len(digits))]


def mask_pan(number: str) -> str:
    digits = _pan(number)
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]


def inspect_card(number: str) -> CardInfo:
    digits = _pan(number)
    if not _luhn(digits):
        raise CardError("luhn_failed")
    brand = _brand(digits)
    if brand is None:
        raise CardError("unsupported_brand")
    if len(digits) not in BRAND_LENGTHS[brand]:
        raise CardError("invalid_length_for_brand")
    return CardInfo(brand, digits[: bin_len(len(digits))], digits[-4:], len(digits))


def check_expiry(exp_month: int, exp_year: int, now_year: int, now_month: int) -> tuple[int, int]:
    if not (1000 <= now_year <= 9999 and 1 <= now_month <= 12):
        raise ValueError("now_year must be four digits and now_month 1 to 12")
    if not 1 <= exp_month <= 12:
        raise CardError("invalid_expiry")
    if 0 <= exp_year <= 99:
        year = 2000 + exp_year
    elif 1000 <= exp_year <= 9999:
        year = exp_year
    else:
        raise CardError("invalid_expiry")
    if (year, exp_month) < (now_year, now_month):
        raise CardError("expired_card")
    return exp_month, year
