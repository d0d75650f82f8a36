#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Installs everything odm needs on Debian 12, idempotently; a second run checks and returns in about a second.
#   1. Debian packages: GStreamer 1.22 (development and runtime: core, base, good, bad, ugly, libav, tools, check,
#      PyGObject with GStreamer's overrides for the Python example),
#      meson and ninja, pkg-config, python3 with pip (to fetch wheels), Rust's C toolchain, and the MQTT broker and
#      clients odmpublish's tests start on a loopback port (mosquitto, mosquitto-clients; the service is not used), and
#      openssl, which makes their TLS certificates.
#   2. ONNX Runtime: libonnxruntime.so from the PyPI `onnxruntime` wheel, pinned by version and sha256, unpacked into
#      .deps/onnxruntime/ (git ignores .deps/). The plugin and odm-train find it there (see runtime/src/lib.rs).
#   3. The sign designs: npm `mapillary_sprite_source` 1.8.0 (MIT), checked against its sha512 integrity, unpacked
#      into .deps/designs/ (scripts/designs.sh).
#   4. libtorch for the trainer (tch 0.26 expects 2.13.0): the PyPI `torch` wheel and the two CUDA runtime wheels
#      libtorch_cpu.so links against (cudart, cupti), pinned by sha256, unpacked side by side into .deps/torch/ so
#      torch's own RPATHs find them. .cargo/config.toml points LIBTORCH there. About 540 MB to download, once.
# Needs root for step 1 when a package is missing (as on a fresh machine); step 2 needs only the package registries.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPS="$ROOT/.deps"

ORT_VERSION=1.32.0
ORT_WHEEL=onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl
ORT_WHEEL_SHA256=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d

PACKAGES=(
  build-essential pkg-config git ca-certificates python3 python3-pip python3-venv meson ninja-build
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  gstreamer1.0-libav python3-gi python3-gst-1.0
  mosquitto mosquitto-clients openssl
)

log() { printf 'bootstrap: %s\n' "$*" >&2; }

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  log "cargo not found: odm needs a Rust toolchain (rustc >= 1.92) on PATH"
  exit 1
fi

ORT_DIR="$DEPS/onnxruntime"
ORT_LIB="$ORT_DIR/libonnxruntime.so.$ORT_VERSION"
if [ ! -f "$ORT_DIR/.ok-$ORT_VERSION" ]; then
  mkdir -p "$DEPS/wheels" "$ORT_DIR"
  wheel="$DEPS/wheels/$ORT_WHEEL"
  if [ ! -f "$wheel" ] || ! echo "$ORT_WHEEL_SHA256  $wheel" | sha256sum -c --status; then
    log "downloading $ORT_WHEEL from PyPI"
    rm -f "$wheel"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
      --python-version 311 --implementation cp --dest "$DEPS/wheels" "onnxruntime==$ORT_VERSION"
  fi
  if ! echo "$ORT_WHEEL_SHA256  $wheel" | sha256sum -c --status; then
    log "checksum mismatch for $wheel (expected $ORT_WHEEL_SHA256): refusing it"
    rm -f "$wheel"
    exit 1
  fi
  python3 - "$wheel" "$ORT_LIB" "$ORT_VERSION" <<'PY'
import shutil, sys, zipfile
wheel, dest, version = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(f"onnxruntime/capi/libonnxruntime.so.{version}") as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out)
PY
  ln -sf "libonnxruntime.so.$ORT_VERSION" "$ORT_DIR/libonnxruntime.so.1"
  ln -sf "libonnxruntime.so.$ORT_VERSION" "$ORT_DIR/libonnxruntime.so"
  touch "$ORT_DIR/.ok-$ORT_VERSION"
  log "ONNX Runtime $ORT_VERSION in $ORT_DIR"
fi

# The sign designs of the synthetic world (npm mapillary_sprite_source, pinned by version and integrity hash).
"$ROOT/scripts/designs.sh"

# --- libtorch (trainer) ---------------------------------------------------------------------------------------------
TORCH_VERSION=2.13.0
TORCH_DIR="$DEPS/torch"
# requirement | wheel file | sha256 | pip platform tag
TORCH_WHEELS=(
  "torch==$TORCH_VERSION|torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl|60fcdcb2f3876e21146cb4524ef06397d727ca9ad5f020818547e25075fe3cb7|manylinux_2_28_x86_64"
  "nvidia-cuda-runtime==13.0.96|nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl|7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548|manylinux_2_17_x86_64"
  "nvidia-cuda-cupti==13.0.85|nvidia_cuda_cupti-13.0.85-py3-none-manylinux_2_25_x86_64.whl|4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8|manylinux_2_25_x86_64"
)
if [ ! -f "$TORCH_DIR/.ok-$TORCH_VERSION" ]; then
  mkdir -p "$DEPS/wheels" "$TORCH_DIR"
  for entry in "${TORCH_WHEELS[@]}"; do
    IFS='|' read -r req file sha platform <<<"$entry"
    wheel="$DEPS/wheels/$file"
    if [ ! -f "$wheel" ] || ! echo "$sha  $wheel" | sha256sum -c --status; then
      log "downloading $file from PyPI"
      rm -f "$wheel"
      python3 -m pip download --quiet --no-deps --only-binary=:all: --platform "$platform" \
        --python-version 311 --implementation cp --dest "$DEPS/wheels" "$req"
    fi
    if ! echo "$sha  $wheel" | sha256sum -c --status; then
      log "checksum mismatch for $wheel (expected $sha): refusing it"
      rm -f "$wheel"
      exit 1
    fi
    python3 - "$wheel" "$TORCH_DIR" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1:]
keep = ("torch/lib/", "torch/include/", "torch/share/", "torch/version.py", "nvidia/")
with zipfile.ZipFile(wheel) as z:
    for m in z.infolist():
        if m.filename.startswith(keep):
            z.extract(m, dest)
PY
  done
  if ! grep -q "__version__ = '$TORCH_VERSION" "$TORCH_DIR/torch/version.py"; then
    log "$TORCH_DIR/torch/version.py does not say $TORCH_VERSION: refusing it"
    exit 1
  fi
  touch "$TORCH_DIR/.ok-$TORCH_VERSION"
  log "libtorch $TORCH_VERSION in $TORCH_DIR/torch"
fi

# The fleet runner (fleet/, Python: Ray's API is Python): a virtual environment in .deps/fleet with Ray and pytest,
# every package pinned by version and sha256 in fleet/requirements.lock (pip --require-hashes), then odm-fleet itself.
FLEET_DIR="$DEPS/fleet"
lock_sha=$(sha256sum "$ROOT/fleet/requirements.lock" | cut -d' ' -f1)
if [ ! -f "$FLEET_DIR/.ok-$lock_sha" ]; then
  log "installing the fleet runner's environment (Ray, pinned) into $FLEET_DIR"
  rm -rf "$FLEET_DIR"
  /usr/bin/python3 -m venv "$FLEET_DIR"
  "$FLEET_DIR/bin/pip" install --quiet --disable-pip-version-check --require-hashes --only-binary=:all: \
    -r "$ROOT/fleet/requirements.lock"
  touch "$FLEET_DIR/.ok-$lock_sha"
fi
# odm-fleet from the checkout, as an editable install would: a .pth entry for the source folder and the command.
site=$("$FLEET_DIR/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$ROOT/fleet" >"$site/odm-fleet.pth"
printf '#!%s\nimport sys\nfrom odm_fleet.cli import main\nsys.exit(main())\n' "$FLEET_DIR/bin/python" >"$FLEET_DIR/bin/odm-fleet"
chmod +x "$FLEET_DIR/bin/odm-fleet"
