#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The long round of the property-based tests (plugin/tests/props.rs): CASES generated inputs per property (default
# 20000) into the real elements, release build. CI runs the same properties with 256 cases each.
#
#   scripts/props.sh [CASES]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CASES=${1:-20000}
scripts/bootstrap.sh >/dev/null
start=$(date +%s)
ODM_PROPTEST_CASES=$CASES cargo test --release -q -p gst-plugin-odm --test props -- --test-threads 2 2>&1 | tee /tmp/odm-props.log
n=$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' /tmp/odm-props.log)
echo "odm props: $n properties x $CASES cases passed (0 panics) in $(( $(date +%s) - start )) s"
