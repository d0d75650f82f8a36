#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Real photographs for anomaly mining and for a held-out real-photo test set, from Debian 12 packages, pinned by
# version and sha256, extracted into .deps/photos/ (not vendored: the packages carry their own licences, listed below
# and in models/signs/REPORT.md). Idempotent: a second run checks and returns.
#
#   .deps/photos/seen/     mined in training (and calibration): nature, water, sky, architecture, boats
#                          mate-backgrounds 1.26.0-1 `nature/` (GPL-2+), plasma-workspace-wallpapers 5.27.5-2 photo
#                          wallpapers (GPL-2+), lomiri-wallpapers-20.04 20.04.0-2 Kleiber (CC-BY-SA-3.0)
#   .deps/photos/heldout/  never trained on, never calibrated on: streets, buildings, vehicles, people, objects
#                          opencv-doc 4.6.0+dfsg-12 `examples/data/` (OpenCV's sample images, Debian main)
#
# Usage: scripts/photos.sh   (about 250 MB of packages downloaded once into .deps/debs/)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEBS=$ROOT/.deps/debs
OUT=$ROOT/.deps/photos
log() { printf 'photos: %s\n' "$*" >&2; }

# package=version | file | sha256
PACKAGES=(
  "mate-backgrounds=1.26.0-1|mate-backgrounds_1.26.0-1_all.deb|7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04"
  "plasma-workspace-wallpapers=4:5.27.5-2|plasma-workspace-wallpapers_5.27.5-2_all.deb|32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b"
  "lomiri-wallpapers-20.04=20.04.0-2|lomiri-wallpapers-20.04_20.04.0-2_all.deb|d44e89b8473aafe64a5b678f014862dc31335aaaf18665c544d985d854f1a709"
  "opencv-doc=4.6.0+dfsg-12|opencv-doc_4.6.0+dfsg-12_all.deb|4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a"
)
PLASMA=(BytheWater ColdRipple ColorfulCups DarkestHour EveningGlow FallenLeaf Grey Kite OneStandsOut Path summer_1am)
MATE=(Aqua Blinds Dune FreshFlower Garden GreenMeadow LadyBird RainDrops Storm TwoWings Wood YellowFlower)
OPENCV=(building.jpg home.jpg leuvenA.jpg leuvenB.jpg messi5.jpg basketball1.png basketball2.png
  licenseplate_motion.jpg graf1.png graf3.png aero1.jpg aero3.jpg fruits.jpg baboon.jpg stuff.jpg smarties.png
  orange.jpg apple.jpg butterfly.jpg squirrel_cls.jpg HappyFish.jpg box_in_scene.png board.jpg)

stamp=$OUT/.complete
want="${PACKAGES[*]} ${PLASMA[*]} ${MATE[*]} ${OPENCV[*]}"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

mkdir -p "$DEBS"
for p in "${PACKAGES[@]}"; do
  IFS='|' read -r spec file sha <<<"$p"
  if [ ! -f "$DEBS/$file" ] || ! echo "$sha  $DEBS/$file" | sha256sum -c --status; then
    log "downloading $spec"
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download "$spec" >/dev/null 2>&1) || { apt-get update >/dev/null && (cd "$tmp" && apt-get download "$spec" >/dev/null); }
    mv "$tmp"/*.deb "$DEBS/$file"
    rm -rf "$tmp"
  fi
  if ! echo "$sha  $DEBS/$file" | sha256sum -c --status; then
    log "$DEBS/$file: sha256 differs from the pinned $sha"
    exit 1
  fi
done

rm -rf "$OUT"
mkdir -p "$OUT/seen" "$OUT/heldout"
x=$(mktemp -d)
trap 'rm -rf "$x"' EXIT
for p in "${PACKAGES[@]}"; do
  IFS='|' read -r _ file _ <<<"$p"
  dpkg-deb -x "$DEBS/$file" "$x"
done
for n in "${PLASMA[@]}"; do
  cp "$x/usr/share/wallpapers/$n/contents/images/2560x1600.jpg" "$OUT/seen/plasma-$n.jpg"
done
for n in "${MATE[@]}"; do
  cp "$x/usr/share/backgrounds/mate/nature/$n.jpg" "$OUT/seen/mate-$n.jpg"
done
cp "$x/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg" "$OUT/seen/lomiri-Kleiber.jpg"
for n in "${OPENCV[@]}"; do
  cp "$x/usr/share/doc/opencv-doc/examples/data/$n" "$OUT/heldout/opencv-$n"
done
for doc in mate-backgrounds plasma-workspace-wallpapers lomiri-wallpapers-20.04 opencv-doc; do
  cp "$x/usr/share/doc/$doc/copyright" "$OUT/copyright.$doc"
done
echo "$want" >"$stamp"
log "$(ls "$OUT/seen" | wc -l) seen and $(ls "$OUT/heldout" | wc -l) held-out photographs in $OUT"
