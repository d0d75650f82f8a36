#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The defaults beyond the paper, each switched off alone, and the paper's own ODM settings, over several seeds on the
# validation protocol of models/signs (models/signs/validation.sh: never the test designs). Each run trains STEPS
# steps of NET (default wrn-10-1:32, smaller than the shipped network so that 18 runs fit in an afternoon of 2 cores)
# with the shipped recipe but for its variant's flags; the mean ± standard deviation over seeds is written to
# out/signs/ablate-NET-STEPS/table.md, each run's wall time to times.txt beside it.
# Usage: [VARIANTS='shipped paper ...'] [SEEDS='1 2 3'] [NET=wrn-10-1:32] models/signs/ablate.sh [STEPS] [THREADS]
#   (needs out/signs from models/signs/make.sh's data steps; a run already scored in the folder is not trained again)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
steps=${1:-3000}
threads=${2:-2}
T=target/release/odm-train
S=out/signs
IFS=: read -r arch input <<< "${NET:-wrn-10-1:32}"
V=$S/ablate-$arch-$input-$steps
. models/signs/validation.sh
validation_config "$V"

# A variant's flags on top of the shipped config (models/signs/train.json).
flags() {
  case $1 in
    shipped) ;;                                             # the shipped recipe as it is
    permuted-0) echo --permuted-ood 0 ;;                    # no pixel-shuffled images in the OOD slots (paper)
    pair-mean-all) echo --pair-mean all ;;                  # margin terms averaged over every pair (paper)
    calib-none) echo --calib-ood none ;;                    # no seen design held out of training to calibrate (paper)
    novelty-margin-0) echo --novelty-margin 0 ;;            # mined sign-like unknowns pushed to the full margin
    paper) echo --permuted-ood 0 --calib-ood none ;;        # the paper's ODM: both of those at once
    *) echo "ablate.sh: unknown variant '$1' (shipped permuted-0 pair-mean-all calib-none novelty-margin-0 paper)" >&2
       return 1 ;;
  esac
}
variants=${VARIANTS:-shipped permuted-0 pair-mean-all calib-none novelty-margin-0 paper}
for v in $variants; do flags "$v" > /dev/null; done # refuse a misspelt variant before any training
for seed in ${SEEDS:-1 2 3}; do
  for v in $variants; do
    run=$V/$v-s$seed
    [ -f "$run/metrics.json" ] && continue
    read -r -a extra <<< "$(flags "$v")"
    /usr/bin/time -a -o "$V/times.txt" -f "$v seed $seed: %e s wall ($threads threads)" \
      $T train --config "$V/validation.json" --data $S/val-root --arch "$arch" --input "$input" --steps "$steps" \
      --seed "$seed" --out "$run" --force --threads "$threads" "${extra[@]}"
    $T eval --run "$run" > /dev/null
  done
done
files=()
for v in $variants; do
  for f in "$V/$v"-s*/metrics.json; do [ -f "$f" ] && files+=("$f"); done
done
$T table --mean "${files[@]}" | tee "$V/table.md"
