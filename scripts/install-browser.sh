#!/bin/sh
# Install Debian's chromium for the dashboard browser test (Playwright drives it through
# executable_path; Playwright's own browser download is not used). Idempotent: a no-op when
# chromium is already there. If it cannot be installed, say so and exit 0: the browser test then
# skips with that reason and the rest of the suite still runs.
set -u
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "install-browser: not root and no sudo; install chromium yourself (apt-get install chromium)" >&2
        exit 0
    fi
fi
if command -v apt-get >/dev/null 2>&1 \
    && $SUDO apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        chromium fonts-dejavu-core >/dev/null; then
    echo "install-browser: $(command -v chromium)"
else
    echo "install-browser: could not install chromium; the dashboard browser test will skip" >&2
fi
exit 0
