#!/usr/bin/env bash
# The whole test suite, as CI runs it: starts a throw-away Dovecot (installing it when missing),
# checks formatting and lints, runs every test, doc test and example, then stops Dovecot.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
dovecot_dir="$(mktemp -d /tmp/mailmove-dovecot.XXXXXX)"
cleanup() { scripts/dovecot.sh stop "$dovecot_dir" >/dev/null 2>&1 || true; }
trap cleanup EXIT

echo "== starting Dovecot for the IMAP and POP3 tests"
scripts/dovecot.sh start "$dovecot_dir"
# shellcheck disable=SC1091
source "$dovecot_dir/env"

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
