//! `job.subscribe` / `job.unsubscribe` (§7.6, feature `subscribe`): the subscription policy,
//! the audit line, history replay re-stamped into the subscriber's own `event_seq` space, the
//! `job.subscribed` authority descriptor, and live fan-out.
//!
//! **A slow subscriber never stalls the job** (arcp-rs choice, spec §7.6.1): the job hands
//! each envelope to a subscriber with a non-blocking `try_send` into a bounded per-subscriber
//! queue (`RuntimeConfig::subscriber_queue`). A forwarder task drains that queue into the
//! subscriber's session (persisted in *its* log, counted against *its* caps, sent on *its*
//! link). If the queue is full the subscriber has fallen behind: the subscription is dropped
//! and, after the envelopes already queued, the subscriber receives a request error
//! `job.error INTERNAL_ERROR` (`retryable: true`, `details {request_id, cap:
//! "subscriber_queue", limit}`), which does not mean the job ended; it may resubscribe with
//! `history`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arcp_core::message::{ErrorStatus, JobError, JobSubscribe, JobSubscribed, Message};
use arcp_core::negotiate::Feature;
use arcp_core::{ErrorCode, ErrorPayload, EventSeq, JobId, MessageId, SessionId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::connection::Conn;
use crate::job::Job;
use crate::runtime::Inner;
use crate::session::Session;

/// What a [`SubscriptionPolicy`] is asked about: a session of another principal than the
/// job's submitter wants to observe the job. (The submitting principal is always allowed
/// and never asked about.)
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SubscribeRequest<'a> {
    /// The subscribing principal.
    pub subscriber_principal: &'a str,
    /// The subscribing session.
    pub subscriber_session: &'a SessionId,
    /// The job.
    pub job_id: &'a JobId,
    /// The principal that submitted the job.
    pub job_principal: &'a str,
}

/// A policy's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeDecision {
    /// The subscription is allowed (observation only: no cancel or other authority).
    Allow,
    /// The job is visible to the subscriber but it may not observe it: request error
    /// `PERMISSION_DENIED`.
    Deny,
    /// The job is invisible to the subscriber (decision 22): request error `JOB_NOT_FOUND`,
    /// exactly as for a job that does not exist.
    Hide,
}

/// Decides whether a principal may subscribe to another principal's job (§7.6, §14).
pub trait SubscriptionPolicy: Send + Sync + 'static {
    /// The decision for `request`.
    fn decide(&self, request: &SubscribeRequest<'_>) -> SubscribeDecision;
}

/// The default policy, "same principal only": every other principal's job is invisible
/// ([`SubscribeDecision::Hide`], decision 22).
#[derive(Debug, Clone, Copy, Default)]
pub struct SamePrincipalOnly;

impl SubscriptionPolicy for SamePrincipalOnly {
    fn decide(&self, _request: &SubscribeRequest<'_>) -> SubscribeDecision {
        SubscribeDecision::Hide
    }
}

/// One live subscription: shared by the subscriber's session (to unsubscribe) and the job's
/// subscriber list (to feed it).
pub(crate) struct Subscription {
    pub(crate) job_id: JobId,
    pub(crate) session: Arc<Session>,
    /// The `job.subscribe` envelope's id (for the lag error).
    request_id: MessageId,
    /// Fired by `job.unsubscribe`, session expiry, or a newer subscription to the same job.
    pub(crate) stop: CancellationToken,
    /// Set when the queue overflowed.
    lagged: AtomicBool,
}

/// The job's side of a subscription.
pub(crate) struct Subscriber {
    sub: Arc<Subscription>,
    tx: mpsc::Sender<Message>,
}

