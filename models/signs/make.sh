#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Rebuild models/signs from nothing: the world of real sign designs (npm mapillary_sprite_source 1.8.0, the
# Mapillary traffic-sign taxonomy) rendered through odm's camera model, the mined out-of-distribution trees
# (sign-coloured objects, background of five of the eight scenes, real-photo patches, a drive's false positives and
# distractors), the shipped ODM model (models/signs/train.json: the European catalogue known, 452 other designs seen
# out-of-distribution, 652 never seen), its evaluation (with held-out real photographs, never trained or calibrated
# on) and figures. BASELINES=1 also retrains the ML and cross-entropy baselines on the same data and budget.
# The protocol lists in train.json come from `odm-train protocol --region eu --seed 1 --config models/signs/train.json`.
# Writes the runs to out/signs/ and copies the model, bundle, metrics and figures into models/signs/, with the data's
# fingerprint (data.sha256, models/signs/fingerprint.sh).
# Usage: [BASELINES=1] models/signs/make.sh [THREADS]   (THREADS=2 as shipped; the same thread count reproduces the
# shipped ONNX byte for byte: libtorch's float sums depend on it)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
threads=${1:-2}
scripts/bootstrap.sh >/dev/null
scripts/photos.sh
cargo build --release -p odm-trainer -p gst-plugin-odm
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
T="$TARGET/release/odm-train"
S=out/signs
[ -f $S/data/manifest.json ] ||
  "$T" synth --out $S/data --seed 1 --known-from models/signs/train.json --photos .deps/photos/seen
[ -f $S/objects/mined.json ] || "$T" render --kind objects --out $S/objects --per-family 400 --seed 12
[ -f $S/photos-seen/patches.json ] ||
  "$T" patches --photos .deps/photos/seen --out $S/photos-seen --per-photo 120 --seed 21
[ -f $S/photos-heldout/patches.json ] ||
  "$T" patches --photos .deps/photos/heldout --out $S/photos-heldout --per-photo 60 --seed 22
# Hard negatives: odmproposals' false positives and the rendered distractors of a drive with another seed than the
# demo's (7), mined with the built plugin.
export GST_PLUGIN_PATH="$TARGET/release"
export GST_REGISTRY="$TARGET/release/odm-registry.bin"
[ -f $S/drive-s8/drive.mp4 ] || "$T" clip --out $S/drive-s8 --seed 8
[ -f $S/mined-drive/mined.jsonl ] ||
  "$T" mine --clip $S/drive-s8/drive.mp4 --proposals --truth $S/drive-s8/drive.rois.jsonl --out $S/mined-drive
[ -f $S/mined-drive-rois/mined.jsonl ] || "$T" mine --clip $S/drive-s8/drive.mp4 --rois $S/drive-s8/drive.rois.jsonl \
  --truth $S/drive-s8/drive.rois.jsonl --out $S/mined-drive-rois
# Background patches: five scenes are mined (bg-seen), three never are (bg-unseen: calibration and test only).
mkdir -p $S/bg-seen $S/bg-unseen
for s in brick grass gravel coffee rocket; do ln -sfn ../data/background/$s $S/bg-seen/$s; done
for s in astronaut camera chelsea; do ln -sfn ../data/background/$s $S/bg-unseen/$s; done

methods=(odm)
[ "${BASELINES:-0}" = 1 ] && methods+=(ml ce)
for m in "${methods[@]}"; do
  name=signs; [ $m = odm ] || name=signs-$m
  /usr/bin/time -f "$m: %e s wall, %M KiB peak" \
    "$T" train --config models/signs/train.json --method $m --name $name --out $S/run-$m --force --threads "$threads"
  "$T" eval --run $S/run-$m --anomaly-dir $S/photos-heldout > /dev/null
done
# The renderer-independent check: the known and unseen designs drawn by odm-train plain (none of synth's camera
# model) over the held-out photographs, scored as the test set (metrics-plain).
[ -f $S/plain/plain.json ] ||
  "$T" plain --out $S/plain --config models/signs/train.json --per-design 10 --photos .deps/photos/heldout --seed 3
"$T" eval --run $S/run-odm --test-data $S/plain --tag plain --anomaly-dir $S/photos-heldout > /dev/null
"$T" plot --run $S/run-odm
# The data's fingerprint: reproduce.sh compares it with the shipped one, so that a model that differs says whether
# its data did.
models/signs/fingerprint.sh $S data objects photos-seen photos-heldout drive-s8 mined-drive mined-drive-rois plain \
  > $S/data.sha256
"$T" export --run $S/run-odm --out models/signs
cp $S/data.sha256 models/signs/data.sha256
cp $S/run-odm/pca.png $S/run-odm/roc.png models/signs/
mkdir -p models/signs/metrics
cp $S/run-odm/metrics.json models/signs/metrics/odm.json
cp $S/run-odm/metrics.md models/signs/metrics/odm.md
cp $S/run-odm/metrics-plain.json models/signs/metrics/odm-plain.json
cp $S/run-odm/metrics-plain.md models/signs/metrics/odm-plain.md
if [ "${BASELINES:-0}" = 1 ]; then
  cp $S/run-ml/metrics.json models/signs/metrics/ml.json
  cp $S/run-ce/metrics.json models/signs/metrics/ce-msp.json
  cp $S/run-ce/metrics-odin.json models/signs/metrics/ce-odin.json
fi
