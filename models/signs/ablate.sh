#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The defaults beyond the paper, each switched off alone, and the two settings the paper's ODM differs by together
# (no pixel-shuffled OOD slots, no seen design held out of training to calibrate), over several seeds on the
# validation protocol of models/signs (models/signs/validation.sh: never the test designs). Each run trains STEPS
# steps of NET (default wrn-10-1:32, smaller than the shipped network so that 18 runs fit in an hour of 2 cores)
# with the shipped recipe but for its variant's flags; candidate changes to the recipe (ce-1, embedding-64,
# lr-2e-3) run only when VARIANTS names them. The mean ± standard deviation over SEEDS of every variant in
# the folder is written to out/signs/ablate-ARCH-INPUT-STEPS/table.md, each run's wall time to times.txt beside it.
# Usage: [VARIANTS='shipped paper ...'] [SEEDS='1 2 3'] [NET=wrn-10-1:32] models/signs/ablate.sh [STEPS] [THREADS]
#   (needs out/signs from models/signs/make.sh's data steps; a run already scored in the folder is not trained
#   again; two of these may run side by side on other VARIANTS, in one folder)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
steps=${1:-3000}
threads=${2:-2}
T="${CARGO_TARGET_DIR:-$ROOT/target}/release/odm-train"
S=out/signs
all="shipped permuted-0 pair-mean-all calib-none novelty-margin-0 paper"
# Changes to the recipe tried as candidates (run only when VARIANTS names them).
more="ce-1 embedding-64 lr-2e-3"
variants=${VARIANTS:-$all}
seeds=${SEEDS:-1 2 3}
net=${NET:-wrn-10-1:32}

# A variant's flags on top of the shipped config (models/signs/train.json).
flags() {
  case $1 in
    shipped) ;;                                             # the shipped recipe as it is
    permuted-0) echo --permuted-ood 0 ;;                    # no pixel-shuffled images in the OOD slots (paper)
    pair-mean-all) echo --pair-mean all ;;                  # margin terms averaged over every pair (paper)
    calib-none) echo --calib-ood none ;;                    # no seen design held out of training to calibrate (paper)
    novelty-margin-0) echo --novelty-margin 0 ;;            # mined sign-like unknowns pushed to the full margin
    paper) echo --permuted-ood 0 --calib-ood none ;;        # both of the paper's settings the issue names, at once
    ce-1) echo --ce-weight 1 ;;                             # a cross-entropy head on the embedding beside the pairs
    embedding-64) echo --embedding 64 ;;                    # twice the embedding's dimensions
    lr-2e-3) echo --lr 0.002 ;;                             # twice Adam's learning rate
    *) echo "ablate.sh: unknown variant '$1' ($all $more)" >&2
       return 1 ;;
  esac
}
# Every input checked before anything is made.
for v in $variants; do flags "$v" > /dev/null; done
[[ $net =~ ^(wrn-[0-9]+-[0-9]+|lenet):([0-9]+)$ ]] || { echo "ablate.sh: NET must be ARCH:INPUT (wrn-10-1:32), not '$net'" >&2; exit 2; }
arch=${BASH_REMATCH[1]} input=${BASH_REMATCH[2]}
for seed in $seeds; do [[ $seed =~ ^[0-9]+$ ]] || { echo "ablate.sh: a seed is a number, not '$seed'" >&2; exit 2; }; done
V=$S/ablate-$arch-$input-$steps
# shellcheck source=models/signs/validation.sh
. models/signs/validation.sh
validation_config "$V"

for seed in $seeds; do
  for v in $variants; do
    run=$V/$v-s$seed
    [ -f "$run/metrics.json" ] && continue
    read -r -a extra <<< "$(flags "$v")"
    /usr/bin/time -a -o "$V/times.txt" -f "$v seed $seed: %e s wall ($threads threads)" \
      "$T" train --config "$V/validation.json" --data "$S/val-root" --arch "$arch" --input "$input" --steps "$steps" \
      --seed "$seed" --out "$run" --force --threads "$threads" "${extra[@]}"
    "$T" eval --run "$run" > /dev/null
  done
done
# The table of every variant scored in the folder, for the seeds asked (a run beside this one adds its own).
files=()
for v in $all $more; do
  for seed in $seeds; do
    [ -f "$V/$v-s$seed/metrics.json" ] && files+=("$V/$v-s$seed/metrics.json")
  done
done
"$T" table --mean "${files[@]}" > "$V/.table.$$.md"
mv -f "$V/.table.$$.md" "$V/table.md"
cat "$V/table.md"