/// Offers `message` to every subscriber without waiting: a full queue drops that
/// subscription (it is told by its forwarder), a stopped one is removed. Called under the
/// job's state lock.
pub(crate) fn offer(rt: &Inner, subscribers: &mut Vec<Subscriber>, message: &Message) {
    subscribers.retain(|s| {
        if s.sub.stop.is_cancelled() {
            return false;
        }
        match s.tx.try_send(message.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                s.sub.lagged.store(true, Ordering::SeqCst);
                tracing::warn!(
                    job = %s.sub.job_id,
                    session = %s.sub.session.id,
                    limit = rt.config.subscriber_queue,
                    "subscriber fell behind; dropping the subscription"
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    });
}

fn is_terminal(message: &Message) -> bool {
    matches!(message, Message::JobResult(_) | Message::JobError(_))
}

fn delivers(session: &Session, message: &Message) -> bool {
    let progress =
        matches!(message, Message::JobEvent(e) if matches!(e.body, arcp_core::event::EventBody::Progress(_)));
    !progress || session.has_feature(&Feature::PROGRESS)
}

/// Drains a subscriber's queue into its session until the job's terminal envelope, a stop,
/// or a failure of the subscriber's session.
async fn forward(rt: Arc<Inner>, job: Arc<Job>, sub: Arc<Subscription>, mut rx: mpsc::Receiver<Message>) {
    loop {
        let next = tokio::select! {
            biased;
            () = sub.stop.cancelled() => break,
            next = rx.recv() => next,
        };
        let Some(message) = next else {
            if sub.lagged.load(Ordering::SeqCst) {
                let limit = rt.config.subscriber_queue;
                let error = ErrorPayload::new(
                    ErrorCode::INTERNAL_ERROR,
                    format!(
                        "subscription dropped: the subscriber fell more than {limit} envelopes behind (the job goes on; resubscribe with history)"
                    ),
                )
                .with_details(serde_json::json!({
                    "request_id": sub.request_id.as_str(),
                    "cap": "subscriber_queue",
                    "limit": limit,
                }));
                let message =
                    Message::JobError(JobError::new(ErrorStatus::Error, error).completed_at(rt.now_timestamp()));
                if let Err(e) = sub.session.emit(&rt, &job.id, Some(&job.trace_id), message).await {
                    tracing::debug!(job = %job.id, error = %e, "could not report the dropped subscription");
                }
            }
            break;
        };
        let terminal = is_terminal(&message);
        if delivers(&sub.session, &message)
            && let Err(e) = sub.session.emit(&rt, &job.id, Some(&job.trace_id), message).await
        {
            tracing::debug!(job = %job.id, session = %sub.session.id, error = %e, "subscriber session failed; ending the subscription");
            break;
        }
        if terminal {
            break;
        }
    }
    sub.stop.cancel();
    let mut subs = sub.session.subscriptions.lock();
    if subs.get(&sub.job_id).is_some_and(|s| Arc::ptr_eq(s, &sub)) {
        subs.remove(&sub.job_id);
    }
}

/// Answers a refused `job.subscribe` with a request error (decision 21).
async fn refuse(conn: &Conn, session: &Session, request_id: &MessageId, job_id: JobId, error: ErrorPayload) {
    crate::submit::refuse(conn, session, Some(request_id), Some(job_id), error).await;
}

fn not_found(job_id: &JobId) -> ErrorPayload {
    ErrorPayload::new(ErrorCode::JOB_NOT_FOUND, format!("Job {job_id} not found"))
}

fn audit(session: &Session, job_id: &JobId, job_principal: Option<&str>, decision: &str) {
    tracing::info!(
        target: "arcp::audit",
        subscriber_principal = %session.principal,
        subscriber_session = %session.id,
        job = %job_id,
        job_principal = job_principal.unwrap_or("-"),
        decision,
        "job.subscribe"
    );
}

/// Handles `job.subscribe` (the feature is checked by the caller).
pub(crate) async fn subscribe(conn: &Conn, session: &Arc<Session>, request_id: &MessageId, req: JobSubscribe) {
    let rt = &conn.rt;
    let Some(job) = rt.job(&req.job_id) else {
        // Not in memory: a finished job may still have its record (§6.6 retention).
        let record = rt.job_store.get(&req.job_id).await.ok().flatten();
        match record {
            Some(r) if decide(rt, session, &r.job_id, &r.principal) == SubscribeDecision::Allow => {
                audit(session, &r.job_id, Some(&r.principal), "allow");
                if let Some(e) = crate::job::on_other_node(rt, &r) {
                    return refuse(conn, session, request_id, r.job_id, e).await;
                }
                if req.history {
                    let e = ErrorPayload::new(
                        ErrorCode::RESUME_WINDOW_EXPIRED,
                        format!("the history of job {} is no longer buffered", r.job_id),
                    );
                    return refuse(conn, session, request_id, r.job_id, e).await;
                }
                let subscribed = JobSubscribed {
                    job_id: r.job_id.clone(),
                    current_status: r.status,
                    agent: r.agent,
                    lease: r.lease,
                    lease_constraints: r.lease_constraints,
                    budget: None,
                    parent_job_id: r.parent_job_id,
                    trace_id: r.trace_id.clone(),
                    subscribed_from: session.last_seq().await,
                    replayed: false,
                    credentials: None,
                    request_id: Some(request_id.clone()),
                };
                send_subscribed(conn, session, subscribed).await;
            }
            Some(r) => {
                let decision = decide(rt, session, &r.job_id, &r.principal);
                audit(session, &r.job_id, Some(&r.principal), label(decision));
                refuse(conn, session, request_id, r.job_id.clone(), refusal(decision, &r.job_id)).await;
            }
            None => {
                audit(session, &req.job_id, None, "not_found");
                refuse(conn, session, request_id, req.job_id.clone(), not_found(&req.job_id)).await;
            }
        }
        return;
    };
    let decision = decide(rt, session, &job.id, &job.principal);
    audit(session, &job.id, Some(&job.principal), label(decision));
    if decision != SubscribeDecision::Allow {
        return refuse(conn, session, request_id, job.id.clone(), refusal(decision, &job.id)).await;
    }
    let same_session = job.owner.id == session.id;
    let full = {
        let subs = session.subscriptions.lock();
        !subs.contains_key(&job.id) && subs.len() >= rt.config.max_subscriptions_per_session
    };
    {
        if full {
            let limit = rt.config.max_subscriptions_per_session;
            let e = ErrorPayload::new(
                ErrorCode::INTERNAL_ERROR,
                format!("too many subscriptions in this session (cap {limit})"),
            )
            .with_details(serde_json::json!({ "cap": "max_subscriptions_per_session", "limit": limit }));
            return refuse(conn, session, request_id, job.id.clone(), e).await;
        }
    }
    // Register under the job's lock: every envelope after `cut` reaches the queue, every one
    // up to `cut` is in the owner's log (the replay's source). Nothing is lost or doubled.
    let (cut, first, status, registered) = {
        let mut st = job.state.lock().await;
        let (first, cut) = *job.owner_seqs.lock();
        let status = st.status;
        let registered = if same_session || status.is_terminal() {
            None
        } else {
            let sub = Arc::new(Subscription {
                job_id: job.id.clone(),
                session: session.clone(),
                request_id: request_id.clone(),
                stop: CancellationToken::new(),
                lagged: AtomicBool::new(false),
            });
            let (tx, rx) = mpsc::channel(rt.config.subscriber_queue.max(1));
            st.subscribers.push(Subscriber { sub: sub.clone(), tx });
            if let Some(old) = session.subscriptions.lock().insert(job.id.clone(), sub.clone()) {
                old.stop.cancel();
            }
            Some((sub, rx))
        };
        (cut, first, status, registered)
    };
    let mut replayed = false;
    if req.history {
        let from = req.from_event_seq.map_or(0, EventSeq::get);
        match replay(rt, session, &job, from, first, cut).await {
            Ok(any) => replayed = any,
            Err(e) => {
                if let Some((sub, _)) = &registered {
                    sub.stop.cancel();
                    session.subscriptions.lock().remove(&job.id);
                }
                return refuse(conn, session, request_id, job.id.clone(), e).await;
            }
        }
    }
    let budget = {
        let b = job.budget.lock();
        let remaining = b.remaining();
        (!remaining.is_empty()).then(|| remaining.to_wire_numbers())
    };
    let subscribed = JobSubscribed {
        job_id: job.id.clone(),
        current_status: status,
        agent: job.agent.clone(),
        lease: job.lease.to_wire(),
        lease_constraints: job.lease_constraints.clone(),
        budget,
        parent_job_id: job.parent.as_ref().map(|p| p.id.clone()),
        trace_id: Some(job.trace_id.clone()),
        subscribed_from: session.last_seq().await,
        replayed,
        // arcp-rs does not provision credentials (§9.8) yet; they would go to the submitter only.
        credentials: None,
        request_id: Some(request_id.clone()),
    };
    send_subscribed(conn, session, subscribed).await;
    if let Some((sub, rx)) = registered {
        tokio::spawn(forward(rt.clone(), job.clone(), sub, rx));
    }
}

fn decide(rt: &Inner, session: &Session, job_id: &JobId, job_principal: &str) -> SubscribeDecision {
    if session.principal == job_principal {
        return SubscribeDecision::Allow;
    }
    rt.subscription_policy.decide(&SubscribeRequest {
        subscriber_principal: &session.principal,
        subscriber_session: &session.id,
        job_id,
        job_principal,
    })
}

fn label(decision: SubscribeDecision) -> &'static str {
    match decision {
        SubscribeDecision::Allow => "allow",
        SubscribeDecision::Deny => "deny",
        SubscribeDecision::Hide => "hide",
    }
}

fn refusal(decision: SubscribeDecision, job_id: &JobId) -> ErrorPayload {
    match decision {
        SubscribeDecision::Deny => {
            ErrorPayload::new(ErrorCode::PERMISSION_DENIED, format!("not allowed to subscribe to job {job_id}"))
        }
        _ => not_found(job_id),
    }
}

async fn send_subscribed(conn: &Conn, session: &Session, subscribed: JobSubscribed) {
    let job_id = subscribed.job_id.clone();
    let trace = subscribed.trace_id.clone();
    if let Ok(env) = session.envelope(&conn.rt, Message::JobSubscribed(subscribed)) {
        let mut env = env.with_job(job_id);
        env.trace_id = trace;
        session.send_direct(&conn.rt, env).await;
    }
}

/// Replays the job's envelopes with owner seq in `(from, cut]` into `session`, re-stamped.
/// The history must be complete (never a partial replay): everything from
/// `max(from + 1, first)` must still be in the owner's log, checked before and after the read
/// (logs are only ever trimmed from the front). Returns whether anything was replayed.
async fn replay(
    rt: &Inner,
    session: &Session,
    job: &Job,
    from: u64,
    first: u64,
    cut: u64,
) -> Result<bool, ErrorPayload> {
    if cut == 0 || from >= cut {
        return Ok(false);
    }
    let needed = from.saturating_add(1).max(first);
    let expired = || {
        ErrorPayload::new(
            ErrorCode::RESUME_WINDOW_EXPIRED,
            format!("the history of job {} after event_seq {from} is no longer buffered", job.id),
        )
    };
    let covered = |bounds: Option<crate::store::LogBounds>| bounds.is_some_and(|b| b.oldest.get() <= needed);
    let owner = &job.owner.id;
    if !covered(rt.events.bounds(owner).await.map_err(|e| crate::Error::from(e).to_payload())?) {
        return Err(expired());
    }
    let options = arcp_core::DecodeOptions { max_frame_bytes: usize::MAX };
    let mut messages = Vec::new();
    let mut after = EventSeq::new(needed.saturating_sub(1)).unwrap_or(EventSeq::ZERO);
    'read: while after.get() < cut {
        let batch = rt
            .events
            .read_since(owner, after, rt.config.replay_batch.max(1))
            .await
            .map_err(|e| crate::Error::from(e).to_payload())?;
        let Some(last) = batch.last() else { break };
        after = last.seq;
        for event in batch {
            if event.seq.get() > cut {
                break 'read;
            }
            if event.job_id != job.id {
                continue;
            }
            match arcp_core::decode::decode_str(&event.frame, &options) {
                Ok(env)
                    if matches!(env.message, Message::JobEvent(_) | Message::JobResult(_) | Message::JobError(_)) =>
                {
                    // Request errors about this job (decision 21) are the owner's, not the job's.
                    let request_error = matches!(&env.message, Message::JobError(e)
                        if e.details.as_ref().is_some_and(|d| d.get("request_id").is_some()));
                    if !request_error {
                        messages.push(env.message);
                    }
                }
                Ok(_) => {}
                Err(f) => tracing::warn!(job = %job.id, error = %f.error, "skipping an unreadable stored event"),
            }
        }
    }
    if !covered(rt.events.bounds(owner).await.map_err(|e| crate::Error::from(e).to_payload())?) {
        return Err(expired());
    }
    let mut any = false;
    for message in messages {
        if !delivers(session, &message) {
            continue;
        }
        session.emit(rt, &job.id, Some(&job.trace_id), message).await.map_err(|e| e.to_payload())?;
        any = true;
    }
    Ok(any)
}

