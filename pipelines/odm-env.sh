# SPDX-License-Identifier: MIT OR Apache-2.0
# Sourced by the pipelines scripts: where the odm plugin and odm-train come from. Set ROOT first.
#
# - In a checkout with cargo (Cargo.toml above pipelines/, cargo on PATH, ODM_INSTALLED unset): build them in release
#   (unless `odm_env nobuild`) and use them from the cargo target folder.
# - Installed (`meson install` puts these scripts in share/odm/pipelines, the shipped model in share/odm/models,
#   odm-train in bin/ and the plugin in GStreamer's plugin folder), or ODM_INSTALLED=1: nothing is built; the plugin
#   is GStreamer's own (or GST_PLUGIN_PATH as set) and odm-train is the one on PATH.
# GST_PLUGIN_PATH and ODM_TRAIN, when set, are used as they are in every case.
odm_env() {
  if [ -z "${ODM_INSTALLED:-}" ] && [ -f "$ROOT/Cargo.toml" ] && command -v cargo >/dev/null 2>&1; then
    local target=${CARGO_TARGET_DIR:-$ROOT/target}
    if [ "${1:-build}" = build ] && [ -z "${ODM_TRAIN:-}" ]; then
      cargo build --release -q --manifest-path "$ROOT/Cargo.toml" -p gst-plugin-odm -p odm-trainer
    fi
    export GST_PLUGIN_PATH="${GST_PLUGIN_PATH:-$target/release}"
    ODM_TRAIN=${ODM_TRAIN:-$target/release/odm-train}
  else
    ODM_TRAIN=${ODM_TRAIN:-$(command -v odm-train || true)}
    if ! gst-inspect-1.0 odmclassify >/dev/null 2>&1; then
      echo "odm: the GStreamer plugin is not installed (meson install) and not on GST_PLUGIN_PATH" >&2
      exit 2
    fi
  fi
  if [ -z "$ODM_TRAIN" ] || [ ! -x "$ODM_TRAIN" ]; then
    echo "odm: odm-train not found (install it with meson install, or set ODM_TRAIN)" >&2
    exit 2
  fi
}
