#!/usr/bin/env bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# Does a change to the trainer leave odm-train's behaviour as it was? Give two odm-train binaries (a copy of
# target/release/odm-train made before the change, and the one built after it): every --help (the command, each
# subcommand, detector's) and a few grammar errors, then a small deterministic chain through every command that
# writes files (synth, render, patches, plain, sheet, split, import, train, resume, eval, export fp32/INT8/FP16, eval
# --onnx, bundle --onnx, centers, plot, clip, mine, summary, compare, report, detector data/train/export/eval; one
# thread), run by each binary in the same folder (the files hold their paths), compared file by file. Identical means
# byte for byte, except what differs from one run to the next of the same binary: wall-clock fields of JSON files
# (seconds, train_seconds, img_per_s), the order of the tensors in tch checkpoints (.ot: compared tensor by tensor),
# and timings in the printed lines. MP4s are compared with the times of their movie, track and media headers zeroed
# (what `odm-train clip` writes since 0aded82; a BEFORE binary older than that left mp4mux's wall clock there).
# With --shipped, the AFTER binary also re-exports out/signs/run-odm, which must give models/signs' files byte for
# byte (about a minute).
# Usage: scripts/trainer-same.sh [--shipped] BEFORE AFTER [OUT]   (OUT: kept for reading; default a scratch folder)
# Needs the bootstrap (.deps: designs, photos, ONNX Runtime) and GStreamer. Exit 0 when everything is the same.
# On a busy machine: nice scripts/trainer-same.sh ...
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shipped=0
if [ "${1:-}" = --shipped ]; then shipped=1; shift; fi
[ $# -ge 2 ] || { echo "usage: $0 [--shipped] BEFORE AFTER [OUT]" >&2; exit 2; }
abs() { (cd "$(dirname "$1")" && echo "$(pwd)/$(basename "$1")"); }
before=$(abs "$1") after=$(abs "$2")
for b in "$before" "$after"; do
  if [ ! -f "$b" ] || [ ! -x "$b" ]; then echo "$0: $b is not an executable file" >&2; exit 2; fi
done
command -v python3 >/dev/null || { echo "$0: python3 is needed to compare the outputs" >&2; exit 2; }
for d in .deps/designs/package .deps/photos/seen .deps/photos/heldout; do
  [ -d "$ROOT/$d" ] || { echo "$0: $ROOT/$d is missing: run scripts/bootstrap.sh" >&2; exit 2; }
done
if [ -n "${3:-}" ]; then
  mkdir -p "$3"
  out=$(cd "$3" && pwd)
else
  out=$(mktemp -d "${TMPDIR:-/tmp}/trainer-same.XXXXXX")
fi
cd "$ROOT"

# help BIN DIR: every --help, -h and `help X`, and a few errors of the grammar, one file each (exit status appended).
help() {
  local bin=$1 dir=$2 subs s
  mkdir -p "$dir"
  h() { local name=$1; shift; (exec -a odm-train "$bin" "$@") >"$dir/$name.txt" 2>&1 || echo "rc=$?" >>"$dir/$name.txt"; }
  list() { (exec -a odm-train "$bin" "$@" --help) | awk '/^Commands:/{f=1;next} /^$/{f=0} f && $1 != "help" {print $1}'; }
  h top --help; h top-h -h; h version -V; h help help
  subs=$(list)
  for s in $subs; do h "$s" "$s" --help; h "$s-h" "$s" -h; h "help-$s" help "$s"; done
  for s in $(list detector); do h "detector-$s" detector "$s" --help; h "detector-$s-h" detector "$s" -h; done
  h err-none; h err-unknown frobnicate; h err-train-noout train; h err-detector-none detector; h err-bundle-none bundle
  h err-train-resume-force train --out /nonexistent/x --resume --force
  h err-train-method train --out /nonexistent/x --data d --method ce --permuted-ood 0.5
  h err-train-nodata train --out /nonexistent/x
  h err-export-int8-fp16 export --run r --out o --int8 --fp16
  h err-mine-both mine --clip c --rois r --proposals --out o
  h err-mine-neither mine --clip c --out o
  h err-threads0 eval --run /nonexistent --threads 0
  h err-split-fractions split --data /nonexistent --fractions 1,2
  h err-centers-add-drop centers --run r --data d --out o --mode add --allow-drop
  h err-compare-tol compare a b --tolerance -1
  h err-patches-nophotos patches --out o
}

# chain BIN DIR: the chain, run in $out/work (the same path for both binaries), then moved to DIR.
chain() {
  local bin=$1 dir=$2 w="$out/work"
  local D=.deps/designs/package
  local K=regulatory--maximum-speed-limit-30--g1,regulatory--stop--g1,regulatory--yield--g1
  local S=warning--other-danger--g1,warning--curve-left--g1
  local U=regulatory--keep-left--g1,regulatory--no-motor-vehicles--g1
  rm -rf "$w" "$dir"
  mkdir -p "$w/log"
  run() { local name=$1; shift; (exec -a odm-train "$bin" "$@") >"$w/log/$name.out" 2>"$w/log/$name.err" || echo "rc=$?" >>"$w/log/$name.err"; }
  printf '%s\n' '{"in_dist": ["regulatory--maximum-speed-limit-30--g1", "regulatory--stop--g1", "regulatory--yield--g1"],' \
    ' "seen_ood": ["warning--other-danger--g1", "warning--curve-left--g1"],' \
    ' "unseen_ood": ["regulatory--keep-left--g1", "regulatory--no-motor-vehicles--g1"]}' >"$w/train.json"
  run fixture fixture --out "$w/fixture"
  run classes classes --designs $D
  run protocol protocol --region eu --seed 2 --seen-fraction 0.4 --config "$w/protocol.json" --designs $D
  run protocol-val protocol --region us --seed 3 --validation 0.5 --config "$w/protocol-val.json" --designs $D
  run synth synth --out "$w/data" --seed 3 --train-per-class 16 --test-per-class 6 --known-from "$w/train.json" \
    --known-train-per-class 24 --known-test-per-class 8 --background 30 --noise 10 --classes "$K,$S,$U" \
    --photos .deps/photos/seen --designs $D --threads 1
  run render-objects render --kind objects --out "$w/objects" --per-family 4 --seed 5
  run render-signlike render --kind signlike --out "$w/signlike" --per-family 4 --seed 6
  run patches patches --photos .deps/photos/heldout --out "$w/patches" --per-photo 2 --seed 7
  run plain plain --out "$w/plain" --config "$w/train.json" --per-design 3 --seed 3 --photos .deps/photos/heldout \
    --designs $D
  run sheet sheet --data "$w/data" --out "$w/sheet.png" --per-class 4
  run split split --data "$w/data" --seed 2 --min-per-class 5
  run split-lists split --data "$w/data" --in "$K" --seen-ood "$S" --unseen-ood "$U"
  run import import --data "$w/data/train" --format folder --out "$w/imported" --seed 4
  run train train --config "$w/train.json" --data "$w/data" --out "$w/run" --steps 30 --input 16 --embedding 8 \
    --batch 16 --checkpoint-every 10 --name tiny --anomaly-dir "$w/data/background" --seen-anomaly-dir "$w/objects" \
    --seen-novelty-dir "$w/signlike" --lr-schedule cosine --threads 1
  run train-again train --config "$w/train.json" --data "$w/data" --out "$w/run" --steps 30
  run train-resume train --out "$w/run" --resume --steps 40 --threads 1
  run train-ml train --config "$w/train.json" --data "$w/data" --out "$w/run-ml" --method ml --steps 20 --input 16 \
    --embedding 8 --batch 16 --name tiny-ml --ce-weight 0.5 --threads 1
  run eval eval --run "$w/run" --anomaly-dir "$w/patches" --noise 20 --threads 1
  run eval-plain eval --run "$w/run" --test-data "$w/plain" --tag plain --noise 20 --threads 1
  run eval-ml eval --run "$w/run-ml" --noise 20 --threads 1
  run table table "$w/run/metrics.json" "$w/run-ml/metrics.json"
  run table-mean table --mean "$w/run/metrics.json" "$w/run-ml/metrics.json"
  run export export --run "$w/run" --out "$w/exp" --threads 1
  run export-int8 export --run "$w/run" --out "$w/exp8" --name tiny8 --int8 32 --threads 1
  run export-fp16 export --run "$w/run" --out "$w/exp16" --name tiny16 --fp16 --threads 1
  run eval-onnx eval --run "$w/run" --onnx "$w/exp8/tiny8.onnx" --noise 20 --threads 1
  run inspect inspect "$w/exp/tiny.odm.json"
  run inspect8 inspect "$w/exp8/tiny8.odm.json"
  run byo bundle --onnx "$w/exp/tiny.onnx" --data "$w/data" --in "$K" --seen-ood "$S" --unseen-ood "$U" \
    --anomaly-dir "$w/data/background" --noise 20 --out "$w/byo" --name byo --threads 1
  run byo-bgr bundle --onnx "$w/exp/tiny.onnx" --data "$w/data" --in "$K" --seen-ood "$S" --unseen-ood "$U" \
    --color bgr --input-size 16 --noise 20 --out "$w/byo2" --threads 1
  run centers centers --run "$w/run" --data "$w/data" --seen-ood "$S" --out "$w/centers" --allow-drop --threads 1
  run centers-add centers --run "$w/run" --data "$w/data" --in regulatory--keep-left--g1 --mode add \
    --out "$w/centers-add" --threads 1
  run plot plot --run "$w/run" --per-set 40 --threads 1
  run clip clip --out "$w/clip" --seconds 1 --width 320 --height 240 --fps 10 --seed 9 --bundle "$w/exp/tiny.odm.json"
  run mine mine --clip "$w/clip/drive.mp4" --rois "$w/clip/drive.rois.jsonl" --truth "$w/clip/drive.rois.jsonl" \
    --out "$w/mined"
  run summary summary models/signs/demo.expected.jsonl
  run summary-json summary models/signs/demo.expected.jsonl --json
  run summary-truth summary models/signs/demo.expected.jsonl --truth "$w/clip/drive.rois.jsonl" --match boxes
  run compare compare models/signs/demo.expected.jsonl models/signs/demo.expected.jsonl
  run report report models/signs/demo.expected.jsonl --truth "$w/clip/drive.rois.jsonl" --per-group 4 --out "$w/report"
  run det-data detector data --out "$w/det" --photos .deps/photos/seen --scenes 6 --width 96 --height 96 \
    --design-count 20 --designs $D
  run det-train detector train --data "$w/det" --out "$w/detrun" --steps 3 --batch 2 --log-every 1 --threads 1
  run det-export detector export --run "$w/detrun" --out "$w/det.onnx" --height 96 --width 128
  run det-eval detector eval --results models/signs/demo.expected.jsonl --truth "$w/clip/drive.rois.jsonl" --json
  mv "$w" "$dir"
}

echo "help texts (before, after)"
help "$before" "$out/help-before"
help "$after" "$out/help-after"
status=0
diff -r "$out/help-before" "$out/help-after" >"$out/help.diff" || { echo "help texts differ: $out/help.diff"; status=1; }
echo "chain (before, after; a minute or two each)"
chain "$before" "$out/chain-before"
chain "$after" "$out/chain-after"
python3 - "$out/chain-before" "$out/chain-after" <<'EOF' || status=1
import json, os, re, sys, zipfile, zlib

VOLATILE = {"seconds", "train_seconds", "img_per_s"}

def scrub(v):
    if isinstance(v, dict):
        return {k: scrub(x) for k, x in v.items() if k not in VOLATILE}
    if isinstance(v, list):
        return [scrub(x) for x in v]
    return v

def zero_times(b, parent=None):
    # moov/mvhd, moov/trak/tkhd, moov/trak/mdia/mdhd: version, flags, then two times of 4 bytes (v0) or 8 (v1).
    i = 0
    while i + 8 <= len(b):
        size, kind = int.from_bytes(b[i:i + 4], "big"), bytes(b[i + 4:i + 8])
        head = 8
        if size == 1:
            size, head = int.from_bytes(b[i + 8:i + 16], "big"), 16
        elif size == 0:
            size = len(b) - i
        if size < head or i + size > len(b):
            raise ValueError(f"not an MP4 box structure at byte {i}")
        body = memoryview(b)[i + head:i + size]
        if (parent, kind) in ((None, b"moov"), (b"moov", b"trak"), (b"trak", b"mdia")):
            zero_times(body, kind)
        elif (parent, kind) in ((b"moov", b"mvhd"), (b"trak", b"tkhd"), (b"mdia", b"mdhd")):
            n = 16 if body[0] == 1 else 8
            body[4:4 + n] = bytes(n)
        i += size
    return b

def key(path):
    data = open(path, "rb").read()
    if path.endswith(".mp4"):
        return bytes(zero_times(bytearray(data)))
    if path.endswith(".ot"):
        z = zipfile.ZipFile(path)
        return sorted((i.file_size, zlib.crc32(z.read(i))) for i in z.infolist() if "/data/" in i.filename)
    if path.endswith(".json"):
        return json.dumps(scrub(json.loads(data)))
    if path.endswith(".jsonl"):
        return [json.dumps(scrub(json.loads(l))) for l in data.splitlines() if l.strip()]
    if path.endswith((".out", ".err")):
        t = data.decode("utf-8", "replace")
        t = re.sub(r"[0-9.]+ (s|img/s|crops/s)\b", r"N \1", t)
        return re.sub(r"\(\d+ crops/s", "(N crops/s", t)
    return data

def files(root):
    return {os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs}

a, b = sys.argv[1], sys.argv[2]
fa, fb = files(a), files(b)
bad = [f"only in {a if f in fa else b}: {f}" for f in sorted(fa ^ fb)]
exact = same = 0
for f in sorted(fa & fb):
    pa, pb = os.path.join(a, f), os.path.join(b, f)
    if open(pa, "rb").read() == open(pb, "rb").read():
        exact += 1
    elif key(pa) == key(pb):
        same += 1
    else:
        bad.append(f"differs: {f}")
for line in bad:
    print(line)
print(f"chain: {exact} files identical byte for byte, {same} identical but for timings and ordering, {len(bad)} differ")
sys.exit(1 if bad else 0)
EOF
if [ "$shipped" = 1 ]; then
  echo "re-export of out/signs/run-odm"
  "$after" export --run out/signs/run-odm --out "$out/reexport" >/dev/null
  for f in signs.onnx signs.odm.json; do
    cmp -s "$out/reexport/$f" "models/signs/$f" || { echo "models/signs/$f differs from the re-export"; status=1; }
  done
fi
[ "$status" = 0 ] && echo "the same: $out" || echo "not the same: $out"
exit "$status"
