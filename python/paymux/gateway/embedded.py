"""`paymux run-default` (what `make run` starts): the sandbox PSPs and the gateway, in one process.

SQLite storage, generated vault keys, the three sandbox PSPs on port 8090 and the gateway on 8080,
with a demo merchant whose API key is printed on start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tomllib
from importlib.resources import files

import uvloop
from aiohttp import web

from paymux import logs
from paymux.gateway.app import build_gateway
from paymux.gateway.config import GatewayConfig, config_from_dict, load_secrets
from paymux.sandbox.app import build_app as build_sandbox


def default_config() -> GatewayConfig:
    """The embedded default configuration (python/paymux/gateway/default.toml)."""
    text = files("paymux.gateway").joinpath("default.toml").read_text()
    return config_from_dict(tomllib.loads(text))


async def run_both(config: GatewayConfig, sandbox_port: int) -> None:
    sandbox = web.AppRunner(build_sandbox(), access_log=None, handle_signals=False)
    await sandbox.setup()
    await web.TCPSite(sandbox, config.server.host, sandbox_port).start()
    gateway = web.AppRunner(build_gateway(config, load_secrets(config.vault)), access_log=None,
                            handle_signals=False)
    await gateway.setup()
    await web.TCPSite(gateway, config.server.host, config.server.port).start()
    base = f"http://{config.server.host}:{config.server.port}"
    key = config.demo.api_key if config.demo else "<your key>"
    print(
        f"\npaymux is running on its embedded default\n"
        f"  gateway  {base}   (OpenAPI: {base}/openapi.json)\n"
        f"  sandbox  http://{config.server.host}:{sandbox_port}  (stripe, adyen, checkout)\n"
        f"  storage  {config.storage.path}\n"
        f"  demo merchant API key: {key}\n\n"
        f"Try:\n  curl -s {base}/v1/payments -H 'Authorization: Bearer {key}' \\\n"
        f"    -H 'Content-Type: application/json' -H 'Idempotency-Key: order-1001' \\\n"
        f"    -d '{{\"amount\": 1999, \"currency\": \"EUR\", \"reference\": \"order-1001\", "
        f"\"payment_method\": {{\"card\": {{\"number\": \"4242424242424242\", \"exp_month\": 12, "
        f"\"exp_year\": 2034, \"cvc\": \"123\"}}}}}}'\n\nCtrl-C stops it.",
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
    if args.sandbox_port != 8090:
        for c in config.connectors:
            c.base_url = c.base_url.replace(":8090/", f":{args.sandbox_port}/")
    logs.configure(os.environ.get("PAYMUX_LOG_LEVEL", "warning"))
    os.makedirs(os.path.dirname(config.storage.path) or ".", exist_ok=True)
    uvloop.run(run_both(config, args.sandbox_port))
    return 0
