"""Gateway configuration: TOML decoded into msgspec structs, secrets overridable from the environment.

Environment overrides (secrets never need to live in the file):
- ``PAYMUX_ADMIN_KEY``: the admin API key (for `/admin/...`).
- ``PAYMUX_VAULT_KEYS``: ``"1:<base64 32 bytes>,2:<base64 32 bytes>"``; the highest version encrypts.
- ``PAYMUX_FINGERPRINT_KEY`` / ``PAYMUX_HASH_KEY``: base64 32 bytes each.
- ``PAYMUX_CONNECTOR_<NAME>_API_KEY``: a connector's secret (NAME upper-cased, `-` as `_`).
- ``PAYMUX_DATABASE``: the SQLite path.
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
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 64 * 1024
    log_level: str = "info"
    access_log: bool = True  # one wide JSON line per request


class StorageConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    backend: str = "sqlite"
    path: str = ".paymux/paymux.db"


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


class GatewayConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
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
    if "PAYMUX_DATABASE" in os.environ:
        config.storage.path = os.environ["PAYMUX_DATABASE"]
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
