#!/usr/bin/env bash
# The side-by-side of issue 16 in one run: mailmove beside `cp` for the file backends and beside
# mbsync (and imapsync, when installed) for IMAP, with the cheap-identity first run into a
# destination that holds every copy. Prints each bench's table, then every ratio with its goal.
#
#   scripts/side-by-side.sh
#
# Installs mbsync (Debian's isync) when missing and run as root; starts and stops its own
# throw-away Dovecot (scripts/dovecot.sh). Sizes: MAILMOVE_BENCH_MESSAGES (default 3000),
# MAILMOVE_BENCH_MAX_SIZE for the IMAP mailbox (default 256 KiB: about 190 MB in all),
# MAILMOVE_BENCH_REPEAT (default 3: medians for the files, best of 3 for IMAP, the tools
# alternating), MAILMOVE_BENCH_DELAY_MS (default 10: 20 ms round trips). Takes 10 to 20 minutes
# on 2 cores (a minute of it waiting) and about 14 GB in /tmp (the file benches' copies stay
# until the end). Benchmarks only: nothing here is a test.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "side-by-side.sh: $*" >&2; exit 1; }
# shellcheck disable=SC1091
source scripts/lib.sh

export MAILMOVE_BENCH_MESSAGES="${MAILMOVE_BENCH_MESSAGES:-3000}"
export MAILMOVE_BENCH_MAX_SIZE="${MAILMOVE_BENCH_MAX_SIZE:-262144}"
export MAILMOVE_BENCH_REPEAT="${MAILMOVE_BENCH_REPEAT:-3}"
export MAILMOVE_BENCH_DELAY_MS="${MAILMOVE_BENCH_DELAY_MS:-10}"
DIR="$(mktemp -d /tmp/mm-side.XXXXXX)"
# Dovecot's mail user must reach its instance below it.
chmod 755 "$DIR"
log="$DIR/bench.log"
trap 'rm -rf "$DIR"' EXIT

apt_install_missing side-by-side.sh isync
if command -v imapsync >/dev/null 2>&1; then
    echo "imapsync found: $(imapsync --version 2>/dev/null | head -n1)"
else
    echo "imapsync not installed (not packaged by Debian): compared with mbsync only"
fi

# Files deleted in the last minute (an earlier run's clean-up) slow the creation of new ones
# the same way: that minute passes first.
sync
sleep 60
echo "== file backends beside cp"
# Each bench's files stay until the end (the trap): a Maildir copy and `cp -r` right after the
# deletion of thousands of files are slowed by ext4's search past recently freed inodes, `cp` of
# one file not (see benches/file_backends.rs).
export MAILMOVE_BENCH_KEEP=1
MAILMOVE_BENCH_DIR="$DIR" cargo bench --quiet --bench file_backends | tee -a "$log"
echo "== the same with LF line endings, as mail clients write mbox and Maildir files"
MAILMOVE_BENCH_DIR="$DIR" MAILMOVE_BENCH_LINE_ENDINGS=lf cargo bench --quiet --bench file_backends | tee -a "$log"
echo "== IMAP -> IMAP beside mbsync, and the first run into the copies"
MAILMOVE_BENCH_DIR="$DIR/dovecot" cargo bench --quiet -p mailmove-imap --bench imap_throughput | tee -a "$log"

echo
echo "== side by side: $MAILMOVE_BENCH_MESSAGES messages, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores"
grep '^ratio:' "$log" | sed 's/^ratio: /  /'
