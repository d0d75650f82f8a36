// SPDX-License-Identifier: MIT OR Apache-2.0
//! A network whose input has a fixed batch size (exported without a dynamic batch axis) runs at any `batch-size`:
//! odmclassify runs it in batches of exactly that size, the last one padded, says so once at start, and gives the
//! same results as the network with a dynamic batch. Before, it passed the start check and then warned on every frame
//! (every ROI skipped). Real files: the committed colour network rewritten with its batch axis fixed, gst-launch-1.0.

use std::fs;
use std::path::Path;

use odm_e2e::{gst_tool, repo, text};
use odm_trainer::export::onnx::proto::{DimensionValue, ModelProto};
use prost::Message;

/// The colour model in `dir` as `stem.onnx` + `stem.odm.json`, its input's batch axis set to `batch` (None: as
/// committed), the bundle's SHA-256 following the bytes.
fn colour_model(dir: &Path, stem: &str, batch: Option<i64>) -> std::path::PathBuf {
    let src = repo().join("models/colors");
    let mut bytes = fs::read(src.join("colors.onnx")).unwrap();
    if let Some(b) = batch {
        let mut m = ModelProto::decode(bytes.as_slice()).unwrap();
        let input = &mut m.graph.as_mut().unwrap().input[0];
        let shape = input.r#type.as_mut().unwrap().tensor_type.as_mut().unwrap().shape.as_mut().unwrap();
        assert!(matches!(shape.dim[0].value, Some(DimensionValue::DimParam(_))), "the committed network is dynamic");
        shape.dim[0].value = Some(DimensionValue::DimValue(b));
        bytes = m.encode_to_vec();
    }
    let model = dir.join(format!("{stem}.onnx"));
    fs::write(&model, &bytes).unwrap();
    let mut v: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(src.join("colors.odm.json")).unwrap()).unwrap();
    v["model"]["file"] = format!("{stem}.onnx").into();
    v["model"]["sha256"] = odm_core::bundle::sha256_bytes(&bytes).into();
    fs::write(dir.join(format!("{stem}.odm.json")), serde_json::to_string_pretty(&v).unwrap()).unwrap();
    model
}

/// SMPTE bars, 5 ROIs a frame (two batches of 4 at batch-size 4), through odmclassify: the exported lines and
/// gst-launch's output.
fn run(dir: &Path, model: &Path, tag: &str) -> (Vec<serde_json::Value>, String) {
    let rois = dir.join("rois.jsonl");
    let boxes: Vec<String> =
        (0..5).map(|i| format!("{{\"x\": {}, \"y\": 4, \"w\": 24, \"h\": 24, \"id\": {i}}}", i * 26)).collect();
    let lines: String = (0..6).map(|f| format!("{{\"frame\": {f}, \"rois\": [{}]}}\n", boxes.join(", "))).collect();
    fs::write(&rois, lines).unwrap();
    let out = dir.join(format!("{tag}.jsonl"));
    let o = gst_tool("gst-launch-1.0", &dir.join("registry.bin"))
        .args(["videotestsrc", "pattern=smpte", "num-buffers=6", "!", "video/x-raw,width=160,height=48,format=RGB"])
        .args(["!", "odmroireplay", &format!("location={}", rois.display())])
        .args(["!", "odmclassify", &format!("model={}", model.display()), "batch-size=4"])
        .args(["!", "odmexport", &format!("location={}", out.display()), "!", "fakesink"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{tag}: {}", text(&o));
    let lines = fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (lines, text(&o))
}

#[test]
fn a_network_with_a_fixed_batch_runs_at_any_batch_size_with_the_same_results() {
    let dir = tempfile::tempdir().unwrap();
    let dynamic = colour_model(dir.path(), "dynamic", None);
    let (want, _) = run(dir.path(), &dynamic, "dynamic");
    for batch in [1, 3] {
        let fixed = colour_model(dir.path(), &format!("fixed{batch}"), Some(batch));
        let (got, said) = run(dir.path(), &fixed, &format!("fixed{batch}"));
        assert!(!said.contains("WARNING"), "batch {batch}: no warning, let alone one per frame: {said}");
        assert_eq!(got.len(), 6);
        for (f, (g, w)) in got.iter().zip(&want).enumerate() {
            let (g, w) = (&g["rois"], &w["rois"]);
            assert_eq!(g.as_array().unwrap().len(), 5, "batch {batch}, frame {f}");
            for (a, b) in g.as_array().unwrap().iter().zip(w.as_array().unwrap()) {
                assert_eq!(a["verdict"], b["verdict"], "batch {batch}, frame {f}: {a} vs {b}");
                assert_eq!(a["label"], b["label"], "batch {batch}, frame {f}");
                let (da, db) = (a["distance"].as_f64().unwrap(), b["distance"].as_f64().unwrap());
                assert!((da - db).abs() < 1e-4, "batch {batch}, frame {f}: distance {da} vs {db}");
            }
        }
    }
}
