// SPDX-License-Identifier: MIT OR Apache-2.0
//! One line of a replay file, read field by field so that an error names the field (`rois[2].x`) and says what was
//! expected in words, never in Rust type names (serde's `expected usize at line 1 column 336`).

use serde_json::{Map, Value};

/// One recorded ROI as written in the file (extra fields, such as a classifier's results, are ignored).
#[derive(Debug, Clone)]
pub(super) struct RoiRecord {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub roi_type: Option<String>,
    pub id: Option<i32>,
    pub label: Option<String>,
}

/// One line: the keys it can be matched by and its ROIs.
#[derive(Debug)]
pub(super) struct LineRecord {
    pub frame: Option<u64>,
    pub pts: Option<u64>,
    pub stream_time: Option<u64>,
    pub rois: Vec<RoiRecord>,
}

/// What a JSON value is, for a sentence: `the string "a"`, `the number -1`, `an array`.
fn found(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() > 40 => {
            format!("the string \"{}…\"", s.chars().take(40).collect::<String>())
        }
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// An optional whole number >= 0 (null or absent: none).
fn opt_u64(map: &Map<String, Value>, key: &str) -> Result<Option<u64>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("\"{key}\": expected a whole number from 0 to {}, found {}", u64::MAX, found(v))),
    }
}

/// An optional string (null or absent: none).
fn opt_string(map: &Map<String, Value>, key: &str, at: &str) -> Result<Option<String>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(format!("{at}.{key}: expected a string, found {}", found(v))),
    }
}

/// A required number.
fn number(map: &Map<String, Value>, key: &str, at: &str) -> Result<f64, String> {
    match map.get(key) {
        None => Err(format!("{at}.{key}: missing (every box needs x, y, w and h)")),
        Some(v) => v.as_f64().ok_or_else(|| format!("{at}.{key}: expected a number, found {}", found(v))),
    }
}

fn roi(v: &Value, i: usize) -> Result<RoiRecord, String> {
    let at = format!("rois[{i}]");
    let Value::Object(map) = v else {
        return Err(format!("{at}: expected an object {{\"x\", \"y\", \"w\", \"h\", …}}, found {}", found(v)));
    };
    let (x, y, w, h) = (number(map, "x", &at)?, number(map, "y", &at)?, number(map, "w", &at)?, number(map, "h", &at)?);
    if ![x, y, w, h].iter().all(|v| v.is_finite()) || w < 0.0 || h < 0.0 {
        return Err(format!("{at}: x, y, w, h must be finite with w, h >= 0"));
    }
    let id = match map.get("id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().and_then(|n| i32::try_from(n).ok()).ok_or_else(|| {
            format!("{at}.id: expected a whole number from {} to {}, found {}", i32::MIN, i32::MAX, found(v))
        })?),
    };
    Ok(RoiRecord { x, y, w, h, roi_type: opt_string(map, "type", &at)?, id, label: opt_string(map, "label", &at)? })
}

/// Parse one line of the file (without its newline). The error names the field, or the column for bad JSON.
pub(super) fn line(bytes: &[u8]) -> Result<LineRecord, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let byte = bytes.get(at).map_or_else(String::new, |b| format!(" 0x{b:02x}"));
        format!("not UTF-8 text: byte{byte} at column {}", at + 1)
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        // serde_json says "… at line 1 column N": the line is the file's, given by the caller.
        let msg = e.to_string();
        let msg = msg.rsplit_once(" at line ").map_or(&*msg, |(m, _)| m);
        format!("not valid JSON: {msg} at column {}", e.column())
    })?;
    let Value::Object(map) = &value else {
        return Err(format!("expected a JSON object {{\"frame\", \"rois\": […]}}, found {}", found(&value)));
    };
    let rois = match map.get("rois") {
        None => return Err("\"rois\": missing (the line's boxes, [] for none)".to_owned()),
        Some(Value::Array(a)) => a.iter().enumerate().map(|(i, r)| roi(r, i)).collect::<Result<Vec<_>, _>>()?,
        Some(v) => return Err(format!("\"rois\": expected an array of boxes, found {}", found(v))),
    };
    Ok(LineRecord {
        frame: opt_u64(map, "frame")?,
        pts: opt_u64(map, "pts")?,
        stream_time: opt_u64(map, "stream_time")?,
        rois,
    })
}
