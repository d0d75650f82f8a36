#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Screenshots of an `odm-train report` page in headless Chromium (Debian's `chromium`, not installed by the bootstrap:
# `apt-get install chromium`), as docs/report-verdicts.png and docs/report-thumbnails.png were made:
#   scripts/report-screenshot.sh REPORT_DIR OUT_PREFIX
# writes OUT_PREFIX-page.png (the top of the page: verdicts and distance histograms) and OUT_PREFIX-thumbnails.png
# (the thumbnail groups, from a copy of the page without the top).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 REPORT_DIR OUT_PREFIX" >&2; exit 2; }
dir=$(realpath "$1") out=$(realpath -m "$2")
command -v chromium >/dev/null || { echo "chromium is not installed (apt-get install chromium)" >&2; exit 2; }
shot() { chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size="$1" --screenshot="$2" "$3" 2>/dev/null; }
shot 1280,1500 "$out-page.png" "file://$dir/index.html"
python3 - "$dir" <<'PY'
import sys
d = sys.argv[1]
s = open(f"{d}/index.html").read()
open(f"{d}/thumbnails-only.html", "w").write(s[: s.index("<h1>")] + s[s.index('<h2 id="group-0"') :])
PY
shot 1280,1300 "$out-thumbnails.png" "file://$dir/thumbnails-only.html"
rm -f "$dir/thumbnails-only.html"
echo "wrote $out-page.png and $out-thumbnails.png"
