//! Payloads of the job lifecycle messages (§7): submit, accepted, cancel, cancelled, result,
//! error. (`job.event` bodies live in [`crate::event`].)

use std::collections::BTreeMap;
use std::num::NonZeroU64;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::lease_wire::{LeaseConstraints, LeaseMap};
use crate::error_code::ErrorCode;
use crate::{ErrorPayload, JobId, Timestamp, TraceId};

/// `job.submit` (C→R): run `agent` on `input`.
///
/// `agent` and the lease are kept as received: a malformed one is a *job* error
/// (`job.error INVALID_REQUEST` under a fresh job id), so it must not fail decoding. Parse them
/// with [`crate::agent::AgentRef::parse`] and [`crate::lease::Lease::from_wire`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct JobSubmit {
    /// `name` or `name@version`.
    #[cfg_attr(any(test, feature = "proptest"), proptest(regex = "[a-z]{1,8}(@[0-9]\\.[0-9])?"))]
    pub agent: String,
    /// The agent's input (any JSON; absent is `null`).
    #[serde(default)]
    #[cfg_attr(any(test, feature = "proptest"), proptest(strategy = "crate::message::arb::json_value()"))]
    pub input: serde_json::Value,
    /// Requested lease: capability → patterns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_request: Option<LeaseMap>,
    /// Lease constraints (`expires_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_constraints: Option<LeaseConstraints>,
    /// Logical idempotency key, scoped to the principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Wall-clock limit in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runtime_sec: Option<NonZeroU64>,
}

/// A provisioned credential (§9.8) in `job.accepted`. `Debug` hides `value`.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct Credential {
    /// Credential id.
    pub id: String,
    /// `bearer`.
    pub scheme: String,
    /// The secret.
    pub value: String,
    /// Where it is valid.
    pub endpoint: String,
    /// Optional profile name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Constraints (the spec echoes lease keys; the TS SDK uses its own shape): kept raw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        any(test, feature = "proptest"),
        proptest(strategy = "proptest::option::of(crate::message::arb::non_null_value())")
    )]
    pub constraints: Option<serde_json::Value>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("id", &self.id)
            .field("scheme", &self.scheme)
            .field("value", &"<redacted>")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// `job.accepted` (R→C): the job exists. No `event_seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct JobAccepted {
    /// The job.
    pub job_id: JobId,
    /// The resolved agent (`name@version`, or the bare name when unversioned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The effective lease (never wider than requested).
    pub lease: LeaseMap,
    /// Effective constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_constraints: Option<LeaseConstraints>,
    /// Initial budget counters: currency → amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        any(test, feature = "proptest"),
        proptest(strategy = "proptest::option::of(crate::message::arb::budget_map())")
    )]
    pub budget: Option<BTreeMap<String, serde_json::Number>>,
    /// When the job was accepted.
    pub accepted_at: Timestamp,
    /// The delegating job, for a delegated child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_job_id: Option<JobId>,
    /// The `delegate_id` of the parent's `delegate` event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate_id: Option<String>,
    /// The job's trace id (minted when the submit had none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
    /// Provisioned credentials (§9.8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Vec<Credential>>,
}

/// `job.cancel` (C→R): the envelope's `job_id` names the job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct JobCancel {
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `job.cancelled` (R→C): the cancel was received; the terminal `job.error CANCELLED`
/// follows (decision 11). No `event_seq`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct JobCancelled {
    /// The cancel's reason, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `final_status` of a `job.result`. The spec and our runtime only send `success` (other
/// endings are `job.error`); `cancelled` and `timed_out` are accepted on input because the
/// Python reference runtime (1.1.3) ends cancelled and timed-out jobs with a `job.result`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum ResultStatus {
    /// The job succeeded.
    #[default]
    Success,
    /// Python-reference compatibility: a cancelled job.
    Cancelled,
    /// Python-reference compatibility: a timed-out job.
    TimedOut,
}

/// `job.result` (R→C, carries `event_seq`): success, with an inline `result` or a streamed
/// `result_id` — never both (a `null` result next to a `result_id` is read as no inline result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[serde(try_from = "JobResultWire")]
pub struct JobResult {
    /// `success` (see [`ResultStatus`] for what else is accepted).
    pub final_status: ResultStatus,
    /// Optional human summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The inline result (`null` is a value: `Some(Null)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(any(test, feature = "proptest"), proptest(strategy = "crate::message::arb::present_value()"))]
    pub result: Option<serde_json::Value>,
    /// The streamed result's id (§8.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(any(test, feature = "proptest"), proptest(value = "None"))]
    pub result_id: Option<String>,
    /// Size of the streamed result in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_size: Option<u64>,
    /// When the job ended. Not in the spec; the Python reference client (1.1.3) requires it,
    /// so our runtime always sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Timestamp>,
}

