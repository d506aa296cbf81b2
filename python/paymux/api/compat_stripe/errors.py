"""Stripe's error objects: ``{"error": {"type", "code", "message", "param", "decline_code", ...}}``
with Stripe's statuses (400 invalid_request_error, 401 authentication_error, 402 card_error,
404 resource_missing, 409/400 idempotency_error, 429 rate_limit_error, 5xx api_error), so that the
official SDK raises the exception class a Stripe integration already catches."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

DOC_URL = "https://docs.stripe.com/error-codes"


class StripeError(Exception):
    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        code: str | None = None,
        param: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.http_status = status
        self.type = type_
        self.message = message
        self.code = code
        self.param = param
        self.extra = {k: v for k, v in extra.items() if v is not None}

    @classmethod
    def invalid(cls, code: str | None, message: str, param: str | None) -> StripeError:
        return cls(400, "invalid_request_error", message, code, param)

    @classmethod
    def unknown_parameter(cls, param: str) -> StripeError:
        return cls(
            400,
            "invalid_request_error",
            f"Received unknown parameter: {param}",
            "parameter_unknown",
            param,
        )

    @classmethod
    def missing(cls, what: str, ident: str, param: str = "id") -> StripeError:
        return cls(
            404,
            "invalid_request_error",
            f"No such {what}: '{ident}'",
            "resource_missing",
            param,
        )

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"{DOC_URL}#{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}

    def encoded(self) -> bytes:
        return orjson.dumps(self.body())

    def response(self) -> web.Response:
        return web.Response(
            status=self.http_status, body=self.encoded(), content_type="application/json"
        )
