//! Small serde helpers shared by the payload types.

use serde::{Deserialize, Deserializer};

/// Deserializes a field so that an explicit `null` is `Some(Value::Null)` rather than `None`
/// (use with `#[serde(default)]`: absent stays `None`). For `result`, where `null` is a value.
pub(crate) fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// Deserializes a possibly-`null` list as an empty list.
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}
