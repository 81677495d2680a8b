//! The envelope's `extensions` object: vendor keys plus the reserved boolean `optional`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `extensions`: `x-vendor.<vendor>.<name>` keys with any value, and `optional` (an unhandled
/// vendor message marked optional is dropped instead of rejected).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[serde(try_from = "BTreeMap<String, serde_json::Value>")]
pub struct Extensions {
    /// Drop this message if unhandled, instead of rejecting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
    /// Vendor keys.
    #[serde(flatten)]
    #[cfg_attr(
        any(test, feature = "proptest"),
        proptest(
            strategy = "proptest::collection::btree_map(\"x-vendor\\\\.[a-z]{1,4}\\\\.[a-z]{1,4}\", crate::message::arb::json_value(), 0..2)"
        )
    )]
    pub vendor: BTreeMap<String, serde_json::Value>,
}

impl TryFrom<BTreeMap<String, serde_json::Value>> for Extensions {
    type Error = String;

    fn try_from(mut map: BTreeMap<String, serde_json::Value>) -> Result<Self, String> {
        let optional = match map.remove("optional") {
            None => None,
            Some(serde_json::Value::Bool(b)) => Some(b),
            Some(_) => return Err("`extensions.optional` must be a boolean".into()),
        };
        if let Some(bad) = map.keys().find(|k| !crate::names::is_vendor_name(k)) {
            return Err(format!(
                "extension key {:?} is not `optional` or x-vendor.<vendor>.<name>",
                crate::error::clip(bad)
            ));
        }
        Ok(Extensions { optional, vendor: map })
    }
}
