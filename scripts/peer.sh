#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The Python peer of the classify bench (plugin/benches/peer.py): a virtual environment in .deps/peer on the system
# Python (which has PyGObject and numpy from Debian), with OpenCV and the onnxruntime wheel the bootstrap fetched.
# Not needed by the tests; `cargo bench -p gst-plugin-odm --bench classify` uses it when it exists.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
scripts/bootstrap.sh >/dev/null
wheel=$(ls .deps/wheels/onnxruntime-*-cp311-*.whl | head -1)
/usr/bin/python3 -m venv --system-site-packages .deps/peer
.deps/peer/bin/pip install -q --no-deps "$wheel" opencv-python-headless==4.10.0.84
.deps/peer/bin/python -c "import cv2, numpy, onnxruntime, gi; print('peer: OpenCV', cv2.__version__, 'onnxruntime', onnxruntime.__version__, 'numpy', numpy.__version__)"
