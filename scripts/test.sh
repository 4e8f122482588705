#!/usr/bin/env bash
# The whole test suite, as CI runs it: starts a throw-away Dovecot, Cyrus IMAP, GNU Mailutils
# imap4d and PostgreSQL 15 (installing them when missing), installs the PST readers readpst and
# pffexport and headless Chromium, checks formatting and lints, runs every test, doc test and
# example, then stops the servers.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
dovecot_dir="$(mktemp -d /tmp/mailmove-dovecot.XXXXXX)"
# Short: Cyrus's unix sockets live below it (at most 60 characters).
cyrus_dir="$(mktemp -d /tmp/mm-cyrus.XXXXXX)"
mailutils_dir="$(mktemp -d /tmp/mm-mailutils.XXXXXX)"
postgres_dir="$(mktemp -d /tmp/mm-postgres.XXXXXX)"
peers_dir="$(mktemp -d /tmp/mm-pst-peers.XXXXXX)"
cleanup() {
    scripts/postgres.sh stop "$postgres_dir" >/dev/null 2>&1 || true
    scripts/dovecot.sh stop "$dovecot_dir" >/dev/null 2>&1 || true
    scripts/cyrus.sh stop "$cyrus_dir" >/dev/null 2>&1 || true
    scripts/mailutils.sh stop "$mailutils_dir" >/dev/null 2>&1 || true
    # The servers' throw-away data (mail stores, logs) can reach a gigabyte: leave no trace.
    rm -rf "$dovecot_dir" "$cyrus_dir" "$mailutils_dir" "$postgres_dir" "$peers_dir"
}
trap cleanup EXIT

echo "== starting Dovecot for the IMAP and POP3 tests"
scripts/dovecot.sh start "$dovecot_dir"
# shellcheck disable=SC1091
source "$dovecot_dir/env"

echo "== starting Cyrus IMAP for the tests against a strict server"
scripts/cyrus.sh start "$cyrus_dir"
# shellcheck disable=SC1091
source "$cyrus_dir/env"

echo "== starting GNU Mailutils imap4d (a plain IMAP4rev1 server of the old school)"
scripts/mailutils.sh start "$mailutils_dir"
# shellcheck disable=SC1091
source "$mailutils_dir/env"

echo "== starting PostgreSQL 15 for the fleet (the queue and the journaled checkpoints)"
scripts/postgres.sh start "$postgres_dir"
# shellcheck disable=SC1091
source "$postgres_dir/env"

echo "== readpst and pffexport, the PST readers the PST source is compared with"
scripts/pst-peers.sh install "$peers_dir"

echo "== headless Chromium, for the HTML report's tests"
scripts/chromium.sh install "$peers_dir"

echo "== formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== documentation (broken links and missing docs are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

echo "== tests"
cargo test --workspace --locked --no-fail-fast

echo "== examples"
for example in examples/*.rs; do
  [ -e "$example" ] || continue
  name="$(basename "$example" .rs)"
  cargo run --quiet --locked --example "$name"
done
