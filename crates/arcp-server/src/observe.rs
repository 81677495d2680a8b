//! The observation hook: an [`Observer`] the runtime calls at the points an operator wants to
//! count or time (sessions, resumes, jobs, persisted events, idempotent replays, refusals,
//! store latency). The runtime crate implements it with Prometheus metrics; this crate only
//! defines the calls, so it depends on no metrics library.
//!
//! Every method has a no-op default, and the runtime uses [`NoObserver`] unless
//! [`RuntimeBuilder::observer`](crate::RuntimeBuilder::observer) installs another. Methods are
//! called on the hot path (an event append calls two of them), so an implementation must be
//! cheap and must never block or panic: count, don't think.

use std::time::Duration;

use arcp_core::ErrorCode;
use arcp_core::message::JobStatus;

/// Where a refusal was reported (spec §12.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalScope {
    /// A request error: a `job.error` with `details.request_id` answering a `job.submit`,
    /// `job.cancel` or `job.subscribe` (decision 21); the session stays open.
    Request,
    /// A `session.error`: the transport closes (decision 9).
    Session,
}

impl RefusalScope {
    /// `request` or `session`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Session => "session",
        }
    }
}

/// A timed store operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreOp {
    /// `EventLog::append`: persisting one sequence-bearing envelope (before it is sent).
    Append,
    /// `IdempotencyStore::claim`: binding an idempotency key on submit.
    IdempotencyClaim,
    /// `JobStore::insert`: writing a submitted job's record.
    JobInsert,
}

impl StoreOp {
    /// `append`, `idempotency_claim` or `job_insert`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Append => "append",
            Self::IdempotencyClaim => "idempotency_claim",
            Self::JobInsert => "job_insert",
        }
    }
}

/// The stable label of a terminal (or any) job status: `pending`, `running`, `success`,
/// `error`, `cancelled`, `timed_out` (the wire spelling of §6.6); `other` for a status this
/// version does not know.
pub const fn job_status_label(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Pending => "pending",
        JobStatus::Running => "running",
        JobStatus::Success => "success",
        JobStatus::Error => "error",
        JobStatus::Cancelled => "cancelled",
        JobStatus::TimedOut => "timed_out",
        // A status added to the wire later.
        _ => "other",
    }
}

/// What the runtime reports as it works. See the module docs: every method defaults to doing
/// nothing, and none may block.
pub trait Observer: Send + Sync + 'static {
    /// A `session.hello` opened a new session (its welcome was queued).
    fn session_opened(&self) {}

    /// A resume (`session.hello`+`resume` or `session.resume`) re-attached a session.
    fn resume_succeeded(&self) {}

    /// A resume was refused with `code` (`RESUME_WINDOW_EXPIRED`, `INVALID_REQUEST`,
    /// `UNAUTHENTICATED`, `INTERNAL_ERROR`, …); the connection gets `session.error`.
    fn resume_refused(&self, code: &ErrorCode) {
        let _ = code;
    }

    /// A connection that was bound to a session (opened or resumed) ended. Together with
    /// [`session_opened`](Self::session_opened) and
    /// [`resume_succeeded`](Self::resume_succeeded) this tracks the attached sessions.
    fn session_detached(&self) {}

    /// A job (submitted, or delegated by another job) started running `agent`.
    fn job_started(&self, agent: &str) {
        let _ = agent;
    }

    /// A job of `agent` ended with `status` (terminal) after `elapsed` since it was accepted.
    fn job_ended(&self, agent: &str, status: JobStatus, elapsed: Duration) {
        let _ = (agent, status, elapsed);
    }

    /// A sequence-bearing envelope of type `message_type` (`job.event`, `job.result` or
    /// `job.error`) was persisted to a session's event log.
    fn event_persisted(&self, message_type: &'static str) {
        let _ = message_type;
    }

    /// An identical resubmit (same principal, key and payload) was answered with the existing
    /// job instead of running the agent again (decision 5).
    fn idempotent_replay(&self) {}

    /// A request or a session was refused with `code` (every `job.error` carrying
    /// `details.request_id`, and every `session.error`).
    fn refused(&self, scope: RefusalScope, code: &ErrorCode) {
        let _ = (scope, code);
    }

    /// A store operation took `elapsed` and succeeded (`ok`) or failed.
    fn store_operation(&self, op: StoreOp, elapsed: Duration, ok: bool) {
        let _ = (op, elapsed, ok);
    }
}

/// The default [`Observer`]: observes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl Observer for NoObserver {}

/// Runs the store operation `fut` and reports its duration and success as `op`.
pub(crate) async fn timed<T, E>(
    observer: &dyn Observer,
    op: StoreOp,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = std::time::Instant::now();
    let result = fut.await;
    observer.store_operation(op, started.elapsed(), result.is_ok());
    result
}

/// The label of a persisted envelope's type.
pub(crate) fn persisted_type(message: &arcp_core::message::Message) -> &'static str {
    use arcp_core::message::Message;
    match message {
        Message::JobEvent(_) => "job.event",
        Message::JobResult(_) => "job.result",
        Message::JobError(_) => "job.error",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_wire_spellings() {
        let all = [
            JobStatus::Pending,
            JobStatus::Running,
            JobStatus::Success,
            JobStatus::Error,
            JobStatus::Cancelled,
            JobStatus::TimedOut,
        ];
        for status in all {
            assert_eq!(serde_json::to_value(status).unwrap(), serde_json::json!(job_status_label(status)));
        }
        assert_eq!(StoreOp::Append.as_str(), "append");
        assert_eq!(RefusalScope::Request.as_str(), "request");
    }

    #[tokio::test]
    async fn timed_reports_the_outcome() {
        #[derive(Default)]
        struct Seen(parking_lot::Mutex<Vec<(StoreOp, bool)>>);
        impl Observer for Seen {
            fn store_operation(&self, op: StoreOp, _elapsed: Duration, ok: bool) {
                self.0.lock().push((op, ok));
            }
        }
        let seen = Seen::default();
        let ok: Result<u8, ()> = timed(&seen, StoreOp::Append, async { Ok(1) }).await;
        let failed: Result<u8, ()> = timed(&seen, StoreOp::JobInsert, async { Err(()) }).await;
        assert_eq!((ok, failed), (Ok(1), Err(())));
        assert_eq!(*seen.0.lock(), [(StoreOp::Append, true), (StoreOp::JobInsert, false)]);
    }
}
