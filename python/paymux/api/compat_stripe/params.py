"""Which parameters each Stripe endpoint takes, read from form bodies and query strings.

A spec maps a parameter to its kind: "str", "int", "bool", "metadata", "list" (of strings),
"any" (accepted, not used: Stripe knows it, paymux has nothing to do with it), or a nested spec.
A parameter not in the spec is Stripe's 400 ``parameter_unknown`` naming it in bracket form.
"""

from __future__ import annotations

from typing import Any

from paymux.api.compat_stripe.errors import StripeError

Spec = dict[str, Any]

ADDRESS: Spec = {k: "str" for k in ("city", "country", "line1", "line2", "postal_code", "state")}
BILLING: Spec = {"address": ADDRESS, "email": "str", "name": "str", "phone": "str"}
CARD: Spec = {"number": "str", "exp_month": "int", "exp_year": "int", "cvc": "str"}
METHOD_DATA: Spec = {
    "type": "str",
    "card": CARD,
    "billing_details": BILLING,
    "metadata": "metadata",
    "allow_redisplay": "any",
}

CONFIRM_COMMON: Spec = {
    "payment_method": "str",
    "payment_method_data": METHOD_DATA,
    "payment_method_types": "list",
    "payment_method_options": "any",
    "return_url": "str",
    "expand": "list",
    "receipt_email": "any",
    "setup_future_usage": "any",
    "shipping": "any",
    "off_session": "any",
    "error_on_requires_action": "any",
    "use_stripe_sdk": "any",
    "mandate_data": "any",
}

CREATE_INTENT: Spec = {
    **CONFIRM_COMMON,
    "amount": "int",
    "currency": "str",
    "confirm": "bool",
    "capture_method": "str",
    "confirmation_method": "str",
    "metadata": "metadata",
    "description": "str",
    "statement_descriptor": "str",
    "statement_descriptor_suffix": "str",
    "automatic_payment_methods": {"enabled": "bool", "allow_redirects": "str"},
    "payment_method_configuration": "any",
}
CONFIRM_INTENT: Spec = {**CONFIRM_COMMON, "client_secret": "any", "capture_method": "str"}
CAPTURE_INTENT: Spec = {
    "amount_to_capture": "int",
    "expand": "list",
    "final_capture": "bool",
    "metadata": "metadata",
    "statement_descriptor": "str",
    "statement_descriptor_suffix": "str",
}
CANCEL_INTENT: Spec = {"cancellation_reason": "str", "expand": "list"}
UPDATE_INTENT: Spec = {"metadata": "metadata", "description": "str", "expand": "list"}
RETRIEVE: Spec = {"expand": "list", "client_secret": "any"}
CREATED: Spec = {"gt": "int", "gte": "int", "lt": "int", "lte": "int"}
LIST_INTENTS: Spec = {
    "limit": "int",
    "starting_after": "str",
    "ending_before": "str",
    "created": "created",
    "expand": "list",
}
CREATE_METHOD: Spec = {
    "type": "str",
    "card": CARD,
    "billing_details": BILLING,
    "metadata": "metadata",
    "expand": "list",
    "allow_redisplay": "any",
}
CREATE_REFUND: Spec = {
    "payment_intent": "str",
    "charge": "str",
    "amount": "int",
    "reason": "str",
    "metadata": "metadata",
    "expand": "list",
    "instructions_email": "any",
}
LIST_REFUNDS: Spec = {
    "payment_intent": "str",
    "charge": "str",
    "limit": "int",
    "starting_after": "str",
    "ending_before": "str",
    "created": "created",
    "expand": "list",
}


def check(params: dict[str, Any], spec: Spec, prefix: str = "") -> dict[str, Any]:
    """Every parameter known to ``spec``, every value of the expected shape; returns params."""
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else key
        kind = spec.get(key)
        if kind is None:
            raise StripeError.unknown_parameter(name)
        if kind == "any":
            continue
        if isinstance(kind, dict):
            if value == "":  # Stripe: an empty string unsets a hash
                continue
            if not isinstance(value, dict):
                raise StripeError.invalid("parameter_invalid", f"Invalid hash: {name}", name)
            check(value, kind, name)
        elif kind == "metadata":
            if value == "":
                continue
            _metadata(value, name)
        elif kind == "list":
            if value == "":
                continue
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise StripeError.invalid("parameter_invalid", f"Invalid array: {name}", name)
        elif kind == "created":
            if isinstance(value, dict):
                check(value, CREATED, name)
            else:
                integer(value, name)
        elif not isinstance(value, str):
            raise StripeError.invalid(
                "parameter_invalid", f"Invalid {_kind_name(kind)}: {name}", name
            )
        elif kind == "int":
            integer(value, name)
        elif kind == "bool":
            boolean(value, name)
    return params


def _kind_name(kind: str) -> str:
    return {"int": "integer", "bool": "boolean", "str": "string"}.get(kind, kind)


def _metadata(value: Any, name: str) -> None:
    if not isinstance(value, dict):
        raise StripeError.invalid("parameter_invalid", f"Invalid hash: {name}", name)
    if len(value) > 50:
        raise StripeError.invalid(
            "parameter_invalid", "You can specify up to 50 keys in metadata", name
        )
    for key, item in value.items():
        if not isinstance(item, str):
            raise StripeError.invalid("parameter_invalid", f"Invalid string: {name}[{key}]",
                                      f"{name}[{key}]")  # fmt: skip
        if len(key) > 40:
            raise StripeError.invalid(
                "parameter_invalid", "Metadata keys can have up to 40 characters", f"{name}[{key}]"
            )
        if len(item) > 500:
            raise StripeError.invalid(
                "parameter_invalid",
                "Metadata values can have up to 500 characters",
                f"{name}[{key}]",
            )


def integer(value: Any, name: str) -> int:
    if isinstance(value, str) and value.lstrip("-").isdigit() and len(value) <= 18:
        return int(value)
    raise StripeError.invalid("parameter_invalid_integer", f"Invalid integer: {value}"[:120], name)


def boolean(value: Any, name: str) -> bool:
    if value in ("true", "false"):
        return value == "true"
    raise StripeError.invalid("parameter_invalid_boolean", f"Invalid boolean: {value}"[:120], name)


def metadata_of(value: Any) -> dict[str, str]:
    return {} if value in (None, "") else dict(value)
