"""`paymux run-default` (what `make run` starts): the sandbox PSPs and the gateway, in one process.

SQLite storage, generated vault keys, the three sandbox PSPs on port 8090 and the gateway on 8080,
with a demo merchant whose API key is printed on start, and an admin key (generated once, kept next
to the vault keys in `.paymux/admin_key`) so the dashboard opens at once from the printed URL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import sys
import tomllib
from importlib.resources import files
from pathlib import Path

import uvloop
from aiohttp import web

from paymux.api.app import build_gateway
from paymux.api.edge import EdgeRunner
from paymux.config import GatewayConfig, config_from_dict, load_secrets
from paymux.observability import logs
from paymux.sandbox.app import build_app as build_sandbox
from paymux.sandbox.scenario import Scenario


def default_config() -> GatewayConfig:
    """The embedded default configuration (python/paymux/default.toml)."""
    text = files("paymux").joinpath("default.toml").read_text()
    return config_from_dict(tomllib.loads(text))


def admin_key_for(config: GatewayConfig) -> str:
    """The admin key: the config's or PAYMUX_ADMIN_KEY if set, else one generated on first run and
    kept next to the vault keys (`.paymux/admin_key`, mode 0600), so the dashboard URL is stable."""
    if config.admin_api_key:
        return config.admin_api_key
    path = Path(config.vault.key_file).parent / "admin_key"
    if path.is_file():
        key = path.read_text().strip()
        if key:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = f"adm_{secrets.token_urlsafe(24)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


def dashboard_url(config: GatewayConfig) -> str:
    """Where to open the dashboard; the page moves `?key=` into the tab's sessionStorage."""
    return f"http://{config.server.host}:{config.server.port}/dashboard?key={config.admin_api_key}"


async def start_both(
    config: GatewayConfig, sandbox_port: int, scenario: Scenario | None = None, seed: int = 0
) -> tuple[web.AppRunner, web.AppRunner]:
    """Start the sandbox (on `sandbox_port`) and then the gateway; returns (gateway, sandbox)
    runners, to be cleaned up by the caller. Raises OSError when a port is taken."""
    sandbox = web.AppRunner(build_sandbox(scenario, seed), access_log=None, handle_signals=False)
    await sandbox.setup()
    try:
        await web.TCPSite(sandbox, config.server.host, sandbox_port).start()
        gateway = EdgeRunner(build_gateway(config, load_secrets(config.vault)))
        await gateway.setup()
    except BaseException:
        await sandbox.cleanup()
        raise
    try:
        await gateway.serve(config.server.host, config.server.port)
    except BaseException:
        await gateway.cleanup()
        await sandbox.cleanup()
        raise
    return gateway, sandbox


def use_sandbox_port(config: GatewayConfig, sandbox_port: int) -> None:
    """Point the default connectors (sandbox on :8090) at another sandbox port."""
    if sandbox_port != 8090:
        for c in config.connectors:
            c.base_url = c.base_url.replace(":8090/", f":{sandbox_port}/")


async def run_both(config: GatewayConfig, sandbox_port: int) -> None:
    gateway, sandbox = await start_both(config, sandbox_port)
    base = f"http://{config.server.host}:{config.server.port}"
    key = config.demo.api_key if config.demo else "<your key>"
    print(
        f"\npaymux is running on its embedded default\n"
        f"  gateway  {base}   (OpenAPI: {base}/openapi.json)\n"
        f"  sandbox  http://{config.server.host}:{sandbox_port}  (stripe, adyen, checkout)\n"
        f"  storage  {config.storage.path}\n"
        f"  demo merchant API key: {key}\n"
        f"  admin key: {config.admin_api_key}\n"
        f"  dashboard: {dashboard_url(config)}\n\n"
        f"Try:\n  curl -s {base}/v1/payments -H 'Authorization: Bearer {key}' \\\n"
        f"    -H 'Content-Type: application/json' -H 'Idempotency-Key: order-1001' \\\n"
        f'    -d \'{{"amount": 1999, "currency": "EUR", "reference": "order-1001", '
        f'"payment_method": {{"card": {{"number": "4242424242424242", "exp_month": 12, '
        f'"exp_year": 2034, "cvc": "123"}}}}}}\'\n'
        f"  or drive a minute of traffic with an outage: paymux demo (on other ports: "
        f"--port 8081 --sandbox-port 8091)\n\nCtrl-C stops it.",
        file=sys.stderr,
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await gateway.cleanup()
    await sandbox.cleanup()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="paymux run-default", description=__doc__)
    parser.add_argument("--port", type=int, default=8080, help="gateway port")
    parser.add_argument("--sandbox-port", type=int, default=8090)
    args = parser.parse_args(argv)
    config = default_config()
    config.server.port = args.port
    use_sandbox_port(config, args.sandbox_port)
    config.admin_api_key = admin_key_for(config)
    logs.configure(os.environ.get("PAYMUX_LOG_LEVEL", "warning"))
    os.makedirs(os.path.dirname(config.storage.path) or ".", exist_ok=True)
    uvloop.run(run_both(config, args.sandbox_port))
    return 0
