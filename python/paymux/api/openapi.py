"""The OpenAPI 3.1 document of `/v1`, generated from the same msgspec Structs the handlers use."""

from __future__ import annotations

import functools
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


def _ref(cls: Any) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{cls.__name__}"}


def _op(
    summary: str,
    response: Any,
    body: Any = None,
    idempotent: bool = False,
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": _ref(response)}},
            },
            "4XX": {
                "description": "Error",
                "content": {"application/json": {"schema": _ref(ErrorEnvelope)}},
            },
        },
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
            "required": True,
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


def _tighten(components: dict[str, Any]) -> None:
    """What a JSON Schema from the Structs cannot say by itself: the currencies the server
    knows (an enum, not just three capitals)."""
    known = sorted(CURRENCY_EXPONENTS)
    for schema in components.values():
        for prop in schema.get("properties", {}).values():
            if prop.get("pattern") == "^[A-Z]{3}$":
                prop.pop("pattern")
                prop["enum"] = known


@functools.cache
def openapi_document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        _TYPES, ref_template="#/components/schemas/{name}"
    )
    _tighten(components)
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
                    "Create and authorize a payment",
                    schemas.PaymentView,
                    schemas.CreatePayment,
                    True,
                ),
                "get": _op(
                    "List payments (newest first, cursor-paginated)",
                    schemas.PaymentList,
                    params=[
                        {"name": n, "in": "query", "required": False, "schema": schema}
                        for n, schema in _LIST_PARAMS.items()
                    ],
                ),
            },
            "/v1/payments/{id}": {
                "get": _op("Retrieve a payment", schemas.PaymentView, params=_ID)
            },
            "/v1/payments/{id}/capture": {
                "post": _op(
                    "Capture an authorization (amount optional: partial)",
                    schemas.PaymentView,
                    schemas.CapturePayment,
                    True,
                    _ID,
                )
            },
            "/v1/payments/{id}/cancel": {
                "post": _op(
                    "Void an uncaptured authorization",
                    schemas.PaymentView,
                    schemas.CancelPayment,
                    True,
                    _ID,
                )
            },
            "/v1/refunds": {
                "post": _op(
                    "Refund a captured payment (amount optional: partial)",
                    schemas.RefundView,
                    schemas.CreateRefund,
                    True,
                )
            },
            "/v1/refunds/{id}": {"get": _op("Retrieve a refund", schemas.RefundView, params=_ID)},
            "/v1/tokens": {
                "post": _op("Vault a card", schemas.TokenView, schemas.CreateToken, True)
            },
            "/v1/tokens/{id}": {"delete": _op("Delete a token", schemas.DeletedView, params=_ID)},
        },
    }
