//! [`Runtime`]: the shared state of one ARCP runtime (agents, stores, sessions, jobs) and the
//! entry point that serves a connection over any [`Transport`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arcp_core::{Clock, Entropy, JobId, MessageId, SessionId, SystemClock, Timestamp};

use crate::agent::AgentRegistry;
use crate::auth::BearerVerifier;
use crate::config::RuntimeConfig;
use crate::job::Job;
use crate::session::Session;
use crate::store::memory::{MemoryEventLog, MemoryIdempotencyStore, MemoryJobStore, MemoryResumeStore};
use crate::store::{EventLog, IdempotencyStore, JobStore, KvStore, MemoryKvStore, ResumeStore};
use crate::subscribe::{SamePrincipalOnly, SubscriptionPolicy};
use crate::transport::Transport;
use crate::vendor::VendorHandlers;

/// How many expired sessions one sweep purges (the next sweep continues).
const SWEEP_BATCH: usize = 1000;

pub(crate) struct Inner {
    pub(crate) config: RuntimeConfig,
    pub(crate) registry: AgentRegistry,
    pub(crate) vendor: VendorHandlers,
    pub(crate) verifier: Arc<dyn BearerVerifier>,
    pub(crate) events: Arc<dyn EventLog>,
    pub(crate) resumes: Arc<dyn ResumeStore>,
    pub(crate) idempotency: Arc<dyn IdempotencyStore>,
    pub(crate) job_store: Arc<dyn JobStore>,
    /// The agents' key-value store ([`JobContext::kv`](crate::JobContext::kv)).
    pub(crate) kv: Arc<dyn KvStore>,
    pub(crate) subscription_policy: Arc<dyn SubscriptionPolicy>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) entropy: Arc<dyn Entropy>,
    pub(crate) sessions: parking_lot::Mutex<HashMap<SessionId, Arc<Session>>>,
    pub(crate) jobs: parking_lot::Mutex<HashMap<JobId, Arc<Job>>>,
    pub(crate) next_conn: AtomicU64,
    pub(crate) lifecycle: crate::lifecycle::LifecycleFeed,
    /// Told about sessions, jobs, events, refusals and store latency (`observe.rs`).
    pub(crate) observer: Arc<dyn crate::Observer>,
    /// Admits or refuses each `job.submit` of a principal (`limit.rs`).
    pub(crate) limiter: Arc<dyn crate::SubmitLimiter>,
    /// Set by [`Runtime::shutdown`]: new sessions are refused.
    pub(crate) stopping: std::sync::atomic::AtomicBool,
}

impl Inner {
    pub(crate) fn now_millis(&self) -> u64 {
        self.clock.now_millis()
    }

    pub(crate) fn now_timestamp(&self) -> Timestamp {
        Timestamp::from_millis(self.now_millis())
    }

    pub(crate) fn mint_message_id(&self) -> Result<MessageId, crate::Error> {
        Ok(MessageId::mint(&*self.clock, &*self.entropy)?)
    }

    pub(crate) fn session(&self, id: &SessionId) -> Option<Arc<Session>> {
        self.sessions.lock().get(id).cloned()
    }

    pub(crate) fn job(&self, id: &JobId) -> Option<Arc<Job>> {
        self.jobs.lock().get(id).cloned()
    }