/// Handles `job.unsubscribe`: ends the subscription (ignored when there is none).
pub(crate) fn unsubscribe(session: &Session, job_id: &JobId) {
    if let Some(sub) = session.subscriptions.lock().remove(job_id) {
        sub.stop.cancel();
    }
}

/// Whether `session` holds a subscription to `job_id` (observation only, §7.6).
pub(crate) fn is_subscribed(session: &Session, job_id: &JobId) -> bool {
    session.subscriptions.lock().contains_key(job_id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    //! The audit trail of §7.6: every subscribe decision is one `arcp::audit` event.

    use std::fmt::Write as _;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use serde_json::{Value, json};

    use crate::transport::memory::{MemoryTransport, pair};
    use crate::{Runtime, StaticBearerVerifier};

    /// A tracing subscriber keeping the fields of every `arcp::audit` event.
    struct Capture(Arc<Mutex<Vec<String>>>);

    struct Fields(String);

    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            let _ = write!(self.0, "{}={value:?} ", field.name());
        }

        fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
            let _ = write!(self.0, "{}={value} ", field.name());
        }
    }

    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            if event.metadata().target() == "arcp::audit" {
                let mut fields = Fields(String::new());
                event.record(&mut fields);
                self.0.lock().unwrap().push(fields.0);
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    async fn next(t: &mut MemoryTransport) -> Value {
        let frame = tokio::time::timeout(Duration::from_secs(10), t.recv()).await.unwrap().unwrap();
        serde_json::from_str(&frame).unwrap()
    }

    /// Opens a session with `token`; returns its transport and session id.
    async fn open(rt: &Runtime, token: &str) -> (MemoryTransport, String) {
        let (mut t, server) = pair();
        rt.spawn(server);
        let hello = json!({"arcp": "1.1", "id": "msg_h", "type": "session.hello", "payload": {
            "client": {"name": "unit", "version": "0"}, "auth": {"scheme": "bearer", "token": token},
            "capabilities": {"features": ["subscribe"]}}});
        t.send(hello.to_string()).unwrap();
        let welcome = next(&mut t).await;
        let session = welcome["session_id"].as_str().unwrap().to_owned();
        (t, session)
    }

    fn send(t: &MemoryTransport, session: &str, id: &str, ty: &str, payload: Value, extra: Value) {
        let mut env = json!({"arcp": "1.1", "id": id, "type": ty, "session_id": session, "payload": payload});
        for (k, v) in extra.as_object().unwrap() {
            env[k] = v.clone();
        }
        t.send(env.to_string()).unwrap();
    }

    /// Reads until a frame of type `ty`.
    async fn until(t: &mut MemoryTransport, ty: &str) -> Value {
        loop {
            let v = next(t).await;
            if v["type"] == ty {
                return v;
            }
        }
    }

    #[tokio::test]
    async fn every_subscribe_decision_is_audit_logged() {
        let log = Arc::new(Mutex::new(Vec::new()));
        // Current-thread runtime: the runtime's tasks run on this thread, under this default.
        let _guard = tracing::subscriber::set_default(Capture(log.clone()));
        let verifier =
            StaticBearerVerifier::new().with_token("a", "alice").with_token("a2", "alice").with_token("b", "bob");
        let rt = Runtime::builder(verifier).agents(crate::builtin::registry().unwrap()).build();
        let (mut owner, owner_session) = open(&rt, "a").await;
        send(&owner, &owner_session, "msg_s", "job.submit", json!({"agent": "sleep", "input": {}}), json!({}));
        let job = until(&mut owner, "job.accepted").await["job_id"].as_str().unwrap().to_owned();

        let (mut same, same_session) = open(&rt, "a2").await;
        send(&same, &same_session, "msg_1", "job.subscribe", json!({"job_id": job}), json!({}));
        until(&mut same, "job.subscribed").await;
        let (mut other, other_session) = open(&rt, "b").await;
        send(&other, &other_session, "msg_2", "job.subscribe", json!({"job_id": job}), json!({}));
        until(&mut other, "job.error").await;
        let unknown = "job_01M8ZZZZZZZZZZZZZZZZZZZZZZ";
        send(&other, &other_session, "msg_3", "job.subscribe", json!({"job_id": unknown}), json!({}));
        until(&mut other, "job.error").await;

        let lines = log.lock().unwrap().clone();
        assert_eq!(lines.len(), 3, "one audit event per decision: {lines:?}");
        let expect = [
            ("alice", &same_session, job.as_str(), "job_principal=alice", "decision=allow"),
            ("bob", &other_session, job.as_str(), "job_principal=alice", "decision=hide"),
            ("bob", &other_session, unknown, "job_principal=-", "decision=not_found"),
        ];
        for (line, (principal, session, job, job_principal, decision)) in lines.iter().zip(expect) {
            for part in [
                format!("subscriber_principal={principal}"),
                format!("subscriber_session={session}"),
                format!("job={job}"),
                job_principal.to_owned(),
                decision.to_owned(),
            ] {
                assert!(line.contains(&part), "{part} missing from {line}");
            }
        }
        send(&owner, &owner_session, "msg_c", "job.cancel", json!({}), json!({"job_id": job}));
        until(&mut owner, "job.error").await;
    }
}
