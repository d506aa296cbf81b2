"""The real sandbox and the real gateway on loopback ports, an optional lagging proxy in front of
the sandbox's Stripe, and a check after every test that paymux's records and the PSPs' ledger
agree: no payment holds two authorizations, and no authorization is unknown to paymux."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from paymux.api.app import build_gateway, new_api_key_secret, register_api_key
from paymux.api.http import STORE
from paymux.config import config_from_dict, load_secrets
from paymux.domain.records import Merchant
from paymux.observability import logs
from paymux.sandbox.app import build_app as build_sandbox

from tests.gateway.conftest import Gateway, gateway_config, query_rows, start_app

ADMIN_KEY = "adm_test_failover_key"


class SearchLagProxy:
    """Forwards everything to the sandbox's Stripe, but makes `/v1/payment_intents/search` behave
    like real Stripe's, whose index lags writes ("up to a minute", Stripe's docs): an intent
    created less than `lag_s` ago is not found yet. With `down_s`, searches for such intents fail
    with a 503 instead (the lookup itself is unavailable for a while)."""

    def __init__(self, upstream: str, lag_s: float = 0.0, down_s: float = 0.0) -> None:
        self.upstream = upstream
        self.lag_s = lag_s
        self.down_s = down_s
        self.seen: dict[str, float] = {}  # idempotency key (our attempt reference) -> first sent
        self.hidden = 0
        self.session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self.session is not None
        body = await request.read()
        key = request.headers.get("Idempotency-Key")
        if request.method == "POST" and request.path.endswith("/v1/payment_intents") and key:
            self.seen.setdefault(key, time.monotonic())
        if request.path.endswith("/v1/payment_intents/search"):
            query = request.query.get("query", "")
            for ref, at in self.seen.items():
                age = time.monotonic() - at
                if f"'{ref}'" in query:
                    if age < self.down_s:
                        return web.json_response({"error": {"type": "api_error"}}, status=503)
                    if age < self.lag_s:
                        self.hidden += 1
                        return web.json_response(
                            {
                                "object": "search_result",
                                "data": [],
                                "has_more": False,
                                "url": request.path,
                            }
                        )
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in ("host", "content-length", "transfer-encoding")
        }
        try:
            async with self.session.request(
                request.method, self.upstream + request.path_qs, data=body, headers=headers
            ) as upstream:
                data = await upstream.read()
                return web.Response(
                    status=upstream.status, body=data, content_type=upstream.content_type
                )
        except aiohttp.ClientError:  # the sandbox dropped the connection: so do we
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=502)


def _reads_sqlite_file(request: pytest.FixtureRequest) -> bool:
    """The test reads the SQLite file itself (tests/failover/helpers.py's events/attempt_rows
    take the file's path, and some tests connect to it): it runs on SQLite only."""
    import inspect

    try:
        return "db_path" in inspect.getsource(request.function)
    except (OSError, TypeError):
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
async def gw(tmp_path: Path, request: pytest.FixtureRequest):
    """The gateway with an admin key and a fast reconciler, on SQLite and on PostgreSQL (each test
    runs on both; one that reads the SQLite file runs on SQLite only). Markers:
    `gateway_config(**sections)`, `sandbox_scenario(scenario)`, `stripe_search_lag(lag_s=...,
    down_s=...)`."""
    backend = request.param
    database_url = ""
    if backend == "postgresql":
        if _reads_sqlite_file(request):
            pytest.skip("SQLite only: reads the SQLite file (tests/failover/helpers.py)")
        database_url = request.getfixturevalue("pg_url")
        # A config the test builds itself (a second worker, say) is on the same database.
        request.getfixturevalue("monkeypatch").setenv("PAYMUX_DATABASE", database_url)
    marker = request.node.get_closest_marker("gateway_config")
    overrides: dict[str, Any] = {
        "admin_api_key": ADMIN_KEY,
        "reconciler": {
            "interval_s": 0.1,
            "pending_check_s": 0.3,
            "late_auth_check_s": 0.3,
            "void_backoff_s": 0.1,
            "routing_poll_s": 0.2,
        },
        "payments": {"sync_timeout_s": 1.0},
    }
    for section, values in (marker.kwargs if marker else {}).items():
        if isinstance(values, dict) and isinstance(overrides.get(section), dict):
            overrides[section] = {**overrides[section], **values}
        else:
            overrides[section] = values
    scenario_marker = request.node.get_closest_marker("sandbox_scenario")
    scenario = scenario_marker.args[0] if scenario_marker else None
    lag_marker = request.node.get_closest_marker("stripe_search_lag")
    log_stream = io.StringIO()
    logs.configure("debug", log_stream)
    sandbox_runner, sandbox_port = await start_app(build_sandbox(scenario, seed=7))
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    raw = gateway_config(tmp_path, sandbox_port, **overrides)
    for c in raw["connectors"]:
        c["timeout_s"] = 1.0
    if database_url:
        raw["storage"] = {**raw["storage"], "backend": "postgresql", "url": database_url}
    proxy = proxy_runner = None
    if lag_marker is not None:
        proxy = SearchLagProxy(sandbox_url, **lag_marker.kwargs)
        proxy.session = aiohttp.ClientSession()
        proxy_runner, proxy_port = await start_app(proxy.app())
        raw["connectors"][0]["base_url"] = f"http://127.0.0.1:{proxy_port}/stripe"
    config = config_from_dict(raw)
    app = build_gateway(config, load_secrets(config.vault))
    runner, port = await start_app(app)
    store = app[STORE]
    keys = {}
    for merchant in ("m_alpha", "m_beta"):
        await store.ensure_merchant(Merchant(id=merchant, name=merchant, created_at=0.0))
        keys[merchant] = new_api_key_secret()
        await register_api_key(store, merchant, keys[merchant])
    session = aiohttp.ClientSession()
    gateway = Gateway(
        url=f"http://127.0.0.1:{port}",
        sandbox_url=sandbox_url,
        keys=keys,
        db_path=tmp_path / "paymux.db",
        app=app,
        log=log_stream,
        session=session,
        extra={"proxy": proxy},
        backend=backend,
        database_url=database_url,
    )
    try:
        yield gateway
        if not getattr(request.node, "skip_ledger_check", False):
            await asyncio.sleep(0.05)
            reconcile_with_ledger(gateway.db_path, await gateway.ledger(), backend, database_url)
    finally:
        await session.close()
        await runner.cleanup()
        if proxy_runner is not None:
            await proxy_runner.cleanup()
            assert proxy is not None and proxy.session is not None
            await proxy.session.close()
        await sandbox_runner.cleanup()
        logging.getLogger("paymux").handlers.clear()


def _holds(p: dict[str, Any]) -> bool:
    if not p["authorized"] or p["voided"]:
        return False
    if p["captured"]:
        return p["refunded"] < p["captured"]
    return p["released"] < p["authorized"]


def reconcile_with_ledger(
    db_path: Path, ledger: dict[str, Any], backend: str = "sqlite", database_url: str = ""
) -> dict[str, Any]:
    """paymux's payments and attempts against what the PSPs hold; AssertionError on a mismatch."""
    where = database_url or str(db_path)
    attempts = {r["reference"]: r for r in query_rows(backend, where, "SELECT * FROM attempts")}
    payments = {r["id"]: r for r in query_rows(backend, where, "SELECT * FROM payments")}
    held: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for psp, book in ledger["psps"].items():
        for p in book["payments"]:
            attempt = attempts.get(p["reference"])
            assert attempt is not None, f"{psp} has a payment paymux never attempted: {p['id']}"
            assert attempt["connector"] == psp
            if _holds(p):
                held.setdefault(attempt["payment_id"], []).append((psp, p))
    for payment_id, holds in held.items():
        assert len(holds) == 1, f"{payment_id} holds funds at {len(holds)} PSPs: {holds}"
        psp, p = holds[0]
        payment = payments[payment_id]
        assert payment["status"] in ("requires_capture", "succeeded"), (
            payment_id,
            payment["status"],
            p,
        )
        assert payment["connector"] == psp and payment["connector_reference"] == p["id"]
    for payment_id, payment in payments.items():
        if payment["status"] in ("requires_capture", "succeeded"):
            assert payment_id in held, f"{payment_id} is {payment['status']} but no PSP holds it"
    return {"payments": len(payments), "held": len(held)}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "stripe_search_lag(lag_s, down_s): Stripe search lags")
    config.addinivalue_line("markers", "gateway_config(**sections): override gateway config")
    config.addinivalue_line("markers", "sandbox_scenario(scenario): run the sandbox with it")


