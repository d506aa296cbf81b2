"""Gateway configuration: TOML decoded into msgspec structs, secrets overridable from the environment.

Environment overrides (secrets never need to live in the file):
- ``PAYMUX_ADMIN_KEY``: the admin API key (for `/admin/...`).
- ``PAYMUX_VAULT_KEYS``: ``"1:<base64 32 bytes>,2:<base64 32 bytes>"``; the highest version encrypts.
- ``PAYMUX_FINGERPRINT_KEY`` / ``PAYMUX_HASH_KEY``: base64 32 bytes each.
- ``PAYMUX_CONNECTOR_<NAME>_API_KEY``: a connector's secret (NAME upper-cased, `-` as `_`).
- ``PAYMUX_DATABASE``: the database, whatever ``[storage]`` says: a ``postgresql://`` URL selects
  PostgreSQL, anything else is a SQLite path.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from paymux.connectors.base import ConnectorConfig


class ServerConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The HTTP edge: listening, limits on slow and oversized clients, logging (docs: README)."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 64 * 1024  # checked against Content-Length before reading: 413
    log_level: str = "info"
    access_log: bool = True  # one wide, scrubbed JSON line per request (event "request")
    # A client that trickles its request line and headers is cut off (408) this long after its
    # first byte; its body, this long after the headers ended. An idle keep-alive connection is
    # closed after keepalive_timeout_s.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    keepalive_timeout_s: float = 75.0
    max_header_bytes: int = 16 * 1024  # request line and all headers together: 431 beyond
    max_header_line_bytes: int = 8190  # one header line or the request line
    max_headers: int = 64
    # Per worker: beyond it a new connection gets a 503 and is closed (never queued unbounded).
    max_connections: int = 1024
    # How long a response still being read when the server stops may take (graceful shutdown).
    shutdown_timeout_s: float = 15.0


class MerchantRateLimit(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    rps: float
    burst: int


class RateLimitConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Abuse limits, per worker process (each worker keeps its own counters)."""

    enabled: bool = True
    # Failed authentications (missing or invalid key) per source address and per key prefix in a
    # window; past the limit, 429 with Retry-After before any store access.
    auth_failure_window_s: float = 60.0
    auth_failures_per_source: int = 20
    auth_failures_per_prefix: int = 20
    # Past this many failures in the window, a source is refused at the connection level (its
    # connections closed, new ones dropped by the kernel where possible) for ban_s.
    ban_after_failures: int = 100
    ban_s: float = 300.0
    # Per-merchant request rate (token bucket): `merchant_rps` requests per second sustained,
    # `merchant_burst` at once; 0 turns it off. Per worker: with N workers the gateway-wide rate
    # is about N times this. `merchants` overrides both for named merchants.
    merchant_rps: float = 500.0
    merchant_burst: int = 1000
    merchants: dict[str, MerchantRateLimit] = msgspec.field(default_factory=dict)
    # Addresses never rate limited or banned (a load balancer's health checker, say).
    exempt_sources: list[str] = msgspec.field(default_factory=list)


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(value: str) -> bool:
    return value.startswith(POSTGRES_SCHEMES)


class StorageConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    backend: str = "sqlite"  # "sqlite" (one node) or "postgresql" (several nodes, docs/cluster.md)
    path: str = ".paymux/paymux.db"  # the SQLite file
    url: str = ""  # postgresql://user:password@host:port/db; a URL in `path` means the same
    # PostgreSQL pool, per process (a node with N workers holds up to N * pool_max connections).
    pool_min: int = 2
    pool_max: int = 10
    connect_timeout_s: float = 5.0
    acquire_timeout_s: float = 5.0  # waiting for a free pooled connection: then 503
    statement_timeout_s: float = 15.0

    def select(self, database: str | None = None) -> None:
        """Settle the backend: ``database`` (PAYMUX_DATABASE) wins over the file; a
        ``postgresql://`` URL, wherever it is given, selects PostgreSQL (never a SQLite file
        under a directory named after the URL)."""
        if database is not None:
            if is_postgres_url(database):
                self.backend, self.url, self.path = "postgresql", database, ""
            else:
                self.backend, self.path = "sqlite", database
        elif is_postgres_url(self.path):
            self.backend, self.url, self.path = "postgresql", self.path, ""
        elif self.backend in ("postgres", "postgresql"):
            self.backend = "postgresql"
        if self.backend == "postgresql" and not is_postgres_url(self.url):
            raise ConfigError('[storage] backend = postgresql needs url = "postgresql://..."')
        if self.backend not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"[storage] backend must be sqlite or postgresql, not {self.backend!r}"
            )


class VaultConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Where generated keys live when the environment gives none (embedded default only).
    key_file: str = ".paymux/keys.json"
    generate_if_missing: bool = True


class PaymentsConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    max_attempts: int = 3  # attempts per payment, the first included
    deadline_s: float = 30.0  # total time budget for one payment's attempts
    sync_timeout_s: float = 5.0  # bounded wait for a status check after an ambiguous answer
    idempotency_ttl_s: float = 24 * 3600.0
    failover_policy: str = "default"  # an entry point name in the `paymux.policies` group


class ReconcilerConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The background task that settles ambiguous attempts and voids late authorizations."""

    enabled: bool = True
    interval_s: float = 5.0  # how often the watch list is scanned
    pending_check_s: float = 10.0  # between syncs of an attempt a payment is waiting on
    late_auth_check_s: float = 30.0  # between syncs of an attempt the payment moved away from
    late_auth_watch_s: float = 24 * 3600.0  # how long such an attempt is watched
    void_backoff_s: float = 1.0  # first retry delay of a failed void; doubles each time
    void_backoff_max_s: float = 300.0
    # A payment waiting for its customer's 3-D Secure answer longer than this fails
    # `authentication_expired` (and an authorization that surfaces later is voided).
    requires_action_expiry_s: float = 3600.0
    routing_poll_s: float = 1.0  # how often a worker checks the active routing version
    config_poll_s: float = 2.0  # how often the config file's mtime is checked (with --config)


class DemoConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A merchant created on start, so a newcomer can pay at once. Off unless configured."""

    merchant_id: str = "demo"
    api_key: str = ""


