//! One connection: a reader loop that decodes frames and dispatches them, and a writer task
//! that drains the connection's queue into the transport.
//!
//! Phases: *opening* (only `session.hello`/`session.resume` count; anything else is dropped)
//! → *bound* to a session. `session.error` is always followed by closing the transport
//! (decision 9). A dropped connection never cancels jobs (decision 15).

use std::ops::ControlFlow;
use std::sync::Arc;

use arcp_core::agent::AgentInventory;
use arcp_core::message::{Auth, JobCancelled, Message, SessionClosed, SessionPong, SessionWelcome};
use arcp_core::negotiate::{Capabilities, Feature, intersect_features, negotiate_capabilities};
use arcp_core::{
    DecodeFailure, DecodeOptions, Envelope, ErrorCode, ErrorPayload, JobId, ProtocolVersion, ResumeToken, SessionId,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::auth::Identity;
use crate::runtime::Inner;
use crate::session::{Link, Outbound, Session, SessionMeta};
use crate::store::ResumeRecord;
use crate::transport::{FrameSink, FrameSource, Transport, TransportError};

pub(crate) struct Conn {
    pub(crate) rt: Arc<Inner>,
    pub(crate) link: Link,
    pub(crate) session: Option<Arc<Session>>,
}

pub(crate) async fn run<T: Transport>(rt: Arc<Inner>, transport: T) {
    let (sink, mut source) = transport.split();
    let (tx, rx) = mpsc::channel(rt.config.outbound_queue.max(1));
    let kill = CancellationToken::new();
    let conn_id = rt.next_conn.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let writer = tokio::spawn(write_loop(sink, rx, kill.clone()));
    let mut conn = Conn { rt, link: Link { conn: conn_id, tx, kill: kill.clone() }, session: None };
    loop {
        let next = tokio::select! {
            () = kill.cancelled() => break,
            next = source.recv() => next,
        };
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
    }
    if let Some(session) = conn.session.take()
        && session.detach(&conn.rt, conn_id).await
    {
        refresh_resume_expiry(&conn.rt, &session).await;
    }
    drop(conn);
    let _ = writer.await;
}

async fn write_loop<S: FrameSink>(mut sink: S, mut rx: mpsc::Receiver<Outbound>, kill: CancellationToken) {
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
            }
            Some(Outbound::Close) | None => break,
        }
    }
    sink.close().await;
}

/// Keeps the resume record alive for a full window after the session's last link went away.
pub(crate) async fn refresh_resume_expiry(rt: &Inner, session: &Session) {
    if let Ok(Some(mut record)) = rt.resumes.get(&session.id).await {
        record.expires_at_millis = rt.now_millis().saturating_add(window_millis(rt));
        if let Err(e) = rt.resumes.put(record).await {
            tracing::warn!(session = %session.id, error = %e, "could not refresh the resume record");
        }
    }
}

pub(crate) fn window_millis(rt: &Inner) -> u64 {
    u64::try_from(rt.config.resume_window.as_millis()).unwrap_or(u64::MAX)
}

impl Conn {
    /// Queues a frame on this connection.
    pub(crate) async fn send(&self, envelope: &Envelope) {
        let _ = self.link.push(Arc::from(envelope.to_json()), self.rt.config.send_timeout).await;
    }

    /// Sends `session.error` and closes the transport (decision 9).
    pub(crate) async fn fatal(&self, error: ErrorPayload) {
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
        let result = match env.message {
            Message::SessionHello(hello) => {
                let identity = match self.authenticate(&hello.auth).await {
                    Ok(i) => i,
                    Err(e) => return self.fail(e).await,
                };
                match hello.resume {
                    Some(resume) => {
                        crate::resume::resume(self, identity, version, hello.capabilities.as_ref(), resume).await
                    }
                    None => self.open(identity, version, hello.capabilities.as_ref()).await,
                }
            }
            Message::SessionResume(r) => match self.authenticate(&r.auth).await {
                Ok(identity) => crate::resume::resume(self, identity, version, r.capabilities.as_ref(), r.resume).await,
                Err(e) => Err(e),
            },
            other => {
                tracing::debug!(r#type = other.type_name(), "dropping a message before session.hello");
                return ControlFlow::Continue(());
            }
        };
        match result {
            Ok(()) => ControlFlow::Continue(()),
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
        let caps = negotiate_capabilities(client, &offered);
        (SessionMeta { version, features }, caps)
    }

    /// Builds a welcome for `session` carrying `token`.
    pub(crate) fn welcome(
        &self,
        session: &Session,
        token: &ResumeToken,
        caps: Capabilities,
    ) -> Result<Envelope, Error> {
        let heartbeat = None;
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
        if let Some(encodings) = client.and_then(|c| c.encodings.as_ref())
            && !encodings.iter().any(|e| e == "json")
        {
            return Err(Error::refused(ErrorCode::INVALID_REQUEST, "encodings must include \"json\""));
        }
        let (meta, caps) = self.negotiate(version, client);
        let id = SessionId::mint(&*self.rt.clock, &*self.rt.entropy)?;
        let session = Arc::new(Session::new(id.clone(), identity.principal, meta));
        let token = self.issue_token(&session).await?;
        let welcome = self.welcome(&session, &token, caps)?;
        self.rt.sessions.lock().insert(id, session.clone());
        self.send(&welcome).await;
        session.attach_fresh(self.link.clone()).await;
        self.session = Some(session);
        Ok(())
    }

    async fn handle_bound(
        &mut self,
        session: &Arc<Session>,
        decoded: Result<Envelope, DecodeFailure>,
    ) -> ControlFlow<()> {
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
            Message::SessionPong(_) | Message::SessionAck(_) | Message::JobUnsubscribe(_) => ControlFlow::Continue(()),
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
            Message::SessionListJobs(_) => self.fail(feature_required("session.list_jobs", "list_jobs")).await,
            Message::JobSubscribe(_) => self.fail(feature_required("job.subscribe", "subscribe")).await,
            Message::SessionHello(_) | Message::SessionResume(_) => {
                self.fail(Error::refused(ErrorCode::INVALID_REQUEST, "the session is already open")).await
            }
            Message::Vendor(v) => {
                if env.extensions.as_ref().and_then(|e| e.optional) == Some(true) {
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

    async fn cancel(
        &self,
        session: &Arc<Session>,
        request_id: &arcp_core::MessageId,
        job_id: JobId,
        reason: Option<String>,
    ) {
        let Some(job) = self.rt.job(&job_id) else {
            let e = ErrorPayload::new(ErrorCode::JOB_NOT_FOUND, format!("Job {job_id} not found"));
            crate::submit::refuse(self, session, Some(request_id), Some(job_id), e).await;
            return;
        };
        if job.owner.id != session.id {
            let e = if job.principal == session.principal {
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