# -- captures, voids and refunds against the ledger (tests/gateway/test_crash_operations.py,
# tests/gateway/test_operation_faults.py, benchmarks/crash_run.py) ------------------------------

#: The kinds of disagreement `ledger_disagreements` reports, in the order it prints them.
DISAGREEMENTS = (
    "amount_received",  # paymux's amount_received != the PSP's captured
    "amount_capturable",  # paymux's amount_capturable != what the PSP still holds uncaptured
    "amount_refunded",  # paymux's amount_refunded != the PSP's refunded
    "status",  # paymux's status does not say what the PSP holds (e.g. failed while captured)
    "payment_in_flight",  # processing, capturing or canceling
    "operation_pending",  # a capture or void row still pending
    "refund_pending",
    "key_in_progress",  # an Idempotency-Key never completed nor released
    "applied_twice",  # one reference applied more than once at the PSP
    "applied_unrecorded",  # applied at the PSP, not succeeded at paymux
    "recorded_unapplied",  # succeeded at paymux, not applied at the PSP
    "double_authorization",  # one payment holds funds through two PSP payments
    "unknown_authorization",  # the PSP holds a payment paymux never attempted
)

_MODIFICATIONS = ("capture", "void", "refund")


def ledger_payments(ledger: dict[str, Any], since: set[str] | None = None) -> list[dict[str, Any]]:
    """Every PSP payment of a `/_sandbox/ledger` answer, flattened (each keeps its `psp`);
    with `since`, only those whose id is not in it (what a test case created)."""
    return [
        p
        for book in ledger["psps"].values()
        for p in book["payments"]
        if since is None or p["id"] not in since
    ]


