#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Choosing the network of models/signs on validation data, never on the test designs (the protocol is
# models/signs/validation.sh's). Each candidate trains STEPS steps (default 2000) with
# the shipped recipe otherwise; the table is written to out/signs/select-STEPS/table.md.
# Usage: [CANDIDATES='wrn-16-2:32 ...'] models/signs/select.sh [STEPS] [THREADS]
#   (needs out/signs from models/signs/make.sh's data steps; CANDIDATES replaces the default list; a candidate
#   already scored in the folder is not trained again)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
steps=${1:-2000}
threads=${2:-2}
T="${CARGO_TARGET_DIR:-$ROOT/target}/release/odm-train"
S=out/signs
V=$S/select-$steps
. models/signs/validation.sh
validation_config "$V"
# ARCH:INPUT[:SCHEDULE]: the network, its input size and the learning-rate schedule (constant when not given).
for cand in ${CANDIDATES:-wrn-10-1:32 wrn-10-2:32 wrn-10-1:48 wrn-10-1:32:cosine}; do
  IFS=: read -r arch input schedule <<< "$cand"
  schedule=${schedule:-constant}
  run=$V/$arch-$input; [ "$schedule" = constant ] || run=$run-$schedule
  [ -f "$run/metrics.json" ] && continue
  /usr/bin/time -f "$cand: %e s wall" "$T" train --config "$V/validation.json" --data $S/val-root --arch "$arch" \
    --input "$input" --lr-schedule "$schedule" --steps "$steps" --out "$run" --force --threads "$threads"
  "$T" eval --run "$run" > /dev/null
done
"$T" table "$V"/*/metrics.json | tee "$V/table.md"
