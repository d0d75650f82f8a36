#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The README's test command (`make test`), and what CI runs (.ci/run): set up, check formatting and lints, run every
# test of the workspace (unit, GStreamer pipelines, ONNX Runtime sessions, end-to-end through gst-launch), then build
# and install the plugin through meson into a scratch DESTDIR and inspect it, then the fleet runner's tests (pytest, a
# local Ray instance, the debug build). Ends with one "N passed, N failed" line.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TERM_COLOR=never

step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }

# A full disk fails far into the run with a bare "No space left on device" (pip, the linker): say it first. A first
# run needs about 3 GiB under .deps/ and, with a cold target folder, about 20 GiB for the debug build.
free_gib() { df -Pk "$1" 2>/dev/null | awk 'NR == 2 { print int($4 / 1048576) }'; }
mkdir -p "$CARGO_TARGET_DIR"
for where in "$ROOT" "$CARGO_TARGET_DIR"; do
  gib=$(free_gib "$where") || gib=""
  if [ -n "$gib" ] && [ "$gib" -lt 8 ]; then
    printf 'test: warning: only %s GiB free on the disk of %s; a first run needs about 3 GiB for .deps and 20 GiB for a cold target folder\n' \
      "$gib" "$where" >&2
  fi
done

step bootstrap
scripts/bootstrap.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo build"
# The end-to-end tests load the built libgstodm.so (a cdylib, which `cargo test` alone does not link).
cargo build --workspace

step "cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

step "meson build and install"
meson_status=0
scripts/meson-check.sh || meson_status=$?

step "fleet (pytest, Ray)"
fleet_log=$(mktemp)
trap 'rm -f "$log" "$fleet_log"' EXIT
set +e
GST_PLUGIN_PATH="$CARGO_TARGET_DIR/debug" GST_REGISTRY="$CARGO_TARGET_DIR/debug/fleet-registry.bin" \
  ODM_TRAIN="$CARGO_TARGET_DIR/debug/odm-train" .deps/fleet/bin/python -m pytest -q -p no:cacheprovider fleet/tests \
  2>&1 | tee "$fleet_log"
fleet_status=${PIPESTATUS[0]}
set -e

passed=$(awk '/^test result:/ {s += $4} END {print s + 0}' "$log")
failed=$(awk '/^test result:/ {s += $6} END {print s + 0}' "$log")
[ "$meson_status" -eq 0 ] && passed=$((passed + 1)) || failed=$((failed + 1))
# pytest's last line: "N passed[, M failed][, K errors] in S s"
pytest_count() { { grep -oE "[0-9]+ $1" "$fleet_log" || true; } | tail -1 | cut -d' ' -f1; }
fleet_passed=$(pytest_count passed) fleet_failed=$(pytest_count failed) fleet_errors=$(pytest_count 'errors?')
passed=$((passed + ${fleet_passed:-0}))
failed=$((failed + ${fleet_failed:-0} + ${fleet_errors:-0}))
# pytest that failed without counting a test (could not start) still fails the run.
[ "$fleet_status" -eq 0 ] || [ $((${fleet_failed:-0} + ${fleet_errors:-0})) -gt 0 ] || failed=$((failed + 1))
echo
echo "odm: $passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$meson_status" -eq 0 ] && [ "$fleet_status" -eq 0 ]
