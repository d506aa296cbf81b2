"""The OpenAPI 3.1 document of `/v1`, generated from the same msgspec Structs the handlers use,
then tightened to say what the server checks beyond them, so that the document is exactly as
strict as the server (schemathesis in tests/edge checks both directions):

- a card number has the format `payment-card-number`: 12-19 digits (spaces and dashes allowed),
  Luhn-valid, of a brand the server knows, with that brand's length;
- a card's expiry is not in the past (two- or four-digit year, as the server reads it): the
  document is rebuilt each month;
- a payment method is exactly one of `card` or `token`; a pinned connector is one configured;
- amounts and other integers are JSON Schema integers: `1000.0` is one, and the server takes it;
- every status an operation can answer is listed, with its body; ids returned by one operation
  are linked to the operations that take them.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from typing import Any

import msgspec

from paymux import __version__
from paymux.api import schemas
from paymux.api.errors import ErrorEnvelope
from paymux.domain.money import CURRENCY_EXPONENTS
from paymux.domain.records import PaymentStatus

_TYPES: list[Any] = [
    schemas.CreatePayment,
    schemas.CapturePayment,
    schemas.CancelPayment,
    schemas.CreateRefund,
    schemas.CreateToken,
    schemas.PaymentView,
    schemas.PaymentList,
    schemas.RefundView,
    schemas.TokenView,
    schemas.DeletedView,
    ErrorEnvelope,
]

#: The custom string format of a card number (a schemathesis strategy for it: tests/edge).
CARD_NUMBER_FORMAT = "payment-card-number"


def _ref(cls: Any) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{cls.__name__}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _ref(ErrorEnvelope)

#: What every authenticated `/v1` operation can answer besides its own outcomes.
_COMMON: dict[str, dict[str, Any]] = {
    "400": _json(_ERROR, "Invalid request (parameters, body, Idempotency-Key)"),
    "401": _json(_ERROR, "Missing or invalid API key"),
    "408": _json(_ERROR, "The request was not received in time"),
    "429": _json(_ERROR, "Rate limited (failed authentications, or the merchant's request rate)")
    | {"headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}},
    "431": _json(_ERROR, "Request headers too large"),
    "500": _json(_ERROR, "Internal error"),
    "502": _json(_ERROR, "A PSP could not be reached or did not answer; retry with the same key"),
    "503": _json(_ERROR, "The server is at its connection limit; retry shortly"),
}
_WITH_BODY: dict[str, dict[str, Any]] = {
    "413": _json(_ERROR, "Request body too large"),
    "415": _json(_ERROR, "The body is not sent as application/json"),
}
_IDEMPOTENT: dict[str, dict[str, Any]] = {
    "409": _json(_ERROR, "Conflict: the object's state, or its Idempotency-Key still in use"),
    "422": _json(_ERROR, "This Idempotency-Key was used with different parameters"),
}


def _op(
    operation_id: str,
    summary: str,
    responses: dict[str, dict[str, Any]],
    body: Any = None,
    idempotent: bool = False,
    params: list[dict[str, Any]] | None = None,
    links: dict[str, Any] | None = None,
) -> dict[str, Any]:
    answers = dict(_COMMON)
    if body is not None:
        answers |= _WITH_BODY
    if idempotent:
        answers |= _IDEMPOTENT
    answers |= responses
    if links:
        for status in ("200", "202"):
            if status in answers:
                answers[status] = answers[status] | {"links": links}
    op: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "responses": dict(sorted(answers.items())),
        "security": [{"bearer": []}],
    }
    parameters = list(params or [])
    if idempotent:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                # What the server accepts: 1-255 visible ASCII characters (inner spaces allowed).
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": "^[!-~]([ -~]*[!-~])?$",
                },
            }
        )
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {
            "required": body is not schemas.CapturePayment and body is not schemas.CancelPayment,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return op


_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]

# The list endpoint's query parameters, as strict as `list_payments` parses them.
_LIST_PARAMS: dict[str, dict[str, Any]] = {
    "status": {"type": "string", "enum": sorted(s.value for s in PaymentStatus)},
    "connector": {"type": "string"},
    "created[gte]": {"type": "number"},
    "created[lt]": {"type": "number"},
    "starting_after": {"type": "string"},
    "limit": {"type": "integer", "minimum": 1, "maximum": 100},
}

_PAYMENT = _ref(schemas.PaymentView)
_REFUND = _ref(schemas.RefundView)
_NOT_FOUND = {"404": _json(_ERROR, "No such object (for this merchant)")}

#: The payment a response describes, to the operations that take a payment id.
_PAYMENT_LINKS = {
    "GetPayment": {"operationId": "getPayment", "parameters": {"id": "$response.body#/id"}},
    "CapturePayment": {
        "operationId": "capturePayment",
        "parameters": {"id": "$response.body#/id"},
    },
    "CancelPayment": {"operationId": "cancelPayment", "parameters": {"id": "$response.body#/id"}},
    "RefundPayment": {  # all of what it received (a partial refund: the amount lower)
        "operationId": "createRefund",
        "requestBody": {
            "payment_id": "$response.body#/id",
            "amount": "$response.body#/amount_received",
        },
    },
}


def _tighten(components: dict[str, Any], today: dt.date) -> None:
    """What a JSON Schema from the Structs cannot say by itself (see the module docstring)."""
    known = sorted(CURRENCY_EXPONENTS)
    for schema in components.values():
        for prop in schema.get("properties", {}).values():
            if prop.get("pattern") == "^[A-Z]{3}$":
                prop.pop("pattern")
                prop["enum"] = known
    card = components["CardInput"]
    number = card["properties"]["number"]
    number["format"] = CARD_NUMBER_FORMAT
    number["minLength"] = 12
    number["description"] = (
        "12-19 digits (ASCII spaces and dashes between them are ignored), Luhn-valid, of a "
        "known brand and that brand's length"
    )
    # The expiry as the server reads it (a year below 100 is 2000 + year, 1000-9999 as is, else
    # invalid) and not before this month.
    year, month, short = today.year, today.month, today.year - 2000
    card["properties"]["exp_year"] = {
        "type": "integer",
        "anyOf": [{"minimum": short, "maximum": 99}, {"minimum": year, "maximum": 9999}],
    }
    if month > 1:
        card["not"] = {
            "required": ["exp_year", "exp_month"],
            "properties": {
                "exp_year": {"enum": [short, year]},
                "exp_month": {"maximum": month - 1},
            },
        }
    # Exactly one of `card` or `token` (the other absent or null): two alternatives, each a
    # whole object, so that generators need no `oneOf` bookkeeping.
    method = components["PaymentMethodInput"]
    card_ref, token = method["properties"]["card"]["anyOf"][0], method["properties"]["token"]
    components["PaymentMethodInput"] = {
        "title": method["title"],
        "description": "Exactly one of `card` (a raw card, vaulted) or `token` (a vaulted card)",
        "anyOf": [
            {
                "type": "object",
                "properties": {"card": card_ref, "token": {"type": "null"}},
                "required": ["card"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {"token": token["anyOf"][0], "card": {"type": "null"}},
                "required": ["token"],
                "additionalProperties": False,
            },
        ],
    }


_connectors: tuple[str, ...] = ()


def publish_connectors(names: Iterable[str]) -> None:
    """The connector names this process's gateway is configured with: the document's enum for a
    payment's `connector` (set on startup, see `edge.install`)."""
    global _connectors
    _connectors = tuple(sorted(names))


