//! The runtime-wide job lifecycle feed: one [`JobLifecycle`] per submitted job when it is
//! accepted and one when it ends (`job.result` or `job.error`), broadcast to whoever called
//! [`Runtime::lifecycle`] (e.g. the runtime's `session.events` plugin surface).
//!
//! The feed is a bounded `tokio::sync::broadcast` channel ([`LIFECYCLE_CAPACITY`]): sending
//! never waits, so a slow or absent receiver never blocks a job; a receiver that falls more
//! than the capacity behind loses the oldest events and is told so by
//! `RecvError::Lagged(n)`. Delegated child jobs are not reported (their parent is), nor are
//! intermediate `job.event`s (the hot path stays untouched).

use arcp_core::message::Message;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::job::Job;
use crate::runtime::Runtime;

/// How many lifecycle events a receiver may fall behind before it loses the oldest.
pub const LIFECYCLE_CAPACITY: usize = 1024;

/// Which point of a job's life a [`JobLifecycle`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LifecycleKind {
    /// `job.accepted` was sent.
    Accepted,
    /// The job ended with `job.result`.
    Result,
    /// The job ended with `job.error` (error, cancelled or timed out).
    Error,
}

impl LifecycleKind {
    /// `accepted`, `result` or `error`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Result => "result",
            Self::Error => "error",
        }
    }
}

/// One lifecycle event of one job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobLifecycle {
    /// What happened.
    pub kind: LifecycleKind,
    /// The job.
    pub job_id: String,
    /// The session that submitted it.
    pub session_id: String,
    /// The principal that submitted it.
    pub principal: String,
    /// The resolved agent (`name@version` or bare name).
    pub agent: String,
    /// The payload of the `job.accepted`, `job.result` or `job.error` envelope, as on the wire.
    pub payload: Value,
    /// The runtime clock's Unix milliseconds when it happened.
    pub at_millis: u64,
}

/// The sending side, held by the runtime.
#[derive(Debug)]
pub(crate) struct LifecycleFeed {
    tx: broadcast::Sender<JobLifecycle>,
}

impl Default for LifecycleFeed {
    fn default() -> Self {
        Self { tx: broadcast::channel(LIFECYCLE_CAPACITY).0 }
    }
}

impl LifecycleFeed {
    fn send(&self, job: &Job, kind: LifecycleKind, payload: Value, at_millis: u64) {
        // Nothing to build when nobody listens; a send error only means no receiver.
        if self.tx.receiver_count() == 0 || job.depth > 0 {
            return;
        }
        let _ = self.tx.send(JobLifecycle {
            kind,
            job_id: job.id.to_string(),
            session_id: job.owner.id.to_string(),
            principal: job.principal.clone(),
            agent: job.agent.clone(),
            payload,
            at_millis,
        });
    }

    /// Hook: `job.accepted` was sent for `job`.
    pub(crate) fn accepted(&self, job: &Job, accepted: &arcp_core::message::JobAccepted, at_millis: u64) {
        if self.tx.receiver_count() > 0 {
            self.send(job, LifecycleKind::Accepted, serde_json::to_value(accepted).unwrap_or(Value::Null), at_millis);
        }
    }

    /// Hook: `job` emitted its terminal `message`.
    pub(crate) fn finished(&self, job: &Job, message: &Message, at_millis: u64) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let (kind, payload) = match message {
            Message::JobResult(r) => (LifecycleKind::Result, serde_json::to_value(r)),
            Message::JobError(e) => (LifecycleKind::Error, serde_json::to_value(e)),
            _ => return,
        };
        self.send(job, kind, payload.unwrap_or(Value::Null), at_millis);
    }
}

impl Runtime {
    /// A new receiver of the lifecycle feed (see the module docs): it sees the events sent
    /// after this call; one that lags more than [`LIFECYCLE_CAPACITY`] events behind gets
    /// `RecvError::Lagged` and continues with the newest.
    pub fn lifecycle(&self) -> broadcast::Receiver<JobLifecycle> {
        self.inner.lifecycle.tx.subscribe()
    }
}
