#!/usr/bin/env bash
# Screenshot of a `med8k bench --html` report in headless Chromium (Debian
# `chromium`, installed by setup-debian.sh): scripts/bench-screenshot.sh REPORT.html OUT.png
set -euo pipefail
report="$(realpath "$1")"
out="$(realpath -m "$2")"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --window-size=1400,2400 --screenshot="$out" "file://$report" 2>/dev/null
echo "$out"
