// SPDX-License-Identifier: MIT OR Apache-2.0
//! odmpublish's messages: a frame's results as odmexport writes them (`export::line`), with a sequence number and
//! the stream's name; odmclassify's `odm-drift` statistics as JSON.

use gst::glib;
use serde_json::{Map, Value};

use super::spool::Message;
use super::topic::{Template, NO_LABEL};
use crate::export::line::{FrameLine, RoiLine};

/// A frame message: `seq` and `stream`, then the fields of odmexport's line.
#[derive(serde::Serialize)]
struct Envelope<'a> {
    seq: u64,
    stream: &'a str,
    #[serde(flatten)]
    line: FrameLine<'a>,
}

/// Where a frame's messages go and how they are numbered.
pub struct Frame<'a> {
    pub stream: &'a str,
    pub topic: &'a Template,
    /// The number of the next message; advanced for each message made.
    pub seq: &'a mut u64,
}

impl Frame<'_> {
    /// The messages of one frame: one, or with `{label}` in the topic one per label among its ROIs (in the order
    /// the labels first come; ROIs without a class under "none"), each with only its label's ROIs.
    pub fn messages(&mut self, line: FrameLine<'_>) -> Result<Vec<Message>, serde_json::Error> {
        if !self.topic.has_label() {
            return Ok(vec![self.one(line, NO_LABEL)?]);
        }
        let FrameLine { frame, pts, stream_time, rois } = line;
        let mut groups: Vec<(String, Vec<RoiLine<'_>>)> = Vec::new();
        for roi in rois {
            let label = roi.label.unwrap_or(NO_LABEL);
            match groups.iter_mut().find(|(l, _)| l == label) {
                Some((_, g)) => g.push(roi),
                None => groups.push((label.to_owned(), vec![roi])),
            }
        }
        if groups.is_empty() {
            groups.push((NO_LABEL.to_owned(), Vec::new()));
        }
        groups.into_iter().map(|(label, rois)| self.one(FrameLine { frame, pts, stream_time, rois }, &label)).collect()
    }

    fn one(&mut self, line: FrameLine<'_>, label: &str) -> Result<Message, serde_json::Error> {
        let payload = serde_json::to_string(&Envelope { seq: *self.seq, stream: self.stream, line })?;
        *self.seq += 1;
        Ok(Message { topic: self.topic.expand(self.stream, label), payload })
    }
}

/// The `odm-drift` structure as a message: `{"stream": ..., "drift": {field: value, ...}}`.
pub fn drift(s: &gst::StructureRef, stream: &str, topic: &Template) -> Result<Message, serde_json::Error> {
    let fields: Map<String, Value> = s.iter().map(|(k, v)| (k.to_string(), json(v))).collect();
    let body = serde_json::json!({ "stream": stream, "drift": fields });
    Ok(Message { topic: topic.expand(stream, NO_LABEL), payload: serde_json::to_string(&body)? })
}

/// A GValue as JSON: numbers, strings, booleans and arrays as themselves, anything else as its serialised text.
fn json(v: &glib::Value) -> Value {
    if let Ok(a) = v.get::<gst::ArrayRef>() {
        return Value::Array(a.iter().map(|v| json(v)).collect());
    }
    macro_rules! try_as {
        ($($t:ty),*) => {$(
            if let Ok(x) = v.get::<$t>() {
                return serde_json::json!(x);
            }
        )*};
    }
    try_as!(i32, u32, i64, u64, bool);
    if let Ok(x) = v.get::<f64>() {
        return serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number);
    }
    if let Ok(x) = v.get::<f32>() {
        return serde_json::Number::from_f64(x as f64).map_or(Value::Null, Value::Number);
    }
    if let Ok(x) = v.get::<Option<String>>() {
        return x.map_or(Value::Null, Value::String);
    }
    gst::prelude::GstValueExt::serialize(v).map_or(Value::Null, |s| Value::String(s.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init() {
        let _ = gst::init();
    }

    fn roi(id: i32, label: Option<&'static str>) -> RoiLine<'static> {
        RoiLine {
            id,
            roi_type: "sign",
            x: 0,
            y: 0,
            w: 8,
            h: 8,
            score: None,
            class_id: label.map(|_| 1),
            label,
            distance: None,
            confidence: None,
            verdict: None,
            category: None,
            reason: None,
            model: None,
            novelty_threshold: None,
            anomaly_threshold: None,
            reference_bound: None,
            reused: false,
            raw_class_id: None,
            raw_label: None,
            raw_distance: None,
            raw_verdict: None,
            raw_category: None,
            embedding: None,
        }
    }

    fn line(rois: Vec<RoiLine<'static>>) -> FrameLine<'static> {
        FrameLine { frame: 7, pts: Some(1), stream_time: Some(1), rois }
    }

    #[test]
    fn one_message_per_frame_with_seq_and_stream_first() {
        let topic = Template::parse("topic", "odm/{stream}", true).unwrap();
        let mut seq = 5;
        let mut f = Frame { stream: "cam", topic: &topic, seq: &mut seq };
        let m = f.messages(line(vec![roi(1, Some("a")), roi(2, None)])).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].topic, "odm/cam");
        assert!(m[0].payload.starts_with(r#"{"seq":5,"stream":"cam","frame":7,"#), "{}", m[0].payload);
        let v: Value = serde_json::from_str(&m[0].payload).unwrap();
        assert_eq!(v["rois"].as_array().unwrap().len(), 2);
        assert_eq!(seq, 6);
    }

    #[test]
    fn label_topics_split_a_frame_by_label_in_order() {
        let topic = Template::parse("topic", "odm/{label}", true).unwrap();
        let mut seq = 0;
        let mut f = Frame { stream: "cam", topic: &topic, seq: &mut seq };
        let m = f.messages(line(vec![roi(1, Some("b")), roi(2, None), roi(3, Some("b")), roi(4, Some("a"))])).unwrap();
        let topics: Vec<_> = m.iter().map(|m| m.topic.as_str()).collect();
        assert_eq!(topics, ["odm/b", "odm/none", "odm/a"]);
        let ids: Vec<Vec<i64>> = m
            .iter()
            .map(|m| {
                let v: Value = serde_json::from_str(&m.payload).unwrap();
                v["rois"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect()
            })
            .collect();
        assert_eq!(ids, [vec![1, 3], vec![2], vec![4]]);
        let empty = f.messages(line(vec![])).unwrap();
        assert_eq!(empty.len(), 1);
        assert_eq!(empty[0].topic, "odm/none");
        assert_eq!(seq, 4);
    }

    #[test]
    fn drift_statistics_become_json() {
        init();
        let s = gst::Structure::builder("odm-drift")
            .field("frames", 10u64)
            .field("known-rate", 0.5f64)
            .field("model", "m")
            .field("histogram", gst::Array::new([1u64, 2u64]))
            .build();
        let topic = Template::parse("drift-topic", "drift/{stream}", false).unwrap();
        let m = drift(&s, "cam", &topic).unwrap();
        assert_eq!(m.topic, "drift/cam");
        let v: Value = serde_json::from_str(&m.payload).unwrap();
        assert_eq!(v["stream"], "cam");
        assert_eq!(v["drift"]["frames"], 10);
        assert_eq!(v["drift"]["known-rate"], 0.5);
        assert_eq!(v["drift"]["histogram"], serde_json::json!([1, 2]));
    }
}
