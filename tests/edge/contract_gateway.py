"""The gateway schemathesis runs against: the embedded default (`paymux run-default`: sandbox
PSPs, SQLite, the demo merchant) with the failed-authentication limits raised, since schemathesis
sends thousands of unauthenticated requests from one address (the limits have their own tests).

    python -m tests.edge.contract_gateway --port P --sandbox-port S
"""

from __future__ import annotations

import argparse
import os
import sys

import uvloop
from paymux.cli.embedded import admin_key_for, default_config, run_both, use_sandbox_port
from paymux.observability import logs


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sandbox-port", type=int, required=True)
    args = parser.parse_args(argv)
    config = default_config()
    config.server.port = args.port
    use_sandbox_port(config, args.sandbox_port)
    config.admin_api_key = admin_key_for(config)
    limits = config.rate_limits
    limits.auth_failures_per_source = limits.auth_failures_per_prefix = 10**9
    limits.ban_after_failures = 10**9
    logs.configure(os.environ.get("PAYMUX_LOG_LEVEL", "warning"))
    os.makedirs(os.path.dirname(config.storage.path) or ".", exist_ok=True)
    uvloop.run(run_both(config, args.sandbox_port))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
