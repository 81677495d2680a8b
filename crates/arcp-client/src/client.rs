//! [`Client`]: the caller's handle on one ARCP session. All connection work happens in one
//! background task (the driver); the client talks to it over a channel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arcp_core::agent::AgentInventory;
use arcp_core::message::{RuntimeInfo, SessionWelcome};
use arcp_core::negotiate::Feature;
use arcp_core::{EventSeq, JobId, SessionId};
use arcp_server::transport::ws;
use tokio::sync::{mpsc, oneshot};

use crate::connector::Connector;
use crate::driver::{self, Command, Driver};
use crate::error::ClientError;
use crate::job::{JobHandle, SubmitRequest};
use crate::options::ClientOptions;
use crate::subscription::Subscription;

/// What the last `session.welcome` said, as the client exposes it.
#[derive(Debug, Clone)]
pub(crate) struct SessionInfo {
    pub(crate) runtime: RuntimeInfo,
    pub(crate) features: Vec<Feature>,
    pub(crate) agents: Option<AgentInventory>,
    pub(crate) resume_window: Duration,
    pub(crate) heartbeat: Option<Duration>,
}

impl SessionInfo {
    /// The effective session settings from a welcome: the runtime's feature list (already
    /// the intersection, §6.2) narrowed to what we asked for, in case a runtime over-answers.
    pub(crate) fn from_welcome(welcome: &SessionWelcome, requested: &[Feature]) -> Self {
        let features: Vec<Feature> = welcome
            .capabilities
            .features
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter(|f| requested.contains(f))
            .cloned()
            .collect();
        let heartbeat = if features.contains(&Feature::HEARTBEAT) {
            welcome.heartbeat_interval_sec.map(|s| Duration::from_secs(s.get()))
        } else {
            None
        };
        SessionInfo {
            runtime: welcome.runtime.clone(),
            features,
            agents: welcome.capabilities.agents.clone(),
            resume_window: Duration::from_secs(welcome.resume_window_sec.get()),
            heartbeat,
        }
    }
}

/// State shared by the client, its job handles and the driver.
#[derive(Debug)]
pub(crate) struct Shared {
    info: Mutex<SessionInfo>,
    failure: Mutex<Option<ClientError>>,
    last_seq: AtomicU64,
    resumes: AtomicU64,
}

impl Shared {
    pub(crate) fn new(info: SessionInfo) -> Self {
        Shared {
            info: Mutex::new(info),
            failure: Mutex::new(None),
            last_seq: AtomicU64::new(0),
            resumes: AtomicU64::new(0),
        }
    }

    pub(crate) fn info(&self) -> SessionInfo {
        self.info.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub(crate) fn set_info(&self, info: SessionInfo) {
        *self.info.lock().unwrap_or_else(PoisonError::into_inner) = info;
    }

    /// Why the driver stopped ([`ClientError::Closed`] if it has not said).
    pub(crate) fn failure(&self) -> ClientError {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).clone().unwrap_or(ClientError::Closed)
    }

    pub(crate) fn set_failure(&self, e: ClientError) {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(e);
    }

    pub(crate) fn is_failed(&self) -> bool {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }

    pub(crate) fn set_last_seq(&self, seq: EventSeq) {
        self.last_seq.store(seq.get(), Ordering::SeqCst);
    }

    pub(crate) fn count_resume(&self) {
        self.resumes.fetch_add(1, Ordering::SeqCst);
    }
}

/// A connected ARCP session (§6).
///
/// Cheap to clone: clones share the session, so jobs can be submitted concurrently from many
/// tasks. One background task owns the connection: it answers `session.ping`, routes every
/// envelope to its job, checks that `event_seq` has no gap and, when the transport drops or a
/// gap appears, reconnects through the [`Connector`] and resumes the session (§6.3) so every
/// [`JobHandle`] keeps receiving its events in order, exactly once. See the
/// [crate docs](crate) for the details.
///
/// The session (and the background task) ends on [`close`](Self::close), when a resume is
/// refused or reconnecting fails, or when the client and every job handle are dropped. Jobs
/// keep running on the runtime in every case (§6.7).
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    session_id: SessionId,
    auto_idempotency_keys: bool,
}

impl Client {
    /// Connects over WebSocket to `url` (`ws://host:port/arcp`; this build has no TLS) and
    /// opens a session. Reconnects (for resume) open a new WebSocket to the same URL.
    pub async fn connect_ws(url: impl Into<String>, options: ClientOptions) -> Result<Client, ClientError> {
        let url = url.into();
        let max = options.max_frame_bytes;
        let connector = move || {
            let url = url.clone();
            async move { ws::connect(&url, max).await }
        };
        Client::connect_with(connector, options).await
    }

    /// Opens a session over a transport from `connector`: sends `session.hello`, waits for
    /// `session.welcome` (a `session.error` gives [`ClientError::Session`]), then starts the
    /// background task. The connector is kept to open fresh transports for resume.
    pub async fn connect_with<C: Connector>(connector: C, options: ClientOptions) -> Result<Client, ClientError> {
        let options = Arc::new(options);
        let established = driver::establish(&connector, &options, None).await?;
        let shared = Arc::new(Shared::new(SessionInfo::from_welcome(&established.welcome, &options.features)));
        let session_id = established.session_id.clone();
        let (commands, rx) = mpsc::unbounded_channel();
        let auto_idempotency_keys = options.auto_idempotency_keys;
        let driver = Driver::new(connector, options, shared.clone(), rx, established);
        tokio::spawn(driver.run());
        Ok(Client { inner: Arc::new(Inner { commands, shared, session_id, auto_idempotency_keys }) })
    }

