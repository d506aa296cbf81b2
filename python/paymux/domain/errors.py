"""Why a payment operation was refused or did not go through, in domain terms.

The flow raises these; the API layer alone turns a ``Refusal`` into an HTTP status and error
body (python/paymux/api/errors.py), so the flow never knows about HTTP.
"""

from __future__ import annotations

import enum


class RefusalKind(enum.StrEnum):
    INVALID = "invalid"  # the request itself is wrong (a parameter, an amount)
    CARD = "card"  # the card we hold cannot be used (invalid number, expired)
    NOT_FOUND = "not_found"  # no such object for this merchant
    CONFLICT = "conflict"  # the object's state does not allow it now
    DECLINED = "declined"  # the PSP refused the operation: a definitive answer
    UNAVAILABLE = "unavailable"  # no PSP could act on it now; nothing happened; retry later


class Refusal(Exception):
    """An operation that did not happen, and why: ``code`` is stable and machine-readable."""

    def __init__(
        self,
        kind: RefusalKind,
        code: str,
        message: str,
        param: str | None = None,
        *,
        raw_code: str | None = None,
        decline_class: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message
        self.param = param
        self.raw_code = raw_code
        self.decline_class = decline_class


def invalid(code: str, message: str, param: str | None = None) -> Refusal:
    return Refusal(RefusalKind.INVALID, code, message, param)


def not_found(what: str, param: str | None = None) -> Refusal:
    # Another merchant's object is "not found", never "forbidden": ids must not leak existence.
    return Refusal(RefusalKind.NOT_FOUND, "resource_missing", f"No such {what}", param)


def conflict(code: str, message: str, param: str | None = None) -> Refusal:
    return Refusal(RefusalKind.CONFLICT, code, message, param)
