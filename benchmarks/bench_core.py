"""The core benchmark: every Rust hot-path operation through Python vs its pure-Python reference.

Run with the release build: `make bench` (or `.venv/bin/maturin develop --release` first).
Prints per-call times measured in the same run, their ratio, and each target from the issue.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import bench_card_vault
import bench_routing_core


def main() -> int:
    print("paymux core benchmark (per call, including the Python->Rust crossing)\n")
    bench_card_vault.main()
    print()
    bench_routing_core.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
