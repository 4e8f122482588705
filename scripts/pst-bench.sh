#!/usr/bin/env bash
# The PST source beside the two readers it is tested against, on the same file, in one run:
# mailmove (PST → Maildir: rebuild, fingerprint, write, fsync, checkpoint) beside readpst (PST →
# one .eml per message) and pffexport (PST → a directory per item), each run ROUNDS times
# alternately, fresh output each time. Prints mean wall time, peak RSS and the ratios.
#   scripts/pst-bench.sh [FILE.pst] [ROUNDS]   (default: ../shared/corpus/pst/outlook.pst, 30)
set -euo pipefail
cd "$(dirname "$0")/.."
pst=$(realpath "${1:-../shared/corpus/pst/outlook.pst}")
rounds=${2:-30}
empty=$(realpath ../shared/corpus/pst/Empty.pst)
command -v readpst >/dev/null && command -v pffexport >/dev/null \
    || { echo "needs readpst and pffexport: scripts/pst-peers.sh install DIR" >&2; exit 1; }
cargo build --release --quiet --locked
bin=target/release/mailmove
work=$(mktemp -d /tmp/mm-pst-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

# One timed run: wall seconds (bash's microsecond clock: these runs take milliseconds, below
# time(1)'s resolution) and peak RSS in KiB (time(1)), appended to $work/$1.
timed() {
    local name=$1 start end
    shift
    start=$EPOCHREALTIME
    /usr/bin/time -f "%M" -o "$work/t" "$@" >/dev/null 2>&1
    end=$EPOCHREALTIME
    echo "$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.6f", e - s }') $(cat "$work/t")" >>"$work/$name"
}
for ((i = 0; i < rounds; i++)); do
    rm -rf "$work/out" && mkdir -p "$work/out"
    timed mailmove env MAILMOVE_STATE_DIR="$work/out/state" "$bin" copy "pst:$pst" "maildir:$work/out/md"
    # The same command on an empty PST: what every run costs before the first message (runtime,
    # checkpoint, folder tree, fsyncs), to tell fixed costs from per-message ones.
    rm -rf "$work/out" && mkdir -p "$work/out"
    timed empty env MAILMOVE_STATE_DIR="$work/out/state" "$bin" copy "pst:$empty" "maildir:$work/out/md"
    rm -rf "$work/out" && mkdir -p "$work/out"
    timed readpst readpst -q -e -b -o "$work/out" "$pst"
    rm -rf "$work/out" && mkdir -p "$work/out"
    timed pffexport pffexport -q -m all -f all -t "$work/out/x" "$pst"
done
mean() { awk '{ s += $1; if ($2 > m) m = $2 } END { printf "%.5f %d", s / NR, m }' "$work/$1"; }
read -r mm_t mm_rss <<<"$(mean mailmove)"
read -r rp_t rp_rss <<<"$(mean readpst)"
read -r pf_t pf_rss <<<"$(mean pffexport)"
read -r em_t em_rss <<<"$(mean empty)"
echo "file: $pst ($(stat -c %s "$pst") bytes), $rounds rounds each, alternating"
printf '%-22s %10s %12s\n' tool "mean s" "peak RSS KiB"
printf '%-22s %10s %12s\n' mailmove "$mm_t" "$mm_rss" readpst "$rp_t" "$rp_rss" pffexport "$pf_t" "$pf_rss" \
    "mailmove on Empty.pst" "$em_t" "$em_rss"
awk -v m="$mm_t" -v r="$rp_t" -v p="$pf_t" \
    'BEGIN { printf "mailmove / readpst: %.2f×   mailmove / pffexport: %.2f×\n", m / r, m / p }'
awk -v m="$mm_t" -v e="$em_t" -v r="$rp_t" \
    'BEGIN { printf "without the fixed cost of a run: (mailmove - empty run) / readpst: %.2f×\n", (m - e) / r }'
