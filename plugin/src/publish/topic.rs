// SPDX-License-Identifier: MIT OR Apache-2.0
//! Topic templates: `{stream}` (the stream's name) and `{label}` (a class label: one message per label of the
//! frame). A template is checked once, at start: MQTT forbids wildcards (`+`, `#`) and NUL in a topic one publishes
//! to, and limits it to 65,535 bytes.

/// A topic template refused at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("{property} is empty: MQTT needs a topic to publish to")]
    Empty { property: &'static str },
    #[error(
        "{property} \"{topic}\" holds the wildcard '{wildcard}': wildcards are for subscribing, a message is \
         published to one topic"
    )]
    Wildcard { property: &'static str, topic: String, wildcard: char },
    #[error("{property} \"{topic}\" holds a NUL character, which MQTT topics may not")]
    Nul { property: &'static str, topic: String },
    #[error("{property} \"{topic}\" uses {{{field}}}, which is not known here (known: {known})")]
    Field { property: &'static str, topic: String, field: String, known: &'static str },
    #[error("{property} is {len} bytes long; MQTT topics are at most 65535")]
    TooLong { property: &'static str, len: usize },
}

/// Label used in a topic for ROIs without a class (skipped, or not classified) and for frames without ROIs.
pub const NO_LABEL: &str = "none";

/// A checked topic template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    has_label: bool,
}

impl Template {
    /// Check `text` (the value of `property`); `{label}` only where `allow_label`.
    pub fn parse(property: &'static str, text: &str, allow_label: bool) -> Result<Template, TopicError> {
        if text.is_empty() {
            return Err(TopicError::Empty { property });
        }
        if let Some(wildcard) = text.chars().find(|c| matches!(c, '+' | '#')) {
            return Err(TopicError::Wildcard { property, topic: text.into(), wildcard });
        }
        if text.contains('\0') {
            return Err(TopicError::Nul { property, topic: text.into() });
        }
        let known = if allow_label { "{stream}, {label}" } else { "{stream}" };
        let mut rest = text;
        let mut has_label = false;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let field = after.find('}').map_or(after, |close| &after[..close]);
            match field {
                "stream" => {}
                "label" if allow_label => has_label = true,
                _ => return Err(TopicError::Field { property, topic: text.into(), field: field.into(), known }),
            }
            rest = &after[field.len().min(after.len())..];
        }
        if text.len() > 65535 {
            return Err(TopicError::TooLong { property, len: text.len() });
        }
        Ok(Template { text: text.into(), has_label })
    }

    /// Whether the topic depends on the label (one message per label of a frame).
    pub fn has_label(&self) -> bool {
        self.has_label
    }

    /// The topic for a stream and a label. Characters MQTT gives a meaning to ('/', '+', '#', NUL) in a value are
    /// replaced by '_', so a value never adds a level or a wildcard.
    pub fn expand(&self, stream: &str, label: &str) -> String {
        self.text.replace("{stream}", &clean(stream)).replace("{label}", &clean(label))
    }
}

fn clean(v: &str) -> String {
    let v: String = v.chars().map(|c| if matches!(c, '/' | '+' | '#' | '\0') { '_' } else { c }).collect();
    if v.is_empty() {
        NO_LABEL.to_owned()
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand_and_values_cannot_add_levels_or_wildcards() {
        let t = Template::parse("topic", "odm/{stream}/{label}", true).unwrap();
        assert!(t.has_label());
        assert_eq!(t.expand("cam 1", "regulatory--stop--g1"), "odm/cam 1/regulatory--stop--g1");
        assert_eq!(t.expand("a/b", "x+#"), "odm/a_b/x__");
        let plain = Template::parse("topic", "odm/results", true).unwrap();
        assert!(!plain.has_label());
    }

    #[test]
    fn wildcards_unknown_fields_and_empty_topics_are_refused_by_name() {
        let e = Template::parse("topic", "odm/+/x", true).unwrap_err();
        assert_eq!(e, TopicError::Wildcard { property: "topic", topic: "odm/+/x".into(), wildcard: '+' });
        assert!(e.to_string().contains("topic \"odm/+/x\" holds the wildcard '+'"), "{e}");
        assert!(matches!(Template::parse("topic", "odm/#", true), Err(TopicError::Wildcard { wildcard: '#', .. })));
        assert!(matches!(Template::parse("topic", "", true), Err(TopicError::Empty { .. })));
        let e = Template::parse("drift-topic", "d/{label}", false).unwrap_err();
        assert!(e.to_string().contains("drift-topic \"d/{label}\" uses {label}"), "{e}");
        assert!(matches!(Template::parse("topic", "a/{cam", true), Err(TopicError::Field { .. })));
        assert!(matches!(Template::parse("topic", "a\0b", true), Err(TopicError::Nul { .. })));
    }
}
