# shellcheck shell=bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Sourced by select.sh and ablate.sh: the validation protocol of models/signs, never the test designs. The shipped
# config's known designs; its seen out-of-distribution groups split again (60% seen, 40% playing the unseen designs);
# the test's unseen designs set aside; in-distribution and novelty images rendered afresh with another seed (2) than
# the training set's, so no image a network trains on is scored. Needs T (odm-train) and S (out/signs) set and the
# data steps of models/signs/make.sh done; `validation_config DIR` writes DIR/validation.json.
# Scripts started side by side share both: the validation images and each folder's config are made once, under a
# lock, and a config is made again only when the shipped one changes.
validation_config() {
  local dir=$1
  mkdir -p "$dir"
  exec 9> "$S/.validation.lock"
  flock 9
  [ -f "$S/val-data/manifest.json" ] || "$T" synth --out "$S/val-data" --seed 2 --known-from models/signs/train.json \
    --train-per-class 0 --known-train-per-class 0 --test-per-class 20 --known-test-per-class 30 --background 0 \
    --noise 0 --photos .deps/photos/seen
  mkdir -p "$S/val-root"
  ln -sfn ../data/train "$S/val-root/train"
  ln -sfn ../val-data/test "$S/val-root/test"
  if ! [ "$dir/validation.json" -nt models/signs/train.json ]; then
    cp models/signs/train.json "$dir/.validation.json.tmp"
    "$T" protocol --region eu --seed 1 --validation 0.6 --config "$dir/.validation.json.tmp"
    mv -f "$dir/.validation.json.tmp" "$dir/validation.json"
  fi
  flock -u 9
  exec 9>&-
}
