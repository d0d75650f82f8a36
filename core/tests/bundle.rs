// SPDX-License-Identifier: MIT OR Apache-2.0
//! Bundle loading, validation and saving: every refusal names the file and the field.

use std::fs;
use std::path::{Path, PathBuf};

use odm_core::bundle::{sha256_file, sibling_bundle_path, Bundle};
use odm_core::BundleError;
use serde_json::{json, Value};

/// A temp folder with `m.onnx` (arbitrary bytes: only the hash matters here) and a valid bundle value for it.
fn fixture() -> (tempfile::TempDir, PathBuf, Value) {
    let dir = tempfile::tempdir().unwrap();
    let onnx = dir.path().join("m.onnx");
    fs::write(&onnx, b"not really onnx, hashed only").unwrap();
    let sha = sha256_file(&onnx).unwrap();
    let v = json!({
        "format": "odm-bundle/1",
        "name": "test",
        "model": {
            "file": "m.onnx", "sha256": sha,
            "input": {"name": "input", "width": 16, "height": 16, "color": "RGB",
                      "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "context": 0.1},
            "output": {"name": "embedding", "dim": 2}
        },
        "classes": [
            {"id": 0, "label": "a", "center": [0.0, 0.0]},
            {"id": 1, "label": "b", "center": [3.0, 4.0], "novelty_threshold": 0.5, "anomaly_threshold": 1.0}
        ],
        "score": {"kind": "nearest-center-euclidean", "novelty_threshold": 1.0, "anomaly_threshold": 2.0,
                  "calibration": {"set": "validation", "tpr": 0.95}},
        "training": {"seed": 1}
    });
    let path = dir.path().join("m.odm.json");
    (dir, path, v)
}

fn write(path: &Path, v: &Value) {
    fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

fn refused(path: &Path, v: &Value) -> BundleError {
    write(path, v);
    let e = Bundle::open(path).expect_err("bundle must be refused");
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "error does not name the file: {msg}");
    e
}

#[test]
fn valid_bundle_opens_and_round_trips() {
    let (dir, path, v) = fixture();
    write(&path, &v);
    let b = Bundle::open(&path).unwrap();
    assert_eq!(b.classes.len(), 2);
    assert_eq!(b.model_path(&path), dir.path().join("m.onnx"));
    assert_eq!(sibling_bundle_path(&dir.path().join("m.onnx")), path);
    let copy = dir.path().join("copy.odm.json");
    b.save(&copy).unwrap();
    assert_eq!(Bundle::open(&copy).unwrap(), b);
    // Thresholds come back to the bit, whatever their digits (a calibrated threshold is chosen so that a crop sits
    // exactly on it; a reader one ulp short would call that crop a novelty). These decimals are among those a
    // parser without exact rounding reads one ulp off.
    let mut b = b;
    for t in [130.65331632653061, 0.30000000000000004, 1.2119999999999997, 7.105427357601002e-15] {
        b.score.novelty_threshold = t;
        b.score.anomaly_threshold = t * 2.0;
        b.classes[0].novelty_threshold = Some(t.next_up());
        b.classes[0].anomaly_threshold = Some(t * 3.0);
        b.save(&copy).unwrap();
        let back = Bundle::open(&copy).unwrap();
        assert_eq!(back.score.novelty_threshold.to_bits(), t.to_bits(), "{t}");
        assert_eq!(back.classes[0].novelty_threshold.map(f64::to_bits), Some(t.next_up().to_bits()), "{t}");
        assert_eq!(back, b);
    }
}

#[test]
fn refuses_each_broken_field() {
    let (_dir, path, v) = fixture();
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("classes[0].center", Box::new(|v| v["model"]["output"]["dim"] = json!(3))),
        ("classes[1].center", Box::new(|v| v["classes"][1]["center"] = json!([1.0]))),
        ("classes[1].id", Box::new(|v| v["classes"][1]["id"] = json!(0))),
        ("classes[1].label", Box::new(|v| v["classes"][1]["label"] = json!("a"))),
        ("classes", Box::new(|v| v["classes"] = json!([]))),
        ("score.anomaly_threshold", Box::new(|v| v["score"]["anomaly_threshold"] = json!(0.5))),
        ("classes[1].anomaly_threshold", Box::new(|v| v["classes"][1]["anomaly_threshold"] = json!(0.1))),
        ("score.kind", Box::new(|v| v["score"]["kind"] = json!("softmax"))),
        ("model.sha256", Box::new(|v| v["model"]["sha256"] = json!("abc"))),
        ("model.input.std[1]", Box::new(|v| v["model"]["input"]["std"][1] = json!(0.0))),
        ("model.input.width", Box::new(|v| v["model"]["input"]["width"] = json!(0))),
        ("score.calibration.tpr", Box::new(|v| v["score"]["calibration"]["tpr"] = json!(1.5))),
        ("name", Box::new(|v| v["name"] = json!(" "))),
        ("model.precision", Box::new(|v| v["model"]["precision"] = json!("int4"))),
    ];
    for (field, edit) in cases {
        let mut bad = v.clone();
        edit(&mut bad);
        let e = refused(&path, &bad);
        assert_eq!(e.field(), Some(field), "{e}");
        assert!(e.to_string().contains(field), "{e}");
    }
}