class ConnectorEntry(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    kind: str
    base_url: str
    api_key: str = ""
    merchant_account: str | None = None
    webhook_secret: str | None = None
    timeout_s: float = 8.0
    connect_timeout_s: float = 2.0
    max_connections: int = 100
    extra: dict[str, str] = msgspec.field(default_factory=dict)

    def to_connector_config(self) -> ConnectorConfig:
        env = f"PAYMUX_CONNECTOR_{self.name.upper().replace('-', '_')}_API_KEY"
        return ConnectorConfig(
            name=self.name,
            kind=self.kind,
            base_url=self.base_url.rstrip("/"),
            api_key=os.environ.get(env, self.api_key),
            merchant_account=self.merchant_account,
            webhook_secret=self.webhook_secret,
            timeout_s=self.timeout_s,
            connect_timeout_s=self.connect_timeout_s,
            max_connections=self.max_connections,
            extra=self.extra,
        )


class ProxyConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The transparent pass-through, `/proxy/{connector}/...` (docs/dropin.md)."""

    enabled: bool = True
    # Answer 503 (`Paymux-Breaker: open`) instead of forwarding while the connector's breaker
    # is open; the pass-through never retries nor reroutes either way.
    refuse_when_breaker_open: bool = True
    max_connections: int = 100  # keep-alive pool per PSP


class RedactRoute(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An inbound tokenizing route in front of the merchant's own backend (docs/dropin.md)."""

    path: str  # e.g. "/checkout/orders": served by paymux, forwarded to `upstream`
    upstream: str  # the merchant's backend URL the request is forwarded to
    merchant: str  # the merchant whose vault the cards go into
    # Card fields to replace with tokens: JSON paths ("card.number") and form field names
    # ("card_number"). The expiry fields, when named, go into the token and are removed.
    json_fields: list[str] = msgspec.field(default_factory=list)
    form_fields: list[str] = msgspec.field(default_factory=list)
    exp_month_field: str | None = None
    exp_year_field: str | None = None
    cvc_fields: list[str] = msgspec.field(default_factory=list)  # removed: never forwarded
    cors_origins: list[str] = msgspec.field(default_factory=list)  # the checkout pages' origins
    methods: list[str] = msgspec.field(default_factory=lambda: ["POST"])
    timeout_s: float = 10.0


class GatewayConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    rate_limits: RateLimitConfig = msgspec.field(default_factory=RateLimitConfig)
    storage: StorageConfig = msgspec.field(default_factory=StorageConfig)
    vault: VaultConfig = msgspec.field(default_factory=VaultConfig)
    payments: PaymentsConfig = msgspec.field(default_factory=PaymentsConfig)
    reconciler: ReconcilerConfig = msgspec.field(default_factory=ReconcilerConfig)
    # The `[routing]` table as written: compiled by paymux.routing.router (the routing engine's
    # config, or the legacy `default_order` list); kept raw so that it can be stored per version
    # and hot-reloaded.
    routing: dict[str, Any] = msgspec.field(default_factory=dict)
    demo: DemoConfig | None = None
    admin_api_key: str = ""
    connectors: list[ConnectorEntry] = msgspec.field(default_factory=list)
    proxy: ProxyConfig = msgspec.field(default_factory=ProxyConfig)
    redact_routes: list[RedactRoute] = msgspec.field(default_factory=list)


class ConfigError(ValueError):
    pass


def load_config(path: str | os.PathLike[str] | None) -> GatewayConfig:
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
    return config_from_dict(raw)


def config_from_dict(raw: dict[str, Any]) -> GatewayConfig:
    try:
        config = msgspec.convert(raw, GatewayConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid config: {exc}") from exc
    if "PAYMUX_ADMIN_KEY" in os.environ:
        config.admin_api_key = os.environ["PAYMUX_ADMIN_KEY"]
    config.storage.select(os.environ.get("PAYMUX_DATABASE"))
    names = [c.name for c in config.connectors]
    if len(set(names)) != len(names):
        raise ConfigError("connector names must be unique")
    from paymux.routing.router import RoutingCompileError, compile_routing

    if names or config.routing:  # a config without connectors (keys CLI) routes nowhere
        try:
            compile_routing(config.routing, names)
        except RoutingCompileError as exc:
            raise ConfigError(f"invalid [routing]: {exc}") from exc
    return config


class Secrets(msgspec.Struct, kw_only=True):
    vault_keys: dict[int, bytes]
    fingerprint_key: bytes
    hash_key: bytes  # keys the idempotency request hash, which may cover card data

    def __repr__(self) -> str:
        return f"Secrets(vault_key_versions={sorted(self.vault_keys)})"


def _b64(value: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise ConfigError(f"{what} is not valid base64") from exc
    if len(raw) != 32:
        raise ConfigError(f"{what} must be 32 bytes")
    return raw


def load_secrets(config: VaultConfig) -> Secrets:
    """Keys from the environment, else from the key file (created on first run if allowed)."""
    env_keys = os.environ.get("PAYMUX_VAULT_KEYS")
    if env_keys:
        keys: dict[int, bytes] = {}
        for part in env_keys.split(","):
            version, _, value = part.strip().partition(":")
            if not version.isdigit():
                raise ConfigError("PAYMUX_VAULT_KEYS must look like '1:<base64>,2:<base64>'")
            keys[int(version)] = _b64(value, f"vault key {version}")
        fp = os.environ.get("PAYMUX_FINGERPRINT_KEY")
        hk = os.environ.get("PAYMUX_HASH_KEY")
        if not fp or not hk:
            raise ConfigError("PAYMUX_FINGERPRINT_KEY and PAYMUX_HASH_KEY must be set too")
        return Secrets(
            vault_keys=keys,
            fingerprint_key=_b64(fp, "PAYMUX_FINGERPRINT_KEY"),
            hash_key=_b64(hk, "PAYMUX_HASH_KEY"),
        )
    path = Path(config.key_file)
    if not path.exists():
        if not config.generate_if_missing:
            raise ConfigError(f"no vault keys: set PAYMUX_VAULT_KEYS or create {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "vault_keys": {"1": base64.b64encode(secrets.token_bytes(32)).decode()},
            "fingerprint_key": base64.b64encode(secrets.token_bytes(32)).decode(),
            "hash_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh)
    doc = json.loads(path.read_text())
    return Secrets(
        vault_keys={int(v): _b64(k, f"vault key {v}") for v, k in doc["vault_keys"].items()},
        fingerprint_key=_b64(doc["fingerprint_key"], "fingerprint_key"),
        hash_key=_b64(doc["hash_key"], "hash_key"),
    )
