#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Proves that models/signs/make.sh rebuilds the shipped model byte for byte: clones this checkout's HEAD into a fresh
# folder (nothing of out/ comes along), runs make.sh there with the shipped thread count, and compares what it wrote
# with what HEAD ships. The downloads under .deps/ are linked, not fetched again (they are checked by their hashes).
# The bundle records the training's wall time (training.train_seconds): that one field is left out of the comparison.
# 45-70 minutes on 2 cores (the machine's speed), and a cold release build in the clone's own target folder.
# Exit 0 when the data's fingerprint, the ONNX, the bundle, the metrics and the figures are the same; 1 when any
# differs or is missing; 2 when the arguments are wrong or make.sh fails.
# Usage: models/signs/reproduce.sh [THREADS] [FOLDER]   (THREADS=2 as shipped; FOLDER a new folder, default a
#   temporary one under /var/tmp, kept for a look afterwards)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
threads=${1:-2}
case $threads in '' | *[!0-9]* | 0) echo "reproduce: THREADS must be a positive number, got '$threads'" >&2; exit 2 ;; esac
dir=${2:-$(mktemp -d /var/tmp/odm-reproduce.XXXXXX)}
if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
  echo "reproduce: $dir is not empty: give a new folder" >&2
  exit 2
fi
git -C "$ROOT" rev-parse --verify -q HEAD >/dev/null || { echo "reproduce: $ROOT is not a git checkout" >&2; exit 2; }
git -C "$ROOT" diff --quiet HEAD ||
  echo "reproduce: note: $ROOT has uncommitted changes; the clone, and what it is compared with, are HEAD's" >&2

git clone -q "$ROOT" "$dir"
commit=$(git -C "$dir" rev-parse --short HEAD)
echo "reproduce: $commit cloned into $dir"
if [ -d "$ROOT/.deps" ] && ! cp -al "$ROOT/.deps" "$dir/.deps" 2>/dev/null; then
  rm -rf "$dir/.deps" # another disk: no hard links; make.sh's bootstrap fetches and checks them again
  echo "reproduce: $dir is on another disk than $ROOT/.deps: the downloads are fetched again" >&2
fi
# What make.sh writes, removed first: a file it no longer wrote would otherwise pass as HEAD's own copy.
outputs=(data.sha256 signs.onnx signs.odm.json pca.png roc.png metrics/odm.json metrics/odm.md metrics/odm-plain.json
  metrics/odm-plain.md)
for f in "${outputs[@]}"; do rm -f "$dir/models/signs/$f"; done
# BASELINES would retrain the baselines too (twice the time); the shipped model is made without. The clone builds
# into its own target folder: in a shared one (CARGO_TARGET_DIR) its build would replace the checkout's libgstodm.so
# and odm-train with binaries that look for ONNX Runtime under the clone's .deps/.
if ! env -u BASELINES CARGO_TARGET_DIR="$dir/target" /usr/bin/time -f "reproduce: make.sh took %e s wall" \
  "$dir/models/signs/make.sh" "$threads"; then
  echo "reproduce: models/signs/make.sh failed in $dir: nothing compared" >&2
  exit 2
fi

status=0
same() { # FILE: the clone's file against HEAD's
  if git -C "$dir" diff --quiet HEAD -- "$1"; then
    echo "reproduce: same   $1"
  else
    echo "reproduce: DIFFER $1"
    status=1
  fi
}
for f in "${outputs[@]}"; do [ "$f" = signs.odm.json ] || same "models/signs/$f"; done
# The bundle: every line but the training's wall time.
if [ -f "$dir/models/signs/signs.odm.json" ] &&
  diff <(git -C "$dir" show HEAD:models/signs/signs.odm.json | grep -v '"train_seconds"') \
    <(grep -v '"train_seconds"' "$dir/models/signs/signs.odm.json") >/dev/null; then
  echo "reproduce: same   models/signs/signs.odm.json (but its train_seconds)"
else
  echo "reproduce: DIFFER models/signs/signs.odm.json"
  status=1
fi
sha256sum "$dir/models/signs/signs.onnx"
# The data: if they are the same and the model is not, the training's arithmetic differs (another CPU, another
# libtorch), not the data steps.
if ! git -C "$dir" diff --quiet HEAD -- models/signs/data.sha256; then
  echo "reproduce: the data differ (- shipped, + rebuilt; sha256, folder, files):"
  git -C "$dir" diff HEAD -- models/signs/data.sha256 | grep '^[-+][0-9a-f]' || true
elif [ $status = 1 ]; then
  echo "reproduce: the data are the same: what differs comes from the training's arithmetic"
fi
exit $status
