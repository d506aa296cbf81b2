"""`paymux serve`: run the gateway on uvloop, in one process or several sharing the port."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import socket
import sys

import uvloop

from paymux.api.admin_routing import ROUTING_ADMIN
from paymux.api.app import build_gateway
from paymux.api.edge import EdgeRunner, bind_socket, raise_fd_limit
from paymux.config import ConfigError, GatewayConfig, load_config, load_secrets
from paymux.observability import logs


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="paymux serve", description=__doc__)
    parser.add_argument(
        "--config", help="TOML file (every key, with its default: python/paymux/default.toml)"
    )
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--workers", type=int, help="worker processes sharing the port")
    return parser.parse_args(argv)


def apply_args(config: GatewayConfig, args: argparse.Namespace) -> GatewayConfig:
    if args.host:
        config.server.host = args.host
    if args.port is not None:
        config.server.port = args.port
    if args.workers is not None:
        config.server.workers = args.workers
    return config


def _bind(host: str, port: int) -> socket.socket:
    sock = bind_socket(host, port, reuse_port=True)
    sock.set_inheritable(True)
    return sock


async def serve_forever(
    config: GatewayConfig, sock: socket.socket, config_path: str | None = None
) -> None:
    app = build_gateway(config, load_secrets(config.vault), config_path=config_path)
    runner = EdgeRunner(app)  # the [server] limits: timeouts, sizes, connections, bans
    await runner.setup()
    await runner.serve_socket(sock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # SIGHUP: re-read the config file's [routing] (a bad file is logged; the old config stays).
    loop.add_signal_handler(signal.SIGHUP, app[ROUTING_ADMIN].trigger_reload)
    await stop.wait()
    await runner.cleanup()


def _worker(config: GatewayConfig, config_path: str | None = None) -> None:
    # Each worker binds its own SO_REUSEPORT socket: the kernel spreads connections across them.
    # A SIGHUP before the event loop handles it must not kill a starting worker (the default).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    logs.configure(config.server.log_level)
    raise_fd_limit(config.server.max_connections)
    uvloop.run(serve_forever(config, _bind(config.server.host, config.server.port), config_path))


def run(config: GatewayConfig, config_path: str | None = None) -> int:
    logs.configure(config.server.log_level)
    os.makedirs(os.path.dirname(config.storage.path) or ".", exist_ok=True)
    load_secrets(config.vault)  # create the key file once, before workers race to do it
    print(
        f"paymux gateway on http://{config.server.host}:{config.server.port} "
        f"({config.server.workers} worker(s))",
        file=sys.stderr,
        flush=True,
    )
    if config.server.workers <= 1:
        _worker(config, config_path)
        return 0
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_worker, args=(config, config_path), daemon=False)
        for _ in range(config.server.workers)
    ]
    for p in procs:
        p.start()

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.pid is not None:
                try:
                    os.kill(p.pid, signum)
                except ProcessLookupError:  # a worker that already exited
                    pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, forward)  # every worker re-reads the file; it is stored once
    for p in procs:
        p.join()
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        config = apply_args(load_config(args.config), args)
    except ConfigError as exc:
        print(f"paymux serve: {exc}", file=sys.stderr)
        return 2
    if not config.connectors:
        print(
            "paymux serve: no connectors configured: pass --config FILE (every key, with its "
            "default: python/paymux/default.toml), or try `paymux run-default`",
            file=sys.stderr,
        )
        return 2
    try:
        return run(config, args.config)
    except OSError as exc:  # the port is taken, the data folder cannot be created, ...
        print(f"paymux serve: cannot start: {exc}", file=sys.stderr)
        return 1
