//! A job: its identity, lease, state and observers, and the runner that drives an agent to
//! exactly one terminal envelope.
//!
//! All emission for a job goes through its state lock, so nothing is ever emitted after the
//! terminal `job.result`/`job.error`, and an observer added under that lock sees either the
//! live stream or the terminal envelope, never neither.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arcp_core::lease::{ExpiresAt, Lease};
use arcp_core::message::{ErrorStatus, JobError, JobResult, JobStatus, Message, ResultStatus};
use arcp_core::{ErrorCode, ErrorPayload, JobId, TraceId};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::agent::Agent;
use crate::context::JobContext;
use crate::runtime::Inner;
use crate::session::Session;

pub(crate) struct JobState {
    pub(crate) status: JobStatus,
    /// `Some(reason)` once a cancel was accepted.
    pub(crate) cancel_requested: Option<Option<String>>,
    /// Sessions (other than the owner) that receive this job's events.
    pub(crate) observers: Vec<Arc<Session>>,
    /// The terminal message, once emitted.
    pub(crate) terminal: Option<Message>,
    /// When the job ended (Unix ms).
    pub(crate) ended_at: u64,
}

/// One job.
pub(crate) struct Job {
    pub(crate) id: JobId,
    pub(crate) owner: Arc<Session>,
    pub(crate) principal: String,
    pub(crate) trace_id: TraceId,
    pub(crate) lease: Lease,
    pub(crate) expires_at: Option<ExpiresAt>,
    pub(crate) cancel: CancellationToken,
    pub(crate) state: tokio::sync::Mutex<JobState>,
}

impl Job {
    pub(crate) fn new(
        id: JobId,
        owner: Arc<Session>,
        trace_id: TraceId,
        lease: Lease,
        expires_at: Option<ExpiresAt>,
    ) -> Self {
        Job {
            id,
            principal: owner.principal.clone(),
            owner,
            trace_id,
            lease,
            expires_at,
            cancel: CancellationToken::new(),
            state: tokio::sync::Mutex::new(JobState {
                status: JobStatus::Pending,
                cancel_requested: None,
                observers: Vec::new(),
                terminal: None,
                ended_at: 0,
            }),
        }
    }

    /// Emits a non-terminal sequence-bearing message to the owner and every observer.
    /// Fails once the job is terminal.
    pub(crate) async fn emit(&self, rt: &Inner, message: Message) -> Result<(), Error> {
        let st = self.state.lock().await;
        if st.status.is_terminal() {
            return Err(Error::refused(ErrorCode::INVALID_REQUEST, "the job has already ended"));
        }
        self.fan_out(rt, &st.observers, message).await
    }

    async fn fan_out(&self, rt: &Inner, observers: &[Arc<Session>], message: Message) -> Result<(), Error> {
        let deliver = |s: &Session| !is_progress(&message) || s.has_feature(&arcp_core::negotiate::Feature::PROGRESS);
        if deliver(&self.owner) {
            self.owner.emit(rt, &self.id, Some(&self.trace_id), message.clone()).await?;
        }
        for observer in observers {
            if deliver(observer)
                && let Err(e) = observer.emit(rt, &self.id, Some(&self.trace_id), message.clone()).await
            {
                tracing::warn!(job = %self.id, session = %observer.id, error = %e, "could not forward to an observer");
            }
        }
        Ok(())
    }

    /// Emits the terminal message (once; later calls do nothing). A job whose cancel was
    /// accepted always ends `cancelled`, whatever the agent returned.
    pub(crate) async fn finish(&self, rt: &Inner, outcome: Outcome) {
        let mut st = self.state.lock().await;
        if st.status.is_terminal() {
            return;
        }
        let outcome = match st.cancel_requested.clone() {
            Some(reason) => Outcome::Cancelled(reason),
            None => outcome,
        };
        let (status, message) = outcome.into_message(rt.now_timestamp());
        st.status = status;
        st.terminal = Some(message.clone());
        st.ended_at = rt.now_millis();
        self.owner.running_jobs.fetch_sub(1, Ordering::SeqCst);
        let observers = st.observers.clone();
        if let Err(e) = self.fan_out(rt, &observers, message).await {
            tracing::error!(job = %self.id, error = %e, "could not persist the terminal envelope");
        }
    }
}

fn is_progress(message: &Message) -> bool {
    matches!(message, Message::JobEvent(e) if matches!(e.body, arcp_core::event::EventBody::Progress(_)))
}

/// How a job ended.
pub(crate) enum Outcome {
    Success(Value),
    Failed(ErrorPayload),
    Cancelled(Option<String>),
    TimedOut(u64),
}

impl Outcome {
    fn into_message(self, now: arcp_core::Timestamp) -> (JobStatus, Message) {
        match self {
            Outcome::Success(result) => (
                JobStatus::Success,
                Message::JobResult(JobResult {
                    final_status: ResultStatus::Success,
                    summary: None,
                    result: Some(result),
                    result_id: None,
                    result_size: None,
                    completed_at: Some(now),
                }),
            ),
            Outcome::Failed(error) => {
                (JobStatus::Error, Message::JobError(JobError::new(ErrorStatus::Error, error).completed_at(now)))
            }
            Outcome::Cancelled(reason) => {
                let message = match reason {
                    Some(r) => format!("Job cancelled: {r}"),
                    None => "Job cancelled".to_owned(),
                };
                (
                    JobStatus::Cancelled,
                    Message::JobError(
                        JobError::new(ErrorStatus::Cancelled, ErrorPayload::new(ErrorCode::CANCELLED, message))
                            .completed_at(now),
                    ),
                )
            }
            Outcome::TimedOut(secs) => (
                JobStatus::TimedOut,
                Message::JobError(
                    JobError::new(
                        ErrorStatus::TimedOut,
                        ErrorPayload::new(ErrorCode::TIMEOUT, format!("Job exceeded max_runtime_sec ({secs} s)")),
                    )
                    .completed_at(now),
                ),
            ),
        }
    }
}

/// Runs `agent` for `job` to its terminal envelope.
pub(crate) async fn run(rt: Arc<Inner>, job: Arc<Job>, agent: Arc<dyn Agent>, input: Value, max_runtime: Option<u64>) {
    {
        let mut st = job.state.lock().await;
        if st.status == JobStatus::Pending {
            st.status = JobStatus::Running;
        }
    }
    let running = Message::JobEvent(arcp_core::event::JobEvent {
        ts: rt.now_timestamp(),
        body: arcp_core::event::Status::phase("running").into(),
    });
    if let Err(e) = job.emit(&rt, running).await {
        tracing::warn!(job = %job.id, error = %e, "could not emit status running");
    }
    let ctx = JobContext::new(rt.clone(), job.clone());
    let fut = agent.run(ctx, input);
    tokio::pin!(fut);
    let deadline = async {
        match max_runtime {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        result = &mut fut => match result {
            Ok(value) => Outcome::Success(value),
            Err(e) => Outcome::Failed(e.0),
        },
        () = job.cancel.cancelled() => {
            // Cooperative: the agent sees the signal; give it the grace period to return.
            let _ = tokio::time::timeout(rt.config.cancel_grace, &mut fut).await;
            Outcome::Cancelled(None)
        }
        () = deadline => {
            job.cancel.cancel();
            Outcome::TimedOut(max_runtime.unwrap_or_default())
        }
    };
    job.finish(&rt, outcome).await;
}
