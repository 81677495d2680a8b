//! The driver: the one background task that owns the session's connection.
//!
//! It reads frames, checks `event_seq` continuity, routes job envelopes to their handles,
//! correlates answers with requests, answers pings, sends acks and heartbeats when those are
//! negotiated, and resumes the session (§6.3) when the connection drops or a gap shows that
//! the stream is broken. Callers reach it through [`Command`]s.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use arcp_core::message::{
    Auth, ClientInfo, ErrorStatus, JobCancel, JobError, JobResult, JobSubmit, JobSubscribe, JobSubscribed,
    JobUnsubscribe, Message, ResultStatus, ResumeRequest, SessionAck, SessionBye, SessionHello, SessionListJobs,
    SessionPing, SessionPong, SessionWelcome,
};
use arcp_core::negotiate::{Capabilities, Feature};
use arcp_core::{
    Clock, DecodeFailure, DecodeOptions, Envelope, ErrorCode, ErrorPayload, EventSeq, JobId, MessageId,
    ProtocolVersion, ResumeToken, SessionId, SystemClock, Timestamp, TraceId,
};
use arcp_server::transport::TransportError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use crate::client::{SessionInfo, Shared};
use crate::connector::Connector;
use crate::error::ClientError;
use crate::job::{JobOutcome, JobParts, JobSink, ReceivedEvent};
use crate::link::{Inbound, Link};
use crate::options::ClientOptions;

/// How often acks and heartbeats are considered (when negotiated).
const TICK: Duration = Duration::from_millis(250);

/// Request ids remembered to recognise refusals (`details.request_id`).
const REMEMBERED_REQUESTS: usize = 4096;

/// Resumes in a row that may hit a gap at the same cursor before the runtime is declared
/// broken.
const MAX_GAP_STRIKES: u32 = 3;

/// A request from a [`Client`](crate::Client) or [`JobHandle`](crate::JobHandle).
#[derive(Debug)]
pub(crate) enum Command {
    /// Send a `job.submit`; answer with the job's parts once `job.accepted` arrives.
    Submit { submit: JobSubmit, trace_id: TraceId, reply: oneshot::Sender<Result<JobParts, ClientError>> },
    /// Send a `job.cancel`; answer on `job.cancelled`, the job's end, or a refusal.
    Cancel { job_id: JobId, reason: Option<String>, reply: oneshot::Sender<Result<(), ClientError>> },
    /// Send a `session.ping`; answer with the round trip on the matching pong.
    Ping { reply: oneshot::Sender<Result<Duration, ClientError>> },
    /// Say `session.bye` and stop.
    Close { reason: Option<String>, reply: oneshot::Sender<()> },
    /// Send a `session.list_jobs`; answer with the matching `session.jobs` (§6.6).
    ListJobs { request: SessionListJobs, reply: oneshot::Sender<Result<crate::JobsPage, ClientError>> },
    /// Send a `job.subscribe`; answer on `job.subscribed` or a refusal (§7.6).
    Subscribe { request: JobSubscribe, reply: oneshot::Sender<Result<SubscriptionParts, ClientError>> },
    /// Send a `job.unsubscribe` and end the local stream.
    Unsubscribe { job_id: JobId },
}

/// What the driver hands back for an established subscription.
#[derive(Debug)]
pub(crate) struct SubscriptionParts {
    pub(crate) subscribed: JobSubscribed,
    pub(crate) events: crate::job::JobEvents,
    pub(crate) result: tokio::sync::watch::Receiver<crate::job::ResultCell>,
}

struct PendingList {
    id: MessageId,
    reply: oneshot::Sender<Result<crate::JobsPage, ClientError>>,
}

struct PendingSubscribe {
    id: MessageId,
    job_id: JobId,
    parts: Option<(crate::job::JobEvents, tokio::sync::watch::Receiver<crate::job::ResultCell>)>,
    reply: oneshot::Sender<Result<SubscriptionParts, ClientError>>,
}

impl Command {
    fn fail(self, e: ClientError) {
        match self {
            Command::Submit { reply, .. } => drop(reply.send(Err(e))),
            Command::Cancel { reply, .. } => drop(reply.send(Err(e))),
            Command::Ping { reply } => drop(reply.send(Err(e))),
            Command::Close { reply, .. } => drop(reply.send(())),
            Command::ListJobs { reply, .. } => drop(reply.send(Err(e))),
            Command::Subscribe { reply, .. } => drop(reply.send(Err(e))),
            Command::Unsubscribe { .. } => {}
        }
    }
}

/// A connection with a session on it, fresh from the handshake.
pub(crate) struct Established {
    link: Link,
    pub(crate) session_id: SessionId,
    pub(crate) welcome: SessionWelcome,
}