    /// Drops what has outlived its window: expired resume and idempotency records, sessions
    /// detached for longer than the resume window with no running job (and their events),
    /// and finished jobs older than the idempotency TTL.
    pub(crate) async fn sweep(&self) {
        let now = self.now_millis();
        // Attached sessions keep their resume records a full window ahead, so a crash (no
        // detach to refresh them) leaves their clients a window to resume in after a restart.
        let attached: Vec<Arc<Session>> =
            self.sessions.lock().values().filter(|s| s.detached_at.load(Ordering::SeqCst) == 0).cloned().collect();
        for s in attached {
            crate::connection::refresh_resume_expiry(self, &s).await;
        }
        // Sessions that can no longer be resumed lose their events (a durable log keeps
        // them across restarts, so this cannot rely on the in-memory session table), except
        // while one of their jobs still runs here.
        match self.resumes.expired(now, SWEEP_BATCH).await {
            Ok(ids) => {
                for id in ids {
                    if let Some(s) = self.session(&id) {
                        if s.running_jobs.load(Ordering::SeqCst) > 0 {
                            continue;
                        }
                        self.sessions.lock().remove(&id);
                        s.end_subscriptions();
                    }
                    if let Err(e) = self.events.purge(&id, None).await {
                        tracing::warn!(session = %id, error = %e, "could not purge the events of an expired session");
                        continue;
                    }
                    let _ = self.resumes.remove(&id).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not list expired sessions"),
        }
        if let Err(e) = self.resumes.purge_expired(now).await {
            tracing::warn!(error = %e, "resume sweep failed");
        }
        if let Err(e) = self.idempotency.purge_expired(now).await {
            tracing::warn!(error = %e, "idempotency sweep failed");
        }
        if let Err(e) = self.kv.purge_expired(now).await {
            tracing::warn!(error = %e, "key-value sweep failed");
        }
        let window = u64::try_from(self.config.resume_window.as_millis()).unwrap_or(u64::MAX);
        let expired: Vec<Arc<Session>> = {
            let sessions = self.sessions.lock();
            sessions
                .values()
                .filter(|s| {
                    let detached = s.detached_at.load(Ordering::SeqCst);
                    detached != 0 && now.saturating_sub(detached) > window && s.running_jobs.load(Ordering::SeqCst) == 0
                })
                .cloned()
                .collect()
        };
        for s in expired {
            self.sessions.lock().remove(&s.id);
            s.end_subscriptions();
            let _ = self.events.purge(&s.id, None).await;
            let _ = self.resumes.remove(&s.id).await;
        }
        let retention = u64::try_from(self.config.job_retention.as_millis()).unwrap_or(u64::MAX);
        if let Err(e) = self.job_store.purge_finished(now.saturating_sub(retention)).await {
            tracing::warn!(error = %e, "job record sweep failed");
        }
        let ttl = u64::try_from(self.config.idempotency_ttl.as_millis()).unwrap_or(u64::MAX);
        let jobs: Vec<Arc<Job>> = self.jobs.lock().values().cloned().collect();
        for job in jobs {
            let st = job.state.lock().await;
            if st.status.is_terminal() && now.saturating_sub(st.ended_at) > ttl {
                drop(st);
                self.jobs.lock().remove(&job.id);
            }
        }
    }
}

/// An ARCP runtime. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("runtime", &self.inner.config.runtime).finish_non_exhaustive()
    }
}

impl Runtime {
    /// A builder with in-memory stores, the system clock and OS randomness.
    pub fn builder(verifier: impl BearerVerifier) -> RuntimeBuilder {
        RuntimeBuilder {
            config: RuntimeConfig::default(),
            registry: AgentRegistry::new(),
            vendor: VendorHandlers::new(),
            verifier: Arc::new(verifier),
            events: None,
            resumes: Arc::new(MemoryResumeStore::default()),
            idempotency: Arc::new(MemoryIdempotencyStore::default()),
            job_store: Arc::new(MemoryJobStore::default()),
            kv: Arc::new(MemoryKvStore::default()),
            subscription_policy: Arc::new(SamePrincipalOnly),
            clock: Arc::new(SystemClock),
            entropy: Arc::new(arcp_core::OsEntropy),
            observer: Arc::new(crate::NoObserver),
            limiter: Arc::new(crate::Unlimited),
        }
    }

    /// Serves one connection until it closes. Jobs it started keep running afterwards.
    pub async fn serve<T: Transport>(&self, transport: T) {
        crate::connection::run(self.inner.clone(), transport, true).await;
    }

    /// [`serve`](Runtime::serve), but the connection's submits bypass the
    /// [`SubmitLimiter`](crate::SubmitLimiter): for in-process callers that already limited
    /// the request they submit for (e.g. an HTTP front that rate-limits each request before
    /// running it as a job). Everything else (auth, caps, observation) is unchanged.
    pub fn spawn_unlimited<T: Transport>(&self, transport: T) -> tokio::task::JoinHandle<()> {
        let inner = self.inner.clone();
        tokio::spawn(async move { crate::connection::run(inner, transport, false).await })
    }

