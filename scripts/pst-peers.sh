#!/usr/bin/env bash
# The two independent PST readers the PST source's tests compare with: readpst (pst-utils) and
# pffexport (pff-tools), from Debian. Installs what is missing (as root); nothing to start.
#   scripts/pst-peers.sh install DIR   (DIR holds the apt log)
set -euo pipefail
# shellcheck source=scripts/lib.sh
die() { echo "pst-peers.sh: $*" >&2; exit 1; }
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ "${1:-}" = install ] && [ -n "${2:-}" ] || { echo "usage: $0 install DIR" >&2; exit 2; }
DIR=$2
mkdir -p "$DIR"
apt_install_missing pst-peers.sh pst-utils pff-tools
command -v readpst >/dev/null || die "readpst missing after installing pst-utils"
command -v pffexport >/dev/null || die "pffexport missing after installing pff-tools"
