//! The body of each reserved event kind (§8.2, §8.4, §10).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ErrorPayload;
use crate::message::{LeaseConstraints, LeaseMap};

/// `log` level. `warning` is accepted as `warn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Trace.
    Trace,
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warning.
    #[serde(alias = "warning")]
    Warn,
    /// Error.
    Error,
    /// Critical.
    Critical,
}

impl JsonSchema for LogLevel {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LogLevel".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Log severity; `warning` is read as `warn`.",
            "enum": ["trace", "debug", "info", "warn", "warning", "error", "critical"],
        })
    }
}

/// `log`: `{level, message, attributes?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct Log {
    /// Severity.
    pub level: LogLevel,
    /// The line.
    pub message: String,
    /// Structured attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        any(test, feature = "proptest"),
        proptest(strategy = "proptest::option::of(crate::message::arb::json_object())")
    )]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `thought`: `{text}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct Thought {
    /// The thought.
    pub text: String,
}

/// `tool_call`: `{tool, args?, call_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct ToolCall {
    /// Tool name.
    pub tool: String,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(any(test, feature = "proptest"), proptest(strategy = "crate::message::arb::present_value()"))]
    #[serde(deserialize_with = "crate::message::serde_util::present")]
    #[schemars(with = "serde_json::Value")]
    pub args: Option<serde_json::Value>,
    /// Correlates the result.
    pub call_id: String,
}

/// `tool_result`: `{call_id, result | error}` — never both; neither is a void result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[serde(try_from = "ToolResultWire")]
pub struct ToolResult {
    /// The call this answers.
    pub call_id: String,
    /// The result (`null` is a value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(any(test, feature = "proptest"), proptest(strategy = "crate::message::arb::present_value()"))]
    pub result: Option<serde_json::Value>,
    /// The failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(any(test, feature = "proptest"), proptest(value = "None"))]
    pub error: Option<ErrorPayload>,
}

#[derive(Deserialize, JsonSchema)]
#[schemars(rename = "ToolResult")]
struct ToolResultWire {
    call_id: String,
    #[serde(default, deserialize_with = "crate::message::serde_util::present")]
    #[schemars(with = "serde_json::Value")]
    result: Option<serde_json::Value>,
    #[serde(default)]
    error: Option<ErrorPayload>,
}

impl TryFrom<ToolResultWire> for ToolResult {
    type Error = &'static str;

    fn try_from(w: ToolResultWire) -> Result<Self, &'static str> {
        if w.result.is_some() && w.error.is_some() {
            return Err("`result` and `error` are mutually exclusive");
        }
        Ok(ToolResult { call_id: w.call_id, result: w.result, error: w.error })
    }
}

/// `status`: `{phase, message?}`. Phases seen: `running`, `back_pressure`,
/// `credential_rotated`; the set is open, and other body fields (e.g. the rotated
/// credential of §9.8) are kept verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct Status {
    /// The phase.
    pub phase: String,
    /// Optional detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Any other body fields.
    #[serde(flatten)]
    #[cfg_attr(
        any(test, feature = "proptest"),
        proptest(
            strategy = "proptest::collection::btree_map(\"x_[a-z]{1,5}\", crate::message::arb::non_null_value(), 0..2)"
        )
    )]
    pub extra: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Status {
    /// A status with just a phase.
    pub fn phase(phase: impl Into<String>) -> Self {
        Status { phase: phase.into(), message: None, extra: Default::default() }
    }
}

