#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The fingerprint of make.sh's data: for each folder under BASE, a sha256 over its files' sha256 sums sorted by path
# (the bytes and the names of every file, not their times). MP4 files are left out: mp4mux writes the time of
# muxing into the movie header, so the same frames give other bytes each run (what a drive's frames hold reaches the
# fingerprint through the crops mined from them). make.sh writes it to models/signs/data.sha256 and reproduce.sh
# compares it with HEAD's, so that a rebuilt model that differs says whether its data did.
# Usage: models/signs/fingerprint.sh BASE FOLDER...   (prints "SHA256  FOLDER  FILES" a line each)
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: fingerprint.sh BASE FOLDER..." >&2
  exit 2
fi
base=$1
shift
for d in "$@"; do
  if [ ! -d "$base/$d" ]; then
    echo "fingerprint: $base/$d is not a folder" >&2
    exit 2
  fi
done
for d in "$@"; do
  (
    cd "$base/$d"
    n=$(find . -type f ! -name '*.mp4' | wc -l)
    sum=$(find . -type f ! -name '*.mp4' -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -d' ' -f1)
    printf '%s  %s  %s\n' "$sum" "$d" "$n"
  )
done
