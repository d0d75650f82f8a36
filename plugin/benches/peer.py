# SPDX-License-Identifier: MIT OR Apache-2.0
"""The Python peer of the classify bench: what a Python user writes for the same job.

appsrc ! appsink (the same NV12 frame every time, as the Rust bench feeds odmclassify), then per frame: OpenCV converts
NV12 to RGB, crops every box grown by the bundle's context margin, resizes it to the network's input (INTER_AREA),
numpy normalises and stacks the crops, onnxruntime embeds them (same model, same thread count, same batch size), and
numpy finds the nearest centre and the verdict. Prints one JSON line: frames, ms per frame, inference ms per frame.

Run by `cargo bench -p gst-plugin-odm --bench classify` through `.deps/peer/bin/python` (made by scripts/peer.sh).
"""
import argparse
import json
import time

import cv2
import gi
import numpy as np
import onnxruntime as ort

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--frame", required=True, help="raw NV12 bytes")
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--height", type=int, required=True)
    ap.add_argument("--rois", required=True, help="JSON list of [x, y, w, h]")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    a = ap.parse_args()

    bundle = json.load(open(a.bundle))
    spec = bundle["model"]["input"]
    size = (spec["width"], spec["height"])
    mean = np.array(spec["mean"], np.float32)
    std = np.array(spec["std"], np.float32)
    context = spec.get("context", 0.0)
    centers = np.array([c["center"] for c in bundle["classes"]], np.float32)
    novelty, anomaly = bundle["score"]["novelty_threshold"], bundle["score"]["anomaly_threshold"]
    rois = json.loads(a.rois)
    data = open(a.frame, "rb").read()

    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    in_name, out_name = spec["name"], bundle["model"]["output"]["name"]

    Gst.init(None)
    p = Gst.parse_launch(
        f"appsrc name=src format=time caps=video/x-raw,format=NV12,width={a.width},height={a.height},framerate=30/1 "
        "! appsink name=sink sync=false"
    )
    src, sink = p.get_by_name("src"), p.get_by_name("sink")
    p.set_state(Gst.State.PLAYING)

    def frame(i):
        buf = Gst.Buffer.new_wrapped(data)
        buf.pts = i * 33_333_333
        src.emit("push-buffer", buf)
        sample = sink.emit("pull-sample")
        b = sample.get_buffer()
        ok, info = b.map(Gst.MapFlags.READ)
        yuv = np.frombuffer(info.data, np.uint8).reshape(a.height * 3 // 2, a.width)
        rgb = cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_NV12)
        b.unmap(info)
        crops = []
        for x, y, w, h in rois:
            gx, gy = context * w, context * h
            x0, y0 = max(int(round(x - gx)), 0), max(int(round(y - gy)), 0)
            x1, y1 = min(int(round(x + w + gx)), a.width), min(int(round(y + h + gy)), a.height)
            crops.append(cv2.resize(rgb[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA))
        x = (np.stack(crops).astype(np.float32) / 255.0 - mean) / std
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        t0 = time.perf_counter()
        emb = np.concatenate([sess.run([out_name], {in_name: x[k:k + a.batch]})[0] for k in range(0, len(x), a.batch)])
        infer = time.perf_counter() - t0
        d = np.sqrt(((emb[:, None, :] - centers[None, :, :]) ** 2).sum(-1))
        k = d.argmin(1)
        dist = d[np.arange(len(k)), k]
        verdict = np.where(dist <= novelty, 0, np.where(dist <= anomaly, 1, 2))
        assert len(verdict) == len(rois)
        return infer

    for i in range(20):
        frame(i)
    t0 = time.perf_counter()
    infer = sum(frame(20 + i) for i in range(a.frames))
    total = time.perf_counter() - t0
    src.emit("end-of-stream")
    p.set_state(Gst.State.NULL)
    print(json.dumps({
        "frames": a.frames,
        "ms_per_frame": 1e3 * total / a.frames,
        "inference_ms_per_frame": 1e3 * infer / a.frames,
        "crops_per_s": a.frames * len(rois) / total,
    }))


if __name__ == "__main__":
    main()
