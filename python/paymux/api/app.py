"""Assemble the gateway application: store, vault, connectors, router, policy, routes."""

from __future__ import annotations

import secrets
import time

from aiohttp import web

from paymux import _core
from paymux.api.admin_routing import RoutingAdmin, add_routing_admin_routes
from paymux.api.analytics import add_analytics_routes
from paymux.api.auth import KEY_PREFIX_LEN, hash_api_key
from paymux.api.compat_stripe import add_stripe_routes
from paymux.api.edge import install as install_edge
from paymux.api.http import (
    HASH_KEY,
    IDEMPOTENCY_TTL,
    KEY_CACHE,
    SERVICE,
    STORE,
    add_routes,
    request_context,
)
from paymux.api.openapi import publish_connectors
from paymux.api.passthrough import add_passthrough_routes
from paymux.api.redact import add_redact_routes
from paymux.api.views import HttpAnswers
from paymux.config import GatewayConfig, Secrets
from paymux.connectors.registry import create_connector
from paymux.dashboard import add_dashboard_routes
from paymux.domain.ids import new_id
from paymux.domain.records import ApiKey, Merchant
from paymux.failover.registry import load_policy
from paymux.observability.logs import log
from paymux.payments.reconciler import Reconciler
from paymux.payments.recovery import Recovery
from paymux.payments.service import PaymentService
from paymux.routing.router import Router
from paymux.store.base import Store
from paymux.store.sqlite import SqliteStore

RECONCILER: web.AppKey[Reconciler] = web.AppKey("reconciler", Reconciler)
RECOVERY: web.AppKey[Recovery] = web.AppKey("recovery", Recovery)
POLICY_ERRORS: web.AppKey[list[str]] = web.AppKey("policy_errors", list)


def new_api_key_secret(mode: str = "test") -> str:
    return f"sk_{mode}_{secrets.token_urlsafe(24)}"


async def register_api_key(store: Store, merchant_id: str, secret: str) -> ApiKey:
    mode = "live" if secret.startswith("sk_live_") else "test"
    key = ApiKey(
        id=new_id("key"),
        merchant_id=merchant_id,
        key_hash=hash_api_key(secret),
        prefix=secret[:KEY_PREFIX_LEN],
        mode=mode,
        created_at=time.time(),
    )
    await store.add_api_key(key)
    return key


def open_store(config: GatewayConfig) -> Store:
    """The configured backend (``[storage]``, or PAYMUX_DATABASE: a postgresql:// URL selects
    PostgreSQL whatever the file says). Not yet opened: ``await store.open()`` migrates."""
    storage = config.storage
    if storage.backend == "postgresql" or storage.path.startswith(("postgresql://", "postgres://")):
        from paymux.store.postgres import PostgresStore  # asyncpg only where it is used

        return PostgresStore(
            storage.url or storage.path,
            pool_min=storage.pool_min,
            pool_max=storage.pool_max,
            connect_timeout_s=storage.connect_timeout_s,
            acquire_timeout_s=storage.acquire_timeout_s,
            statement_timeout_s=storage.statement_timeout_s,
        )
    if storage.backend != "sqlite":
        raise ValueError(f"unknown storage backend {storage.backend!r}")
    return SqliteStore(storage.path)


def build_gateway(
    config: GatewayConfig,
    keys: Secrets,
    store: Store | None = None,
    config_path: str | None = None,
) -> web.Application:
    app = web.Application(
        middlewares=[request_context], client_max_size=config.server.max_body_bytes
    )
    install_edge(app, config.server, config.rate_limits)
    store = store or open_store(config)
    vault = _core.Vault(keys.vault_keys, keys.fingerprint_key)
    connectors = {c.name: create_connector(c.to_connector_config()) for c in config.connectors}
    router = Router(connectors, config.routing)
    policy, policy_errors = load_policy(config.payments.failover_policy)
    answers = HttpAnswers()
    service = PaymentService(config, store, vault, connectors, router, policy, answers)
    reconciler = Reconciler(store, connectors, config.reconciler, service.operations, answers)
    service.reconciler = reconciler
    recovery = Recovery(config, store, connectors, answers, service.operations, reconciler)
    reconciler.orphans = recovery.resolve_stale
    routing_admin = RoutingAdmin(
        router, store, config.admin_api_key, config.routing, config_path, config.reconciler
    )
    app[RECONCILER] = reconciler
    app[RECOVERY] = recovery
    app[POLICY_ERRORS] = [str(e) for e in policy_errors]
    app[STORE] = store
    app[SERVICE] = service
    app[HASH_KEY] = keys.hash_key
    app[KEY_CACHE] = {}
    app[IDEMPOTENCY_TTL] = config.payments.idempotency_ttl_s
    add_routes(app)
    publish_connectors(connectors)  # the OpenAPI document names the connectors one may pin
    add_stripe_routes(app, answers)  # the drop-in modes (docs/dropin.md)
    add_passthrough_routes(app, config.proxy)
    add_redact_routes(app, config.redact_routes)
    add_analytics_routes(app, admin_api_key=config.admin_api_key, store=store, router=router)
    add_dashboard_routes(app)
    add_routing_admin_routes(app, routing_admin)

    async def startup(app: web.Application) -> None:
        await store.open()
        for connector in connectors.values():
            await connector.start()
        if config.demo is not None and config.demo.api_key:
            await store.ensure_merchant(
                Merchant(id=config.demo.merchant_id, name="Demo merchant", created_at=time.time())
            )
            await register_api_key(store, config.demo.merchant_id, config.demo.api_key)
        # One SQLite node's workers all start together: whatever is in flight is an orphan.
        recovered = await recovery.run(immediate=isinstance(store, SqliteStore))
        await routing_admin.start()
        reconciler.start()
        log(
            "gateway_started",
            connectors=sorted(connectors),
            recovered_attempts=recovered,
            routing_version=router.version,
            failover_policy=getattr(policy, "name", type(policy).__name__),
            policy_errors=app[POLICY_ERRORS] or None,
        )

    async def cleanup(app: web.Application) -> None:
        await reconciler.stop()
        await routing_admin.stop()
        for connector in connectors.values():
            await connector.close()
        await store.close()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    return app
