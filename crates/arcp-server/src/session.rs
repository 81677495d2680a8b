//! A session: its identity, negotiated features, the sequence counter, and the link to the
//! connection currently attached (if any).
//!
//! Every sequence-bearing envelope goes through [`Session::emit`]: under one lock it takes
//! the next `event_seq`, appends the encoded frame to the event log, and only then queues it
//! on the attached link (decision 7). With no link attached the event is still persisted and
//! is delivered by a later resume (decision 15). Resume takes the same lock to replay and
//! attach atomically, so no event is lost or duplicated at the seam.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use arcp_core::message::Message;
use arcp_core::negotiate::Feature;
use arcp_core::{Envelope, ErrorCode, ErrorPayload, EventSeq, JobId, ProtocolVersion, SessionId, TraceId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::ack::{AckOutcome, AckState, LiveJobs};
use crate::runtime::Inner;
use crate::store::{StoreError, StoredEvent};

/// What a connection's writer task receives.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// One frame to send.
    Frame(Arc<str>),
    /// Close the transport after everything queued before it.
    Close,
}

/// The sending side of one connection, as a session sees it.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub(crate) conn: u64,
    pub(crate) tx: mpsc::Sender<Outbound>,
    /// Cancelling it tears the connection down at once (queued frames are dropped).
    pub(crate) kill: CancellationToken,
}

impl Link {
    /// Queues `frame`, waiting at most `timeout` for room. `false` if the connection is gone
    /// or too slow (the caller detaches it).
    pub(crate) async fn push(&self, frame: Arc<str>, timeout: Duration) -> bool {
        matches!(tokio::time::timeout(timeout, self.tx.send(Outbound::Frame(frame))).await, Ok(Ok(())))
    }
}

/// Negotiated per-session settings (re-negotiated on resume).
#[derive(Debug, Clone)]
pub(crate) struct SessionMeta {
    /// The literal to reply with (decision 1).
    pub(crate) version: ProtocolVersion,
    /// The effective features.
    pub(crate) features: Vec<Feature>,
    /// `heartbeat_interval_sec`, when `heartbeat` was negotiated (§6.4).
    pub(crate) heartbeat: Option<Duration>,
}

/// How many times an append retries after another node took its `event_seq`.
const MAX_SEQ_CONFLICTS: u32 = 16;

struct EmitState {
    last_seq: EventSeq,
    link: Option<Link>,
    /// Acknowledged position and back-pressure trigger (§6.5).
    ack: AckState,
    /// Running jobs in start order, for back-pressure events.
    live: LiveJobs,
}

/// One ARCP session.
pub(crate) struct Session {
    pub(crate) id: SessionId,
    pub(crate) principal: String,
    pub(crate) meta: parking_lot::Mutex<SessionMeta>,
    emit: tokio::sync::Mutex<EmitState>,
    /// Jobs of this session not yet terminal.
    pub(crate) running_jobs: AtomicUsize,
    /// When the last link detached (Unix ms); 0 while attached.
    pub(crate) detached_at: AtomicU64,
    /// A copy of the emit state's `last_seq`, readable without its lock (written under it).
    newest: AtomicU64,
    /// Set when a buffer cap ended the session (§14): nothing more is recorded or sent, and
    /// it can no longer be resumed.
    pub(crate) terminated: AtomicBool,
    /// This session's `job.subscribe` subscriptions (§7.6), by job.
    pub(crate) subscriptions: parking_lot::Mutex<std::collections::HashMap<JobId, Arc<crate::subscribe::Subscription>>>,
}

