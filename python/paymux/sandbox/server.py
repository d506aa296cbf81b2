"""`paymux sandbox`: run the PSP simulator on a port."""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiohttp import web


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="paymux sandbox",
        description="Run the PSP simulator: Stripe, Adyen and Checkout.com APIs under path "
        "prefixes, driven by a scenario (docs/sandbox.md).",
    )
    parser.add_argument("--scenario", help="TOML scenario file (default: three PSPs that approve)")
    parser.add_argument("--seed", type=int, default=None, help="seed for every random draw")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    from paymux.sandbox.app import SANDBOX_KEY, build_app
    from paymux.sandbox.scenario import load_scenario

    try:
        scenario = load_scenario(args.scenario) if args.scenario else None
    except (OSError, ValueError) as exc:
        print(f"paymux sandbox: cannot load scenario: {exc}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else ((scenario.seed if scenario else None) or 0)
    app = build_app(scenario, seed=seed)
    sandbox = app[SANDBOX_KEY]
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is a dependency, but stay runnable without it
        pass
    lines = [f"paymux sandbox on http://{args.host}:{args.port} (seed {sandbox.seed})"]
    for name, psp in sandbox.psps.items():
        cfg = psp.config
        extra = f", merchant account {cfg.merchant_account}" if cfg.wire == "adyen" else ""
        lines.append(f"  {name:<10} {cfg.wire:<9} {cfg.mount:<12} key {cfg.api_key}{extra}")
    lines.append("  admin      /_sandbox/ledger, /_sandbox/scenario, /_sandbox/reset")
    print("\n".join(lines), flush=True)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None,
                shutdown_timeout=1.0)  # fmt: skip
    return 0