def event_reference(event: dict[str, Any]) -> str | None:
    """The reference a capture, void or refund event carried: paymux's operation or refund id
    (Adyen and Checkout.com keep `reference`; Stripe the Idempotency-Key and refund metadata)."""
    return (
        event.get("reference")
        or (event.get("metadata") or {}).get("paymux_reference")
        or event.get("idempotency_key")
    )


def ledger_open(p: dict[str, Any]) -> int:
    """What the PSP still holds authorized and uncaptured for one of its payments."""
    if p["voided"] or not p["authorized"]:
        return 0
    return max(p["authorized"] - p["captured"] - p["released"], 0)


def ledger_disagreements(
    db_path: Path | str,
    psp_payments: list[dict[str, Any]],
    payment_ids: set[str] | None = None,
) -> dict[str, list[Any]]:
    """paymux's payments, captures, voids and refunds against the PSPs' ledger, operation by
    operation; {kind: [details]} for every kind in DISAGREEMENTS (empty lists when all agree).
    `psp_payments` are the ledger's payments to consider (`ledger_payments`); `payment_ids`
    limits the paymux side (default: every payment in the database). `db_path` is the SQLite
    file or a postgresql:// URL."""
    where = str(db_path)
    backend = "postgresql" if where.startswith(("postgresql://", "postgres://")) else "sqlite"

    def rows(sql: str) -> list[dict[str, Any]]:
        return query_rows(backend, where, sql)

    payments = {r["id"]: r for r in rows("SELECT * FROM payments")}
    attempts = {r["reference"]: r for r in rows("SELECT * FROM attempts")}
    operations = rows("SELECT * FROM operations")
    refunds = rows("SELECT * FROM refunds")
    keys = rows("SELECT * FROM idempotency WHERE status = 'in_progress'")
    if payment_ids is not None:
        payments = {k: v for k, v in payments.items() if k in payment_ids}
    out: dict[str, list[Any]] = {kind: [] for kind in DISAGREEMENTS}
    by_payment: dict[str, list[dict[str, Any]]] = {}
    for p in psp_payments:
        attempt = attempts.get(p["reference"] or "")
        if attempt is None or attempt["connector"] != p["psp"]:
            if _holds(p):
                out["unknown_authorization"].append((p["psp"], p["id"], p["reference"]))
            continue
        by_payment.setdefault(attempt["payment_id"], []).append(p)
    done: dict[str, dict[str, str]] = {}  # payment id -> {reference: kind} succeeded at paymux
    for op in operations:
        if op["payment_id"] in payments:
            if op["status"] == "pending":
                out["operation_pending"].append((op["payment_id"], op["kind"], op["id"]))
            elif op["status"] == "succeeded":
                done.setdefault(op["payment_id"], {})[op["reference"]] = op["kind"]
    for re in refunds:
        if re["payment_id"] in payments:
            if re["status"] == "pending":
                out["refund_pending"].append((re["payment_id"], re["id"]))
            elif re["status"] == "succeeded":
                done.setdefault(re["payment_id"], {})[re["reference"]] = "refund"
    for key in keys:
        if payment_ids is None or key["payment_id"] in payments:
            out["key_in_progress"].append((key["key"], key["payment_id"], key["operation_id"]))
    for pid, pay in payments.items():
        status = pay["status"]
        if status in ("processing", "capturing", "canceling"):
            out["payment_in_flight"].append((pid, status))
        books = by_payment.get(pid, [])
        holding = [p for p in books if _holds(p)]
        if len(holding) > 1:
            out["double_authorization"].append((pid, [(p["psp"], p["id"]) for p in holding]))
        main = next(
            (
                p
                for p in books
                if p["id"] == pay["connector_reference"] and p["psp"] == pay["connector"]
            ),
            None,
        )
        for p in books:  # another PSP payment of this one's (a late authorization) holds nothing
            if p is not main and _holds(p) and len(holding) == 1:
                out["double_authorization"].append((pid, [(p["psp"], p["id"])]))
        captured = main["captured"] if main else 0
        refunded = main["refunded"] if main else 0
        still_open = ledger_open(main) if main else 0
        if pay["amount_received"] != captured:
            out["amount_received"].append((pid, status, pay["amount_received"], captured))
        if pay["amount_refunded"] != refunded:
            out["amount_refunded"].append((pid, status, pay["amount_refunded"], refunded))
        if pay["amount_capturable"] != still_open:
            out["amount_capturable"].append((pid, status, pay["amount_capturable"], still_open))
        expected = {
            "requires_capture": still_open > 0 and captured == 0,
            "succeeded": captured > 0,
            "canceled": main is not None and main["voided"] and captured == 0,
            "failed": main is None or not _holds(main),
        }.get(status)
        if expected is False:
            out["status"].append((pid, status, main and {k: main[k] for k in _AMOUNTS}))
        # Operation by operation: each reference once at the PSP, and only what paymux recorded.
        ours = done.get(pid, {})
        seen: dict[str, int] = {}
        for e in main["events"] if main else []:
            if e["type"] in _MODIFICATIONS:
                ref = event_reference(e)
                if ref is None and e["type"] == "capture" and pay["capture_method"] == "automatic":
                    continue  # the authorization's own capture (automatic capture)
                ref = ref or "?"
                seen[ref] = seen.get(ref, 0) + 1
                if ours.get(ref) != e["type"]:
                    out["applied_unrecorded"].append((pid, e["type"], ref, e.get("delivery")))
        out["applied_twice"].extend((pid, ref, n) for ref, n in seen.items() if n > 1)
        out["recorded_unapplied"].extend(
            (pid, kind, ref) for ref, kind in ours.items() if ref not in seen
        )
    return out


_AMOUNTS = ("authorized", "captured", "refunded", "released", "voided", "status")


def assert_ledger_agrees(disagreements: dict[str, list[Any]]) -> None:
    found = {kind: rows for kind, rows in disagreements.items() if rows}
    assert not found, f"paymux and the PSPs' ledger disagree: {found}"