impl Session {
    pub(crate) fn new(id: SessionId, principal: String, meta: SessionMeta) -> Self {
        Session {
            id,
            principal,
            meta: parking_lot::Mutex::new(meta),
            emit: tokio::sync::Mutex::new(EmitState {
                last_seq: EventSeq::ZERO,
                link: None,
                ack: AckState::default(),
                live: LiveJobs::default(),
            }),
            running_jobs: AtomicUsize::new(0),
            detached_at: AtomicU64::new(0),
            newest: AtomicU64::new(0),
            terminated: AtomicBool::new(false),
            subscriptions: parking_lot::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// A session known only to the store (the runtime restarted, or another node created
    /// it): its sequence continues after `last_seq`, the newest event its log holds. Detached
    /// until a resume attaches it; the resume re-negotiates `meta`.
    pub(crate) fn restored(id: SessionId, principal: String, meta: SessionMeta, last_seq: EventSeq, now: u64) -> Self {
        let session = Session::new(id, principal, meta);
        if let Ok(mut st) = session.emit.try_lock() {
            st.last_seq = last_seq;
            session.newest.store(last_seq.get(), Ordering::SeqCst);
        }
        session.detached_at.store(now.max(1), Ordering::SeqCst);
        session
    }

    /// Records when the last link went away (never 0, which means "attached").
    pub(crate) fn mark_detached(&self, rt: &Inner) {
        self.detached_at.store(rt.now_millis().max(1), Ordering::SeqCst);
    }

    pub(crate) fn has_feature(&self, f: &Feature) -> bool {
        self.meta.lock().features.contains(f)
    }

    pub(crate) fn version(&self) -> ProtocolVersion {
        self.meta.lock().version
    }

    /// Builds an envelope addressed to this session.
    pub(crate) fn envelope(&self, rt: &Inner, message: Message) -> Result<Envelope, Error> {
        Ok(Envelope::new(self.version(), rt.mint_message_id()?, message).with_session(self.id.clone()))
    }

    /// Whether a buffer cap terminated this session (§14).
    pub(crate) fn is_terminated(&self) -> bool {
        self.terminated.load(Ordering::SeqCst)
    }

    /// Persists and sends one sequence-bearing message (`job.event`, `job.result`,
    /// `job.error`) of `job_id`. Returns its `event_seq`. May be followed, under the same
    /// lock, by one back-pressure `status` event (§6.5).
    pub(crate) async fn emit(
        &self,
        rt: &Inner,
        job_id: &JobId,
        trace_id: Option<&TraceId>,
        message: Message,
    ) -> Result<EventSeq, Error> {
        let mut st = self.emit.lock().await;
        let seq = self.emit_locked(rt, &mut st, job_id, trace_id, message).await?;
        if self.has_feature(&Feature::ACK)
            && let Some(lag) = st.ack.back_pressure_due(seq, rt.config.back_pressure_threshold)
        {
            // Attached to the most recently started running job, in this session only. The
            // live list is kept under this lock from the persisted stream itself, so the job
            // has not emitted its terminal envelope yet and nothing follows a terminal.
            match st.live.newest() {
                Some((job, trace)) => {
                    let body = arcp_core::event::Status {
                        message: Some(format!(
                            "event_seq lag {lag} exceeds threshold {}",
                            rt.config.back_pressure_threshold
                        )),
                        ..arcp_core::event::Status::phase("back_pressure")
                    };
                    let event = arcp_core::event::JobEvent { ts: rt.now_timestamp(), body: body.into() };
                    if let Err(e) = self.emit_locked(rt, &mut st, &job, trace.as_ref(), Message::JobEvent(event)).await
                    {
                        tracing::warn!(session = %self.id, error = %e, "could not emit back_pressure");
                    }
                }
                None => tracing::debug!(session = %self.id, lag, "back-pressure due but no running job to carry it"),
            }
        }
        Ok(seq)
    }

    async fn emit_locked(
        &self,
        rt: &Inner,
        st: &mut EmitState,
        job_id: &JobId,
        trace_id: Option<&TraceId>,
        message: Message,
    ) -> Result<EventSeq, Error> {
        if self.is_terminated() {
            return Err(Error::refused(ErrorCode::INTERNAL_ERROR, "the session was terminated by a buffer cap"));
        }
        let mut envelope = self.envelope(rt, message)?.with_job(job_id.clone());
        envelope.trace_id = trace_id.cloned();
        let mut conflicts = 0;
        let (seq, frame, mut appended) = loop {
            let seq = st
                .last_seq
                .next()
                .ok_or_else(|| Error::refused(ErrorCode::INTERNAL_ERROR, "event_seq space exhausted"))?;
            envelope.event_seq = Some(seq);
            let frame: Arc<str> = Arc::from(envelope.to_json());
            let stored = StoredEvent { seq, job_id: job_id.clone(), frame: frame.clone() };
            let append = rt.events.append(&self.id, stored);
            match crate::observe::timed(&*rt.observer, crate::observe::StoreOp::Append, append).await {
                // On a shared log another node took this seq: deliver what it appended, then
                // take the next free one.
                Err(StoreError::Conflict(why)) if conflicts < MAX_SEQ_CONFLICTS => {
                    conflicts += 1;
                    tracing::debug!(session = %self.id, %seq, %why, "event_seq taken by another node; catching up");
                    self.catch_up_locked(rt, st).await?;
                }
                appended => break (seq, frame, appended),
            }
        };
        let stored = StoredEvent { seq, job_id: job_id.clone(), frame: frame.clone() };
        if matches!(appended, Err(StoreError::CapacityExceeded(_)))
            && let Some(acked) = EventSeq::new(st.ack.acked())
        {
            // §14: acknowledged events are freed before a cap ends the session.
            if rt.events.purge(&self.id, Some(acked)).await.is_ok() {
                appended = rt.events.append(&self.id, stored).await;
            }
        }
        if let Err(e) = appended {
            match &e {
                StoreError::CapacityExceeded(reason) => {
                    crate::caps::terminate_locked(self, rt, &mut st.link, reason, seq).await;
                    st.live.clear();
                }
                _ => {
                    // Persist-before-send: the event is not sent. The session can no longer
                    // promise gap-free delivery, so the client is told and the transport
                    // closes; the session stays resumable up to its last event.
                    if let Some(link) = st.link.take() {
                        let error = ErrorPayload::new(ErrorCode::INTERNAL_ERROR, format!("event log: {e}"))
                            .with_details(
                                serde_json::json!({ "session_id": self.id.as_str(), "failed_event_seq": seq.get() }),
                            );
                        if let Ok(env) = self.envelope(rt, Message::SessionError(error)) {
                            let _ = link.push(Arc::from(env.to_json()), rt.config.send_timeout).await;
                        }
                        let _ = link.tx.try_send(Outbound::Close);
                        self.mark_detached(rt);
                    }
                }
            }
            return Err(e.into());
        }
        st.last_seq = seq;
        self.newest.store(seq.get(), Ordering::SeqCst);
        rt.observer.event_persisted(crate::observe::persisted_type(&envelope.message));
        if let Message::JobEvent(_) | Message::JobResult(_) | Message::JobError(_) = &envelope.message {
            st.live.observe(job_id, trace_id, &envelope.message);
        }
        if let Some(link) = st.link.clone()
            && !link.push(frame, rt.config.send_timeout).await
        {
            tracing::warn!(session = %self.id, "connection too slow or gone; detaching (events stay resumable)");
            link.kill.cancel();
            st.link = None;
            self.mark_detached(rt);
        }
        Ok(seq)
    }

    /// Brings the sequence up to the newest event of a log shared with other nodes,
    /// delivering what they appended to the attached link in order. A no-op when this
    /// runtime is the log's only writer.
    async fn catch_up_locked(&self, rt: &Inner, st: &mut EmitState) -> Result<(), Error> {
        let Some(bounds) = rt.events.bounds(&self.id).await? else { return Ok(()) };
        while st.last_seq < bounds.newest {
            let batch = rt.events.read_since(&self.id, st.last_seq, rt.config.replay_batch).await?;
            let Some(last) = batch.last().map(|e| e.seq) else { break };
            for event in batch {
                if let Some(link) = st.link.clone()
                    && !link.push(event.frame, rt.config.send_timeout).await
                {
                    tracing::warn!(session = %self.id, "connection too slow or gone; detaching (events stay resumable)");
                    link.kill.cancel();
                    st.link = None;
                    self.mark_detached(rt);
                }
            }
            st.last_seq = last;
            self.newest.store(last.get(), Ordering::SeqCst);
        }
        Ok(())
    }

    /// Another node appended `seq` to this session's log (or, with `None`, notices may
    /// have been missed): delivers everything new, in order.
    pub(crate) async fn follow(&self, rt: &Inner, seq: Option<EventSeq>) {
        // Most notices are of this node's own appends: skip them without the emit lock.
        if seq.is_some_and(|s| s.get() <= self.newest.load(Ordering::SeqCst)) {
            return;
        }
        let mut st = self.emit.lock().await;
        if seq.is_some_and(|s| s <= st.last_seq) || self.is_terminated() {
            return;
        }
        if let Err(e) = self.catch_up_locked(rt, &mut st).await {
            tracing::warn!(session = %self.id, error = %e, "could not read events appended by another node");
        }
    }

    /// Records `session.ack` (§6.5): keeps the running maximum, lets the event log free what
    /// is acknowledged, and re-arms back-pressure. Under the emit lock, so a release never
    /// races with a replay.
    pub(crate) async fn record_ack(&self, rt: &Inner, seq: EventSeq) {
        let mut st = self.emit.lock().await;
        let newest = st.last_seq;
        match st.ack.record(seq, newest, rt.config.back_pressure_threshold) {
            AckOutcome::Advanced(through) => {
                if let Err(e) = rt.events.release_acked(&self.id, through).await {
                    tracing::warn!(session = %self.id, error = %e, "could not release acknowledged events");
                }
            }
            AckOutcome::Stale => {}
            AckOutcome::Beyond => {
                tracing::debug!(session = %self.id, %seq, %newest, "ignoring an ack beyond the newest event");
            }
        }
    }

    /// The newest `event_seq` issued in this session.
    pub(crate) async fn last_seq(&self) -> EventSeq {
        self.emit.lock().await.last_seq
    }

    /// Ends every subscription of this session (session expiry or termination).
    pub(crate) fn end_subscriptions(&self) {
        let subs: Vec<_> = self.subscriptions.lock().drain().map(|(_, s)| s).collect();
        for sub in subs {
            sub.stop.cancel();
        }
    }

    /// Sends a message without a sequence number (not persisted) to the attached link.
    pub(crate) async fn send_direct(&self, rt: &Inner, envelope: Envelope) {
        let link = self.emit.lock().await.link.clone();
        if let Some(link) = link {
            let _ = link.push(Arc::from(envelope.to_json()), rt.config.send_timeout).await;
        }
    }

    /// Attaches `link` to a fresh session (nothing to replay).
    pub(crate) async fn attach_fresh(&self, link: Link) {
        self.emit.lock().await.link = Some(link);
        self.detached_at.store(0, Ordering::SeqCst);
    }

    /// Resumes onto `link`: checks that the log still covers everything after `cursor`,
    /// sends `welcome`, replays every event after `cursor`, then attaches `link` (replacing and
    /// killing any previous one). All under the emit lock, so live events queue behind the
    /// replay and nothing is lost or sent twice at the seam.
    pub(crate) async fn resume_onto(
        &self,
        rt: &Inner,
        link: Link,
        cursor: EventSeq,
        welcome: Envelope,
    ) -> Result<(), Error> {
        let mut st = self.emit.lock().await;
        self.catch_up_locked(rt, &mut st).await?;
        self.check_coverage_locked(rt, &st, cursor).await?;
        let timeout = rt.config.send_timeout;
        if !link.push(Arc::from(welcome.to_json()), timeout).await {
            return Err(Error::Transport(crate::transport::TransportError::Closed));
        }
        let mut after = cursor;
        while after < st.last_seq {
            let batch = rt.events.read_since(&self.id, after, rt.config.replay_batch).await?;
            let Some(last) = batch.last() else { break };
            after = last.seq;
            for event in batch {
                if !link.push(event.frame, timeout).await {
                    return Err(Error::Transport(crate::transport::TransportError::Closed));
                }
            }
        }
        // On a shared log the last batch may hold events another node appended after the
        // catch-up: they were sent, so the sequence moves past them.
        st.last_seq = st.last_seq.max(after);
        self.newest.store(st.last_seq.get(), Ordering::SeqCst);
        if let Some(old) = st.link.replace(link) {
            old.kill.cancel();
        }
        self.detached_at.store(0, Ordering::SeqCst);
        Ok(())
    }

    /// Whether the log still holds every event after `cursor` (checked before the token is
    /// rotated, so a refused resume leaves the client's token valid).
    pub(crate) async fn check_coverage(&self, rt: &Inner, cursor: EventSeq) -> Result<(), Error> {
        let mut st = self.emit.lock().await;
        self.catch_up_locked(rt, &mut st).await?;
        self.check_coverage_locked(rt, &st, cursor).await
    }

    async fn check_coverage_locked(&self, rt: &Inner, st: &EmitState, cursor: EventSeq) -> Result<(), Error> {
        if cursor > st.last_seq {
            // §6.3 step 3: a cursor the session never issued is a malformed request.
            return Err(Error::Refused(
                ErrorPayload::new(
                    ErrorCode::INVALID_REQUEST,
                    format!("last_event_seq {cursor} is beyond the session's newest event {}", st.last_seq),
                )
                .with_details(serde_json::json!({ "newest_event_seq": st.last_seq.get() })),
            ));
        }
        if cursor < st.last_seq {
            let bounds = rt.events.bounds(&self.id).await?;
            let covered = bounds.is_some_and(|b| b.oldest.get() <= cursor.get() + 1);
            if !covered {
                let oldest = bounds.map(|b| b.oldest.get());
                return Err(Error::Refused(
                    ErrorPayload::new(
                        ErrorCode::RESUME_WINDOW_EXPIRED,
                        format!("events after {cursor} are no longer buffered"),
                    )
                    .with_details(serde_json::json!({ "oldest_event_seq": oldest, "last_event_seq": cursor.get() })),
                ));
            }
        }
        Ok(())
    }

    /// Sends `bye` (a `session.bye`) on the attached link, closes it after everything queued,
    /// and detaches it; the session stays resumable. Returns whether a link was attached.
    pub(crate) async fn close_link(&self, rt: &Inner, bye: Envelope) -> bool {
        let mut st = self.emit.lock().await;
        let Some(link) = st.link.take() else { return false };
        let _ = link.push(Arc::from(bye.to_json()), rt.config.send_timeout).await;
        let _ = link.tx.try_send(Outbound::Close);
        self.mark_detached(rt);
        true
    }

    /// Detaches the link of connection `conn`, if it is the attached one. Returns whether it was.
    pub(crate) async fn detach(&self, rt: &Inner, conn: u64) -> bool {
        let mut st = self.emit.lock().await;
        if st.link.as_ref().is_some_and(|l| l.conn == conn) {
            st.link = None;
            self.mark_detached(rt);
            true
        } else {
            false
        }
    }
}
