#!/usr/bin/env bash
# Headless Chromium, which the HTML report's tests (crates/mailmove-report/tests/) open the page
# in to read back its DOM and take a screenshot; from Debian, with a font so that the screenshot
# shows text and not empty boxes. Installs what is missing (as root); nothing to start.
#   scripts/chromium.sh install DIR   (DIR holds the apt log)
set -euo pipefail
# shellcheck source=scripts/lib.sh
die() { echo "chromium.sh: $*" >&2; exit 1; }
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ "${1:-}" = install ] && [ -n "${2:-}" ] || { echo "usage: $0 install DIR" >&2; exit 2; }
DIR=$2
mkdir -p "$DIR"
apt_install_missing chromium.sh chromium fonts-dejavu-core
command -v chromium >/dev/null || die "chromium missing after installing the chromium package"
