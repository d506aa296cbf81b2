"""The one API-key hasher and the one admin authenticator, used by every route and the CLI.

Merchant keys are stored as their SHA-256 (a key is 24 random bytes: no salt or stretching is
needed against guessing, and a lookup by hash stays one index probe). The admin key is compared in
constant time. Failed attempts of either kind go through the edge's rate limiter before anything
else runs (see `paymux.api.edge`).
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from paymux.api.edge import EDGE
from paymux.api.errors import ApiError

#: How many leading characters of a key are stored and shown (`sk_test_AbCd`), and counted by the
#: failed-authentication limit per key prefix.
KEY_PREFIX_LEN = 12


def hash_api_key(secret: str) -> str:
    """The stored form of a merchant's secret key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def bearer_secret(request: web.Request) -> str | None:
    """The credential of `Authorization: Bearer <secret>`, or None."""
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        return None
    return secret


def authenticate_admin(request: web.Request, expected: str) -> None:
    """The admin key as `Authorization: Bearer <admin_api_key>`; merchant keys do not pass."""
    edge = request.app.get(EDGE)
    secret = bearer_secret(request)
    if edge is not None:
        edge.check_auth(request.remote, None)
    if secret is None:
        if edge is not None:
            edge.auth_failed(request.remote, None)
        raise ApiError(
            401,
            "authentication_error",
            "admin_key_missing",
            "Send the admin key as `Authorization: Bearer <admin_api_key>`",
        )
    if not expected:
        raise ApiError(
            401,
            "authentication_error",
            "admin_api_disabled",
            "The admin API is disabled: set admin_api_key or PAYMUX_ADMIN_KEY",
        )
    if not hmac.compare_digest(secret.encode(), expected.encode()):
        if edge is not None:
            edge.auth_failed(request.remote, None)
        raise ApiError(401, "authentication_error", "admin_key_invalid", "Invalid admin key")