def openapi_document() -> dict[str, Any]:
    """The document as of today (its expiry bounds move with the month)."""
    today = dt.date.today()
    return _document(today.replace(day=1), _connectors)


@functools.cache
def _document(month: dt.date, connectors: tuple[str, ...]) -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        _TYPES, ref_template="#/components/schemas/{name}"
    )
    _tighten(components, month)
    if connectors:  # a name the gateway is not configured with is refused
        pinned = components["CreatePayment"]["properties"]["connector"]["anyOf"][0]
        pinned.pop("minLength", None)
        pinned.pop("maxLength", None)
        pinned["enum"] = list(connectors)
    payment_answers = {
        "200": _json(_PAYMENT, "The payment (succeeded, requires_capture, canceled, ...)"),
        "202": _json(_PAYMENT, "Still in progress at the PSP: poll it or retry with the same key"),
    }
    refund_answers = {
        "200": _json(_REFUND, "The refund"),
        "202": _json(_REFUND, "The refund, still pending at the PSP"),
        "402": _json(_ERROR, "The PSP refused the refund"),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "paymux", "version": __version__},
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/v1/payments": {
                "post": _op(
                    "createPayment",
                    "Create and authorize a payment",
                    payment_answers
                    | {
                        "402": _json(
                            {"anyOf": [_PAYMENT, _ERROR]},
                            "Declined: the failed payment, its error saying why",
                        ),
                    }
                    | _NOT_FOUND,  # the token named does not exist
                    schemas.CreatePayment,
                    True,
                    links=_PAYMENT_LINKS,
                ),
                "get": _op(
                    "listPayments",
                    "List payments (newest first, cursor-paginated)",
                    {"200": _json(_ref(schemas.PaymentList), "A page of payments")},
                    params=[
                        {"name": n, "in": "query", "required": False, "schema": schema}
                        for n, schema in _LIST_PARAMS.items()
                    ],
                ),
            },
            "/v1/payments/{id}": {
                "get": _op(
                    "getPayment",
                    "Retrieve a payment",
                    {"200": _json(_PAYMENT, "The payment")} | _NOT_FOUND,
                    params=_ID,
                )
            },
            "/v1/payments/{id}/capture": {
                "post": _op(
                    "capturePayment",
                    "Capture an authorization (amount optional: partial)",
                    payment_answers
                    | {"402": _json(_ERROR, "The PSP refused the capture")}
                    | _NOT_FOUND,
                    schemas.CapturePayment,
                    True,
                    _ID,
                    links=_PAYMENT_LINKS,
                )
            },
            "/v1/payments/{id}/cancel": {
                "post": _op(
                    "cancelPayment",
                    "Void an uncaptured authorization",
                    payment_answers
                    | {"402": _json(_ERROR, "The PSP refused the void")}
                    | _NOT_FOUND,
                    schemas.CancelPayment,
                    True,
                    _ID,
                    links=_PAYMENT_LINKS,
                )
            },
            "/v1/refunds": {
                "post": _op(
                    "createRefund",
                    "Refund a captured payment (amount optional: partial)",
                    refund_answers | _NOT_FOUND,
                    schemas.CreateRefund,
                    True,
                    links={
                        "GetRefund": {
                            "operationId": "getRefund",
                            "parameters": {"id": "$response.body#/id"},
                        },
                        "GetPayment": {
                            "operationId": "getPayment",
                            "parameters": {"id": "$response.body#/payment_id"},
                        },
                    },
                )
            },
            "/v1/refunds/{id}": {
                "get": _op(
                    "getRefund",
                    "Retrieve a refund",
                    {"200": _json(_REFUND, "The refund")} | _NOT_FOUND,
                    params=_ID,
                )
            },
            "/v1/tokens": {
                "post": _op(
                    "createToken",
                    "Vault a card",
                    {"200": _json(_ref(schemas.TokenView), "The token")},
                    schemas.CreateToken,
                    True,
                    links={
                        "DeleteToken": {
                            "operationId": "deleteToken",
                            "parameters": {"id": "$response.body#/id"},
                        },
                    },
                )
            },
            "/v1/tokens/{id}": {
                "delete": _op(
                    "deleteToken",
                    "Delete a token",
                    {"200": _json(_ref(schemas.DeletedView), "Deleted")} | _NOT_FOUND,
                    params=_ID,
                )
            },
        },
    }
