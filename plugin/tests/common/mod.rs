// SPDX-License-Identifier: MIT OR Apache-2.0
//! Helpers shared by the plugin's tests: real frames with real ROI metas, the committed `colors` model.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Once;

use gst::prelude::*;
use gst_video::VideoRegionOfInterestMeta;

pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("GStreamer initialises");
        gstodm::plugin_register_static().expect("plugin registers");
    });
}

pub fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// The committed colour model: red/green/blue/yellow known, orange a novelty, grey/white anomalies.
pub fn colors_model() -> String {
    models().join("colors/colors.onnx").display().to_string()
}

pub type Rect = gstodm::meta::Rect;

/// Each result's label, or its skip reason prefixed by `skipped: `.
pub fn label(r: &gstodm::meta::RoiResult) -> String {
    match &r.outcome {
        gstodm::meta::Outcome::Classified { label, .. } => label.to_string(),
        gstodm::meta::Outcome::Skipped { reason } => format!("skipped: {reason}"),
    }
}

pub const GREY: [u8; 3] = [128, 128, 128];
pub const RED: [u8; 3] = [255, 0, 0];
pub const GREEN: [u8; 3] = [0, 255, 0];
pub const BLUE: [u8; 3] = [0, 0, 255];
pub const YELLOW: [u8; 3] = [255, 255, 0];
pub const ORANGE: [u8; 3] = [255, 128, 0];

/// An RGB frame: grey background with filled rectangles.
pub fn rgb_frame(width: u32, height: u32, patches: &[(Rect, [u8; 3])]) -> Vec<u8> {
    let mut data = vec![0u8; (width * height * 3) as usize];
    for y in 0..height {
        for x in 0..width {
            let mut c = GREY;
            for ((px, py, pw, ph), rgb) in patches {
                if x >= *px && x < px + pw && y >= *py && y < py + ph {
                    c = *rgb;
                }
            }
            let i = ((y * width + x) * 3) as usize;
            data[i..i + 3].copy_from_slice(&c);
        }
    }
    data
}

/// A buffer with ROI metas `(id, rect)` of type `sign`.
pub fn buffer_with_rois(data: Vec<u8>, rois: &[(i32, Rect)], pts: u64) -> gst::Buffer {
    let mut buf = gst::Buffer::from_mut_slice(data);
    {
        let b = buf.get_mut().expect("new buffer is writable");
        b.set_pts(gst::ClockTime::from_nseconds(pts));
        for (id, rect) in rois {
            let mut m = VideoRegionOfInterestMeta::add(b, "sign", *rect);
            m.set_id(*id);
        }
    }
    buf
}

pub fn rgb_caps(width: u32, height: u32) -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::Rgb)
        .width(width as i32)
        .height(height as i32)
        .framerate(gst::Fraction::new(30, 1))
        .build()
}

/// An `odmclassify` on the colour model, with properties given as strings (as on a launch line).
pub fn classifier(props: &[(&str, &str)]) -> gst::Element {
    let el = gst::ElementFactory::make("odmclassify")
        .property("model", colors_model())
        .build()
        .expect("odmclassify is registered");
    for (k, v) in props {
        el.set_property_from_str(k, v);
    }
    el
}

/// What a launch line did until EOS or its first error.
pub struct Launched {
    pub warnings: Vec<String>,
    /// The first error, with its debug text.
    pub error: Option<String>,
    /// Element messages posted on the bus.
    pub messages: Vec<gst::Structure>,
    /// The pipeline's elements (for reading properties such as `stats` afterwards).
    pub elements: Vec<gst::Element>,
    pub start_failed: bool,
}

fn launch(pipeline: gst::Element) -> Launched {
    let bus = pipeline.bus().expect("pipelines have a bus");
    let start_failed = pipeline.set_state(gst::State::Playing).is_err();
    let (mut warnings, mut error, mut messages) = (Vec::new(), None, Vec::new());
    // Ends at EOS or the first error; a pipeline that does neither within the timeout is a failure, not a success.
    let timeout = gst::ClockTime::from_seconds(60);
    let mut ended = false;
    for msg in bus.iter_timed(timeout) {
        match msg.view() {
            gst::MessageView::Eos(..) => {
                ended = true;
                break;
            }
            gst::MessageView::Warning(w) => warnings.push(format!("{} {}", w.error(), w.debug().unwrap_or_default())),
            gst::MessageView::Error(e) => {
                error = Some(format!("{} ({})", e.error(), e.debug().unwrap_or_default()));
                ended = true;
                break;
            }
            gst::MessageView::Element(e) => messages.extend(e.structure().map(|s| s.to_owned())),
            _ => {}
        }
    }
    if !ended && !start_failed {
        error = Some(format!("the pipeline posted neither EOS nor an error within {timeout}"));
    }
    let elements = pipeline
        .downcast_ref::<gst::Bin>()
        .expect("a launch line makes a bin")
        .iterate_recurse()
        .into_iter()
        .flatten()
        .collect();
    pipeline.set_state(gst::State::Null).expect("pipeline stops");
    Launched { warnings, error, messages, elements, start_failed }
}

/// Run a launch line to EOS or its first error: everything it did.
#[allow(dead_code)]
pub fn launch_line(line: &str) -> Launched {
    init();
    launch(gst::parse::launch(line).unwrap_or_else(|e| panic!("{line}: {e}")))
}

/// Run a launch line to EOS or error; the error's text (with debug info) on failure, the element messages on success.
pub fn run_launch(line: &str) -> Result<Vec<gst::Structure>, String> {
    init();
    let l = launch(gst::parse::launch(line).map_err(|e| format!("parse: {e}"))?);
    match (l.error, l.start_failed) {
        (Some(e), _) => Err(e),
        (None, true) => Err("state change failed without an error message".into()),
        (None, false) => Ok(l.messages),
    }
}

/// Run a launch line to EOS or the first error: the warnings and the error (each with its debug text), and the
/// pipeline's elements (for reading properties such as `stats` afterwards).
pub fn launch_warnings(line: &str) -> (Vec<String>, Option<String>, Vec<gst::Element>) {
    init();
    let l = launch(gst::parse::launch(line).unwrap_or_else(|e| panic!("{line}: {e}")));
    (l.warnings, l.error, l.elements)
}

/// A copy of `stem`'s model in `dir` whose bundle is edited by `edit` (same ONNX bytes: the same network).
pub fn model_copy(dir: &Path, family: &str, stem: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let src = models().join(family);
    std::fs::copy(src.join(format!("{family}.onnx")), dir.join(format!("{stem}.onnx"))).unwrap();
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join(format!("{family}.odm.json"))).unwrap()).unwrap();
    v["model"]["file"] = format!("{stem}.onnx").into();
    edit(&mut v);
    let path = dir.join(format!("{stem}.odm.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    path
}

/// docs/results.schema.json (one line of odmexport), compiled.
pub fn results_schema() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/results.schema.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    jsonschema::validator_for(&v).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the schema finds wrong with a line (empty: it follows the schema).
pub fn schema_errors(s: &jsonschema::Validator, v: &serde_json::Value) -> Vec<String> {
    s.iter_errors(v).map(|e| format!("{e} at {}", e.instance_path)).collect()
}
