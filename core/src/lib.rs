// SPDX-License-Identifier: MIT OR Apache-2.0
//! odm-core: the pieces shared by the GStreamer plugin and the trainer.
//!
//! * [`bundle`] — the model bundle (`NAME.odm.json` beside `NAME.onnx`): serde types, loading, validation, saving.
//! * [`score`] — open-set scoring: nearest class centre, Euclidean distance, verdict, category.
//! * [`metrics`] — out-of-distribution metrics of Masana et al. (BMVC 2018), supplementary A.
//! * [`font`] — the one font, for odmoverlay's labels and the trainer's sign text.
//! * [`taxonomy`] — sign names of the Mapillary traffic-sign taxonomy: category, group, variant.
//! * [`preprocess`] — crop (with context margin), resize and normalise a region of a frame into a CHW tensor,
//!   the one code path used by both the trainer and the plugin.
//!
//! No GStreamer, no ML framework: this crate is what makes run-time scoring and evaluation the same code.

pub mod bundle;
pub mod error;
pub mod font;
pub mod metrics;
pub mod preprocess;
pub mod score;
pub mod taxonomy;

pub use bundle::Bundle;
pub use error::{BundleError, MetricsError, PreprocessError, ScoreError};
pub use score::{ScoreResult, Scorer, Verdict};
pub use taxonomy::{Category, TaxonomyError};