    /// Serves one connection on a new task.
    pub fn spawn<T: Transport>(&self, transport: T) -> tokio::task::JoinHandle<()> {
        let rt = self.clone();
        tokio::spawn(async move { rt.serve(transport).await })
    }

    /// Ends the jobs this node ([`RuntimeConfig::node_id`]) was running when it died: each
    /// gets a durable terminal `job.error {code: INTERNAL_ERROR, retryable: true}` after every
    /// event written before the crash (a job whose terminal envelope was already logged only
    /// has its record corrected). Call it once on start, before serving connections; with the
    /// in-memory stores there is nothing to do.
    pub async fn recover(&self) -> Result<crate::RecoveryReport, crate::Error> {
        crate::recovery::recover(&self.inner, &self.inner.config.node_id).await
    }

    /// [`recover`](Runtime::recover) for another node sharing the store, once that node is
    /// known to be dead (on PostgreSQL: it stopped heart-beating and this node adopted it).
    pub async fn recover_node(&self, node: &str) -> Result<crate::RecoveryReport, crate::Error> {
        crate::recovery::recover(&self.inner, node).await
    }

    /// Graceful shutdown: tells every attached session `session.bye {reason: "shutdown"}` and
    /// closes its transport (the session stays resumable), refuses new sessions from now on,
    /// and waits up to `deadline` for running jobs to finish. Jobs still running then keep
    /// persisting until the process exits; the next start's [`recover`](Runtime::recover)
    /// ends them.
    pub async fn shutdown(&self, deadline: Duration) -> crate::ShutdownReport {
        crate::shutdown::shutdown(&self.inner, deadline).await
    }

    /// Runs one retention sweep now (the background sweeper does this periodically).
    pub async fn sweep(&self) {
        self.inner.sweep().await;
    }

    /// Starts the background sweeper (every `interval`); it stops when every `Runtime` clone is
    /// dropped.
    pub fn start_sweeper(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                inner.sweep().await;
            }
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }
}

/// Builds a [`Runtime`].
pub struct RuntimeBuilder {
    config: RuntimeConfig,
    registry: AgentRegistry,
    vendor: VendorHandlers,
    verifier: Arc<dyn BearerVerifier>,
    /// `None`: an in-memory log with the configuration's caps, made at build time.
    events: Option<Arc<dyn EventLog>>,
    resumes: Arc<dyn ResumeStore>,
    idempotency: Arc<dyn IdempotencyStore>,
    job_store: Arc<dyn JobStore>,
    kv: Arc<dyn KvStore>,
    subscription_policy: Arc<dyn SubscriptionPolicy>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    observer: Arc<dyn crate::Observer>,
    limiter: Arc<dyn crate::SubmitLimiter>,
}

impl std::fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeBuilder").field("config", &self.config).finish_non_exhaustive()
    }
}

impl RuntimeBuilder {
    /// Replaces the configuration.
    pub fn config(mut self, config: RuntimeConfig) -> Self {
        self.config = config;
        self
    }

    /// Replaces the agent registry.
    pub fn agents(mut self, registry: AgentRegistry) -> Self {
        self.registry = registry;
        self
    }

    /// Replaces the vendor message handlers (§15).
    pub fn vendor_handlers(mut self, handlers: VendorHandlers) -> Self {
        self.vendor = handlers;
        self
    }

    /// Uses `log` as the event log (it enforces its own buffer caps). Without one, the
    /// runtime uses a [`MemoryEventLog`] bounded by the configuration's
    /// `max_buffered_events` and `max_buffered_bytes`.
    pub fn event_log(mut self, log: impl EventLog) -> Self {
        self.events = Some(Arc::new(log));
        self
    }

    /// Uses `store` for resume records.
    pub fn resume_store(mut self, store: impl ResumeStore) -> Self {
        self.resumes = Arc::new(store);
        self
    }

    /// Uses `store` for idempotency records.
    pub fn idempotency_store(mut self, store: impl IdempotencyStore) -> Self {
        self.idempotency = Arc::new(store);
        self
    }

