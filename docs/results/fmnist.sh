#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The Fashion-MNIST table of docs/results/README.md: the paper's MNIST experiment on a real set from Debian.
# Classes 0-2 in distribution, 3-6 seen out-of-distribution, 7-9 unseen (novelty); the synthetic background photos as
# anomalies; Gaussian noise. LeNet, 28x28, 5-d embedding, 3000 steps, for ODM (odm's default, with pixel-permuted
# images among the mined OOD), ODM as in the paper (--permuted-ood 0), ML and CE (MSP and ODIN), seeds 1-3; ODM and
# ML again with --pair-mean active. Then the trainer's defaults (wrn-10-1 at 32x32, 32-d embedding, 2000 steps) for
# ODM, ML and CE, seed 1.
# Usage: docs/results/fmnist.sh [SEED...]   (21 runs of 1-3 minutes and 3 of about 6 minutes on 2 CPU cores)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
seeds=${*:-1 2 3}
W=out/fmnist
scripts/bootstrap.sh >/dev/null
cargo build --release -p odm-trainer
T="${CARGO_TARGET_DIR:-$ROOT/target}/release/odm-train"
mkdir -p $W
if [ ! -d $W/data/train ]; then
  # Debian's dataset-fashion-mnist, unpacked here (no root needed), checked against its pinned sha256.
  deb=dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb
  (cd $W && { [ -f "$deb" ] || apt-get download dataset-fashion-mnist=0.0~git20200523.55506a9-1; } &&
    echo "39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0  $deb" | sha256sum -c - &&
    dpkg-deb -x "$deb" deb)
  "$T" import --format idx --data $W/deb/usr/share/datasets/fashion-mnist --out $W/data
fi
[ -d $W/synth/background ] || "$T" synth --out $W/synth --seed 1 --train-per-class 1 --test-per-class 1 --noise 0
train_eval() { # RUN_FOLDER SEED ARGS...: train and evaluate once (a folder with metrics is kept)
  local out=$1 seed=$2; shift 2
  [ -f $out/metrics.json ] && return
  "$T" train --data $W/data --in 0,1,2 --seen-ood 3,4,5,6 --unseen-ood 7,8,9 --anomaly-dir $W/synth/background \
    --seed "$seed" --out $out --name fm "$@"
  "$T" eval --run $out > /dev/null
}
run() { local name=$1 seed=$2; shift 2; train_eval $W/run-$name-s$seed "$seed" --arch lenet --input 28 --embedding 5 --steps 3000 "$@"; }
files=()
active=()
calib=()
for s in $seeds; do
  run odm "$s"
  run odm-paper "$s" --permuted-ood 0
  run ml "$s" --method ml
  run ce "$s" --method ce
  run odm-active "$s" --pair-mean active
  run ml-active "$s" --method ml --pair-mean active
  files+=($W/run-odm-s$s/metrics.json $W/run-odm-paper-s$s/metrics.json $W/run-ml-s$s/metrics.json
    $W/run-ce-s$s/metrics.json $W/run-ce-s$s/metrics-odin.json)
  active+=($W/run-odm-active-s$s/metrics.json $W/run-ml-active-s$s/metrics.json)
  run odm-calibnone "$s" --calib-ood none  # class 4 trained on as seen OOD, not held out for calibration
  calib+=($W/run-odm-s$s/metrics.json $W/run-odm-calibnone-s$s/metrics.json)
done
"$T" table --mean "${files[@]}"
echo
"$T" table --mean "${active[@]}"  # margin terms averaged over the pairs inside the margin
echo
"$T" table --mean "${calib[@]}"  # the calibration hold-out: default (class 4 held out) against none
echo
drun() { local name=$1; shift; train_eval $W/default-$name-s1 1 "$@"; }  # the trainer's defaults but for the classes
drun odm
drun ml --method ml
drun ce --method ce
"$T" table $W/default-odm-s1/metrics.json $W/default-ml-s1/metrics.json $W/default-ce-s1/metrics.json \
  $W/default-ce-s1/metrics-odin.json