#[test]
fn refuses_other_format_version() {
    let (_dir, path, mut v) = fixture();
    v["format"] = json!("odm-bundle/2");
    // Also an unknown field, to check the version is reported first.
    v["future"] = json!(1);
    match refused(&path, &v) {
        BundleError::Format { found, .. } => assert_eq!(found, "odm-bundle/2"),
        e => panic!("wrong error {e}"),
    }
}

#[test]
fn refuses_malformed_json_with_position() {
    let (_dir, path, _) = fixture();
    fs::write(&path, "{\n  \"format\": \"odm-bundle/1\",\n  \"name\": oops\n}").unwrap();
    match Bundle::open(&path).unwrap_err() {
        BundleError::Json { line, .. } => assert_eq!(line, 3),
        e => panic!("wrong error {e}"),
    }
}

#[test]
fn refuses_unknown_and_missing_fields() {
    let (_dir, path, mut v) = fixture();
    v["model"]["input"]["colour"] = json!("RGB");
    assert!(matches!(refused(&path, &v), BundleError::Field { .. }));
    let (_dir, path, mut v) = fixture();
    v["model"].as_object_mut().unwrap().remove("sha256");
    let e = refused(&path, &v);
    assert!(e.to_string().contains("sha256"), "{e}");
}

#[test]
fn refuses_non_finite_numbers() {
    // JSON cannot spell NaN; a number out of f64 range is refused by the parser.
    let (_dir, path, v) = fixture();
    let text = serde_json::to_string(&v).unwrap().replace("\"center\":[3.0,4.0]", "\"center\":[3.0,1e999]");
    fs::write(&path, text).unwrap();
    assert!(matches!(Bundle::open(&path).unwrap_err(), BundleError::Json { .. }));
    // A bundle built in code with a NaN is refused on save, naming the field.
    let (dir, path, v) = fixture();
    write(&path, &v);
    let mut b = Bundle::open(&path).unwrap();
    b.classes[0].center[1] = f32::NAN;
    match b.save(&dir.path().join("x.odm.json")).unwrap_err() {
        BundleError::NonFinite { field, .. } => assert_eq!(field, "classes[0].center[1]"),
        e => panic!("wrong error {e}"),
    }
    b.classes[0].center[1] = 0.0;
    b.score.novelty_threshold = f64::INFINITY;
    assert_eq!(b.validate(&path).unwrap_err().field(), Some("score.novelty_threshold"));
}

#[test]
fn refuses_a_bundle_for_another_model() {
    let (dir, path, v) = fixture();
    write(&path, &v);
    fs::write(dir.path().join("m.onnx"), b"another model").unwrap();
    match Bundle::open(&path).unwrap_err() {
        BundleError::Sha256Mismatch { onnx, .. } => assert_eq!(onnx, dir.path().join("m.onnx")),
        e => panic!("wrong error {e}"),
    }
}

#[test]
fn missing_files_are_named() {
    let (dir, path, v) = fixture();
    let e = Bundle::open(&dir.path().join("absent.odm.json")).unwrap_err();
    assert!(matches!(e, BundleError::Io { .. }) && e.to_string().contains("absent.odm.json"), "{e}");
    write(&path, &v);
    fs::remove_file(dir.path().join("m.onnx")).unwrap();
    let e = Bundle::open(&path).unwrap_err();
    assert!(matches!(e, BundleError::ModelIo { .. }) && e.to_string().contains("m.onnx"), "{e}");
}

