//! Job records (§6.6): what `session.list_jobs` reads and what outlives a job's run, kept
//! for the retention period after the job ended.
//!
//! The trait is shaped for SQL stores: a record is one row keyed by `job_id`, a listing is one
//! indexed range query (`WHERE principal = ? AND (created_at_millis, job_id) > (?, ?) …
//! ORDER BY created_at_millis, job_id LIMIT ?`), and updates touch a few columns. The runtime
//! writes a record when a job is accepted, when it starts running and when it ends; it
//! overlays the live `last_event_seq` of running jobs itself, so a store is not written per
//! event.

use arcp_core::message::{JobStatus, LeaseConstraints, LeaseMap};
use arcp_core::{EventSeq, JobId, SessionId, TraceId};
use async_trait::async_trait;

use super::StoreError;

/// One job as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// The job.
    pub job_id: JobId,
    /// The principal that submitted it (listings and visibility are scoped to it).
    pub principal: String,
    /// The submitting session.
    pub session_id: SessionId,
    /// The resolved agent, `name@version` or a bare name.
    pub agent: String,
    /// Its current state.
    pub status: JobStatus,
    /// Its effective lease.
    pub lease: LeaseMap,
    /// Its lease constraints, if any.
    pub lease_constraints: Option<LeaseConstraints>,
    /// The delegating job, for a delegated child.
    pub parent_job_id: Option<JobId>,
    /// When it was accepted (Unix ms): the first half of the listing key.
    pub created_at_millis: u64,
    /// Its trace id.
    pub trace_id: Option<TraceId>,
    /// The `event_seq` of its latest envelope in the submitting session (0: none yet).
    pub last_event_seq: EventSeq,
    /// When it ended (Unix ms), once terminal.
    pub ended_at_millis: Option<u64>,
    /// The runtime node running it ([`RuntimeConfig::node_id`](crate::RuntimeConfig::node_id)):
    /// after a crash, the restarted node (or, with a shared store, a node that finds the owner
    /// dead) ends the node's unfinished jobs with a durable terminal error.
    pub node: String,
}

impl JobRecord {
    /// The listing key: `(created_at_millis, job_id)`.
    pub fn key(&self) -> ListKey {
        ListKey { created_at_millis: self.created_at_millis, job_id: self.job_id.clone() }
    }
}

/// A position in a listing: jobs are ordered by `created_at`, then `job_id` (§6.6).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListKey {
    /// Acceptance time (Unix ms).
    pub created_at_millis: u64,
    /// The job id (tie-breaker).
    pub job_id: JobId,
}

/// Which agents a listing matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentMatch {
    /// A bare name: every version of it (and its unversioned registration).
    Name(String),
    /// `name@version`: exactly that.
    Exact(String),
}

impl AgentMatch {
    /// Whether the record's agent label matches.
    pub fn matches(&self, label: &str) -> bool {
        match self {
            AgentMatch::Exact(exact) => label == exact,
            AgentMatch::Name(name) => {
                label == name || label.strip_prefix(name.as_str()).is_some_and(|rest| rest.starts_with('@'))
            }
        }
    }
}

/// One page request against a [`JobStore`]. Every filter is conjunctive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobQuery {
    /// Only this principal's jobs (never optional: listings never cross principals).
    pub principal: String,
    /// Only these states (`None`: all).
    pub statuses: Option<Vec<JobStatus>>,
    /// Only these agents.
    pub agent: Option<AgentMatch>,
    /// Created strictly after (Unix ms).
    pub created_after_millis: Option<i64>,
    /// Created strictly before (Unix ms).
    pub created_before_millis: Option<i64>,
    /// Only jobs whose key is strictly greater (keyset pagination).
    pub after: Option<ListKey>,
    /// At most this many records.
    pub limit: usize,
}

impl JobQuery {
    /// Whether `record` passes every filter (the key bound included).
    pub fn matches(&self, record: &JobRecord) -> bool {
        let created = i64::try_from(record.created_at_millis).unwrap_or(i64::MAX);
        record.principal == self.principal
            && self.statuses.as_ref().is_none_or(|s| s.contains(&record.status))
            && self.agent.as_ref().is_none_or(|a| a.matches(&record.agent))
            && self.created_after_millis.is_none_or(|t| created > t)
            && self.created_before_millis.is_none_or(|t| created < t)
            && self.after.as_ref().is_none_or(|k| record.key() > *k)
    }
}

/// A change to a stored job: its state, its latest `event_seq`, when it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUpdate {
    /// The new state.
    pub status: JobStatus,
    /// The newest `event_seq` in the submitting session (never lowered by the store).
    pub last_event_seq: EventSeq,
    /// When it ended (Unix ms), for a terminal state.
    pub ended_at_millis: Option<u64>,
}

/// Job records (§6.6), with the durability contract of the [`store`](super) module.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Stores a new record. A store that is full MAY first drop finished records (oldest
    /// first); if it still has no room it returns [`StoreError::CapacityExceeded`], and the
    /// runtime refuses the submit.
    async fn insert(&self, record: JobRecord) -> Result<(), StoreError>;

    /// Applies `update` to the record of `job_id` (a missing record is not an error).
    async fn update(&self, job_id: &JobId, update: JobUpdate) -> Result<(), StoreError>;

    /// The record of `job_id`, if kept.
    async fn get(&self, job_id: &JobId) -> Result<Option<JobRecord>, StoreError>;

    /// Removes the record of `job_id` (a submit that lost its idempotency claim).
    async fn remove(&self, job_id: &JobId) -> Result<(), StoreError>;

    /// Up to `query.limit` matching records in ascending key order.
    async fn list(&self, query: &JobQuery) -> Result<Vec<JobRecord>, StoreError>;

    /// Removes every record that ended at or before `ended_before_millis`; returns how many.
    async fn purge_finished(&self, ended_before_millis: u64) -> Result<usize, StoreError>;

    /// Every record of `node` that is not terminal (`pending` or `running`), in key order:
    /// on start, a runtime ends these (they were running when the node died).
    async fn unfinished(&self, node: &str) -> Result<Vec<JobRecord>, StoreError>;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::AgentMatch;

    #[test]
    fn agent_matching() {
        let bare = AgentMatch::Name("sum".into());
        assert!(bare.matches("sum"));
        assert!(bare.matches("sum@1.0"));
        assert!(!bare.matches("summarizer@1.0"));
        assert!(!bare.matches("summarizer"));
        let exact = AgentMatch::Exact("sum@1.0".into());
        assert!(exact.matches("sum@1.0"));
        assert!(!exact.matches("sum@1.0.1"));
        assert!(!exact.matches("sum"));
    }
}
