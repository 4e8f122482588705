#!/usr/bin/env bash
# A throw-away PostgreSQL 15 cluster for the fleet tests: the database a fleet of workers shares.
#
#   scripts/postgres.sh start DIR     install postgresql-15 if missing, initdb a cluster under DIR,
#                                     start it on a free loopback port, write DIR/env (source it
#                                     before `cargo test`)
#   scripts/postgres.sh stop DIR      stop that cluster (its data stays under DIR until deleted)
#   scripts/postgres.sh status DIR    exit 0 when the cluster under DIR is running
#
# The cluster is ours alone: initdb'd under DIR/data as the postgres user (PostgreSQL refuses to
# run as root), trust authentication for the postgres role, listening on 127.0.0.1 and on a
# socket in DIR, never the system's cluster (no pg_ctlcluster, no service). fsync stays on: the
# fleet's durability rule is tested as it would run (a committed intent must survive). TLS is on,
# with a throw-away CA (DIR/ca.pem), so that the client's verified TLS is tested too; the tests
# that do not test it say `sslmode=disable`.
#
# DIR/env exports:
#   MAILMOVE_TEST_PG   a libpq connection string for the cluster (user postgres, db postgres)
#   MAILMOVE_TEST_PG_PORT  its port on 127.0.0.1
#   MAILMOVE_TEST_PG_CA    the CA that signed the cluster's certificate (localhost, 127.0.0.1)
#
# Runs as root on Debian 12 with only package-registry network. Idempotent: `start` on a running
# cluster changes nothing; `stop` on a stopped one does nothing.
set -euo pipefail

die() {
    echo "postgres.sh: error: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start|stop|status DIR" >&2
    exit 2
}

[ $# -eq 2 ] || usage
ACTION=$1
mkdir -p "$2"
DIR=$(cd "$2" && pwd -P)
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN=/usr/lib/postgresql/15/bin
DATA="$DIR/data"
LOG="$DIR/postgres.log"

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

running() {
    [ -x "$BIN/pg_ctl" ] && [ -d "$DATA" ] && as_postgres "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

case "$ACTION" in
start)
    if running; then
        echo "postgres.sh: already running under $DIR"
        exit 0
    fi
    apt_install_missing postgres.sh postgresql-15 openssl
    [ -x "$BIN/initdb" ] || die "$BIN/initdb missing after installing postgresql-15"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres "$DIR"
    fi
    if [ ! -s "$DATA/PG_VERSION" ]; then
        as_postgres "$BIN/initdb" -D "$DATA" -A trust -U postgres --no-sync >"$DIR/initdb.log" 2>&1 \
            || { tail -n 20 "$DIR/initdb.log" >&2; die "initdb failed (log: $DIR/initdb.log)"; }
    fi
    make_certs
    install -o postgres -m 600 "$DIR/server.key" "$DIR/pg-server.key" 2>/dev/null \
        || install -m 600 "$DIR/server.key" "$DIR/pg-server.key"
    read -r PORT < <(free_ports 1)
    # Enough connections for a simulation's workers (each holds a few), and logs of lock waits
    # to read when a test stalls.
    as_postgres "$BIN/pg_ctl" -D "$DATA" -w -t 60 -l "$LOG" -o \
        "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c log_lock_waits=on -c ssl=on -c ssl_cert_file=$DIR/server.pem -c ssl_key_file=$DIR/pg-server.key" \
        start >/dev/null || { tail -n 30 "$LOG" >&2; die "pg_ctl start failed (log: $LOG)"; }
    cat >"$DIR/env" <<ENV
export MAILMOVE_TEST_PG="host=127.0.0.1 port=$PORT user=postgres dbname=postgres"
export MAILMOVE_TEST_PG_PORT=$PORT
export MAILMOVE_TEST_PG_CA="$DIR/ca.pem"
ENV
    echo "postgres.sh: PostgreSQL 15 on 127.0.0.1:$PORT (data $DATA, log $LOG)"
    ;;
stop)
    if running; then
        as_postgres "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    fi
    rm -f "$DIR/env"
    echo "postgres.sh: stopped the cluster under $DIR"
    ;;
status)
    if running; then
        echo "running"
    else
        echo "stopped"
        exit 1
    fi
    ;;
*) usage ;;
esac