/// Opens a transport and performs the handshake: `session.hello` (with `resume` when
/// resuming) → `session.welcome`. Both steps are bounded by `connect_timeout`.
pub(crate) async fn establish<C: Connector>(
    connector: &C,
    options: &ClientOptions,
    resume: Option<ResumeRequest>,
) -> Result<Established, ClientError> {
    let transport = tokio::time::timeout(options.connect_timeout, connector.connect())
        .await
        .map_err(|_| ClientError::Timeout { what: "opening a transport" })??;
    let deadline = Instant::now() + options.connect_timeout;
    let mut link = Link::start(transport);
    let hello = SessionHello {
        client: ClientInfo {
            name: options.client_name.clone(),
            version: options.client_version.clone(),
            fingerprint: None,
            principal: None,
        },
        auth: Auth { scheme: "bearer".to_owned(), token: options.token.clone() },
        capabilities: Some(Capabilities {
            encodings: Some(vec!["json".to_owned()]),
            features: Some(options.features.clone()),
            agents: None,
            other: Default::default(),
        }),
        resume,
    };
    let hello = Envelope::new(ProtocolVersion::V1_1, crate::ids::message_id()?, Message::SessionHello(hello));
    if !link.send(hello.to_json()) {
        return Err(ClientError::Transport(TransportError::Closed));
    }
    let decode = DecodeOptions { max_frame_bytes: options.max_frame_bytes };
    loop {
        let inbound = tokio::time::timeout_at(deadline, link.recv())
            .await
            .map_err(|_| ClientError::Timeout { what: "the handshake (session.hello → session.welcome)" })?;
        match inbound {
            Inbound::Frame(text) => {
                let env = arcp_core::decode::decode_str(&text, &decode).map_err(|f| ClientError::Protocol {
                    reason: format!("undecodable frame during the handshake: {}", f.error),
                })?;
                match env.message {
                    Message::SessionWelcome(welcome) => {
                        let session_id = env.session_id.ok_or_else(|| ClientError::Protocol {
                            reason: "session.welcome without a session_id".to_owned(),
                        })?;
                        return Ok(Established { link, session_id, welcome });
                    }
                    Message::SessionError(payload) => return Err(ClientError::Session { payload }),
                    other => tracing::debug!(r#type = other.type_name(), "ignoring a message before session.welcome"),
                }
            }
            Inbound::Unreadable(e) => tracing::warn!(error = %e, "unreadable frame during the handshake"),
            Inbound::Closed(e) => return Err(ClientError::Transport(e.unwrap_or(TransportError::Closed))),
        }
    }
}

/// Why the current connection is no longer usable.
enum Lost {
    /// The connection broke (drop, gap, heartbeat, a runtime `session.error`): resume.
    Connection(ClientError),
    /// The session is over.
    Fatal(ClientError),
}

/// What `event_seq` continuity says about a sequence-bearing envelope.
enum SeqCheck {
    /// `previous + 1`: process it.
    Next,
    /// At or below the cursor: already processed; ignore it (§8.3).
    Duplicate,
    /// Above `previous + 1`: events are missing; the session is broken.
    Gap,
}

/// A job-scoped, sequence-bearing message, decoded.
enum JobMsg {
    Event(ReceivedEvent),
    Result(JobResult),
    Error(JobError),
}

struct JobEntry {
    sink: JobSink,
    cancel_acked: bool,
}

struct PendingSubmit {
    /// Envelope ids of every copy sent (the original and resends after resumes).
    ids: Vec<MessageId>,
    submit: JobSubmit,
    trace_id: TraceId,
    /// Resent after a resume: its job may have been accepted on the lost connection.
    resent: bool,
    reply: oneshot::Sender<Result<JobParts, ClientError>>,
}

struct PendingCancel {
    ids: Vec<MessageId>,
    job_id: JobId,
    reason: Option<String>,
    reply: oneshot::Sender<Result<(), ClientError>>,
}

struct PendingPing {
    nonce: String,
    started: Instant,
    reply: oneshot::Sender<Result<Duration, ClientError>>,
}

/// Envelopes of jobs whose `job.accepted` has not arrived (possible only after a resume:
/// `job.accepted` is not replayed, the job's events are). Held until a resent submit's
/// answer names the job.
#[derive(Default)]
struct Orphans {
    jobs: HashMap<JobId, OrphanJob>,
    events: usize,
}

#[derive(Default)]
struct OrphanJob {
    msgs: Vec<JobMsg>,
    overflowed: bool,
}

/// The ids of recent requests, to tell a refusal (`details.request_id`) from a job's end.
#[derive(Default)]
struct RecentIds {
    order: VecDeque<MessageId>,
    set: HashSet<MessageId>,
}

impl RecentIds {
    fn insert(&mut self, id: MessageId) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
        }
        while self.order.len() > REMEMBERED_REQUESTS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    fn contains(&self, id: &str) -> bool {
        MessageId::parse(id).is_ok_and(|id| self.set.contains(&id))
    }
}

/// The background task's state.
pub(crate) struct Driver<C> {
    connector: C,
    options: Arc<ClientOptions>,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    deferred: VecDeque<Command>,
    closing: Vec<oneshot::Sender<()>>,
    link: Option<Link>,
    session_id: SessionId,
    token: ResumeToken,
    last_seq: EventSeq,
    acked: EventSeq,
    ack: bool,
    heartbeat: Option<Duration>,
    last_in: Instant,
    last_out: Instant,
    jobs: HashMap<JobId, JobEntry>,
    submits: VecDeque<PendingSubmit>,
    cancels: Vec<PendingCancel>,
    pings: Vec<PendingPing>,
    lists: Vec<PendingList>,
    subscribes: Vec<PendingSubscribe>,
    /// Established subscriptions: the `job.subscribe` envelope id → job (a later request
    /// error naming that id ends the subscription, e.g. a subscriber that fell behind).
    subscriptions: HashMap<String, JobId>,
    orphans: Orphans,
    requests: RecentIds,
    gap_strikes: (EventSeq, u32),
}

