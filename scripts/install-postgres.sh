#!/bin/sh
# PostgreSQL for the tests and benchmarks: Debian's server, and throwaway clusters run by an
# unprivileged user (PostgreSQL refuses to run as root).
#
#   scripts/install-postgres.sh              install Debian's PostgreSQL server if missing (apt-get)
#                                            and the system user paymux-pg; a no-op when both are
#                                            there. Exits 0 when it cannot: the PostgreSQL tests then
#                                            skip with that reason (and fail under CI=true).
#   scripts/install-postgres.sh start [DIR]  start a throwaway cluster in DIR (default: a new
#                                            temporary directory) on a free 127.0.0.1 port, as
#                                            paymux-pg when run as root; prints "DIR URL". Starting
#                                            a stopped cluster again reuses its data and its port.
#   scripts/install-postgres.sh stop DIR [--remove]
#                                            stop it (fast shutdown); --remove deletes DIR too.
#
# The clusters are for tests: trust authentication on loopback only, no fsync.
set -u
PG_USER=paymux-pg

bindir() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

as_pg() {
    if [ "$(id -u)" = "0" ]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

install() {
    SUDO=""
    if [ "$(id -u)" != "0" ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            SUDO="sudo -n"
        elif [ -x "$(bindir)/initdb" ]; then
            exit 0  # not root: clusters run as this user, nothing to create
        else
            echo "install-postgres: not root and no sudo; install postgresql yourself (apt-get install postgresql)" >&2
            exit 0
        fi
    fi
    if [ ! -x "$(bindir)/initdb" ]; then
        # Debian's package would create and start a cluster of its own on port 5432: not wanted.
        $SUDO mkdir -p /etc/postgresql-common/createcluster.d
        echo "create_main_cluster = false" \
            | $SUDO tee /etc/postgresql-common/createcluster.d/paymux.conf >/dev/null
        if command -v apt-get >/dev/null 2>&1 \
            && $SUDO apt-get update -qq \
            && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
                postgresql >/dev/null; then
            echo "install-postgres: $(bindir)"
        else
            echo "install-postgres: could not install postgresql; the PostgreSQL tests will skip" >&2
            exit 0
        fi
    fi
    if ! id "$PG_USER" >/dev/null 2>&1; then
        $SUDO useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$PG_USER" \
            || { echo "install-postgres: could not create user $PG_USER" >&2; exit 0; }
    fi
    exit 0
}

start() {
    BIN=$(bindir)
    if [ ! -x "$BIN/initdb" ]; then
        echo "install-postgres: no PostgreSQL server (run scripts/install-postgres.sh)" >&2
        exit 1
    fi
    if [ "$(id -u)" = "0" ] && ! id "$PG_USER" >/dev/null 2>&1; then
        echo "install-postgres: no user $PG_USER (run scripts/install-postgres.sh)" >&2
        exit 1
    fi
    DIR=${1:-}
    if [ -z "$DIR" ]; then
        DIR=$(mktemp -d "${TMPDIR:-/tmp}/paymux-pg.XXXXXX") || exit 1
    fi
    mkdir -p "$DIR" && chmod 0700 "$DIR" || exit 1
    if [ "$(id -u)" = "0" ]; then
        chown "$PG_USER:" "$DIR" || exit 1
    fi
    if [ ! -f "$DIR/data/PG_VERSION" ]; then
        as_pg "$BIN/initdb" -D "$DIR/data" -U paymux --auth=trust -E UTF8 --locale=C --no-sync \
            >"$DIR/initdb.log" 2>&1 \
            || { cat "$DIR/initdb.log" >&2; exit 1; }
    fi
    if [ -f "$DIR/port" ]; then
        PORT=$(cat "$DIR/port")
    else
        PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        as_pg sh -c "echo $PORT > '$DIR/port'"
    fi
    OPTS="-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$DIR"
    OPTS="$OPTS -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    OPTS="$OPTS -c max_connections=400 -c shared_buffers=256MB -c log_min_messages=warning"
    as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 -o "$OPTS" start >/dev/null \
        || { tail -n 30 "$DIR/server.log" >&2; exit 1; }
    echo "$DIR postgresql://paymux@127.0.0.1:$PORT/postgres"
}

stop() {
    DIR=${1:?usage: install-postgres.sh stop DIR [--remove]}
    BIN=$(bindir)
    if [ -f "$DIR/data/postmaster.pid" ]; then
        as_pg "$BIN/pg_ctl" -D "$DIR/data" -m fast -w -t 60 stop >/dev/null 2>&1
    fi
    if [ "${2:-}" = "--remove" ]; then
        rm -rf "$DIR"
    fi
}

case "${1:-install}" in
    install) install ;;
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    *) echo "usage: install-postgres.sh [install | start [DIR] | stop DIR [--remove]]" >&2; exit 2 ;;
esac
