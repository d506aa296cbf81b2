#!/usr/bin/env bash
# Install the load tools the proxy benchmark drives: wrk (HTTP load) and nginx (the reference
# reverse proxy). Idempotent: does nothing when both are already on PATH.
set -euo pipefail

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Update the package lists only when they are missing or a first install attempt fails.
if ! $SUDO apt-get install -y --no-install-recommends "${need[@]}" >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    $SUDO apt-get install -y --no-install-recommends "${need[@]}"
fi
# The Debian nginx package may start a system nginx on port 80; the benchmark runs its own.
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true
fi
echo "installed: ${need[*]}" >&2
