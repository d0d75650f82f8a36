#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Training speed, odm (tch) against PyTorch on the CPU, same network, batch, loss and optimiser, in one run.
# PyTorch comes from the PyPI `torch` wheel of the version libtorch is (2.13.0), installed into .deps/bench-venv with
# its dependencies (the CUDA wheels included: `import torch` loads them even on the CPU) — several GB, benchmark only.
# Usage: trainer/bench/run.sh [STEPS] [THREADS]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
steps=${1:-30}
threads=${2:-2}
scripts/bootstrap.sh
cargo build --release -p odm-trainer
venv="$ROOT/.deps/bench-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch==2.13.0 numpy
fi
printf '%-13s %10s %10s %10s\n' runtime 'img/s' 's/step' 'peak MiB'
for arch in "10 1 32" "10 2 32" "10 3 32" "16 2 32"; do
  set -- $arch
  # odm-train bench prints a labelled table; its data row's img/s, s/step and peak MiB columns:
  read -r ips sps mib < <("${CARGO_TARGET_DIR:-$ROOT/target}/release/odm-train" bench --arch "wrn-$1-$2" \
    --input "$3" --steps "$steps" --threads "$threads" | awk -F'|' 'NR == 3 { print $9, $10, $11 }')
  printf '%-13s %10s %10s %10s   wrn-%s-%s %sx%s batch 64\n' odm-tch "$ips" "$sps" "$mib" "$1" "$2" "$3" "$3"
  read -r _ ips sps mib < <("$venv/bin/python" trainer/bench/torch_ref.py "$1" "$2" "$3" 32 64 "$steps" 3 "$threads")
  printf '%-13s %10s %10s %10s   wrn-%s-%s %sx%s batch 64\n' pytorch "$ips" "$sps" "$mib" "$1" "$2" "$3" "$3"
  # PyTorch tuned as odm-train is: channels-last tensors, and glibc keeping freed memory (odm-train's mallopt).
  read -r _ ips sps mib < <(GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=2147483647 \
    "$venv/bin/python" trainer/bench/torch_ref.py "$1" "$2" "$3" 32 64 "$steps" 3 "$threads" cl)
  printf '%-13s %10s %10s %10s   wrn-%s-%s %sx%s batch 64\n' pytorch-tuned "$ips" "$sps" "$mib" "$1" "$2" "$3" "$3"
done
