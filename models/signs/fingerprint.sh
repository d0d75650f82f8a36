#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The fingerprint of make.sh's data: for each folder under BASE, a sha256 over its files' sha256 sums sorted by path
# (the bytes and the names of every file, not their times; `odm-train clip` writes its MP4 with zero times, so the
# drive counts too). make.sh writes it to models/signs/data.sha256 and reproduce.sh compares it with HEAD's, so that a
# rebuilt model that differs says whether its data did.
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
sums=$(mktemp)
trap 'rm -f "$sums"' EXIT
for d in "$@"; do
  # One walk: the sorted sums give both the fingerprint and the count (sha256sum writes one line a file).
  (cd "$base/$d" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum) >"$sums"
  printf '%s  %s  %s\n' "$(sha256sum <"$sums" | cut -d' ' -f1)" "$d" "$(wc -l <"$sums")"
done
