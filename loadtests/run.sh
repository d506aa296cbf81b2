#!/usr/bin/env bash
# Start the sandbox and paymux, run Locust headless, print the summary (see loadtests/README.md).
#   loadtests/run.sh [-u USERS] [-r SPAWN_RATE] [-t RUN_TIME] [--soak SECONDS] [--workers N]
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python loadtests/run.py "$@"