#[test]
fn categories_are_explicit_or_from_taxonomy_labels() {
    use odm_core::Category;
    let (_dir, path, mut v) = fixture();
    v["classes"] = json!([
        {"id": 0, "label": "warning--curve-left--g1", "center": [0.0, 0.0]},
        {"id": 1, "label": "regulatory--stop--g2", "category": "regulatory", "center": [3.0, 4.0]},
        {"id": 2, "label": "red", "category": "information", "center": [1.0, 1.0]},
        {"id": 3, "label": "blue", "center": [2.0, 2.0]},
        {"id": 4, "label": "advisory--stop--g1", "center": [5.0, 5.0]}
    ]);
    write(&path, &v);
    let b = Bundle::open(&path).unwrap();
    let effective: Vec<_> = b.classes.iter().map(|c| c.effective_category()).collect();
    assert_eq!(
        effective,
        [Some(Category::Warning), Some(Category::Regulatory), Some(Category::Information), None, None]
    );
    assert_eq!((b.classes[0].category, b.classes[2].category), (None, Some(Category::Information)));
    // Written as the lower-case name, and only where given.
    let copy = path.with_file_name("copy.odm.json");
    b.save(&copy).unwrap();
    let saved: Value = serde_json::from_str(&fs::read_to_string(&copy).unwrap()).unwrap();
    assert_eq!(
        (saved["classes"][1]["category"].as_str(), saved["classes"][0].get("category")),
        (Some("regulatory"), None)
    );
    assert_eq!(Bundle::open(&copy).unwrap(), b);
}

#[test]
fn a_category_not_of_the_four_or_against_the_label_is_refused_naming_the_class() {
    let (_dir, path, good) = fixture();
    for (bad, why) in [(json!("advisory"), "advisory"), (json!("Warning"), "Warning"), (json!(3), "3")] {
        let mut v = good.clone();
        v["classes"][1]["category"] = bad;
        let e = refused(&path, &v);
        let msg = e.to_string();
        assert_eq!(e.field(), Some("classes[1].category"), "{msg}");
        assert!(
            msg.contains("class \"b\"") && msg.contains(why),
            "the error names neither the class nor the value: {msg}"
        );
    }
    // An explicit category must agree with a taxonomy label.
    let mut v = good.clone();
    v["classes"][1]["label"] = json!("warning--curve-left--g1");
    v["classes"][1]["category"] = json!("regulatory");
    let e = refused(&path, &v);
    let msg = e.to_string();
    assert_eq!(e.field(), Some("classes[1].category"), "{msg}");
    assert!(
        msg.contains("warning--curve-left--g1") && msg.contains("\"regulatory\"") && msg.contains("\"warning\""),
        "{msg}"
    );
    v["classes"][1]["category"] = json!("warning");
    write(&path, &v);
    Bundle::open(&path).unwrap();
}

/// docs/bundle.schema.json, compiled.
fn schema() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/bundle.schema.json");
    let v: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::validator_for(&v).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn schema_errors(s: &jsonschema::Validator, v: &Value) -> Vec<String> {
    s.iter_errors(v).map(|e| format!("{} at {}", e, e.instance_path)).collect()
}

#[test]
fn the_shipped_bundles_and_the_writers_output_follow_the_json_schema() {
    let s = schema();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for shipped in ["models/signs/signs.odm.json", "models/colors/colors.odm.json"] {
        let v: Value = serde_json::from_str(&fs::read_to_string(root.join(shipped)).unwrap()).unwrap();
        assert_eq!(schema_errors(&s, &v), Vec::<String>::new(), "{shipped}");
    }
    // What Bundle::save writes (the writer every odm-train command uses), with and without the optional fields.
    let (dir, path, v) = fixture();
    write(&path, &v);
    let mut b = Bundle::open(&path).unwrap();
    b.classes[1].category = Some(odm_core::Category::Complementary);
    for precision in ["fp32", "int8", "fp16"] {
        b.model.precision = precision.into();
        let out = dir.path().join("saved.odm.json");
        b.save(&out).unwrap();
        let saved: Value = serde_json::from_str(&fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(schema_errors(&s, &saved), Vec::<String>::new(), "{precision}");
    }
}

/// The shipped bundles are exactly what `Bundle::save` writes for them (so a field set by hand, as
/// `score.category_votes` was on models/signs in the fourteenth session, is in the place and form `odm-train export`
/// writes it, and make.sh's export can give the same bytes).
#[test]
fn the_shipped_bundles_are_written_as_bundle_save_writes_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    for shipped in ["models/signs/signs.odm.json", "models/colors/colors.odm.json"] {
        let from = root.join(shipped);
        let b = Bundle::open(&from).unwrap();
        // Saved beside a copy of its ONNX file's name (save validates, it does not read the model).
        let out = dir.path().join(from.file_name().unwrap());
        b.save(&out).unwrap();
        assert!(fs::read(&out).unwrap() == fs::read(&from).unwrap(), "{shipped} is not what Bundle::save writes");
    }
}

