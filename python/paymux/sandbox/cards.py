"""Card facts the simulated issuers and PSPs need: Luhn, brand, issuer country, masking, test cards.

A pure-Python stand-in for the Rust card module: the sandbox must not depend on the gateway's core,
and it only ever sees published test numbers or numbers generated in tests.
"""

from __future__ import annotations

from typing import NamedTuple


class Card(NamedTuple):
    """A card as the sandbox keeps it: the PAN stays in memory for the decision only."""

    pan: str
    brand: str  # visa, mastercard, amex, discover, jcb, diners, unionpay, unknown
    country: str  # ISO 3166 alpha-2 of the (simulated) issuer
    exp_month: int
    exp_year: int
    masked: str  # BIN + last 4, the only form that reaches the ledger

    @property
    def last4(self) -> str:
        return self.pan[-4:]

    @property
    def bin6(self) -> str:
        return self.pan[:6]


def luhn_ok(pan: str) -> bool:
    if not pan.isdigit() or not 12 <= len(pan) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(pan)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def brand_of(pan: str) -> str:
    """The card network from the IIN ranges (enough of them for a simulator)."""
    if pan.startswith("4"):
        return "visa"
    p2, p4, p6 = int(pan[:2] or 0), int(pan[:4] or 0), int(pan[:6] or 0)
    if 51 <= p2 <= 55 or 222100 <= p6 <= 272099:
        return "mastercard"
    if p2 in (34, 37):
        return "amex"
    if p4 == 6011 or p2 == 65 or 644 <= int(pan[:3]) <= 649:
        return "discover"
    if 3528 <= p4 <= 3589:
        return "jcb"
    if p2 in (36, 38) or 300 <= int(pan[:3]) <= 305:
        return "diners"
    if p2 == 62:
        return "unionpay"
    return "unknown"


def mask(pan: str) -> str:
    """BIN + last 4, e.g. 424242******4242."""
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


# Stripe's country test cards are 4000 + the ISO 3166 numeric code of the issuer's country.
_ISO_NUMERIC = {
    "036": "AU", "040": "AT", "056": "BE", "076": "BR", "124": "CA", "156": "CN", "208": "DK",
    "246": "FI", "250": "FR", "276": "DE", "344": "HK", "356": "IN", "372": "IE", "380": "IT",
    "392": "JP", "484": "MX", "528": "NL", "554": "NZ", "578": "NO", "616": "PL", "620": "PT",
    "702": "SG", "724": "ES", "752": "SE", "756": "CH", "826": "GB", "840": "US",
}  # fmt: skip


def issuer_country(pan: str, bin_countries: dict[str, str], default: str) -> str:
    """The issuer's country: the scenario's BIN prefixes (longest first), Stripe's pattern, default."""
    best = ""
    for prefix in bin_countries:
        if pan.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    if best:
        return bin_countries[best]
    if pan.startswith("4000"):
        country = _ISO_NUMERIC.get(pan[6:9])  # 4000 00 + ISO 3166 numeric, e.g. 4000 0007 6000 0002
        if country:
            return country
    return default


def make_card(
    pan: str, exp_month: int, exp_year: int, bin_countries: dict[str, str], default_country: str
) -> Card:
    return Card(
        pan=pan,
        brand=brand_of(pan),
        country=issuer_country(pan, bin_countries, default_country),
        exp_month=exp_month,
        exp_year=exp_year,
        masked=mask(pan),
    )


#: Published test cards whose issuer answer is fixed, as the PSPs document them. The value is a
#: normalized decline name, or "challenge" (3DS always required, then approved).
TEST_CARD_OUTCOMES: dict[str, str] = {
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000009987": "lost_card",
    "4000000000009979": "stolen_card",
    "4000000000000069": "expired_card",
    "4000000000000127": "incorrect_cvc",
    "4000000000000119": "processing_error",
    "4100000000000019": "fraudulent",
    "4000000000003220": "challenge",
    "4000002500003155": "challenge",
}

#: Stripe's test PaymentMethod ids and the test card each stands for.
STRIPE_TEST_PAYMENT_METHODS: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_mastercard_debit": "5200828282828210",
    "pm_card_amex": "378282246310005",
    "pm_card_discover": "6011111111111117",
    "pm_card_jcb": "3566002020360505",
    "pm_card_unionpay": "6200000000000005",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_chargeDeclinedFraudulent": "4100000000000019",
    "pm_card_threeDSecure2Required": "4000000000003220",
    "pm_card_authenticationRequired": "4000002500003155",
    "pm_card_us": "4242424242424242",
    "pm_card_br": "4000000760000002",
    "pm_card_ca": "4000001240000000",
    "pm_card_mx": "4000004840008001",
    "pm_card_gb": "4000008260000000",
    "pm_card_de": "4000002760000016",
    "pm_card_fr": "4000002500000003",
    "pm_card_jp": "4000003920000003",
}


def stripe_test_pan(payment_method: str) -> str | None:
    """The PAN behind a Stripe test PaymentMethod id (`pm_card_visa_chargeDeclined` works too)."""
    pan = STRIPE_TEST_PAYMENT_METHODS.get(payment_method)
    if pan is None and payment_method.startswith("pm_card_visa_"):
        pan = STRIPE_TEST_PAYMENT_METHODS.get("pm_card_" + payment_method[len("pm_card_visa_") :])
    return pan