impl<C: Connector> Driver<C> {
    pub(crate) fn new(
        connector: C,
        options: Arc<ClientOptions>,
        shared: Arc<Shared>,
        commands: mpsc::UnboundedReceiver<Command>,
        established: Established,
    ) -> Self {
        let now = Instant::now();
        let mut driver = Driver {
            connector,
            options,
            shared,
            commands,
            deferred: VecDeque::new(),
            closing: Vec::new(),
            link: None,
            session_id: established.session_id.clone(),
            token: established.welcome.resume_token.clone(),
            last_seq: EventSeq::ZERO,
            acked: EventSeq::ZERO,
            ack: false,
            heartbeat: None,
            last_in: now,
            last_out: now,
            jobs: HashMap::new(),
            submits: VecDeque::new(),
            cancels: Vec::new(),
            pings: Vec::new(),
            lists: Vec::new(),
            subscribes: Vec::new(),
            subscriptions: HashMap::new(),
            orphans: Orphans::default(),
            requests: RecentIds::default(),
            gap_strikes: (EventSeq::ZERO, 0),
        };
        driver.adopt(established);
        driver
    }

    /// Runs until the session ends, then fails whatever is still pending.
    pub(crate) async fn run(mut self) {
        let end = self.serve().await;
        tracing::debug!(session = %self.session_id, reason = %end, "client session ended");
        self.shutdown(end);
    }

