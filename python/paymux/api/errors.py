"""API errors: every failure the client sees is one of these, rendered as `{"error": {...}}`."""

from __future__ import annotations

import re

import msgspec

from paymux.domain.errors import Refusal, RefusalKind


class ErrorBody(msgspec.Struct, omit_defaults=True):
    type: (
        str  # invalid_request_error, authentication_error, idempotency_error, card_error, api_error
    )
    code: str  # machine-readable, stable
    message: str
    param: str | None = None
    decline_class: str | None = None
    raw_code: str | None = None


class ErrorEnvelope(msgspec.Struct):
    error: ErrorBody


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        type: str,
        code: str,
        message: str,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(type=type, code=code, message=message, param=param)


def invalid(code: str, message: str, param: str | None = None, status: int = 400) -> ApiError:
    return ApiError(status, "invalid_request_error", code, message, param)


def not_found(what: str, param: str | None = None) -> ApiError:
    # Another merchant's object is "not found", never "forbidden": ids must not leak existence.
    return ApiError(404, "invalid_request_error", "resource_missing", f"No such {what}", param)


_PATH = re.compile(r"at `\$((?:\.[A-Za-z_][A-Za-z0-9_]*|\[[^\]]*\])+)`")


def from_validation(exc: msgspec.ValidationError) -> ApiError:
    """Turn msgspec's message into our error, with `param` in dotted form (`payment_method.card`)."""
    text = str(exc)
    param = None
    match = _PATH.search(text)
    if match:
        param = match.group(1).lstrip(".").replace("[...]", "").replace("][", ".")
        param = re.sub(r"\[(\d+)\]", r".\1", param)
    unknown = re.search(r"unknown field `([^`]+)`", text)
    if unknown:
        param = f"{param}.{unknown.group(1)}" if param else unknown.group(1)
        return invalid("parameter_unknown", f"Received unknown parameter: {param}", param)
    missing = re.search(r"missing required field `([^`]+)`", text)
    if missing:
        param = f"{param}.{missing.group(1)}" if param else missing.group(1)
        return invalid("parameter_missing", f"Missing required param: {param}", param)
    message = _PATH.sub("", text).strip(" -")
    return invalid("parameter_invalid", f"Invalid {param or 'body'}: {message}", param)


_REFUSAL_HTTP: dict[RefusalKind, tuple[int, str]] = {
    RefusalKind.INVALID: (400, "invalid_request_error"),
    RefusalKind.CARD: (400, "card_error"),
    RefusalKind.NOT_FOUND: (404, "invalid_request_error"),
    RefusalKind.CONFLICT: (409, "invalid_request_error"),
    RefusalKind.DECLINED: (402, "psp_error"),
    RefusalKind.UNAVAILABLE: (502, "api_error"),
}


def from_refusal(refusal: Refusal) -> ApiError:
    """The HTTP form of a refusal from the payment flow: the one place its kinds get statuses."""
    status, type_ = _REFUSAL_HTTP[refusal.kind]
    error = ApiError(status, type_, refusal.code, refusal.message, refusal.param)
    error.body.decline_class = refusal.decline_class
    error.body.raw_code = refusal.raw_code
    return error
