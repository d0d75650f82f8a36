# SPDX-License-Identifier: MIT OR Apache-2.0
# shellcheck shell=bash
# Sourced by the pipelines scripts: where the odm plugin and odm-train come from. Set ROOT first.
#
# - In a checkout with cargo (Cargo.toml above pipelines/, cargo on PATH, ODM_INSTALLED unset): build them (unless
#   `odm_env nobuild`) and use them from the cargo target folder. The build runs in the checkout, wherever the user
#   stands: cargo reads `.cargo/config.toml` (which points torch-sys at the bootstrap's libtorch) from the working
#   folder upward, not from the manifest's folder. ODM_PROFILE=debug builds and uses the debug build (default release).
# - Installed (`meson install` puts these scripts in share/odm/pipelines, the shipped model in share/odm/models,
#   odm-train in bin/ and the plugin in GStreamer's plugin folder), or ODM_INSTALLED=1: nothing is built; the plugin
#   is GStreamer's own (or GST_PLUGIN_PATH as set) and odm-train is the one on PATH.
# GST_PLUGIN_PATH and ODM_TRAIN, when set, are used as they are in every case.
odm_env() {
  if [ -z "${ODM_INSTALLED:-}" ] && [ -f "$ROOT/Cargo.toml" ] && command -v cargo >/dev/null 2>&1; then
    local target=${CARGO_TARGET_DIR:-$ROOT/target} profile=${ODM_PROFILE:-release}
    # A relative CARGO_TARGET_DIR is relative to the folder cargo runs in: the checkout.
    case $target in /*) ;; *) target=$ROOT/$target ;; esac
    case $profile in
      release | debug) ;;
      *) echo "odm: ODM_PROFILE=$profile: release or debug" >&2; exit 2 ;;
    esac
    if [ "${1:-build}" = build ] && [ -z "${ODM_TRAIN:-}" ]; then
      local flags=(-q -p gst-plugin-odm -p odm-trainer)
      if [ "$profile" = release ]; then flags+=(--release); fi
      if ! (cd "$ROOT" && cargo build "${flags[@]}"); then
        echo "odm: building the plugin and odm-train failed (cargo build ${flags[*]} in $ROOT)" >&2
        exit 2
      fi
    fi
    export GST_PLUGIN_PATH="${GST_PLUGIN_PATH:-$target/$profile}"
    ODM_TRAIN=${ODM_TRAIN:-$target/$profile/odm-train}
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

# Exit 2 with a sentence unless FILE is a readable file: odm_input FILE WHAT (WHAT names it in the sentence).
odm_input() {
  if [ ! -e "$1" ]; then
    echo "odm: $2 $1: no such file" >&2
  elif [ ! -f "$1" ]; then
    echo "odm: $2 $1: not a file" >&2
  elif [ ! -r "$1" ]; then
    echo "odm: $2 $1: cannot be read (permission denied)" >&2
  else
    return 0
  fi
  exit 2
}

# Exit 2 with a sentence unless the GStreamer command-line tools are on PATH.
odm_tools() {
  local t
  for t in gst-launch-1.0 gst-inspect-1.0; do
    command -v "$t" >/dev/null 2>&1 ||
      { echo "odm: $t not found: install GStreamer's tools (Debian: gstreamer1.0-tools)" >&2; exit 2; }
  done
}
