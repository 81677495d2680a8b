//! A job: its identity, lease, state and observers, and the runner that drives an agent to
//! exactly one terminal envelope.
//!
//! All emission for a job goes through its state lock, so nothing is ever emitted after the
//! terminal `job.result`/`job.error`, and an observer added under that lock sees either the
//! live stream or the terminal envelope, never neither.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arcp_core::lease::{ExpiresAt, Lease};
use arcp_core::message::{ErrorStatus, JobError, JobResult, JobStatus, Message, ResultStatus};
use arcp_core::{ErrorCode, ErrorPayload, JobId, TraceId};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::agent::{Agent, AgentError};
use crate::budget::BudgetState;
use crate::chunks::StreamState;
use crate::context::JobContext;
use crate::runtime::Inner;
use crate::session::Session;

pub(crate) struct JobState {
    pub(crate) status: JobStatus,
    /// `Some(reason)` once a cancel was accepted.
    pub(crate) cancel_requested: Option<Option<String>>,
    /// Sessions (other than the owner) that receive this job's events.
    pub(crate) observers: Vec<Arc<Session>>,
    /// `job.subscribe` subscribers (§7.6): fed through bounded queues, never awaited.
    pub(crate) subscribers: Vec<crate::subscribe::Subscriber>,
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
    /// The monotonic instant and the runtime clock's Unix ms at acceptance (lease expiry is
    /// measured from here, see `lease_guard`).
    pub(crate) anchor: (tokio::time::Instant, u64),
    /// Remaining `cost.budget` counters (§9.6).
    pub(crate) budget: parking_lot::Mutex<BudgetState>,
    /// The streamed result (§8.4); held across the emission of a chunk.
    pub(crate) stream: tokio::sync::Mutex<StreamState>,
    /// Set by `end_with`: the error the job must end with (an expired lease was used).
    pub(crate) fatal: parking_lot::Mutex<Option<ErrorPayload>>,
    /// Fired by `end_with`.
    pub(crate) fatal_signal: CancellationToken,
    /// Fired once the terminal envelope was emitted.
    pub(crate) finished: CancellationToken,
    /// The delegating job, for a delegated child (§10).
    pub(crate) parent: Option<Arc<Job>>,
    /// The parent's `delegate_id` for this child.
    pub(crate) delegate_id: Option<String>,
    /// Delegation depth: 0 for a submitted job.
    pub(crate) depth: u32,
    /// Children still worth cancelling when this job ends.
    pub(crate) children: parking_lot::Mutex<Vec<Weak<Job>>>,
    /// The resolved agent label (`name@version` or bare), for listings and `job.subscribed`.
    pub(crate) agent: String,
    /// The lease constraints it was accepted with.
    pub(crate) lease_constraints: Option<arcp_core::message::LeaseConstraints>,
    /// `event_seq` of its first and latest envelope in the owner's sequence (0: none yet).
    pub(crate) owner_seqs: parking_lot::Mutex<(u64, u64)>,
}

impl Job {
    pub(crate) fn new(
        id: JobId,
        owner: Arc<Session>,
        trace_id: TraceId,
        lease: Lease,
        expires_at: Option<ExpiresAt>,
        now_millis: u64,
    ) -> Self {
        let budget = BudgetState::new(lease.budget());
        Job {
            id,
            principal: owner.principal.clone(),
            owner,
            trace_id,
            lease,
            expires_at,
            anchor: (tokio::time::Instant::now(), now_millis),
            budget: parking_lot::Mutex::new(budget),
            stream: tokio::sync::Mutex::new(StreamState::default()),
            fatal: parking_lot::Mutex::new(None),
            fatal_signal: CancellationToken::new(),
            finished: CancellationToken::new(),
            parent: None,
            delegate_id: None,
            depth: 0,
            children: parking_lot::Mutex::new(Vec::new()),
            agent: String::new(),
            lease_constraints: None,
            owner_seqs: parking_lot::Mutex::new((0, 0)),
            cancel: CancellationToken::new(),
            state: tokio::sync::Mutex::new(JobState {
                status: JobStatus::Pending,
                cancel_requested: None,
                observers: Vec::new(),
                subscribers: Vec::new(),
                terminal: None,
                ended_at: 0,
            }),
        }
    }

    /// Sets what listings and `job.subscribed` describe: the resolved agent and the lease
    /// constraints.
    pub(crate) fn described(
        mut self,
        agent: String,
        lease_constraints: Option<arcp_core::message::LeaseConstraints>,
    ) -> Self {
        self.agent = agent;
        self.lease_constraints = lease_constraints;
        self
    }

    /// When the job was accepted (Unix ms).
    pub(crate) fn created_at_millis(&self) -> u64 {
        self.anchor.1
    }

