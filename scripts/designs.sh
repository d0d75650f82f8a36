#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The sign designs odm's world is made of: the npm package `mapillary_sprite_source` 1.8.0 (MIT licence, Mapillary),
# fetched by name and exact version from the npm registry, checked against its published integrity hash (sha512), and
# unpacked into .deps/designs/ (not vendored: 11 MB of SVG). Only what odm reads is kept: `package_signs/` (1,543 SVG
# designs named by the Mapillary traffic-sign taxonomy, `category--name--gN`), `mapping.json` (each design's regions),
# `LICENSE` and `package.json`. Idempotent: a second run checks and returns. Run by scripts/bootstrap.sh.
#
# odm-train finds the designs at .deps/designs/package (or --designs DIR, or $ODM_DESIGNS).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=mapillary_sprite_source
VERSION=1.8.0
INTEGRITY=sha512-F4nERlUC/aOXbyMkZzQ8s2OU4oTzxJT8THK5KIM0F8F8mnGeNvTcE2AA1l9EnoyWRBYbiZISeEovPJzTwMkgWA==
URL=https://registry.npmjs.org/$NAME/-/$NAME-$VERSION.tgz
DIR=$ROOT/.deps/designs
stamp=$DIR/package/.ok-$NAME-$VERSION
[ -f "$stamp" ] && exit 0

log() { printf 'designs: %s\n' "$*" >&2; }
mkdir -p "$DIR"
tgz=$DIR/$NAME-$VERSION.tgz
log "fetching $NAME@$VERSION from the npm registry"
python3 - "$URL" "$tgz" "$INTEGRITY" <<'PY'
import base64, hashlib, os, sys, urllib.request
url, dest, integrity = sys.argv[1:]
algo, _, want = integrity.partition("-")
def ok(path):
    if not os.path.exists(path):
        return False
    with open(path, "rb") as f:
        return base64.b64encode(hashlib.new(algo, f.read()).digest()).decode() == want
if not ok(dest):
    tmp = dest + ".part"
    with urllib.request.urlopen(url, timeout=120) as r, open(tmp, "wb") as out:
        out.write(r.read())
    if not ok(tmp):
        os.remove(tmp)
        sys.exit(f"designs: {url} does not match its integrity {integrity}: refusing it")
    os.replace(tmp, dest)
PY
rm -rf "$DIR/package.tmp"
mkdir -p "$DIR/package.tmp"
tar -xzf "$tgz" -C "$DIR/package.tmp" package/package_signs package/mapping.json package/LICENSE package/package.json
n=$(find "$DIR/package.tmp/package/package_signs" -name '*.svg' | wc -l)
if [ "$n" != 1543 ]; then
  log "$tgz holds $n designs, not 1543: refusing it"
  exit 1
fi
rm -rf "$DIR/package"
mv "$DIR/package.tmp/package" "$DIR/package"
rmdir "$DIR/package.tmp"
touch "$stamp"
log "$n designs in $DIR/package"