/// `metric`: `{name, value, unit?, dimensions?}`; `dims` (TS) accepted on input, `dimensions`
/// emitted (decision 13). `value` keeps the JSON number as written (exact for budgets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct Metric {
    /// Metric name; `cost.*` names decrement budgets.
    pub name: String,
    /// The value.
    #[cfg_attr(any(test, feature = "proptest"), proptest(strategy = "crate::message::arb::json_number()"))]
    pub value: serde_json::Number,
    /// Unit; a currency for `cost.*` metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Dimensions.
    #[serde(default, alias = "dims", skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        any(test, feature = "proptest"),
        proptest(strategy = "proptest::option::of(crate::message::arb::json_object())")
    )]
    pub dimensions: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `artifact_ref`: `{uri, content_type, byte_size?, sha256?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct ArtifactRef {
    /// Where the artifact is, e.g. `arcp://artifacts/...`.
    pub uri: String,
    /// MIME type.
    pub content_type: String,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_size: Option<u64>,
    /// Hex SHA-256 of the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// `delegate`: `{delegate_id, agent, input, lease_request?, lease_constraints?}` (§10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct Delegate {
    /// Correlates the child's `job.accepted` and any `tool_result` error.
    pub delegate_id: String,
    /// The child agent (`name` or `name@version`).
    pub agent: String,
    /// The child's input (absent is `null`).
    #[serde(default)]
    #[cfg_attr(any(test, feature = "proptest"), proptest(strategy = "crate::message::arb::json_value()"))]
    pub input: serde_json::Value,
    /// The child's requested lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_request: Option<LeaseMap>,
    /// The child's constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_constraints: Option<LeaseConstraints>,
}

/// `progress` (v1.1): `{current, total?, units?, message?}`; `current`, `total` ≥ 0.
/// (`current ≤ total` is a SHOULD: emitters enforce it, receivers accept.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "ProgressWire")]
pub struct Progress {
    /// Work done.
    pub current: serde_json::Number,
    /// Total work, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<serde_json::Number>,
    /// Unit of work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<String>,
    /// Detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Progress {
    /// `current` of `total` (both non-negative integers).
    pub fn of(current: u64, total: Option<u64>) -> Self {
        Progress { current: current.into(), total: total.map(Into::into), units: None, message: None }
    }
}

#[derive(Deserialize, JsonSchema)]
#[schemars(rename = "Progress")]
struct ProgressWire {
    #[schemars(range(min = 0))]
    current: serde_json::Number,
    #[serde(default)]
    #[schemars(range(min = 0))]
    total: Option<serde_json::Number>,
    #[serde(default)]
    units: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

fn non_negative(n: &serde_json::Number) -> bool {
    n.as_u64().is_some() || n.as_f64().is_some_and(|f| f >= 0.0)
}

impl TryFrom<ProgressWire> for Progress {
    type Error = &'static str;

    fn try_from(w: ProgressWire) -> Result<Self, &'static str> {
        if !non_negative(&w.current) {
            return Err("`current` must be a non-negative number");
        }
        if w.total.as_ref().is_some_and(|t| !non_negative(t)) {
            return Err("`total` must be a non-negative number");
        }
        Ok(Progress { current: w.current, total: w.total, units: w.units, message: w.message })
    }
}

#[cfg(any(test, feature = "proptest"))]
impl proptest::arbitrary::Arbitrary for Progress {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        use proptest::prelude::*;
        (
            any::<u32>(),
            proptest::option::of(any::<u32>()),
            proptest::option::of(".{0,8}"),
            proptest::option::of(".{0,8}"),
        )
            .prop_map(|(c, t, units, message)| Progress { units, message, ..Progress::of(c.into(), t.map(Into::into)) })
            .boxed()
    }
}

/// `result_chunk` encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum ChunkEncoding {
    /// Text.
    Utf8,
    /// Binary, standard base64.
    Base64,
}

/// `result_chunk` (v1.1, §8.4): `{result_id, chunk_seq, data, encoding, more}`, all required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct ResultChunk {
    /// The assembled result's id.
    pub result_id: String,
    /// 0-based, consecutive per `result_id`.
    pub chunk_seq: u64,
    /// The fragment.
    pub data: String,
    /// How `data` is encoded.
    pub encoding: ChunkEncoding,
    /// Whether more chunks follow.
    pub more: bool,
}
