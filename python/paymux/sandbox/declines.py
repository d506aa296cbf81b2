"""Decline vocabulary: each normalized decline and how each wire format says it.

Scenarios name declines either by a normalized name (`insufficient_funds`), which every wire
format renders in its own words, or by a raw code in one PSP's vocabulary (a Stripe
`decline_code`, an Adyen `refusalReasonCode`, a Checkout.com `response_code`).
"""

from __future__ import annotations

import re
from typing import NamedTuple


class Decline(NamedTuple):
    name: str  # normalized name, or "<wire>:<raw>" for a raw code
    decline_class: str  # hard | fix_data | issuer_not_now | soft_route | technical
    # Stripe: error.code, error.decline_code (None when the code says it all), error.message
    stripe_code: str
    stripe_decline_code: str | None
    stripe_message: str
    # Adyen: refusalReasonCode, refusalReason, additionalData.refusalReasonRaw, resultCode
    adyen_code: str
    adyen_reason: str
    adyen_raw: str
    adyen_result: str
    # Checkout.com: response_code, response_summary
    cko_code: str
    cko_summary: str


_DECLINED = "Your card was declined."

# name, class, stripe (code, decline_code, message), adyen (code, reason, raw, resultCode), cko
_TABLE: list[Decline] = [
    Decline("insufficient_funds", "issuer_not_now",
            "card_declined", "insufficient_funds", "Your card has insufficient funds.",
            "12", "Not enough balance", "51 : Insufficient funds", "Refused",
            "20051", "Insufficient Funds"),
    Decline("do_not_honor", "soft_route",
            "card_declined", "do_not_honor", _DECLINED,
            "2", "Refused", "05 : Do not honor", "Refused",
            "20005", "Declined - Do Not Honour"),
    Decline("generic_decline", "soft_route",
            "card_declined", "generic_decline", _DECLINED,
            "2", "Refused", "DECLINED", "Refused",
            "20005", "Declined - Do Not Honour"),
    Decline("try_again_later", "soft_route",
            "card_declined", "try_again_later", _DECLINED,
            "27", "Declined Non Generic", "19 : Re-enter transaction", "Refused",
            "20019", "Re-enter Transaction"),
    Decline("card_not_supported", "soft_route",
            "card_declined", "card_not_supported", "Your card does not support this type of purchase.",
            "10", "Not supported", "NOT_SUPPORTED", "Refused",
            "20058", "Transaction not permitted to terminal"),
    Decline("lost_card", "hard",
            "card_declined", "lost_card", _DECLINED,
            "5", "Blocked Card", "41 : Lost card", "Refused",
            "30041", "Lost Card - Pick Up"),
    Decline("stolen_card", "hard",
            "card_declined", "stolen_card", _DECLINED,
            "5", "Blocked Card", "43 : Stolen card", "Refused",
            "30043", "Stolen Card - Pick Up"),
    Decline("pickup_card", "hard",
            "card_declined", "pickup_card", _DECLINED,
            "5", "Blocked Card", "04 : Pick up card", "Refused",
            "30004", "Pick Up Card (No Fraud)"),
    Decline("transaction_not_allowed", "hard",
            "card_declined", "transaction_not_allowed", _DECLINED,
            "23", "Transaction Not Permitted", "57 : Transaction not permitted to cardholder",
            "Refused", "20057", "Transaction not permitted to cardholder"),
    Decline("invalid_number", "hard",
            "incorrect_number", None, "Your card number is incorrect.",
            "8", "Invalid Card Number", "14 : Invalid card number", "Refused",
            "20014", "Invalid Card Number"),
    Decline("expired_card", "fix_data",
            "expired_card", None, "Your card has expired.",
            "6", "Expired Card", "54 : Expired card", "Refused",
            "20054", "Expired Card"),
    Decline("incorrect_cvc", "fix_data",
            "incorrect_cvc", None, "Your card's security code is incorrect.",
            "24", "CVC Declined", "N7 : Decline for CVV2 failure", "Refused",
            "20087", "Bad Track Data"),
    Decline("fraudulent", "issuer_not_now",
            "card_declined", "fraudulent", _DECLINED,
            "31", "Issuer Suspected Fraud", "59 : Suspected fraud", "Refused",
            "20059", "Suspected Fraud"),
    Decline("card_velocity_exceeded", "issuer_not_now",
            "card_declined", "card_velocity_exceeded", _DECLINED,
            "28", "Withdrawal amount exceeded", "61 : Exceeds withdrawal amount limit", "Refused",
            "20061", "Exceeds Withdrawal Value/Amount Limits"),
    Decline("issuer_unavailable", "technical",
            "card_declined", "issuer_not_available", _DECLINED,
            "9", "Issuer Unavailable", "91 : Issuer or switch inoperative", "Refused",
            "20091", "Issuer Unavailable"),
    Decline("processing_error", "technical",
            "processing_error", None,
            "An error occurred while processing your card. Try again in a little bit.",
            "4", "Acquirer Error", "96 : System malfunction", "Error",
            "20096", "System Malfunction"),
]  # fmt: skip

NORMALIZED: dict[str, Decline] = {d.name: d for d in _TABLE}

_STRIPE_RAW = re.compile(r"^[a-z][a-z_]*$")


def resolve(name: str, wire: str) -> Decline:
    """A decline from a normalized name or a raw code of `wire`; ValueError if neither."""
    known = NORMALIZED.get(name)
    if known is not None:
        return known
    if wire == "stripe" and _STRIPE_RAW.match(name):
        return NORMALIZED["generic_decline"]._replace(
            name=f"stripe:{name}", stripe_decline_code=name
        )
    if wire == "adyen":
        for d in _TABLE:
            if name in (d.adyen_code, d.adyen_reason):
                return d._replace(name=f"adyen:{d.adyen_code}")
        if name.isdigit():
            return NORMALIZED["generic_decline"]._replace(
                name=f"adyen:{name}", adyen_code=name, adyen_raw=name
            )
    if wire == "checkout" and name.isdigit() and len(name) == 5:
        for d in _TABLE:
            if d.cko_code == name:
                return d._replace(name=f"checkout:{name}")
        hard = name.startswith("3")
        return NORMALIZED["generic_decline"]._replace(
            name=f"checkout:{name}",
            decline_class="hard" if hard else "soft_route",
            cko_code=name,
            cko_summary="Declined",
        )
    raise ValueError(f"unknown decline {name!r} for wire format {wire!r}")