    /// The `event_seq` of its latest envelope in the owner's sequence.
    pub(crate) fn last_owner_seq(&self) -> arcp_core::EventSeq {
        arcp_core::EventSeq::new(self.owner_seqs.lock().1).unwrap_or(arcp_core::EventSeq::ZERO)
    }

    /// The job record the store keeps (§6.6).
    pub(crate) fn record(&self, rt_node: &str) -> crate::store::JobRecord {
        crate::store::JobRecord {
            job_id: self.id.clone(),
            principal: self.principal.clone(),
            session_id: self.owner.id.clone(),
            agent: self.agent.clone(),
            status: JobStatus::Pending,
            lease: self.lease.to_wire(),
            lease_constraints: self.lease_constraints.clone(),
            parent_job_id: self.parent.as_ref().map(|p| p.id.clone()),
            created_at_millis: self.created_at_millis(),
            trace_id: Some(self.trace_id.clone()),
            last_event_seq: arcp_core::EventSeq::ZERO,
            ended_at_millis: None,
            node: rt_node.to_owned(),
        }
    }

    /// Writes the job's state to the job store (failures are logged: the job goes on).
    pub(crate) async fn store_status(&self, rt: &Inner, status: JobStatus, ended_at_millis: Option<u64>) {
        let update = crate::store::JobUpdate { status, last_event_seq: self.last_owner_seq(), ended_at_millis };
        if let Err(e) = rt.job_store.update(&self.id, update).await {
            tracing::warn!(job = %self.id, error = %e, "could not update the job record");
        }
    }

    /// This job as the child `delegate_id` of `parent`, with the initial counters `budget`
    /// (decision 20: bounded by the parent's remaining budget).
    pub(crate) fn delegated(mut self, parent: Arc<Job>, delegate_id: String, budget: arcp_core::lease::Budget) -> Self {
        self.depth = parent.depth.saturating_add(1);
        self.parent = Some(parent);
        self.delegate_id = Some(delegate_id);
        self.budget = parking_lot::Mutex::new(BudgetState::new(budget));
        self
    }

    /// Ends the job as `cancelled` because its parent ended (§10; no `job.cancelled` is
    /// sent). Does nothing once the job is terminal or already being cancelled.
    pub(crate) async fn cancel_from_parent(&self, reason: &str) {
        let mut st = self.state.lock().await;
        if st.status.is_terminal() || st.cancel_requested.is_some() {
            return;
        }
        st.cancel_requested = Some(Some(reason.to_owned()));
        drop(st);
        self.cancel.cancel();
    }

    /// Emits a non-terminal sequence-bearing message to the owner and every observer.
    /// Fails once the job is terminal.
    pub(crate) async fn emit(&self, rt: &Inner, message: Message) -> Result<(), Error> {
        let mut st = self.state.lock().await;
        if st.status.is_terminal() {
            return Err(Error::refused(ErrorCode::INVALID_REQUEST, "the job has already ended"));
        }
        self.fan_out(rt, &mut st, message).await
    }