    async fn serve(&mut self) -> ClientError {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            while let Some(command) = self.deferred.pop_front() {
                if let Some(end) = self.command(command) {
                    return end;
                }
            }
            let timers = self.ack || self.heartbeat.is_some();
            let Some(link) = self.link.as_mut() else {
                if let Err(end) = self.recover(ClientError::Transport(TransportError::Closed)).await {
                    return end;
                }
                continue;
            };
            let lost = tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => match self.command(command) {
                        Some(end) => return end,
                        None => None,
                    },
                    None => {
                        // Every client and job handle is gone: leave politely.
                        self.bye(None);
                        return ClientError::Closed;
                    }
                },
                inbound = link.recv() => match inbound {
                    Inbound::Frame(text) => self.frame(&text),
                    Inbound::Unreadable(e) => {
                        tracing::warn!(error = %e, "skipping an unreadable frame");
                        None
                    }
                    Inbound::Closed(e) => {
                        Some(Lost::Connection(ClientError::Transport(e.unwrap_or(TransportError::Closed))))
                    }
                },
                _ = tick.tick(), if timers => self.tick(),
            };
            match lost {
                None => {}
                Some(Lost::Fatal(end)) => return end,
                Some(Lost::Connection(reason)) => {
                    if let Err(end) = self.recover(reason).await {
                        return end;
                    }
                }
            }
        }
    }

    // ----- commands -----

    /// Handles one command; `Some` ends the session.
    fn command(&mut self, command: Command) -> Option<ClientError> {
        match command {
            Command::Submit { submit, trace_id, reply } => match self.send_submit(&submit, &trace_id) {
                Ok(id) => {
                    self.submits.push_back(PendingSubmit { ids: vec![id], submit, trace_id, resent: false, reply })
                }
                Err(e) => drop(reply.send(Err(e))),
            },
            Command::Cancel { job_id, reason, reply } => match self.jobs.get(&job_id) {
                // Already ended (or never ours): nothing to cancel.
                None => drop(reply.send(Ok(()))),
                Some(entry) if entry.cancel_acked => drop(reply.send(Ok(()))),
                Some(_) => match self.send_cancel(&job_id, &reason) {
                    Ok(id) => self.cancels.push(PendingCancel { ids: vec![id], job_id, reason, reply }),
                    Err(e) => drop(reply.send(Err(e))),
                },
            },
            Command::Ping { reply } => match crate::ids::message_id() {
                Ok(nonce) => {
                    let nonce = nonce.as_str().to_owned();
                    match self.send_ping(&nonce) {
                        Ok(()) => self.pings.push(PendingPing { nonce, started: Instant::now(), reply }),
                        Err(e) => drop(reply.send(Err(e))),
                    }
                }
                Err(e) => drop(reply.send(Err(e))),
            },
            Command::Close { reason, reply } => {
                self.bye(reason);
                self.closing.push(reply);
                return Some(ClientError::Closed);
            }
            Command::ListJobs { request, reply } => match self.envelope(request) {
                Ok(envelope) => {
                    let id = envelope.id.clone();
                    self.send(&envelope);
                    self.lists.push(PendingList { id, reply });
                }
                Err(e) => drop(reply.send(Err(e))),
            },
            Command::Subscribe { request, reply } => {
                if self.jobs.contains_key(&request.job_id) {
                    let payload = ErrorPayload::new(ErrorCode::INVALID_REQUEST, "this client already streams that job");
                    let _ = reply.send(Err(ClientError::Refused { payload }));
                    return None;
                }
                let job_id = request.job_id.clone();
                match self.envelope(request) {
                    Ok(envelope) => {
                        let id = envelope.id.clone();
                        self.requests.insert(id.clone());
                        self.send(&envelope);
                        // The sink exists before the answer: a history replay precedes
                        // `job.subscribed`.
                        let (sink, events, result) = JobSink::new(self.options.event_buffer);
                        self.jobs.insert(job_id.clone(), JobEntry { sink, cancel_acked: false });
                        self.subscribes.push(PendingSubscribe { id, job_id, parts: Some((events, result)), reply });
                    }
                    Err(e) => drop(reply.send(Err(e))),
                }
            }
            Command::Unsubscribe { job_id } => {
                self.subscriptions.retain(|_, j| *j != job_id);
                if let Some(entry) = self.jobs.remove(&job_id) {
                    entry.sink.finish(Err(ClientError::Closed), None);
                }
                if let Ok(envelope) = self.envelope(JobUnsubscribe { job_id }) {
                    self.send(&envelope);
                }
            }
        }
        None
    }

    fn subscribed(&mut self, subscribed: JobSubscribed) {
        let Some(i) = self.subscribes.iter().position(|p| p.job_id == subscribed.job_id) else {
            tracing::debug!(job = %subscribed.job_id, "job.subscribed matches no pending subscribe");
            return;
        };
        let mut pending = self.subscribes.swap_remove(i);
        let Some((events, result)) = pending.parts.take() else { return };
        let ended = subscribed.current_status.is_terminal();
        if ended
            && !subscribed.replayed
            && let Some(entry) = self.jobs.remove(&subscribed.job_id)
        {
            // Nothing more will come: the job ended before the subscription.
            let payload = ErrorPayload::new(
                ErrorCode::INVALID_REQUEST,
                "the job had already ended (subscribe with history for its outcome)",
            );
            entry.sink.finish(Err(ClientError::Refused { payload }), None);
        }
        if !ended {
            self.subscriptions.insert(pending.id.to_string(), subscribed.job_id.clone());
        }
        if pending.reply.send(Ok(SubscriptionParts { subscribed, events, result })).is_err() {
            tracing::debug!("the subscriber went away");
        }
    }

    fn envelope(&self, message: impl Into<Message>) -> Result<Envelope, ClientError> {
        Ok(Envelope::new(ProtocolVersion::V1_1, crate::ids::message_id()?, message)
            .with_session(self.session_id.clone()))
    }

    /// Queues an envelope on the current connection. A failure surfaces as a lost
    /// connection on the read side, and whatever is pending is resent after the resume.
    fn send(&mut self, envelope: &Envelope) {
        self.send_json(envelope.to_json());
    }

    fn send_json(&mut self, json: String) {
        if let Some(link) = &self.link {
            self.last_out = Instant::now();
            if !link.send(json) {
                tracing::debug!("connection gone; pending requests are resent after the resume");
            }
        }
    }

    fn send_submit(&mut self, submit: &JobSubmit, trace_id: &TraceId) -> Result<MessageId, ClientError> {
        let envelope = self.envelope(submit.clone())?.with_trace(trace_id.clone());
        let json = envelope.to_json();
        if json.len() > self.options.max_frame_bytes {
            let (size, max) = (json.len(), self.options.max_frame_bytes);
            return Err(ClientError::Transport(TransportError::FrameTooLarge { size, max }));
        }
        self.requests.insert(envelope.id.clone());
        self.send_json(json);
        Ok(envelope.id)
    }

    fn send_cancel(&mut self, job_id: &JobId, reason: &Option<String>) -> Result<MessageId, ClientError> {
        let envelope = self.envelope(JobCancel { reason: reason.clone() })?.with_job(job_id.clone());
        self.requests.insert(envelope.id.clone());
        self.send(&envelope);
        Ok(envelope.id)
    }

    fn send_ping(&mut self, nonce: &str) -> Result<(), ClientError> {
        let ping = SessionPing { nonce: nonce.to_owned(), sent_at: now() };
        let envelope = self.envelope(ping)?;
        self.send(&envelope);
        Ok(())
    }

    fn bye(&mut self, reason: Option<String>) {
        if let Ok(envelope) = self.envelope(SessionBye { reason }) {
            self.send(&envelope);
        }
    }

    // ----- inbound -----

    fn frame(&mut self, text: &str) -> Option<Lost> {
        self.last_in = Instant::now();
        let options = DecodeOptions { max_frame_bytes: self.options.max_frame_bytes };
        let envelope = match arcp_core::decode::decode_str(text, &options) {
            Ok(envelope) => envelope,
            Err(failure) => return self.undecodable(text, &failure),
        };
        match envelope.message {
            Message::JobEvent(_) | Message::JobResult(_) | Message::JobError(_) => self.sequenced(envelope),
            Message::JobAccepted(accepted) => {
                let trace_id = accepted.trace_id.clone().or(envelope.trace_id);
                self.accepted(trace_id, accepted);
                None
            }
            Message::SessionJobs(page) => {
                if let Some(i) = self.lists.iter().position(|p| p.id == page.request_id) {
                    let _ = self.lists.swap_remove(i).reply.send(Ok(crate::JobsPage::strict(page)));
                }
                None
            }
            Message::JobSubscribed(subscribed) => {
                self.subscribed(subscribed);
                None
            }
            Message::JobCancelled(_) => {
                if let Some(job_id) = &envelope.job_id {
                    if let Some(entry) = self.jobs.get_mut(job_id) {
                        entry.cancel_acked = true;
                    }
                    self.settle_cancels(job_id);
                }
                None
            }
            Message::SessionPing(ping) => {
                let pong = SessionPong { ping_nonce: ping.nonce, received_at: now() };
                if let Ok(envelope) = self.envelope(pong) {
                    self.send(&envelope);
                }
                None
            }
            Message::SessionPong(pong) => {
                if let Some(i) = self.pings.iter().position(|p| p.nonce == pong.ping_nonce) {
                    let ping = self.pings.swap_remove(i);
                    let _ = ping.reply.send(Ok(ping.started.elapsed()));
                }
                None
            }
            Message::SessionError(payload) => self.session_error(payload),
            Message::SessionBye(bye) => {
                let reason = bye.reason.unwrap_or_default();
                Some(Lost::Connection(ClientError::Disconnected { reason: format!("the runtime said bye ({reason})") }))
            }
            other => {
                tracing::debug!(r#type = other.type_name(), "ignoring a message the client does not use");
                None
            }
        }
    }

    fn check_seq(&self, seq: EventSeq) -> SeqCheck {
        if seq <= self.last_seq {
            SeqCheck::Duplicate
        } else if Some(seq) == self.last_seq.next() {
            SeqCheck::Next
        } else {
            SeqCheck::Gap
        }
    }

    fn advance(&mut self, seq: EventSeq) {
        self.last_seq = seq;
        self.shared.set_last_seq(seq);
    }

    /// A gap: events between the cursor and `got` never arrived. Resume from the cursor so
    /// the runtime replays them (and `got`, which is not processed now).
    fn gap(&mut self, got: EventSeq) -> Lost {
        if self.gap_strikes.0 == self.last_seq {
            self.gap_strikes.1 += 1;
        } else {
            self.gap_strikes = (self.last_seq, 1);
        }
        let reason = format!("event_seq gap: expected {}, got {got}", self.last_seq.get().saturating_add(1));
        if self.gap_strikes.1 > MAX_GAP_STRIKES {
            return Lost::Fatal(ClientError::Protocol {
                reason: format!("{reason}, again after {MAX_GAP_STRIKES} resumes"),
            });
        }
        tracing::warn!(session = %self.session_id, %reason, "the session is broken; resuming");
        Lost::Connection(ClientError::Protocol { reason })
    }

    fn sequenced(&mut self, envelope: Envelope) -> Option<Lost> {
        let (Some(seq), Some(job_id)) = (envelope.event_seq, envelope.job_id) else {
            // The decoder requires both on these types.
            return None;
        };
        match self.check_seq(seq) {
            SeqCheck::Next => {}
            SeqCheck::Duplicate => {
                tracing::warn!(%seq, last = %self.last_seq, "ignoring an envelope at or below the cursor");
                return None;
            }
            SeqCheck::Gap => return Some(self.gap(seq)),
        }
        self.advance(seq);
        let msg = match envelope.message {
            Message::JobEvent(event) => JobMsg::Event(ReceivedEvent { event_seq: seq, event }),
            Message::JobResult(result) => JobMsg::Result(result),
            Message::JobError(error) => JobMsg::Error(error),
            _ => return None,
        };
        if let JobMsg::Error(error) = &msg
            && self.refusal(error, &job_id, envelope.trace_id.as_ref())
        {
            return None;
        }
        if self.jobs.contains_key(&job_id) {
            self.deliver(&job_id, msg);
        } else {
            self.orphan(job_id, msg);
        }
        None
    }

    /// Whether a `job.error` answers a request (a refusal) rather than ending a job; if it
    /// does, the request gets it.
    fn refusal(&mut self, error: &JobError, job_id: &JobId, trace_id: Option<&TraceId>) -> bool {
        if let Some(request_id) = request_id(error.details.as_ref())
            && (self.requests.contains(request_id) || self.subscriptions.contains_key(request_id))
        {
            let refused = ClientError::Refused { payload: error.error() };
            self.refuse_request(request_id, refused);
            return true;
        }
        // A runtime that does not echo `request_id`: a `job.error` under an unknown job id
        // carrying a pending submit's trace id is that submit's refusal (events of an
        // accepted job never precede its `job.accepted` on one connection).
        if !self.jobs.contains_key(job_id)
            && let Some(trace_id) = trace_id
            && let Some(i) = self.submits.iter().position(|p| !p.resent && &p.trace_id == trace_id)
            && let Some(pending) = self.submits.remove(i)
        {
            let _ = pending.reply.send(Err(ClientError::Refused { payload: error.error() }));
            self.settle_orphans();
            return true;
        }
        false
    }

    /// Fails the submit or cancel sent with envelope id `request_id`, if it is still pending.
    fn refuse_request(&mut self, request_id: &str, e: ClientError) {
        if let Some(i) = self.submits.iter().position(|p| p.ids.iter().any(|id| id.as_str() == request_id))
            && let Some(pending) = self.submits.remove(i)
        {
            let _ = pending.reply.send(Err(e));
            self.settle_orphans();
        } else if let Some(i) = self.cancels.iter().position(|c| c.ids.iter().any(|id| id.as_str() == request_id)) {
            let _ = self.cancels.swap_remove(i).reply.send(Err(e));
        } else if let Some(i) = self.subscribes.iter().position(|s| s.id.as_str() == request_id) {
            let pending = self.subscribes.swap_remove(i);
            self.jobs.remove(&pending.job_id);
            let _ = pending.reply.send(Err(e));
        } else if let Some(job_id) = self.subscriptions.remove(request_id)
            && let Some(entry) = self.jobs.remove(&job_id)
        {
            entry.sink.finish(Err(e.clone()), Some(e));
        }
    }

    fn deliver(&mut self, job_id: &JobId, msg: JobMsg) {
        let outcome = match msg {
            JobMsg::Event(event) => {
                if let Some(entry) = self.jobs.get_mut(job_id) {
                    entry.sink.event(event);
                }
                return;
            }
            JobMsg::Result(result) => outcome_of(result),
            JobMsg::Error(error) => Err(ClientError::Job { final_status: error.final_status, payload: error.error() }),
        };
        if let Some(entry) = self.jobs.remove(job_id) {
            entry.sink.finish(outcome, None);
        }
        self.settle_cancels(job_id);
    }

    /// Keeps an envelope of a job not (yet) known, if a resent submit may still claim it.
    fn orphan(&mut self, job_id: JobId, msg: JobMsg) {
        if !self.submits.iter().any(|p| p.resent) {
            tracing::debug!(job = %job_id, "ignoring an envelope of a job this client does not follow");
            return;
        }
        let is_event = matches!(msg, JobMsg::Event(_));
        let full = self.orphans.events >= self.options.event_buffer.max(1);
        let job = self.orphans.jobs.entry(job_id).or_default();
        if is_event && full {
            job.overflowed = true;
            return;
        }
        if is_event {
            self.orphans.events += 1;
        }
        job.msgs.push(msg);
    }

    /// Drops held orphans once no resent submit is left to claim them.
    fn settle_orphans(&mut self) {
        if !self.submits.iter().any(|p| p.resent) {
            self.orphans = Orphans::default();
        }
    }

    fn accepted(&mut self, trace_id: Option<TraceId>, accepted: arcp_core::message::JobAccepted) {
        if accepted.parent_job_id.is_some() {
            tracing::debug!(job = %accepted.job_id, "ignoring a delegated child job");
            return;
        }
        if self.jobs.contains_key(&accepted.job_id) {
            tracing::debug!(job = %accepted.job_id, "ignoring a repeated job.accepted");
            return;
        }
        // Answers come in submit order (§7.1); the trace id pins the submit when it is ours
        // (an idempotent hit echoes the original submit's trace id, hence the fallback).
        let index = trace_id
            .as_ref()
            .and_then(|t| self.submits.iter().position(|p| &p.trace_id == t))
            .or_else(|| self.submits.iter().position(|p| p.submit.idempotency_key.is_some()))
            .or_else(|| (!self.submits.is_empty()).then_some(0));
        let Some(pending) = index.and_then(|i| self.submits.remove(i)) else {
            tracing::debug!(job = %accepted.job_id, "job.accepted matches no pending submit");
            return;
        };
        let job_id = accepted.job_id.clone();
        let (sink, events, result) = JobSink::new(self.options.event_buffer);
        let orphaned = self.orphans.jobs.remove(&job_id);
        if let Some(orphaned) = &orphaned {
            let held = orphaned.msgs.iter().filter(|m| matches!(m, JobMsg::Event(_))).count();
            self.orphans.events = self.orphans.events.saturating_sub(held);
        }
        if pending.reply.send(Ok(JobParts { accepted, events, result })).is_ok() {
            self.jobs.insert(job_id.clone(), JobEntry { sink, cancel_acked: false });
            if let Some(orphaned) = orphaned {
                for msg in orphaned.msgs {
                    self.deliver(&job_id, msg);
                }
                if orphaned.overflowed
                    && let Some(entry) = self.jobs.get_mut(&job_id)
                {
                    entry.sink.overflow();
                }
            }
        }
        self.settle_orphans();
    }

    fn settle_cancels(&mut self, job_id: &JobId) {
        let (done, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.cancels).into_iter().partition(|c| &c.job_id == job_id);
        self.cancels = rest;
        for cancel in done {
            let _ = cancel.reply.send(Ok(()));
        }
    }

    fn session_error(&mut self, payload: ErrorPayload) -> Option<Lost> {
        tracing::warn!(session = %self.session_id, code = %payload.code, message = %payload.message, "session.error");
        // A request refused with a session.error (spec examples, the TS SDK).
        if let Some(request_id) = request_id(payload.details.as_ref())
            && self.requests.contains(request_id)
        {
            self.refuse_request(request_id, ClientError::Refused { payload: payload.clone() });
            return None;
        }
        if (payload.code == ErrorCode::AGENT_VERSION_NOT_AVAILABLE || payload.code == ErrorCode::DUPLICATE_KEY)
            && let Some(i) = self.submits.iter().position(|p| !p.resent)
            && let Some(pending) = self.submits.remove(i)
        {
            let _ = pending.reply.send(Err(ClientError::Refused { payload }));
            return None;
        }
        if payload.code == ErrorCode::RESUME_WINDOW_EXPIRED || payload.code == ErrorCode::UNAUTHENTICATED {
            return Some(Lost::Fatal(ClientError::Session { payload }));
        }
        // Anything else ends this connection (decision 9) but not the session: resume.
        Some(Lost::Connection(ClientError::Session { payload }))
    }

    /// A frame the decoder refused. If it is sequence-bearing, its `event_seq` still counts
    /// (skipping it silently would look like a gap forever); a job's undecodable terminal
    /// ends that job with [`ClientError::Protocol`].
    fn undecodable(&mut self, text: &str, failure: &DecodeFailure) -> Option<Lost> {
        let value: Option<serde_json::Value> =
            (text.len() <= self.options.max_frame_bytes).then(|| serde_json::from_str(text).ok()).flatten();
        let ty = value.as_ref().and_then(|v| v.get("type")).and_then(|t| t.as_str()).unwrap_or_default();
        let seq = value.as_ref().and_then(|v| v.get("event_seq")).and_then(|s| s.as_u64()).and_then(EventSeq::new);
        let sequenced = matches!(ty, "job.event" | "job.result" | "job.error");
        let options = DecodeOptions { max_frame_bytes: self.options.max_frame_bytes };
        let (true, Some(seq)) = (sequenced, seq) else {
            let mut tolerated = false;
            // An unreadable answer still answers its request: fail it rather than wait forever.
            let payload = value.as_ref().and_then(|v| v.get("payload"));
            let e = ClientError::Protocol { reason: format!("undecodable {ty}: {}", failure.error) };
            if ty == "session.jobs"
                && let Some(request_id) = payload.and_then(|p| p.get("request_id")).and_then(|r| r.as_str())
                && let Some(i) = self.lists.iter().position(|p| p.id.as_str() == request_id)
            {
                // A page whose entries lack fields some runtimes leave out is still a page
                // (crate::listing); anything else wrong with it stays a protocol error.
                let page = value.as_ref().and_then(|v| crate::JobsPage::tolerant(v, &options));
                if let Some(page) = &page {
                    tolerated = true;
                    tracing::debug!(deviations = ?page.deviations(), "tolerated a session.jobs page with missing fields");
                }
                let _ = self.lists.swap_remove(i).reply.send(page.ok_or(e));
            } else if ty == "job.subscribed"
                && let Some(job_id) = payload.and_then(|p| p.get("job_id")).and_then(|j| j.as_str())
                && let Some(i) = self.subscribes.iter().position(|p| p.job_id.as_str() == job_id)
            {
                let pending = self.subscribes.swap_remove(i);
                self.jobs.remove(&pending.job_id);
                let _ = pending.reply.send(Err(e));
            }
            if !tolerated {
                tracing::warn!(error = %failure.error, "ignoring an undecodable frame");
            }
            return None;
        };
        match self.check_seq(seq) {
            SeqCheck::Next => {}
            SeqCheck::Duplicate => return None,
            SeqCheck::Gap => return Some(self.gap(seq)),
        }
        self.advance(seq);
        tracing::warn!(%seq, r#type = ty, error = %failure.error, "skipping an undecodable envelope");
        if ty != "job.event"
            && let Some(job_id) = failure.context.job_id.clone()
            && let Some(entry) = self.jobs.remove(&job_id)
        {
            let e = ClientError::Protocol { reason: format!("undecodable {ty}: {}", failure.error) };
            entry.sink.finish(Err(e.clone()), Some(e));
            self.settle_cancels(&job_id);
        }
        None
    }

    // ----- timers -----

    fn tick(&mut self) -> Option<Lost> {
        if let Some(interval) = self.heartbeat {
            if self.last_in.elapsed() > interval * 2 {
                return Some(Lost::Connection(ClientError::HeartbeatLost));
            }
            if self.last_out.elapsed() >= interval
                && let Ok(nonce) = crate::ids::message_id()
            {
                let _ = self.send_ping(nonce.as_str());
            }
        }
        if self.ack
            && self.last_seq > self.acked
            && let Ok(envelope) = self.envelope(SessionAck { last_processed_seq: self.last_seq })
        {
            self.send(&envelope);
            self.acked = self.last_seq;
        }
        None
    }

    // ----- resume -----

    /// Takes over a freshly established connection and its welcome.
    fn adopt(&mut self, established: Established) {
        let info = SessionInfo::from_welcome(&established.welcome, &self.options.features);
        self.ack = info.features.contains(&Feature::ACK);
        // Acknowledge the current position again on the new connection: an ack still in
        // flight on the old one may have been lost, and the runtime keeps the maximum anyway.
        self.acked = EventSeq::ZERO;
        self.heartbeat = info.heartbeat;
        self.shared.set_info(info);
        self.token = established.welcome.resume_token;
        self.link = Some(established.link);
        self.last_in = Instant::now();
        self.last_out = Instant::now();
    }

    /// Reconnects and resumes (§6.3) after the connection was lost for `reason`.
    async fn recover(&mut self, reason: ClientError) -> Result<(), ClientError> {
        self.link = None;
        if !self.options.auto_resume {
            return Err(match reason {
                ClientError::HeartbeatLost => ClientError::HeartbeatLost,
                other => ClientError::Disconnected { reason: other.to_string() },
            });
        }
        tracing::info!(session = %self.session_id, %reason, cursor = %self.last_seq, "connection lost; resuming");
        let attempts = self.options.backoff.max_attempts.max(1);
        let mut last = reason.to_string();
        for attempt in 1..=attempts {
            let delay = self.options.backoff.delay_before(attempt);
            if !delay.is_zero() {
                self.wait(delay).await?;
            }
            let resume = ResumeRequest {
                session_id: self.session_id.clone(),
                resume_token: self.token.clone(),
                last_event_seq: self.last_seq,
            };
            match establish(&self.connector, &self.options, Some(resume)).await {
                Ok(established) => {
                    if established.session_id != self.session_id {
                        return Err(ClientError::Protocol {
                            reason: format!(
                                "resume of session {} answered for session {}",
                                self.session_id, established.session_id
                            ),
                        });
                    }
                    self.adopt(established);
                    self.resumed();
                    return Ok(());
                }
                Err(e @ ClientError::Session { .. }) if !e.is_retryable() => return Err(e),
                Err(e @ ClientError::Protocol { .. }) => return Err(e),
                Err(e) => {
                    tracing::debug!(attempt, error = %e, "resume attempt failed");
                    last = e.to_string();
                }
            }
        }
        Err(ClientError::ReconnectFailed { attempts, last })
    }

    /// Sleeps between attempts while still taking commands (a close ends the wait).
    async fn wait(&mut self, delay: Duration) -> Result<(), ClientError> {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return Ok(()),
                command = self.commands.recv() => match command {
                    None => return Err(ClientError::Closed),
                    Some(Command::Close { reply, .. }) => {
                        self.closing.push(reply);
                        return Err(ClientError::Closed);
                    }
                    Some(other) => self.deferred.push_back(other),
                },
            }
        }
    }

    /// After a successful resume: requests whose answers may have been lost with the old
    /// connection are sent again. Answers that are sequence-bearing (refusals) are replayed
    /// by the runtime and resolve the original; `job.accepted`, `job.cancelled` and pongs are
    /// not, so:
    /// - a submit with an idempotency key is resent with the same payload: the runtime
    ///   answers with the original `job.accepted` and never runs the agent twice (§7.2);
    ///   events of that job replayed before the answer are held as orphans until then;
    /// - a submit without a key fails with [`ClientError::Interrupted`];
    /// - a cancel is resent (the runtime ignores a repeat; the job's end settles it);
    /// - a ping is resent with the same nonce.
    fn resumed(&mut self) {
        self.shared.count_resume();
        tracing::info!(session = %self.session_id, cursor = %self.last_seq, "session resumed");
        for mut pending in std::mem::take(&mut self.submits) {
            if pending.submit.idempotency_key.is_none() {
                let _ = pending.reply.send(Err(ClientError::Interrupted));
                continue;
            }
            match self.send_submit(&pending.submit, &pending.trace_id) {
                Ok(id) => {
                    pending.ids.push(id);
                    pending.resent = true;
                    self.submits.push_back(pending);
                }
                Err(e) => drop(pending.reply.send(Err(e))),
            }
        }
        for mut cancel in std::mem::take(&mut self.cancels) {
            if !self.jobs.contains_key(&cancel.job_id) {
                let _ = cancel.reply.send(Ok(()));
                continue;
            }
            match self.send_cancel(&cancel.job_id, &cancel.reason) {
                Ok(id) => {
                    cancel.ids.push(id);
                    self.cancels.push(cancel);
                }
                Err(e) => drop(cancel.reply.send(Err(e))),
            }
        }
        let nonces: Vec<String> = self.pings.iter().map(|p| p.nonce.clone()).collect();
        for nonce in nonces {
            let _ = self.send_ping(&nonce);
        }
        // Unanswered listings and subscribes are not resent (the caller retries).
        for list in self.lists.drain(..) {
            let _ = list.reply.send(Err(ClientError::Interrupted));
        }
        for pending in std::mem::take(&mut self.subscribes) {
            self.jobs.remove(&pending.job_id);
            let _ = pending.reply.send(Err(ClientError::Interrupted));
        }
    }

    // ----- the end -----

    fn shutdown(mut self, end: ClientError) {
        self.shared.set_failure(end.clone());
        self.link = None;
        for (_, entry) in self.jobs.drain() {
            entry.sink.finish(Err(end.clone()), Some(end.clone()));
        }
        for pending in self.submits.drain(..) {
            let _ = pending.reply.send(Err(end.clone()));
        }
        for cancel in self.cancels.drain(..) {
            let _ = cancel.reply.send(Err(end.clone()));
        }
        for ping in self.pings.drain(..) {
            let _ = ping.reply.send(Err(end.clone()));
        }
        for list in self.lists.drain(..) {
            let _ = list.reply.send(Err(end.clone()));
        }
        for pending in self.subscribes.drain(..) {
            let _ = pending.reply.send(Err(end.clone()));
        }
        for command in self.deferred.drain(..) {
            command.fail(end.clone());
        }
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            command.fail(end.clone());
        }
        for reply in self.closing.drain(..) {
            let _ = reply.send(());
        }
    }
}