#[derive(Deserialize, JsonSchema)]
#[schemars(rename = "JobResult")]
struct JobResultWire {
    final_status: ResultStatus,
    #[serde(default)]
    summary: Option<String>,
    #[serde(default, deserialize_with = "super::serde_util::present")]
    #[schemars(with = "serde_json::Value")]
    result: Option<serde_json::Value>,
    #[serde(default)]
    result_id: Option<String>,
    #[serde(default)]
    result_size: Option<u64>,
    #[serde(default)]
    completed_at: Option<Timestamp>,
}

impl TryFrom<JobResultWire> for JobResult {
    type Error = &'static str;

    fn try_from(mut w: JobResultWire) -> Result<Self, &'static str> {
        if w.result_id.is_some() && w.result == Some(serde_json::Value::Null) {
            w.result = None;
        }
        if w.result.is_some() && w.result_id.is_some() {
            return Err("`result` and `result_id` are mutually exclusive");
        }
        Ok(JobResult {
            final_status: w.final_status,
            summary: w.summary,
            result: w.result,
            result_id: w.result_id,
            result_size: w.result_size,
            completed_at: w.completed_at,
        })
    }
}

/// `final_status` of a `job.error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum ErrorStatus {
    /// Failed.
    Error,
    /// Cancelled by the client.
    Cancelled,
    /// Exceeded `max_runtime_sec`.
    TimedOut,
}

/// `job.error` (R→C, carries `event_seq`): the job ended without success.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "JobErrorWire")]
pub struct JobError {
    /// `error`, `cancelled` or `timed_out`.
    pub final_status: ErrorStatus,
    /// The error code.
    pub code: ErrorCode,
    /// Human-readable description.
    pub message: String,
    /// Whether resubmitting may succeed (always emitted).
    pub retryable: bool,
    /// Structured context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// When the job ended (or the request was refused). Not in the spec; required by the
    /// Python reference client (1.1.3), so our runtime always sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Timestamp>,
}

impl JobError {
    /// A `job.error` from a status and an error payload.
    pub fn new(final_status: ErrorStatus, error: ErrorPayload) -> Self {
        JobError {
            final_status,
            code: error.code,
            message: error.message,
            retryable: error.retryable,
            details: error.details,
            completed_at: None,
        }
    }

    /// Sets `completed_at`.
    pub fn completed_at(mut self, at: Timestamp) -> Self {
        self.completed_at = Some(at);
        self
    }

    /// The error part, as an [`ErrorPayload`].
    pub fn error(&self) -> ErrorPayload {
        ErrorPayload {
            code: self.code.clone(),
            message: self.message.clone(),
            retryable: self.retryable,
            details: self.details.clone(),
        }
    }
}

#[derive(Deserialize, JsonSchema)]
#[schemars(rename = "JobError")]
struct JobErrorWire {
    final_status: ErrorStatus,
    code: ErrorCode,
    message: String,
    #[serde(default)]
    retryable: Option<bool>,
    #[serde(default)]
    details: Option<serde_json::Value>,
    #[serde(default)]
    completed_at: Option<Timestamp>,
}

impl TryFrom<JobErrorWire> for JobError {
    type Error = String;

    fn try_from(w: JobErrorWire) -> Result<Self, String> {
        let retryable = crate::error_payload::resolve_retryable(&w.code, w.retryable)?;
        Ok(JobError {
            final_status: w.final_status,
            code: w.code,
            message: w.message,
            retryable,
            details: w.details,
            completed_at: w.completed_at,
        })
    }
}

#[cfg(any(test, feature = "proptest"))]
impl proptest::arbitrary::Arbitrary for JobError {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        use proptest::prelude::*;
        (any::<ErrorStatus>(), any::<ErrorPayload>(), proptest::option::of(any::<Timestamp>()))
            .prop_map(|(s, e, at)| JobError { completed_at: at, ..JobError::new(s, e) })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_null_is_a_value() {
        let r: JobResult = serde_json::from_str(r#"{"final_status":"success","result":null}"#).unwrap();
        assert_eq!(r.result, Some(serde_json::Value::Null));
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"final_status":"success","result":null}"#);
        let r: JobResult = serde_json::from_str(r#"{"final_status":"success"}"#).unwrap();
        assert_eq!(r.result, None);
    }

    #[test]
    fn result_and_result_id_are_exclusive() {
        let bad = r#"{"final_status":"success","result":1,"result_id":"res_1"}"#;
        assert!(serde_json::from_str::<JobResult>(bad).is_err());
        let lenient = r#"{"final_status":"success","result":null,"result_id":"res_1"}"#;
        assert_eq!(serde_json::from_str::<JobResult>(lenient).unwrap().result, None);
    }

    #[test]
    fn job_error_applies_pins() {
        let bad = r#"{"final_status":"error","code":"BUDGET_EXHAUSTED","message":"x","retryable":true}"#;
        assert!(serde_json::from_str::<JobError>(bad).is_err());
        let ok = r#"{"final_status":"timed_out","code":"TIMEOUT","message":"x"}"#;
        assert!(serde_json::from_str::<JobError>(ok).unwrap().retryable);
    }
}