    /// Delivers `message` to the owner (awaited: persist-before-send), the idempotent
    /// observers, and the subscribers' queues (never awaited: a slow subscriber is dropped,
    /// see `subscribe.rs`). Called under the job's state lock.
    async fn fan_out(&self, rt: &Inner, st: &mut JobState, message: Message) -> Result<(), Error> {
        let deliver = |s: &Session| !is_progress(&message) || s.has_feature(&arcp_core::negotiate::Feature::PROGRESS);
        // A session terminated by a buffer cap (§14) records nothing more; its jobs are being
        // cancelled, and observers still get their events and terminal envelope.
        if deliver(&self.owner) && !self.owner.is_terminated() {
            let seq = self.owner.emit(rt, &self.id, Some(&self.trace_id), message.clone()).await?;
            let mut seqs = self.owner_seqs.lock();
            if seqs.0 == 0 {
                seqs.0 = seq.get();
            }
            seqs.1 = seq.get();
        }
        crate::subscribe::offer(rt, &mut st.subscribers, &message);
        for observer in &st.observers {
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
        rt.observer.job_ended(&self.agent, status, self.anchor.0.elapsed());
        tracing::debug!(status = crate::observe::job_status_label(status), "job ended");
        st.status = status;
        st.terminal = Some(message.clone());
        st.ended_at = rt.now_millis();
        self.owner.running_jobs.fetch_sub(1, Ordering::SeqCst);
        rt.lifecycle.finished(self, &message, st.ended_at);
        if let Err(e) = self.fan_out(rt, &mut st, message).await {
            tracing::error!(job = %self.id, error = %e, "could not persist the terminal envelope");
        }
        // Subscribers received the terminal in their queue; their forwarders end after it.
        st.subscribers.clear();
        let ended_at = st.ended_at;
        drop(st);
        self.store_status(rt, status, Some(ended_at)).await;
        self.finished.cancel();
        // No child outlives the authority it was derived from (§10).
        let children: Vec<Arc<Job>> =
            std::mem::take(&mut *self.children.lock()).iter().filter_map(Weak::upgrade).collect();
        for child in children {
            child.cancel_from_parent("the parent job ended").await;
        }
    }
}

fn is_progress(message: &Message) -> bool {
    matches!(message, Message::JobEvent(e) if matches!(e.body, arcp_core::event::EventBody::Progress(_)))
}

/// How a job ended.
pub(crate) enum Outcome {
    Success(Value),
    /// A result streamed as `result_chunk`s (§8.4).
    Streamed {
        result_id: String,
        result_size: u64,
        summary: Option<String>,
    },
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
            Outcome::Streamed { result_id, result_size, summary } => (
                JobStatus::Success,
                Message::JobResult(JobResult {
                    final_status: ResultStatus::Success,
                    summary,
                    result: None,
                    result_id: Some(result_id),
                    result_size: Some(result_size),
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

/// The outcome of an agent that returned: its inline or streamed result, its error, or
/// `INTERNAL_ERROR` for a panic — but `LEASE_EXPIRED` if it used an expired lease first, even
/// if it then returned before the runner noticed (§9.5).
async fn agent_outcome(job: &Job, result: std::thread::Result<Result<Value, AgentError>>) -> Outcome {
    if job.fatal_signal.is_cancelled() {
        return Outcome::Failed(job.fatal_error());
    }
    match result {
        Ok(Ok(value)) => job.stream.lock().await.finalize(value),
        Ok(Err(e)) => Outcome::Failed(e.0),
        Err(_panic) => {
            tracing::error!(job = %job.id, "the agent panicked");
            Outcome::Failed(ErrorPayload::new(ErrorCode::INTERNAL_ERROR, "the agent failed unexpectedly"))
        }
    }
}

/// Runs `agent` for `job` to its terminal envelope, inside a span `arcp.job {arcp.session_id,
/// arcp.job_id, arcp.agent}` (what the agent logs carries them).
pub(crate) async fn run(rt: Arc<Inner>, job: Arc<Job>, agent: Arc<dyn Agent>, input: Value, max_runtime: Option<u64>) {
    let span = tracing::info_span!(
        "arcp.job",
        arcp.session_id = %job.owner.id,
        arcp.job_id = %job.id,
        arcp.agent = %job.agent,
    );
    rt.observer.job_started(&job.agent);
    tracing::Instrument::instrument(drive(rt, job, agent, input, max_runtime), span).await;
}

async fn drive(rt: Arc<Inner>, job: Arc<Job>, agent: Arc<dyn Agent>, input: Value, max_runtime: Option<u64>) {
    {
        let mut st = job.state.lock().await;
        if st.status == JobStatus::Pending {
            st.status = JobStatus::Running;
        }
    }
    job.store_status(&rt, JobStatus::Running, None).await;
    let running = Message::JobEvent(arcp_core::event::JobEvent {
        ts: rt.now_timestamp(),
        body: arcp_core::event::Status::phase("running").into(),
    });
    if let Err(e) = job.emit(&rt, running).await {
        tracing::warn!(job = %job.id, error = %e, "could not emit status running");
    }
    let ctx = JobContext::new(rt.clone(), job.clone());
    // §7.3: a panicking agent ends its job with INTERNAL_ERROR instead of never ending it.
    let fut = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(agent.run(ctx, input)));
    tokio::pin!(fut);
    let deadline = async {
        match max_runtime {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    // §9.5: a job still running once its lease expired (plus the grace) is ended, fail closed.
    let expiry = async {
        match job.expiry_instant() {
            Some(at) => tokio::time::sleep_until(at + rt.config.lease_expiry_grace).await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        result = &mut fut => agent_outcome(&job, result).await,
        () = job.fatal_signal.cancelled() => {
            job.cancel.cancel();
            Outcome::Failed(job.fatal_error())
        }
        () = expiry => {
            tracing::info!(job = %job.id, "lease expired; ending the job");
            job.cancel.cancel();
            Outcome::Failed(job.expired_error())
        }
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

/// The refusal for an operation on a job that runs on another node sharing the store
/// (cancel, live subscription): not supported across nodes yet, so the client is told where
/// the job runs instead of getting silence. `None` when the job is not running elsewhere.
pub(crate) fn on_other_node(rt: &Inner, record: &crate::store::JobRecord) -> Option<arcp_core::ErrorPayload> {
    if record.status.is_terminal() || record.node == rt.config.node_id {
        return None;
    }
    Some(
        arcp_core::ErrorPayload::new(
            arcp_core::ErrorCode::INTERNAL_ERROR,
            format!(
                "job {} runs on node {:?}; cancelling or subscribing to it from another node is not supported yet: \
                 resume the session on that node",
                record.job_id, record.node
            ),
        )
        .with_details(serde_json::json!({ "reason": "job_on_other_node", "node": record.node })),
    )
}
