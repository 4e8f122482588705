#!/usr/bin/env bash
# Issue 16's scale run: a synthetic mbox of MAILMOVE_SCALE_MESSAGES small messages (default
# 1,000,000, 5-30 KB each) with one MAILMOVE_SCALE_BIG_MB message (default 2048: a 2 GB base64
# attachment) in the middle, about 20 GB in all, copied into a Maildir with `mailmove copy`, then
# copied again (everything skipped through the checkpoint); `cp` and `cp -r` of the same bytes
# (+ sync) as baselines. Prints wall, CPU and peak RSS (`/usr/bin/time`) of each.
#
#   scripts/scale-bench.sh [DIR]      (default: a new directory under /tmp; needs twice the mbox free, and a while: the baseline's copy is removed before mailmove's)
#
# A DIR/scale.mbox left by an earlier run is used again (its copies, Maildir or Dovecot, and the
# checkpoint are not: remove them first).
#
# MAILMOVE_SCALE_IMAP=1 copies the same mbox into IMAP instead: a throw-away Dovecot
# (scripts/dovecot.sh, in DIR/dovecot, storing in mdbox: its Maildir store syncs the folder's
# directory at every APPEND, 300 messages/s falling to 70 by 20,000; its imap processes may take
# 2 GB of address space: the folder's index outgrows Dovecot's default 256 MB), twice (the second run skips
# everything), with the same figures.
#
# Benchmarks only: nothing here is a test. Builds the release binary first.
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES="${MAILMOVE_SCALE_MESSAGES:-1000000}"
BIG_MB="${MAILMOVE_SCALE_BIG_MB:-2048}"
DIR="${1:-$(mktemp -d /tmp/mm-scale.XXXXXX)}"
mkdir -p "$DIR"
cargo build --release --quiet
BIN="$PWD/target/release/mailmove"
timed() { /usr/bin/time -f "%e s wall, %U s user, %S s sys, peak RSS %M KB" "$@"; }

if [ -s "$DIR/scale.mbox" ]; then
    echo "== using the existing $DIR/scale.mbox"
else
echo "== writing $DIR/scale.mbox: $MESSAGES messages of 5-30 KB and one of $BIG_MB MB"
python3 - "$DIR/scale.mbox" "$MESSAGES" "$BIG_MB" <<'PY'
import base64, os, random, sys
path, count, big_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(16)
# A pool of base64 text (lines of 76, never `From `) that bodies are cut from at random places.
pool = base64.encodebytes(os.urandom(3 * 1024 * 1024)).replace(b"\n", b"")
lines = [pool[i:i + 76] + b"\n" for i in range(0, len(pool) - 76, 76)]
with open(path, "wb", buffering=4 * 1024 * 1024) as out:
    for n in range(count):
        if n == count // 2:
            out.write(b"From big@example.com Mon Jan  1 00:00:00 2024\nFrom: big@example.com\n"
                      b"Subject: the big one\nMessage-ID: <big@scale>\nMIME-Version: 1.0\n"
                      b"Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n")
            chunk = b"".join(lines[:1379])  # about 105 KB
            for _ in range(big_mb * 1024 * 1024 // len(chunk)):
                out.write(chunk)
            out.write(b"\n")
        start = rng.randrange(len(lines) - 400)
        body = b"".join(lines[start:start + rng.randrange(65, 400)])
        out.write(b"From sender%d@example.com Mon Jan  1 00:00:00 2024\n" % (n % 1000))
        out.write(b"From: sender%d@example.com\nTo: you@example.com\nSubject: message %d\n"
                  b"Message-ID: <%d@scale>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\n" % (n % 1000, n, n))
        out.write(body)
        out.write(b"\n")
PY
fi
ls -l "$DIR/scale.mbox"
sync
echo "== baseline: cp of the mbox + sync"
timed sh -c "cp '$DIR/scale.mbox' '$DIR/copy.mbox' && sync"
rm -f "$DIR/copy.mbox"
if [ "${MAILMOVE_SCALE_IMAP:-0}" = 1 ]; then
    mkdir -p "$DIR/dovecot"
    # Dovecot's mail user must reach its instance below it.
    chmod 755 "$DIR" "$DIR/dovecot"
    MAILMOVE_DOVECOT_MAIL_LOCATION='mdbox:~/mdbox' MAILMOVE_DOVECOT_VSZ_LIMIT=2G scripts/dovecot.sh start "$DIR/dovecot" >/dev/null
    trap 'scripts/dovecot.sh stop "$DIR/dovecot" >/dev/null 2>&1 || true' EXIT
    # shellcheck disable=SC1091
    source "$DIR/dovecot/env"
    export MAILMOVE_DST_PASSWORD="$MAILMOVE_TEST_PASSWORD"
    DEST="imap://scale@localhost:$MAILMOVE_TEST_IMAP_PORT/?tls=starttls&ca=$MAILMOVE_TEST_CA"
else
    DEST="maildir:$DIR/Maildir"
fi
echo "== mailmove copy mbox -> ${DEST%%:*}"
timed "$BIN" copy "mbox:$DIR/scale.mbox" "$DEST" --state "$DIR/state.sqlite"
echo "== the same again (everything recorded)"
timed "$BIN" copy "mbox:$DIR/scale.mbox" "$DEST" --state "$DIR/state.sqlite"
if [ -d "$DIR/Maildir" ]; then
    echo "== messages in the Maildir: $(find "$DIR/Maildir/cur" -type f | wc -l)"
fi
echo "(remove $DIR when done)"