#[test]
fn the_json_schema_refuses_what_the_reader_refuses_where_a_schema_can_tell() {
    // The reader's rules that are about one value (not about the ONNX file or two fields together).
    let s = schema();
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("format", Box::new(|v| v["format"] = json!("odm-bundle/2"))),
        ("name", Box::new(|v| v["name"] = json!(" "))),
        ("sha256", Box::new(|v| v["model"]["sha256"] = json!("abc"))),
        ("precision", Box::new(|v| v["model"]["precision"] = json!("int4"))),
        ("width", Box::new(|v| v["model"]["input"]["width"] = json!(0))),
        ("std", Box::new(|v| v["model"]["input"]["std"][1] = json!(0.0))),
        ("context", Box::new(|v| v["model"]["input"]["context"] = json!(2.5))),
        ("color", Box::new(|v| v["model"]["input"]["color"] = json!("RGBA"))),
        ("dim", Box::new(|v| v["model"]["output"]["dim"] = json!(0))),
        ("classes", Box::new(|v| v["classes"] = json!([]))),
        ("id", Box::new(|v| v["classes"][0]["id"] = json!(-1))),
        ("class threshold", Box::new(|v| v["classes"][1]["novelty_threshold"] = json!(-0.5))),
        ("category", Box::new(|v| v["classes"][1]["category"] = json!("advisory"))),
        ("category type", Box::new(|v| v["classes"][0]["category"] = json!(1))),
        ("kind", Box::new(|v| v["score"]["kind"] = json!("softmax"))),
        ("tpr", Box::new(|v| v["score"]["calibration"]["tpr"] = json!(1.5))),
        ("reference ratio", Box::new(|v| v["score"]["reference_ratio"] = json!(0.0))),
        ("category votes", Box::new(|v| v["score"]["category_votes"] = json!(0))),
        ("too many category votes", Box::new(|v| v["score"]["category_votes"] = json!(33))),
        ("fractional category votes", Box::new(|v| v["score"]["category_votes"] = json!(2.5))),
        ("unknown field", Box::new(|v| v["model"]["input"]["colour"] = json!("RGB"))),
        ("missing field", Box::new(|v| drop(v["model"].as_object_mut().unwrap().remove("sha256")))),
    ];
    let (_dir, path, good) = fixture();
    assert_eq!(schema_errors(&s, &good), Vec::<String>::new());
    for (what, break_it) in cases {
        let mut v = good.clone();
        break_it(&mut v);
        assert!(!schema_errors(&s, &v).is_empty(), "the schema accepts a bundle with a bad {what}");
        write(&path, &v);
        assert!(Bundle::open(&path).is_err(), "the reader accepts a bundle with a bad {what}");
    }
}

/// A bundle field of the wrong type, or missing, or unknown: the error names the file and the field's path and says
/// what was expected in words, not in Rust types (`expected usize at line 1 column 336` named neither).
#[test]
fn type_errors_name_the_file_and_the_field_path_in_words() {
    // (the field's path, how to break it, the words the error says, the Rust type it must not say)
    type Case = (&'static str, fn(&mut Value), &'static str, &'static str);
    let cases: [Case; 6] = [
        ("model.output.dim", |v| v["model"]["output"]["dim"] = json!("32"), "expected a whole number >= 0", "usize"),
        ("model.output.dim", |v| v["model"]["output"]["dim"] = json!(-3), "expected a whole number >= 0", "usize"),
        ("classes[1].center[0]", |v| v["classes"][1]["center"][0] = json!("x"), "expected a number", "f32"),
        ("model.input.width", |v| v["model"]["input"]["width"] = json!(1.5), "expected a whole number >= 0", "u32"),
        ("classes[0].id", |v| v["classes"][0]["id"] = json!(true), "expected a whole number", "i32"),
        ("model.sha256", |v| drop(v["model"].as_object_mut().unwrap().remove("sha256")), "missing field", "struct"),
    ];
    for (field, break_it, words, rust) in cases {
        let (_dir, path, mut v) = fixture();
        break_it(&mut v);
        let e = refused(&path, &v);
        let msg = e.to_string();
        assert_eq!(e.field(), Some(field), "{msg}");
        assert!(msg.contains(&format!("field `{field}`")) && msg.contains(words), "{field}: {msg}");
        assert!(!msg.contains(&format!("expected {rust}")), "{field}: a Rust type name in {msg}");
        assert!(msg.contains("line ") && msg.contains("column "), "{field}: no position in {msg}");
    }
    // An unknown field is named with its place in the bundle.
    let (_dir, path, mut v) = fixture();
    v["model"]["input"]["colour"] = json!("RGB");
    let e = refused(&path, &v);
    assert_eq!(e.field(), Some("model.input.colour"), "{e}");
    // The wrong kind of value for a whole object says "object", not the Rust struct's name.
    let (_dir, path, mut v) = fixture();
    v["score"] = json!("high");
    let msg = refused(&path, &v).to_string();
    assert!(msg.contains("field `score`") && msg.contains("expected an object") && !msg.contains("ScoreSpec"), "{msg}");
}