    /// Submits a job (`job.submit`, §7.1) and waits for the runtime's answer.
    ///
    /// `Ok` once `job.accepted` arrives; a refusal (`job.error` carrying this submit's id as
    /// `details.request_id`, decision 21: unknown agent, bad lease, `DUPLICATE_KEY`…) is
    /// [`ClientError::Refused`]. A trace id and (by default) an idempotency key are minted
    /// when the request has none. Submits may run concurrently. There is no timeout: wrap
    /// the call if the runtime may not answer.
    pub async fn submit(&self, request: SubmitRequest) -> Result<JobHandle, ClientError> {
        let (mut submit, trace_id) = request.into_payload();
        let trace_id = match trace_id {
            Some(t) => t,
            None => crate::ids::trace_id()?,
        };
        if submit.idempotency_key.is_none() && self.inner.auto_idempotency_keys {
            submit.idempotency_key = Some(crate::ids::idempotency_key()?);
        }
        let (reply, rx) = oneshot::channel();
        self.command(Command::Submit { submit, trace_id, reply })?;
        let parts = rx.await.unwrap_or_else(|_| Err(self.inner.shared.failure()))?;
        Ok(JobHandle::new(parts, self.inner.commands.clone(), self.inner.shared.clone()))
    }

    /// Lists this principal's jobs (`session.list_jobs`, §6.6; needs the `list_jobs`
    /// feature): one page, with `next_cursor` for the next one. Not resent after a resume
    /// ([`ClientError::Interrupted`]: ask again).
    ///
    /// Entries that lack `lease` or `last_event_seq`, or carry `created_at` as
    /// `submitted_at` (the Python reference runtime 1.1.3), are accepted and say so in
    /// [`ListedJob::deviations`](crate::ListedJob::deviations); any other invalid page is
    /// [`ClientError::Protocol`].
    pub async fn list_jobs(
        &self,
        request: arcp_core::message::SessionListJobs,
    ) -> Result<crate::JobsPage, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::ListJobs { request, reply })?;
        rx.await.map_err(|_| self.inner.shared.failure())?
    }

    /// Subscribes to a job submitted elsewhere (`job.subscribe`, §7.6; needs the `subscribe`
    /// feature). With `history`, the job's buffered envelopes after `from_event_seq` (in the
    /// submitting session's sequence) are replayed first. A refusal (`JOB_NOT_FOUND`,
    /// `PERMISSION_DENIED`, `RESUME_WINDOW_EXPIRED`) is [`ClientError::Refused`].
    pub async fn subscribe(
        &self,
        job_id: JobId,
        history: bool,
        from_event_seq: Option<EventSeq>,
    ) -> Result<Subscription, ClientError> {
        let (reply, rx) = oneshot::channel();
        let request = arcp_core::message::JobSubscribe { job_id, from_event_seq, history };
        self.command(Command::Subscribe { request, reply })?;
        let parts = rx.await.map_err(|_| self.inner.shared.failure())??;
        Ok(Subscription::new(parts, self.inner.commands.clone(), self.inner.shared.clone()))
    }

    /// Sends `session.ping` and waits for the matching `session.pong` (§6.4); returns the
    /// round-trip time. Runtimes answer pings whether or not `heartbeat` was negotiated.
    pub async fn ping(&self) -> Result<Duration, ClientError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Ping { reply })?;
        rx.await.unwrap_or_else(|_| Err(self.inner.shared.failure()))
    }

    /// Closes the session gracefully: sends `session.bye`, closes the transport and stops
    /// the background task. Jobs keep running on the runtime (§6.7); unfinished handles
    /// report [`ClientError::Closed`]. Idempotent.
    pub async fn close(&self) -> Result<(), ClientError> {
        self.close_with(None).await
    }

    /// [`close`](Self::close) with a reason in the `session.bye`.
    pub async fn close_with(&self, reason: Option<String>) -> Result<(), ClientError> {
        let (reply, rx) = oneshot::channel();
        if self.inner.commands.send(Command::Close { reason, reply }).is_ok() {
            let _ = rx.await;
        }
        Ok(())
    }

    /// The session id (stable across resumes).
    pub fn session_id(&self) -> &SessionId {
        &self.inner.session_id
    }

    /// The effective feature flags of the session (the intersection of what was requested
    /// and what the runtime offers, §6.2; re-negotiated on every resume).
    pub fn features(&self) -> Vec<Feature> {
        self.inner.shared.info().features
    }

    /// Whether `feature` is in effect.
    pub fn has_feature(&self, feature: &Feature) -> bool {
        self.inner.shared.info().features.contains(feature)
    }

    /// The runtime's agent inventory from the last welcome (flat or rich shape, §7.5).
    pub fn agents(&self) -> Option<AgentInventory> {
        self.inner.shared.info().agents
    }

    /// Who the runtime is (`session.welcome.runtime`).
    pub fn runtime_info(&self) -> RuntimeInfo {
        self.inner.shared.info().runtime
    }

    /// How long the runtime keeps the session resumable after a disconnect.
    pub fn resume_window(&self) -> Duration {
        self.inner.shared.info().resume_window
    }

    /// The highest `event_seq` processed so far (the resume cursor).
    pub fn last_event_seq(&self) -> EventSeq {
        EventSeq::new(self.inner.shared.last_seq.load(Ordering::SeqCst)).unwrap_or(EventSeq::MAX)
    }

    /// How many times the session has been resumed automatically.
    pub fn resumes(&self) -> u64 {
        self.inner.shared.resumes.load(Ordering::SeqCst)
    }

    /// Whether the session has ended (closed, or lost for good). Further calls fail with
    /// the error that ended it.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.is_failed() || self.inner.commands.is_closed()
    }

    fn command(&self, command: Command) -> Result<(), ClientError> {
        self.inner.commands.send(command).map_err(|_| self.inner.shared.failure())
    }
}
