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

/// Deserializes a boolean that some peers send as a count: `true`/`false`, or a non-negative
/// integer read as `n > 0` (the Python reference's `job.subscribed.replayed`, interop A-10).
pub(crate) fn bool_or_count<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => Ok(b),
        serde_json::Value::Number(n) if n.as_u64().is_some() => Ok(n.as_u64().is_some_and(|n| n > 0)),
        other => Err(serde::de::Error::custom(format!("expected a boolean, got {other}"))),
    }
}
