#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The Python peer of the classify bench (plugin/benches/peer.py): a virtual environment in .deps/peer on the system
# Python (which has PyGObject and numpy from Debian), with OpenCV and the onnxruntime wheel the bootstrap fetched.
# Not needed by the tests; `cargo bench -p gst-plugin-odm --bench classify` uses it when it exists.
# Environment: PYTHON (default /usr/bin/python3), the Python the environment is made on; it must have numpy and gi.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-/usr/bin/python3}
[ -x "$PYTHON" ] || { echo "scripts/peer.sh: $PYTHON not found (set PYTHON to a Python 3.11)" >&2; exit 2; }
# The environment sees the system's site packages: numpy and PyGObject come from Debian, not from pip (a pip numpy
# would not be the one Debian's PyGObject was built against). Say which are missing before anything is made.
missing=() debs=()
for pair in numpy:python3-numpy gi:python3-gi; do
  if ! "$PYTHON" -c "import ${pair%%:*}" >/dev/null 2>&1; then missing+=("${pair%%:*}"); debs+=("${pair#*:}"); fi
done
if [ ${#missing[@]} -gt 0 ]; then
  names=$(printf ', %s' "${missing[@]}")
  echo "scripts/peer.sh: $PYTHON cannot import ${names#, }, which the peer takes from the system:" \
    "apt-get install ${debs[*]}" >&2
  exit 2
fi
scripts/bootstrap.sh >/dev/null
wheels=(.deps/wheels/onnxruntime-*-cp311-*.whl)
wheel=${wheels[0]}
[ -f "$wheel" ] || { echo "scripts/peer.sh: no onnxruntime wheel in .deps/wheels (scripts/bootstrap.sh fetches it)" >&2; exit 2; }
"$PYTHON" -m venv --system-site-packages .deps/peer
.deps/peer/bin/pip install -q --no-deps "$wheel" opencv-python-headless==4.10.0.84
.deps/peer/bin/python -c "import cv2, numpy, onnxruntime, gi; print('peer: OpenCV', cv2.__version__, 'onnxruntime', onnxruntime.__version__, 'numpy', numpy.__version__)"
