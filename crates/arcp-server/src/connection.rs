//! One connection: a reader loop that decodes frames and dispatches them, and a writer task
//! that drains the connection's queue into the transport.
//!
//! Phases: *opening* (only `session.hello`/`session.resume` count; anything else is dropped)
//! → *bound* to a session. `session.error` is always followed by closing the transport
//! (decision 9). A dropped connection never cancels jobs (decision 15).

use std::ops::ControlFlow;
use std::sync::Arc;

use arcp_core::agent::AgentInventory;
use arcp_core::message::{Auth, JobCancelled, Message, SessionClosed, SessionPing, SessionPong, SessionWelcome};
use arcp_core::negotiate::{Capabilities, Feature, intersect_features, negotiate_capabilities};
use arcp_core::{
    DecodeFailure, DecodeOptions, Envelope, ErrorCode, ErrorPayload, JobId, ProtocolVersion, ResumeToken, SessionId,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::auth::Identity;
use crate::heartbeat::{Activity, Beat, Watch};
use crate::runtime::Inner;
use crate::session::{Link, Outbound, Session, SessionMeta};
use crate::store::ResumeRecord;
use crate::transport::{FrameSink, FrameSource, Transport, TransportError};

pub(crate) struct Conn {
    pub(crate) rt: Arc<Inner>,
    pub(crate) link: Link,
    pub(crate) session: Option<Arc<Session>>,
    /// The heartbeat schedule, once bound to a session that negotiated `heartbeat` (§6.4).
    watch: Option<Watch>,
    /// When this connection last sent something (the writer records it).
    activity: Arc<Activity>,
    /// Whether its submits go through the runtime's `SubmitLimiter` (`limit.rs`).
    pub(crate) limited: bool,
}

/// What the reader loop woke up for.
enum Wake {
    Frame(Option<Result<String, TransportError>>),
    Beat(Beat),
}

/// Serves one connection inside a span `arcp.connection {conn, arcp.session_id}` (the session
/// id is recorded once the connection is bound to a session). `limited`: whether its submits
/// go through the runtime's `SubmitLimiter`.
pub(crate) async fn run<T: Transport>(rt: Arc<Inner>, transport: T, limited: bool) {
    let conn_id = rt.next_conn.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let span = tracing::info_span!("arcp.connection", conn = conn_id, arcp.session_id = tracing::field::Empty);
    tracing::Instrument::instrument(serve_conn(rt, transport, conn_id, limited), span).await;
}

async fn serve_conn<T: Transport>(rt: Arc<Inner>, transport: T, conn_id: u64, limited: bool) {
    let (sink, mut source) = transport.split();
    let (tx, rx) = mpsc::channel(rt.config.outbound_queue.max(1));
    let kill = CancellationToken::new();
    let activity = Activity::new();
    let writer = tokio::spawn(write_loop(sink, rx, kill.clone(), activity.clone()));
    let mut conn = Conn {
        rt,
        link: Link { conn: conn_id, tx, kill: kill.clone() },
        session: None,
        watch: None,
        activity,
        limited,
    };
    loop {
        let beat = async {
            match &conn.watch {
                Some(watch) => watch.due().await,
                None => std::future::pending().await,
            }
        };
        let wake = tokio::select! {
            () = kill.cancelled() => break,
            next = source.recv() => Wake::Frame(next),
            beat = beat => Wake::Beat(beat),
        };
        let next = match wake {
            Wake::Frame(next) => next,
            Wake::Beat(beat) => {
                if conn.beat(beat).is_break() {
                    break;
                }
                continue;
            }
        };
        if let Some(watch) = conn.watch.as_mut() {
            watch.received();
        }
        let flow = match next {
            None => break,
            Some(Ok(text)) => conn.handle(&text).await,
            Some(Err(TransportError::Closed | TransportError::Io(_))) => break,
            Some(Err(e)) => {
                conn.fatal(ErrorPayload::new(ErrorCode::INVALID_REQUEST, e.to_string())).await;
                ControlFlow::Break(())
            }
        };
        if flow.is_break() {
            break;
        }
        conn.start_heartbeat();
    }
    if let Some(session) = conn.session.take() {
        conn.rt.observer.session_detached();
        if session.detach(&conn.rt, conn_id).await {
            refresh_resume_expiry(&conn.rt, &session).await;
        }
    }
    drop(conn);
    let _ = writer.await;
}

async fn write_loop<S: FrameSink>(
    mut sink: S,
    mut rx: mpsc::Receiver<Outbound>,
    kill: CancellationToken,
    activity: Arc<Activity>,
) {
    loop {
        let next = tokio::select! {
            () = kill.cancelled() => break,
            next = rx.recv() => next,
        };
        match next {
            Some(Outbound::Frame(frame)) => {
                if sink.send(frame.to_string()).await.is_err() {
                    kill.cancel();
                    break;
                }
                activity.sent();
            }
            Some(Outbound::Close) | None => break,
        }
    }
    sink.close().await;
}

/// Keeps the resume record alive for a full window after the session's last link went away.
pub(crate) async fn refresh_resume_expiry(rt: &Inner, session: &Session) {
    if session.is_terminated() {
        return;
    }
    // Expiry only: a get-then-put would undo a resume that rotated the token meanwhile.
    let expires = rt.now_millis().saturating_add(window_millis(rt));
    if let Err(e) = rt.resumes.set_expiry(&session.id, expires).await {
        tracing::warn!(session = %session.id, error = %e, "could not refresh the resume record");
    }
}

pub(crate) fn window_millis(rt: &Inner) -> u64 {
    u64::try_from(rt.config.resume_window.as_millis()).unwrap_or(u64::MAX)
}

impl Conn {
    /// Starts the heartbeat schedule once the connection is bound to a session that
    /// negotiated `heartbeat`.
    fn start_heartbeat(&mut self) {
        if self.watch.is_none()
            && let Some(session) = &self.session
            && let Some(interval) = session.meta.lock().heartbeat
        {
            self.watch = Some(Watch::new(interval, self.activity.clone()));
        }
    }

    /// Acts on a heartbeat beat (§6.4). Neither action waits for room in the queue: a ping
    /// that does not fit is skipped, and on loss a connection that cannot even take the
    /// error is torn down at once. Loss detaches the session like any drop: it stays
    /// resumable and its jobs keep running.
    fn beat(&mut self, beat: Beat) -> ControlFlow<()> {
        let Some(session) = self.session.clone() else { return ControlFlow::Continue(()) };
        match beat {
            Beat::Ping => {
                if let Some(watch) = &self.watch {
                    watch.pinged();
                }
                let ping = self
                    .rt
                    .mint_message_id()
                    .map(|nonce| SessionPing { nonce: nonce.to_string(), sent_at: self.rt.now_timestamp() });
                if let Ok(ping) = ping
                    && let Ok(env) = session.envelope(&self.rt, Message::SessionPing(ping))
                {
                    let _ = self.link.tx.try_send(Outbound::Frame(Arc::from(env.to_json())));
                }
                ControlFlow::Continue(())
            }
            Beat::Lost => {
                tracing::info!(session = %session.id, "heartbeat lost; detaching (the session stays resumable)");
                let error = ErrorPayload::new(
                    ErrorCode::HEARTBEAT_LOST,
                    "nothing received for two heartbeat intervals; resume to continue",
                );
                let sent = session.envelope(&self.rt, Message::SessionError(error)).is_ok_and(|env| {
                    self.link.tx.try_send(Outbound::Frame(Arc::from(env.to_json()))).is_ok()
                        && self.link.tx.try_send(Outbound::Close).is_ok()
                });
                if !sent {
                    self.link.kill.cancel();
                }
                ControlFlow::Break(())
            }
        }
    }

    /// Queues a frame on this connection.
    pub(crate) async fn send(&self, envelope: &Envelope) {
        let _ = self.link.push(Arc::from(envelope.to_json()), self.rt.config.send_timeout).await;
    }

    /// Sends `session.error` and closes the transport (decision 9).
    pub(crate) async fn fatal(&self, error: ErrorPayload) {
        self.rt.observer.refused(crate::observe::RefusalScope::Session, &error.code);
        let version = self.session.as_ref().map_or(ProtocolVersion::V1_1, |s| s.version());
        match self.rt.mint_message_id() {
            Ok(id) => {
                let mut env = Envelope::new(version, id, Message::SessionError(error));
                env.session_id = self.session.as_ref().map(|s| s.id.clone());
                self.send(&env).await;
            }
            Err(e) => tracing::error!(error = %e, "cannot mint an id for session.error"),
        }
        let _ = self.link.tx.send(Outbound::Close).await;
    }

    async fn handle(&mut self, text: &str) -> ControlFlow<()> {
        let options = DecodeOptions { max_frame_bytes: self.rt.config.max_frame_bytes };
        let decoded = arcp_core::decode::decode_str(text, &options);
        match self.session.clone() {
            None => self.handle_opening(decoded).await,
            Some(session) => self.handle_bound(&session, decoded).await,
        }
    }

    async fn handle_opening(&mut self, decoded: Result<Envelope, DecodeFailure>) -> ControlFlow<()> {
        let env = match decoded {
            Ok(env) => env,
            Err(f) => {
                let opening = matches!(f.context.type_name.as_deref(), Some("session.hello" | "session.resume"));
                if opening {
                    self.fatal(f.to_payload()).await;
                    return ControlFlow::Break(());
                }
                tracing::debug!(error = %f.error, "dropping an undecodable frame before session.hello");
                return ControlFlow::Continue(());
            }
        };
        let version = env.arcp;
        let resuming = match &env.message {
            Message::SessionHello(hello) => hello.resume.is_some(),
            other => matches!(other, Message::SessionResume(_)),
        };
        let result = match env.message {
            Message::SessionHello(hello) => match self.authenticate(&hello.auth).await {
                Err(e) => Err(e),
                Ok(identity) => match hello.resume {
                    Some(resume) => {
                        crate::resume::resume(self, identity, version, hello.capabilities.as_ref(), resume).await
                    }
                    None => self.open(identity, version, hello.capabilities.as_ref()).await,
                },
            },
            Message::SessionResume(r) => match self.authenticate(&r.auth).await {
                Ok(identity) => crate::resume::resume(self, identity, version, r.capabilities.as_ref(), r.resume).await,
                Err(e) => Err(e),
            },
            other => {
                tracing::debug!(r#type = other.type_name(), "dropping a message before session.hello");
                return ControlFlow::Continue(());
            }
        };
        match (&result, resuming) {
            (Ok(()), true) => self.rt.observer.resume_succeeded(),
            (Err(e), true) => self.rt.observer.resume_refused(&e.code()),
            _ => {}
        }
        match result {
            Ok(()) => {
                if let Some(session) = &self.session {
                    tracing::Span::current().record("arcp.session_id", tracing::field::display(&session.id));
                    tracing::debug!(principal = %session.principal, resumed = resuming, "connection bound to a session");
                }
                ControlFlow::Continue(())
            }
            Err(e) => self.fail(e).await,
        }
    }

    async fn fail(&self, e: Error) -> ControlFlow<()> {
        self.fatal(e.to_payload()).await;
        ControlFlow::Break(())
    }

    async fn authenticate(&self, auth: &Auth) -> Result<Identity, Error> {
        if auth.scheme != "bearer" {
            return Err(Error::refused(
                ErrorCode::INVALID_REQUEST,
                format!("auth scheme {:?} is not supported (only \"bearer\")", auth.scheme),
            ));
        }
        match auth.token.as_ref().map(|t| t.0.as_str()) {
            None | Some("") => Err(Error::refused(ErrorCode::UNAUTHENTICATED, "Missing bearer token")),
            Some(token) => self.rt.verifier.verify(token).await,
        }
    }

    /// The capabilities and meta a (re)negotiation yields.
    pub(crate) fn negotiate(
        &self,
        version: ProtocolVersion,
        client: Option<&Capabilities>,
    ) -> (SessionMeta, Capabilities) {
        let features = intersect_features(&self.rt.config.features, client.and_then(|c| c.features.as_deref()));
        let agents = if features.contains(&Feature::AGENT_VERSIONS) {
            AgentInventory::Rich(self.rt.registry.inventory())
        } else {
            AgentInventory::Flat(self.rt.registry.names())
        };
        let offered = Capabilities {
            encodings: Some(vec!["json".into()]),
            features: Some(self.rt.config.features.clone()),
            agents: Some(agents),
            other: Default::default(),
        };
        let mut caps = negotiate_capabilities(client, &offered);
        let heartbeat =
            features.contains(&Feature::HEARTBEAT).then(|| crate::heartbeat::interval(&self.rt.config, client));
        // The vendor interval request is echoed with the effective value, or not at all.
        match heartbeat {
            Some(h) => {
                caps.other.insert(crate::heartbeat::INTERVAL_CAPABILITY.to_owned(), serde_json::json!(h.as_secs()));
            }
            None => {
                caps.other.remove(crate::heartbeat::INTERVAL_CAPABILITY);
            }
        }
        (SessionMeta { version, features, heartbeat }, caps)
    }

    /// Builds a welcome for `session` carrying `token`.
    pub(crate) fn welcome(
        &self,
        session: &Session,
        token: &ResumeToken,
        caps: Capabilities,
    ) -> Result<Envelope, Error> {
        let heartbeat = session.meta.lock().heartbeat.and_then(|h| std::num::NonZeroU64::new(h.as_secs()));
        let window = self.rt.config.resume_window.as_secs().max(1);
        let welcome = SessionWelcome {
            runtime: self.rt.config.runtime.clone(),
            resume_token: token.clone(),
            resume_window_sec: std::num::NonZeroU64::new(window).unwrap_or(std::num::NonZeroU64::MIN),
            heartbeat_interval_sec: heartbeat,
            capabilities: caps,
            session_id: Some(session.id.clone()),
            accepted_at: Some(self.rt.now_timestamp()),
        };
        session.envelope(&self.rt, Message::SessionWelcome(welcome))
    }

    /// Mints a resume token and stores its digest for `session`.
    pub(crate) async fn issue_token(&self, session: &Session) -> Result<ResumeToken, Error> {
        let token = ResumeToken::mint(&*self.rt.entropy)?;
        let record = ResumeRecord {
            session_id: session.id.clone(),
            token_digest: crate::digest::sha256(token.expose().as_bytes()),
            principal: session.principal.clone(),
            expires_at_millis: self.rt.now_millis().saturating_add(window_millis(&self.rt)),
        };
        self.rt.resumes.put(record).await?;
        Ok(token)
    }

    async fn open(
        &mut self,
        identity: Identity,
        version: ProtocolVersion,
        client: Option<&Capabilities>,
    ) -> Result<(), Error> {
        crate::shutdown::refuse_if_stopping(&self.rt)?;
        if let Some(encodings) = client.and_then(|c| c.encodings.as_ref())
            && !encodings.iter().any(|e| e == "json")
        {
            return Err(Error::refused(ErrorCode::INVALID_REQUEST, "encodings must include \"json\""));
        }
        let (meta, caps) = self.negotiate(version, client);
        let id = SessionId::mint(&*self.rt.clock, &*self.rt.entropy)?;
        let session = Arc::new(Session::new(id.clone(), identity.principal, meta));
        crate::caps::admit_session(&self.rt, &session)?;
        let welcome = match self.issue_token(&session).await.and_then(|t| self.welcome(&session, &t, caps)) {
            Ok(w) => w,
            Err(e) => {
                self.rt.sessions.lock().remove(&id);
                return Err(e);
            }
        };
        self.send(&welcome).await;
        session.attach_fresh(self.link.clone()).await;
        self.session = Some(session);
        self.rt.observer.session_opened();
        Ok(())
    }

    async fn handle_bound(
        &mut self,
        session: &Arc<Session>,
        decoded: Result<Envelope, DecodeFailure>,
    ) -> ControlFlow<()> {
        if session.is_terminated() {
            // A buffer cap ended the session (§14); the client was told and the transport
            // is closing.
            return ControlFlow::Break(());
        }
        let env = match decoded {
            Ok(env) => env,
            Err(f) if f.context.type_name.as_deref() == Some("job.submit") => {
                crate::submit::refuse(self, session, f.context.id.as_ref(), None, f.to_payload()).await;
                return ControlFlow::Continue(());
            }
            Err(f) => {
                self.fatal(f.to_payload()).await;
                return ControlFlow::Break(());
            }
        };
        if let Some(sid) = &env.session_id
            && sid != &session.id
        {
            self.fatal(ErrorPayload::new(
                ErrorCode::INVALID_REQUEST,
                format!("session_id {sid} does not match this session ({})", session.id),
            ))
            .await;
            return ControlFlow::Break(());
        }
        let id = env.id.clone();
        let optional = env.is_optional();
        match env.message {
            Message::JobSubmit(submit) => {
                crate::submit::submit(self, session, &id, env.trace_id, submit).await;
                ControlFlow::Continue(())
            }
            Message::JobCancel(cancel) => match env.job_id {
                Some(job_id) => {
                    self.cancel(session, &id, job_id, cancel.reason).await;
                    ControlFlow::Continue(())
                }
                // The decoder already requires it; kept as a protocol error, not a panic.
                None => {
                    self.fail(Error::refused(ErrorCode::INVALID_REQUEST, "job.cancel needs an envelope job_id")).await
                }
            },
            Message::SessionPing(ping) => {
                let pong = SessionPong { ping_nonce: ping.nonce, received_at: self.rt.now_timestamp() };
                if let Ok(env) = session.envelope(&self.rt, Message::SessionPong(pong)) {
                    self.send(&env).await;
                }
                ControlFlow::Continue(())
            }
            Message::SessionAck(ack) => {
                // Without the feature an ack is ignored (§6.2 gating table).
                if session.has_feature(&Feature::ACK) {
                    session.record_ack(&self.rt, ack.last_processed_seq).await;
                }
                ControlFlow::Continue(())
            }
            Message::SessionPong(_) => ControlFlow::Continue(()),
            Message::JobUnsubscribe(u) => {
                // Without the feature it is ignored (§6.2 gating table).
                if session.has_feature(&Feature::SUBSCRIBE) {
                    crate::subscribe::unsubscribe(session, &u.job_id);
                }
                ControlFlow::Continue(())
            }
            Message::SessionBye(_) => {
                let _ = self.link.tx.send(Outbound::Close).await;
                ControlFlow::Break(())
            }
            Message::SessionClose(close) => {
                if let Ok(env) =
                    session.envelope(&self.rt, Message::SessionClosed(SessionClosed { reason: close.reason }))
                {
                    self.send(&env).await;
                }
                let _ = self.link.tx.send(Outbound::Close).await;
                ControlFlow::Break(())
            }
            Message::SessionListJobs(req) => {
                if !session.has_feature(&Feature::LIST_JOBS) {
                    return self.fail(feature_required("session.list_jobs", "list_jobs")).await;
                }
                match crate::listing::list_jobs(self, session, &id, &req).await {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => self.fail(e).await,
                }
            }
            Message::JobSubscribe(req) => {
                if !session.has_feature(&Feature::SUBSCRIBE) {
                    return self.fail(feature_required("job.subscribe", "subscribe")).await;
                }
                crate::subscribe::subscribe(self, session, &id, req).await;
                ControlFlow::Continue(())
            }
            Message::SessionHello(_) | Message::SessionResume(_) => {
                self.fail(Error::refused(ErrorCode::INVALID_REQUEST, "the session is already open")).await
            }
            Message::Vendor(v) => {
                if let Some(handler) = self.rt.vendor.get(&v.type_name) {
                    self.vendor(session, handler, id, v).await
                } else if optional {
                    ControlFlow::Continue(())
                } else {
                    self.fail(Error::refused(
                        ErrorCode::INVALID_REQUEST,
                        format!("unsupported vendor message {:?}", v.type_name),
                    ))
                    .await
                }
            }
            other => {
                self.fail(Error::refused(
                    ErrorCode::INVALID_REQUEST,
                    format!("{} is sent by runtimes, not clients", other.type_name()),
                ))
                .await
            }
        }
    }

    /// Runs a vendor handler and sends its reply (§15; `vendor.rs`).
    async fn vendor(
        &self,
        session: &Arc<Session>,
        handler: Arc<dyn crate::vendor::VendorHandler>,
        id: arcp_core::MessageId,
        message: arcp_core::message::VendorMessage,
    ) -> ControlFlow<()> {
        let request = crate::vendor::VendorRequest {
            principal: session.principal.clone(),
            session_id: session.id.clone(),
            id,
            message,
        };
        match handler.handle(request).await {
            Ok(None) => ControlFlow::Continue(()),
            Ok(Some(reply)) => {
                if !arcp_core::names::is_vendor_name(&reply.type_name) {
                    tracing::warn!(r#type = %reply.type_name, "dropping a vendor reply whose type is not a vendor name");
                } else if let Ok(env) = session.envelope(&self.rt, Message::Vendor(reply)) {
                    self.send(&env).await;
                }
                ControlFlow::Continue(())
            }
            Err(e) => self.fail(Error::Refused(e)).await,
        }
    }

    async fn cancel(
        &self,
        session: &Arc<Session>,
        request_id: &arcp_core::MessageId,
        job_id: JobId,
        reason: Option<String>,
    ) {
        let Some(job) = self.rt.job(&job_id) else {
            let remote = match self.rt.job_store.get(&job_id).await {
                Ok(Some(r)) if r.session_id == session.id => crate::job::on_other_node(&self.rt, &r),
                _ => None,
            };
            let e = remote
                .unwrap_or_else(|| ErrorPayload::new(ErrorCode::JOB_NOT_FOUND, format!("Job {job_id} not found")));
            crate::submit::refuse(self, session, Some(request_id), Some(job_id), e).await;
            return;
        };
        // The submitting session and the sessions of identical resubmits (decision 5: same
        // principal, they observe the job) hold cancel authority.
        let observer = job.principal == session.principal
            && job.state.lock().await.observers.iter().any(|o| Arc::ptr_eq(o, session));
        if job.owner.id != session.id && !observer {
            // Subscribers (any principal the policy let in) see the job but never hold
            // cancel authority (§7.6).
            let e = if job.principal == session.principal || crate::subscribe::is_subscribed(session, &job.id) {
                ErrorPayload::new(ErrorCode::PERMISSION_DENIED, "Only the submitting session may cancel a job")
            } else {
                ErrorPayload::new(ErrorCode::JOB_NOT_FOUND, format!("Job {job_id} not found"))
            };
            crate::submit::refuse(self, session, Some(request_id), Some(job_id), e).await;
            return;
        }
        let mut st = job.state.lock().await;
        if st.status.is_terminal() || st.cancel_requested.is_some() {
            return;
        }
        st.cancel_requested = Some(reason.clone());
        // Sent under the job's lock, so `job.cancelled` precedes the terminal `job.error`.
        if let Ok(env) = session.envelope(&self.rt, Message::JobCancelled(JobCancelled { reason })) {
            let env = env.with_job(job.id.clone()).with_trace(job.trace_id.clone());
            session.send_direct(&self.rt, env).await;
        }
        drop(st);
        job.cancel.cancel();
    }
}

fn feature_required(message: &str, feature: &str) -> Error {
    Error::refused(ErrorCode::INVALID_REQUEST, format!("{message} requires the '{feature}' feature"))
}
