"""Stripe's id prefixes over paymux's ids: the same object, another prefix, reversible.

``pay_X`` <-> ``pi_X`` (PaymentIntent), ``tok_X`` <-> ``pm_X`` (PaymentMethod), ``re_X`` is a
refund in both, and a payment's approved attempt is its Charge ``ch_X`` (X the payment's suffix).
"""

from __future__ import annotations


def _swap(value: str, old: str, new: str) -> str | None:
    if not value.startswith(old) or len(value) == len(old) or len(value) > 80:
        return None
    rest = value[len(old) :]
    return new + rest if rest.isalnum() else None


def intent_id(payment_id: str) -> str:
    return "pi_" + payment_id.removeprefix("pay_")


def payment_id(intent: str) -> str | None:
    return _swap(intent, "pi_", "pay_")


def method_id(token_id: str) -> str:
    return "pm_" + token_id.removeprefix("tok_")


def token_id(method: str) -> str | None:
    """The paymux token a ``pm_`` id (or a ``tok_`` given as the payment method) stands for."""
    if method.startswith("tok_"):
        return _swap(method, "tok_", "tok_")
    return _swap(method, "pm_", "tok_")


def charge_id(payment_id: str) -> str:
    return "ch_" + payment_id.removeprefix("pay_")


def refund_id(refund_id: str) -> str:
    return refund_id  # re_ already


def paymux_refund_id(refund: str) -> str | None:
    return _swap(refund, "re_", "re_")
