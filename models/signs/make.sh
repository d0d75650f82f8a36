#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Rebuild models/signs from nothing: the synthetic signs, the shipped ODM model (models/signs/train.json), the ML and
# cross-entropy baselines on the same data with the same budget, their evaluations and figures. Writes the runs to
# out/signs/ and copies the model, its bundle, metrics and figures into models/signs/.
# Usage: models/signs/make.sh [THREADS]   (about 20-35 minutes on 2 CPU cores)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
threads=${1:-2}
scripts/bootstrap.sh >/dev/null
cargo build --release -p odm-trainer
T=target/release/odm-train
[ -f out/signs/data/manifest.json ] || $T synth --out out/signs/data --seed 1
for m in odm ml ce; do
  name=signs; [ $m = odm ] || name=signs-$m
  /usr/bin/time -f "$m: %e s wall, %M KiB peak" \
    $T train --config models/signs/train.json --method $m --name $name --out out/signs/run-$m --threads "$threads"
  $T eval --run out/signs/run-$m > /dev/null
done
$T plot --run out/signs/run-odm
$T export --run out/signs/run-odm --out models/signs
cp out/signs/run-odm/pca.png out/signs/run-odm/roc.png models/signs/
mkdir -p models/signs/metrics
for m in odm ml ce; do cp out/signs/run-$m/metrics*.json models/signs/metrics/ 2>/dev/null || true; done
cp out/signs/run-odm/metrics.json models/signs/metrics/odm.json
cp out/signs/run-ml/metrics.json models/signs/metrics/ml.json
cp out/signs/run-ce/metrics.json models/signs/metrics/ce-msp.json
cp out/signs/run-ce/metrics-odin.json models/signs/metrics/ce-odin.json
rm -f models/signs/metrics/metrics*.json
