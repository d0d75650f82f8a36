#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Choosing the network of models/signs on validation data, never on the test designs: the shipped config's known
# designs, its seen out-of-distribution groups split again (60% seen, 40% playing the unseen designs), the test's
# unseen designs set aside; in-distribution and novelty images rendered afresh with another seed (2) than the
# training set's, so no image the networks train on is scored. Each candidate trains STEPS steps (default 2000) with
# the shipped recipe otherwise; the table is written to out/signs/select-STEPS/table.md.
# Usage: [CANDIDATES='wrn-16-2:32 ...'] models/signs/select.sh [STEPS] [THREADS]
#   (needs out/signs from models/signs/make.sh's data steps; CANDIDATES replaces the default list; a candidate
#   already scored in the folder is not trained again)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
steps=${1:-2000}
threads=${2:-2}
T=target/release/odm-train
S=out/signs
V=$S/select-$steps
mkdir -p "$V"
[ -f $S/val-data/manifest.json ] || $T synth --out $S/val-data --seed 2 --known-from models/signs/train.json \
  --train-per-class 0 --known-train-per-class 0 --test-per-class 20 --known-test-per-class 30 --background 0 \
  --noise 0 --photos .deps/photos/seen
mkdir -p $S/val-root
ln -sfn ../data/train $S/val-root/train
ln -sfn ../val-data/test $S/val-root/test
cp models/signs/train.json "$V/validation.json"
$T protocol --region eu --seed 1 --validation 0.6 --config "$V/validation.json"
# ARCH:INPUT[:SCHEDULE]: the network, its input size and the learning-rate schedule (constant when not given).
for cand in ${CANDIDATES:-wrn-10-1:32 wrn-10-2:32 wrn-10-1:48 wrn-10-1:32:cosine}; do
  IFS=: read -r arch input schedule <<< "$cand"
  schedule=${schedule:-constant}
  run=$V/$arch-$input; [ "$schedule" = constant ] || run=$run-$schedule
  [ -f "$run/metrics.json" ] && continue
  /usr/bin/time -f "$cand: %e s wall" $T train --config "$V/validation.json" --data $S/val-root --arch "$arch" \
    --input "$input" --lr-schedule "$schedule" --steps "$steps" --out "$run" --force --threads "$threads"
  $T eval --run "$run" > /dev/null
done
$T table "$V"/*/metrics.json | tee "$V/table.md"