/// `details.request_id` of an error payload.
fn request_id(details: Option<&serde_json::Value>) -> Option<&str> {
    details?.get("request_id")?.as_str()
}

/// A `job.result` as an outcome. `final_status` other than `success` (sent by the Python
/// reference runtime for cancelled and timed-out jobs) is reported as the matching job error.
fn outcome_of(result: JobResult) -> Result<JobOutcome, ClientError> {
    let (final_status, code, default) = match result.final_status {
        ResultStatus::Success => return Ok(result),
        ResultStatus::Cancelled => (ErrorStatus::Cancelled, ErrorCode::CANCELLED, "job cancelled"),
        ResultStatus::TimedOut => (ErrorStatus::TimedOut, ErrorCode::TIMEOUT, "job timed out"),
    };
    let message = result.summary.clone().unwrap_or_else(|| default.to_owned());
    Err(ClientError::Job { final_status, payload: ErrorPayload::new(code, message) })
}

fn now() -> Timestamp {
    Timestamp::from_millis(SystemClock.now_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_bounded() {
        let mut ids = RecentIds::default();
        for n in 0..(REMEMBERED_REQUESTS + 10) {
            ids.insert(MessageId::parse(&format!("msg_{n}")).unwrap());
        }
        assert_eq!(ids.set.len(), REMEMBERED_REQUESTS);
        assert!(!ids.contains("msg_0"));
        assert!(ids.contains(&format!("msg_{}", REMEMBERED_REQUESTS + 9)));
    }

    #[test]
    fn python_style_cancelled_results_are_job_errors() {
        let r: JobResult = serde_json::from_str(r#"{"final_status":"cancelled"}"#).unwrap();
        let Err(ClientError::Job { final_status, payload }) = outcome_of(r) else { panic!() };
        assert_eq!((final_status, payload.code), (ErrorStatus::Cancelled, ErrorCode::CANCELLED));
        let ok: JobResult = serde_json::from_str(r#"{"final_status":"success","result":1}"#).unwrap();
        assert!(outcome_of(ok).is_ok());
    }

    #[test]
    fn request_id_is_read_from_details() {
        let d = serde_json::json!({"request_id": "msg_1", "x": 2});
        assert_eq!(request_id(Some(&d)), Some("msg_1"));
        assert_eq!(request_id(Some(&serde_json::json!("msg_1"))), None);
        assert_eq!(request_id(None), None);
    }
}
