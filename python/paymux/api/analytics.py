"""Admin HTTP routes: `/admin/analytics/{report}` and `/metrics`, and the admin key check."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from paymux.analytics.queries import REPORTS
from paymux.analytics.queries import report as compute_report
from paymux.api import auth
from paymux.api.analytics_params import parse_query
from paymux.api.errors import ApiError, not_found
from paymux.observability import metrics

ADMIN_API_KEY: web.AppKey[str] = web.AppKey("admin_api_key", str)
ANALYTICS_DB: web.AppKey[str] = web.AppKey("analytics_db", str)
ANALYTICS_STORE: web.AppKey[Any] = web.AppKey("analytics_store", object)
ROUTER: web.AppKey[Any] = web.AppKey("analytics_router", object)
ANALYTICS_SLOTS: web.AppKey[asyncio.Semaphore] = web.AppKey("analytics_slots", asyncio.Semaphore)

#: Health is "right now": the last five minutes unless the caller says otherwise.
HEALTH_RANGE_S = 300.0


def authenticate_admin(request: web.Request) -> None:
    """The admin key as `Authorization: Bearer <admin_api_key>` (paymux.api.auth's check)."""
    auth.authenticate_admin(request, request.app.get(ADMIN_API_KEY, ""))


async def analytics(request: web.Request) -> web.StreamResponse:
    from paymux.api.http import json_response

    authenticate_admin(request)
    report = request.match_info["report"]
    if report not in REPORTS:
        raise not_found(f"report {report!r}; reports are {', '.join(REPORTS)}")
    query = parse_query(
        request.query,
        report=report,
        default_range_s=HEALTH_RANGE_S if report == "health" else 24 * 3600.0,
    )
    path = request.app.get(ANALYTICS_DB)
    store = request.app.get(ANALYTICS_STORE)
    if not path and getattr(store, "analytics_connection", None) is None:
        raise ApiError(
            501,
            "api_error",
            "analytics_unavailable",
            "Analytics needs a SQLite or PostgreSQL store",
        )
    async with request.app[ANALYTICS_SLOTS]:
        # Heavy scans off the event loop: SQLite on a worker thread with its own read-only
        # connection, PostgreSQL on the store's analytics pool (paymux.analytics.queries.report).
        body = await compute_report(path or store, report, query)
    if report == "health":
        _add_breakers(request.app, body, query.group_by)
    return json_response(200, body, headers={"Cache-Control": "no-store"})


def _add_breakers(app: web.Application, body: dict[str, Any], group_by: tuple[str, ...]) -> None:
    """Health per connector also carries the breaker state, and lists idle connectors too."""
    if group_by != ("connector",):
        return
    states = dict(metrics.breaker_states(app.get(ROUTER)))
    seen = set()
    for group in body["groups"]:
        name = group["key"]["connector"]
        seen.add(name)
        group["breaker"] = states.get(name, "closed")
    for name in sorted(set(states) - seen):
        if body.get("filters", {}).get("connector") and name not in body["filters"]["connector"]:
            continue
        body["groups"].append(
            {
                "key": {"connector": name},
                "attempts": 0,
                "approved": 0,
                "declined": 0,
                "errors": 0,
                "approval_rate": None,
                "error_rate": None,
                "p50_ms": None,
                "p95_ms": None,
                "breaker": states[name],
            }
        )


async def metrics_endpoint(request: web.Request) -> web.StreamResponse:
    router = request.app.get(ROUTER)
    body, content_type = metrics.exposition(lambda: metrics.breaker_states(router))
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


def add_analytics_routes(
    app: web.Application, *, admin_api_key: str, store: Any, router: Any
) -> None:
    app[ADMIN_API_KEY] = admin_api_key
    app[ANALYTICS_DB] = str(getattr(store, "path", "") or "")
    app[ANALYTICS_STORE] = store
    app[ROUTER] = router
    app[ANALYTICS_SLOTS] = asyncio.Semaphore(2)
    app.router.add_get("/metrics", metrics_endpoint)
    app.router.add_get("/admin/analytics/{report}", analytics)
