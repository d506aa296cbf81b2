"""`paymux keys create --merchant M`: make a merchant's secret key, shown once, stored hashed."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sqlite3
import sys
import time

from paymux.api.app import new_api_key_secret, open_store, register_api_key
from paymux.config import ConfigError, load_config
from paymux.domain.records import ApiKey, Merchant

#: The key shapes a merchant's PSP SDK accepts unchanged (it checks before sending anything), for
#: the pass-through (docs/dropin.md): checkout-sdk wants ``sk_`` / ``sk_sbox_`` + 27 base32
#: characters; Stripe's SDK and Adyen's take any string (Stripe keys read ``sk_test_...``).
SHAPES = ("paymux", "stripe", "adyen", "checkout")
_B32 = "abcdefghijklmnopqrstuvwxyz234567"


def shaped_secret(shape: str, mode: str) -> str:
    """A new secret key in a PSP's shape; every shape has at least 128 random bits."""
    if shape == "checkout":
        body = "".join(secrets.choice(_B32) for _ in range(27))  # 135 bits
        return f"sk_sbox_{body}" if mode == "test" else f"sk_{body}"
    if shape == "adyen":
        return f"AQE{secrets.token_urlsafe(32)}"
    return new_api_key_secret(mode)  # paymux's own shape is Stripe's: sk_test_ / sk_live_


async def create(
    config_path: str | None, merchant_id: str, mode: str, shape: str = "paymux"
) -> str:
    config = load_config(config_path)
    if config.storage.backend == "sqlite":
        # A fresh directory: the data folder is created, as `paymux serve` does.
        os.makedirs(os.path.dirname(config.storage.path) or ".", exist_ok=True)
    store = open_store(config)
    await store.open()
    try:
        await store.ensure_merchant(
            Merchant(id=merchant_id, name=merchant_id, created_at=time.time())
        )
        secret = shaped_secret(shape, mode)
        await register_api_key(store, merchant_id, secret)
        return secret
    finally:
        await store.close()


class NoStore(Exception):
    pass


async def list_keys(config_path: str | None, merchant_id: str) -> list[ApiKey]:
    config = load_config(config_path)
    if config.storage.backend == "sqlite" and not os.path.exists(config.storage.path):
        raise NoStore(
            f"no store at {config.storage.path} yet: create a key first "
            "(paymux keys create --merchant M) or pass --config"
        )
    store = open_store(config)
    await store.open()
    try:
        return await store.list_api_keys(merchant_id)
    finally:
        await store.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="paymux keys", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    c = sub.add_parser("create", help="create a secret key for a merchant (created if new)")
    c.add_argument("--merchant", required=True)
    c.add_argument("--mode", choices=["test", "live"], default="test")
    c.add_argument(
        "--shape",
        choices=SHAPES,
        default="paymux",
        help="a key shaped like that PSP's, for its SDK through /proxy/<connector> (docs/dropin.md)",
    )
    c.add_argument("--config")
    ls = sub.add_parser("list", help="list a merchant's keys (prefixes only: secrets are not kept)")
    ls.add_argument("--merchant", required=True)
    ls.add_argument("--config")
    args = parser.parse_args(argv)
    if args.action == "list":
        try:
            keys = asyncio.run(list_keys(args.config, args.merchant))
        except (ConfigError, NoStore, OSError, sqlite3.Error) as exc:
            print(f"paymux keys: {exc}", file=sys.stderr)
            return 2
        for key in keys:
            state = "revoked" if key.revoked_at else "active"
            print(f"{key.id}  {key.prefix}...  {key.mode}  {state}")
        return 0
    if not args.merchant.replace("_", "").replace("-", "").isalnum() or len(args.merchant) > 64:
        print(
            "paymux keys: --merchant must be letters, digits, - or _ (64 at most)", file=sys.stderr
        )
        return 2
    try:
        secret = asyncio.run(create(args.config, args.merchant, args.mode, args.shape))
    except (ConfigError, OSError, sqlite3.Error) as exc:
        print(f"paymux keys: {exc}", file=sys.stderr)
        return 2
    print(secret)
    print(
        "Store this key now: paymux keeps only its hash and cannot show it again.", file=sys.stderr
    )
    return 0