    /// Uses `store` for job records (§6.6 listings). Default: a bounded [`MemoryJobStore`].
    pub fn job_store(mut self, store: impl JobStore) -> Self {
        self.job_store = Arc::new(store);
        self
    }

    /// Uses `store` as the agents' key-value store ([`JobContext::kv`](crate::JobContext::kv)).
    /// Default: a [`MemoryKvStore`] with its default entry cap.
    pub fn kv_store(mut self, store: Arc<dyn KvStore>) -> Self {
        self.kv = store;
        self
    }

    /// Uses `policy` to decide subscriptions to other principals' jobs (§7.6). Default:
    /// [`SamePrincipalOnly`].
    pub fn subscription_policy(mut self, policy: impl SubscriptionPolicy) -> Self {
        self.subscription_policy = Arc::new(policy);
        self
    }

    /// Uses `clock` for timestamps, expiry and windows.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Uses `entropy` for ids and tokens.
    pub fn entropy(mut self, entropy: impl Entropy + 'static) -> Self {
        self.entropy = Arc::new(entropy);
        self
    }

    /// Reports sessions, jobs, events, refusals and store latency to `observer` (see
    /// [`Observer`](crate::Observer)). Default: [`NoObserver`](crate::NoObserver).
    pub fn observer(mut self, observer: Arc<dyn crate::Observer>) -> Self {
        self.observer = observer;
        self
    }

    /// Admits each `job.submit` through `limiter` (per principal; see
    /// [`SubmitLimiter`](crate::SubmitLimiter)). Default: [`Unlimited`](crate::Unlimited).
    pub fn submit_limiter(mut self, limiter: Arc<dyn crate::SubmitLimiter>) -> Self {
        self.limiter = limiter;
        self
    }

    /// Builds the runtime.
    pub fn build(self) -> Runtime {
        let events = self.events.unwrap_or_else(|| {
            Arc::new(
                MemoryEventLog::with_caps(self.config.max_buffered_events, self.config.max_buffered_bytes)
                    .free_acked_eagerly(self.config.free_acked_events_eagerly),
            )
        });
        let runtime = Runtime {
            inner: Arc::new(Inner {
                config: self.config,
                registry: self.registry,
                vendor: self.vendor,
                verifier: self.verifier,
                events,
                resumes: self.resumes,
                idempotency: self.idempotency,
                job_store: self.job_store,
                kv: self.kv,
                subscription_policy: self.subscription_policy,
                clock: self.clock,
                entropy: self.entropy,
                sessions: parking_lot::Mutex::new(HashMap::new()),
                jobs: parking_lot::Mutex::new(HashMap::new()),
                next_conn: AtomicU64::new(1),
                lifecycle: crate::lifecycle::LifecycleFeed::default(),
                observer: self.observer,
                limiter: self.limiter,
                stopping: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        if let Some(feed) = runtime.inner.events.watch() {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(follow_appends(Arc::downgrade(&runtime.inner), feed));
                }
                Err(_) => tracing::error!(
                    "the event log is shared with other nodes, but the runtime was built outside a tokio runtime: \
                     events other nodes append reach attached sessions only on resume"
                ),
            }
        }
        runtime
    }
}

/// Delivers events other nodes append to a shared log to the sessions attached here, until
/// the runtime is dropped or the feed ends.
async fn follow_appends(
    rt: std::sync::Weak<Inner>,
    mut feed: tokio::sync::broadcast::Receiver<crate::store::AppendNotice>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let notice = feed.recv().await;
        let Some(rt) = rt.upgrade() else { return };
        match notice {
            Ok(crate::store::AppendNotice::Appended { session, seq }) => {
                if let Some(s) = rt.session(&session) {
                    s.follow(&rt, Some(seq)).await;
                }
            }
            Ok(crate::store::AppendNotice::Resync) | Err(RecvError::Lagged(_)) => {
                let sessions: Vec<Arc<Session>> = rt.sessions.lock().values().cloned().collect();
                for s in sessions {
                    s.follow(&rt, None).await;
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}
