//! What the gateway stores per (user, factor): the factor's own template plus the facts
//! of the enrolment that scoring needs.

use serde::{Deserialize, Serialize};

use super::evidence::GroupKey;

/// Format version of [`StoredTemplate`] (the `templates.model_version` column).
pub const STORED_TEMPLATE_FORMAT: u32 = 1;

/// A stored template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredTemplate {
    /// Which windows it was built from and which it can score (schema version, phrase
    /// context, width).
    pub group: GroupKey,
    /// Start of the newest enrolment window (device clock, Unix ms): only later
    /// windows are scored, never the ones the template was built from.
    pub enrolled_until_ms: u64,
    /// Vectors used.
    pub samples: usize,
    /// Whether the factor built its fallback template.
    pub fallback: bool,
    /// Model version that built it.
    pub model_version: Option<String>,
    /// The factor's template (JSON text, opaque here).
    pub template: String,
}
