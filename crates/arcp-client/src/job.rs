//! Jobs as the caller sees them: [`SubmitRequest`], [`JobHandle`], the per-job event stream
//! [`JobEvents`] and the terminal [`JobOutcome`].

use std::num::NonZeroU64;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use arcp_core::event::JobEvent;
use arcp_core::message::{JobAccepted, JobResult, JobSubmit, LeaseConstraints, LeaseMap};
use arcp_core::{EventSeq, JobId, TraceId};
use futures_util::Stream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::client::Shared;
use crate::driver::Command;
use crate::error::ClientError;

/// What to run: the fields of a `job.submit` payload (§7.1) plus the envelope's `trace_id`.
///
/// ```
/// use arcp_client::SubmitRequest;
/// let req = SubmitRequest::new("echo", serde_json::json!({"text": "hi"})).with_idempotency_key("order-42");
/// assert_eq!(req.agent, "echo");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubmitRequest {
    /// `name` or `name@version`.
    pub agent: String,
    /// The agent's input (any JSON).
    pub input: serde_json::Value,
    /// Requested lease: capability → glob patterns (§9).
    pub lease_request: Option<LeaseMap>,
    /// Lease constraints (`expires_at`, §9.5).
    pub lease_constraints: Option<LeaseConstraints>,
    /// Idempotency key (§7.2), scoped to the principal. When absent and
    /// [`ClientOptions::auto_idempotency_keys`](crate::ClientOptions::auto_idempotency_keys) is
    /// on, the client mints a unique one.
    pub idempotency_key: Option<String>,
    /// Wall-clock limit in seconds.
    pub max_runtime_sec: Option<NonZeroU64>,
    /// W3C trace id; the client mints one when absent (§11: clients SHOULD send one).
    pub trace_id: Option<TraceId>,
}

impl SubmitRequest {
    /// A request to run `agent` on `input`, with everything else unset.
    pub fn new(agent: impl Into<String>, input: serde_json::Value) -> Self {
        SubmitRequest { agent: agent.into(), input, ..SubmitRequest::default() }
    }

    /// Sets the requested lease.
    pub fn with_lease(mut self, lease: LeaseMap) -> Self {
        self.lease_request = Some(lease);
        self
    }

    /// Sets the lease constraints.
    pub fn with_lease_constraints(mut self, constraints: LeaseConstraints) -> Self {
        self.lease_constraints = Some(constraints);
        self
    }

    /// Sets the idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sets `max_runtime_sec`.
    pub fn with_max_runtime_sec(mut self, secs: NonZeroU64) -> Self {
        self.max_runtime_sec = Some(secs);
        self
    }

    /// Sets the trace id.
    pub fn with_trace_id(mut self, trace_id: TraceId) -> Self {
        self.trace_id = Some(trace_id);
        self
    }

    pub(crate) fn into_payload(self) -> (JobSubmit, Option<TraceId>) {
        let submit = JobSubmit {
            agent: self.agent,
            input: self.input,
            lease_request: self.lease_request,
            lease_constraints: self.lease_constraints,
            idempotency_key: self.idempotency_key,
            max_runtime_sec: self.max_runtime_sec,
        };
        (submit, self.trace_id)
    }
}

/// A successful job's terminal payload: the `job.result` payload (`final_status: "success"`,
/// `result` inline or `result_id` for a streamed result, §8.4).
pub type JobOutcome = JobResult;

/// One `job.event` of a job, as delivered by [`JobEvents`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    /// The session-scoped sequence number it carried.
    pub event_seq: EventSeq,
    /// `{kind, ts, body}`.
    pub event: JobEvent,
}

impl ReceivedEvent {
    /// The event kind (`log`, `progress`, `x-vendor.…`).
    pub fn kind(&self) -> &str {
        self.event.body.kind()
    }
}

pub(crate) type ResultCell = Option<Result<JobOutcome, ClientError>>;

/// Waits until `cell` holds an outcome; if its sender is gone first, the error that ended
/// the session.
pub(crate) async fn wait_result(
    cell: &watch::Receiver<ResultCell>,
    shared: &Shared,
) -> Result<JobOutcome, ClientError> {
    let mut rx = cell.clone();
    match rx.wait_for(Option::is_some).await {
        Ok(cell) => cell.clone().unwrap_or_else(|| Err(shared.failure())),
        Err(_) => Err(shared.failure()),
    }
}

/// The driver's half of a job: where its events and its result go.
#[derive(Debug)]
pub(crate) struct JobSink {
    events: Option<mpsc::UnboundedSender<Result<ReceivedEvent, ClientError>>>,
    depth: Arc<AtomicUsize>,
    capacity: usize,
    result: watch::Sender<ResultCell>,
}

impl JobSink {
    /// A sink and the handle parts that read from it.
    pub(crate) fn new(capacity: usize) -> (JobSink, JobEvents, watch::Receiver<ResultCell>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let depth = Arc::new(AtomicUsize::new(0));
        let (result, result_rx) = watch::channel(None);
        let capacity = capacity.max(1);
        let sink = JobSink { events: Some(tx), depth: depth.clone(), capacity, result };
        (sink, JobEvents { rx: Some(rx), depth }, result_rx)
    }

