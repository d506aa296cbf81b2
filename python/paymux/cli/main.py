"""The `paymux` command: dispatches each subcommand to the module that owns it.

Each subsystem parses its own arguments (``main(argv) -> int``), so adding a command never touches
another's options, and `paymux --help` stays fast because nothing is imported until it is needed.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module with `main(argv) -> int`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("paymux.api.server", "run the gateway (aiohttp on uvloop)"),
    "run-default": (
        "paymux.cli.embedded",
        "run the sandbox and the gateway on the embedded default",
    ),
    "sandbox": ("paymux.sandbox.server", "run the PSP simulator (Stripe, Adyen, Checkout.com)"),
    "keys": ("paymux.cli.keys", "create and list merchants' API keys"),
    "report": ("paymux.cli.report", "analytics across all PSPs as terminal tables"),
    "reconcile": ("paymux.cli.reconcile", "paymux's records against each PSP's; fix what is safe"),
    "demo": ("paymux.cli.demo", "a minute of live traffic with a PSP outage, then the dashboard"),
}


def usage() -> str:
    lines = ["usage: paymux COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<12} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`paymux COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"paymux: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
