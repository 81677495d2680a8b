//! proptest strategies for wire values that need more care than `Arbitrary` derives give:
//! JSON values that survive a JSON round trip exactly, lease maps, UTC timestamps.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// A JSON number that re-parses to the same `Number` (integers and short decimals).
pub fn json_number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        (-1_000_000i64..1_000_000, 1u32..4).prop_filter_map("finite", |(m, s)| {
            let v: f64 = format!("{}.{}", m, "5".repeat(s as usize)).parse().ok()?;
            Number::from_f64(v)
        }),
    ]
}

/// Any JSON value, bounded in depth and size.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        json_number().prop_map(Value::Number),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON object.
pub fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-z_]{1,6}", json_value(), 0..4).prop_map(|m| m.into_iter().collect())
}

/// A wire lease: capability-like keys to short pattern lists.
pub fn lease_map() -> impl Strategy<Value = BTreeMap<String, Vec<String>>> {
    prop::collection::btree_map(
        prop_oneof![
            Just("fs.read".to_owned()),
            Just("net.fetch".to_owned()),
            Just("tool.call".to_owned()),
            Just("agent.delegate".to_owned()),
            Just("x-vendor.acme.thing".to_owned()),
        ],
        prop::collection::vec("[a-z/*.]{1,12}", 1..3),
        0..3,
    )
}

/// A UTC (`Z`) RFC 3339 timestamp string.
pub fn utc_timestamp() -> impl Strategy<Value = String> {
    (0u64..4_102_444_800_000).prop_map(|ms| crate::Timestamp::from_millis(ms).as_str().to_owned())
}

/// A budget map as `job.accepted` carries it (currency → number).
pub fn budget_map() -> impl Strategy<Value = BTreeMap<String, Number>> {
    prop::collection::btree_map("(USD|EUR|credits)", (0u64..100_000).prop_map(Number::from), 0..3)
}

/// Optional JSON value that is `Some` even for `null` (for fields whose presence matters).
pub fn present_value() -> impl Strategy<Value = Option<Value>> {
    proptest::option::of(json_value())
}

/// Any JSON value but `null` (for `Option<Value>` fields where `null` means absent).
pub fn non_null_value() -> impl Strategy<Value = Value> {
    json_value().prop_filter("not null", |v| !v.is_null())
}
