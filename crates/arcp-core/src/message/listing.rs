//! Payloads of job listing and subscription (§6.6, §7.6).

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::job::Credential;
use super::lease_wire::{LeaseConstraints, LeaseMap};
use crate::{EventSeq, JobId, MessageId, Timestamp, TraceId};

/// A job's state (§7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobStatus {
    /// Accepted, not yet running.
    Pending,
    /// Running.
    Running,
    /// Finished with `job.result`.
    Success,
    /// Finished with `job.error final_status:"error"`.
    Error,
    /// Cancelled.
    Cancelled,
    /// Exceeded `max_runtime_sec`.
    TimedOut,
}

impl JobStatus {
    /// Whether no further events can follow.
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobStatus::Pending | JobStatus::Running)
    }
}

/// `session.list_jobs.payload.filter`. Every field optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct JobFilter {
    /// Only these states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Vec<JobStatus>>,
    /// A bare name (any version) or `name@version` (exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Created strictly after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_after: Option<Timestamp>,
    /// Created strictly before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_before: Option<Timestamp>,
}

/// `session.list_jobs` (C→R, v1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct SessionListJobs {
    /// Filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<JobFilter>,
    /// Page size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<NonZeroU32>,
    /// The previous page's `next_cursor` (`null` = first page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// One job in `session.jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct JobListEntry {
    /// The job.
    pub job_id: JobId,
    /// `name@version`, or the bare name when unversioned.
    pub agent: String,
    /// Current state.
    pub status: JobStatus,
    /// Effective lease.
    pub lease: LeaseMap,
    /// The delegating job (always emitted; `null` for top-level jobs).
    #[serde(default)]
    pub parent_job_id: Option<JobId>,
    /// Acceptance time.
    pub created_at: Timestamp,
    /// Trace id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
    /// The job's newest `event_seq`.
    pub last_event_seq: EventSeq,
    /// The same instant as `created_at`, under the name the Python reference client requires
    /// (arcp-rs sends both; spec/interop.md A-9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at: Option<Timestamp>,
}

/// `session.jobs` (R→C, v1.1): one page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct SessionJobs {
    /// The `id` of the `session.list_jobs` envelope.
    pub request_id: MessageId,
    /// The page.
    pub jobs: Vec<JobListEntry>,
    /// Cursor of the next page; `null` on the last page (always emitted).
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// `job.subscribe` (C→R, v1.1): observe a job submitted elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct JobSubscribe {
    /// The job to observe.
    pub job_id: JobId,
    /// Replay events after this job-local position (with `history`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_event_seq: Option<EventSeq>,
    /// Replay buffered events before streaming live (default `false`).
    #[serde(default, skip_serializing_if = "super::serde_util::is_false")]
    pub history: bool,
}

/// `job.subscribed` (R→C, v1.1): the subscriber's authority descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct JobSubscribed {
    /// The job.
    pub job_id: JobId,
    /// Its state now.
    pub current_status: JobStatus,
    /// `name@version`.
    pub agent: String,
    /// Effective lease.
    pub lease: LeaseMap,
    /// Effective constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_constraints: Option<LeaseConstraints>,
    /// *Current* budget counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        any(test, feature = "proptest"),
        proptest(strategy = "proptest::option::of(crate::message::arb::budget_map())")
    )]
    pub budget: Option<BTreeMap<String, serde_json::Number>>,
    /// The delegating job (always emitted; `null` for top-level jobs).
    #[serde(default)]
    pub parent_job_id: Option<JobId>,
    /// Trace id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
    /// The subscriber's `event_seq` from which live events continue.
    pub subscribed_from: EventSeq,
    /// Whether history was replayed (a count is accepted on input: `n > 0`).
    #[serde(deserialize_with = "super::serde_util::bool_or_count")]
    pub replayed: bool,
    /// Credentials: only ever sent to the original submitter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Vec<Credential>>,
    /// The `id` of the `job.subscribe` envelope this answers (arcp-rs sends it; the Python
    /// reference client correlates by it, spec/interop.md A-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<MessageId>,
}

/// `job.unsubscribe` (C→R, v1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct JobUnsubscribe {
    /// The job.
    pub job_id: JobId,
}