    /// Delivers one event, unless the stream was dropped or has overflowed.
    pub(crate) fn event(&mut self, event: ReceivedEvent) {
        let Some(tx) = &self.events else { return };
        if tx.is_closed() {
            self.events = None;
            return;
        }
        if self.depth.load(Ordering::SeqCst) >= self.capacity {
            self.overflow();
            return;
        }
        self.depth.fetch_add(1, Ordering::SeqCst);
        if tx.send(Ok(event)).is_err() {
            self.events = None;
        }
    }

    /// Ends the event stream with [`ClientError::Lagged`].
    pub(crate) fn overflow(&mut self) {
        if let Some(tx) = self.events.take() {
            tracing::warn!(capacity = self.capacity, "a job's event stream overflowed; it ends here");
            let _ = tx.send(Err(ClientError::Lagged { capacity: self.capacity }));
        }
    }

    /// Sets the job's outcome and ends its event stream (with the error, if it is a failure
    /// of the client rather than of the job).
    pub(crate) fn finish(mut self, outcome: Result<JobOutcome, ClientError>, stream_error: Option<ClientError>) {
        if let (Some(tx), Some(e)) = (self.events.take(), stream_error) {
            let _ = tx.send(Err(e));
        }
        self.result.send_replace(Some(outcome));
    }
}

/// A submitted job: its `job.accepted`, its event stream, its result, and cancellation.
///
/// Events keep flowing to the same handle across automatic resumes, in order and exactly
/// once. Dropping the handle does not cancel the job (use [`cancel`](Self::cancel)).
pub struct JobHandle {
    accepted: JobAccepted,
    events: Option<JobEvents>,
    result: watch::Receiver<ResultCell>,
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHandle").field("job_id", &self.accepted.job_id).finish_non_exhaustive()
    }
}

/// What the driver hands back for an accepted submit.
#[derive(Debug)]
pub(crate) struct JobParts {
    pub(crate) accepted: JobAccepted,
    pub(crate) events: JobEvents,
    pub(crate) result: watch::Receiver<ResultCell>,
}

impl JobHandle {
    pub(crate) fn new(parts: JobParts, commands: mpsc::UnboundedSender<Command>, shared: Arc<Shared>) -> Self {
        JobHandle { accepted: parts.accepted, events: Some(parts.events), result: parts.result, commands, shared }
    }

    /// The job's id.
    pub fn job_id(&self) -> &JobId {
        &self.accepted.job_id
    }

    /// The `job.accepted` payload: resolved agent, effective lease, budget, trace id…
    pub fn accepted(&self) -> &JobAccepted {
        &self.accepted
    }

    /// The job's event stream, from its first event. It ends after the job's terminal
    /// envelope; it yields an `Err` last if the session was lost
    /// (e.g. [`ClientError::Session`] with `RESUME_WINDOW_EXPIRED`) or the buffer overflowed
    /// ([`ClientError::Lagged`]).
    ///
    /// The stream can be taken once; later calls return an empty stream. Events are buffered
    /// from the start (up to [`ClientOptions::event_buffer`](crate::ClientOptions::event_buffer))
    /// whether or not it is taken.
    pub fn events(&mut self) -> JobEvents {
        self.events.take().unwrap_or_else(JobEvents::empty)
    }

    /// Waits for the job's end: `Ok` with the `job.result` payload, or
    /// [`ClientError::Job`] for a `job.error` (failed, cancelled, timed out), or the error
    /// that ended the session. Can be called any number of times.
    pub async fn result(&self) -> Result<JobOutcome, ClientError> {
        wait_result(&self.result, &self.shared).await
    }

    /// Whether the job has ended (its result is available without waiting).
    pub fn is_finished(&self) -> bool {
        self.result.borrow().is_some()
    }

    /// Asks the runtime to cancel the job (`job.cancel`, §7.4) and waits until the runtime
    /// acknowledges it (`job.cancelled`) or the job ends. The job's
    /// [`result`](Self::result) then reports [`ClientError::Job`] with `CANCELLED` (unless it
    /// had already ended otherwise). Cancelling a finished job succeeds and does nothing.
    /// A refusal (e.g. `PERMISSION_DENIED`) is [`ClientError::Refused`].
    pub async fn cancel(&self, reason: Option<String>) -> Result<(), ClientError> {
        if self.is_finished() {
            return Ok(());
        }
        let (reply, rx) = oneshot::channel();
        let command = Command::Cancel { job_id: self.accepted.job_id.clone(), reason, reply };
        if self.commands.send(command).is_err() {
            return Err(self.shared.failure());
        }
        rx.await.unwrap_or_else(|_| Err(self.shared.failure()))
    }
}

/// A job's events, as a [`Stream`] of [`ReceivedEvent`] (see [`JobHandle::events`]).
#[derive(Debug)]
pub struct JobEvents {
    rx: Option<mpsc::UnboundedReceiver<Result<ReceivedEvent, ClientError>>>,
    depth: Arc<AtomicUsize>,
}

impl JobEvents {
    pub(crate) fn empty() -> Self {
        JobEvents { rx: None, depth: Arc::new(AtomicUsize::new(0)) }
    }
}

impl Stream for JobEvents {
    type Item = Result<ReceivedEvent, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(rx) = self.rx.as_mut() else { return Poll::Ready(None) };
        match rx.poll_recv(cx) {
            Poll::Ready(Some(item)) => {
                if item.is_ok() {
                    self.depth.fetch_sub(1, Ordering::SeqCst);
                }
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => {
                self.rx = None;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
