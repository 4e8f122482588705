#!/usr/bin/env bash
# The fleet benchmark (benches/fleet.rs) on a throw-away PostgreSQL: 10,000 small Maildir
# accounts through 1, 2, 4 and 8 workers, then the queue's claims per second. Benchmarks only.
#
#   scripts/fleet-bench.sh      (MAILMOVE_BENCH_ACCOUNTS, MAILMOVE_BENCH_WORKERS: see the bench)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="$(mktemp -d /tmp/mm-fleet-bench.XXXXXX)"
trap 'scripts/postgres.sh stop "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
scripts/postgres.sh start "$DIR"
# shellcheck disable=SC1091
source "$DIR/env"
cargo bench --quiet --bench fleet
