//! The plugin membrane of the runtime: the [`Plugin`] trait, the compiled-in plugins
//! ([`builtin_plugins`]: [`demo`], [`webhooks`]), loading driven by the operator policy
//! ([`Plugins::load`]; `arcp serve --plugins-policy PATH`), and the per-plugin
//! [`PluginContext`] whose every surface checks the grant at call time.
//!
//! Loading, per candidate plugin with a policy entry: read its manifest
//! ([`Plugin::manifest`]) → `plugin_api::load_manifest` → the manifest must name the plugin
//! and its API version → `plugin_api::decide` → mTLS files readable → `Roster::admit` →
//! a fresh [`PluginContext`] → [`Plugin::init`]. A refusal stops the load (the operator asked
//! for that plugin), except `disabled` (logged, skipped); a candidate without a policy entry
//! is not loaded; an entry naming no candidate is a `PolicyViolation` (`unknown_plugin`).
//!
//! Two phases for agents: `init` runs before the ARCP runtime is built and registers agents
//! into a pending list; [`Plugins::register_agents`] moves them into the `AgentRegistry`
//! (closing registration), then [`Plugins::attach`] connects `session.events` to the built
//! runtime's lifecycle feed. [`Plugins::teardown`] revokes every context (every call fails
//! with `context_revoked` afterwards) and calls [`Plugin::teardown`].
//!
//! This membrane is **not a sandbox**: compiled-in plugins run in the runtime's process with
//! its authority; it keeps honest plugins honest and audits their mistakes.

pub mod context;
pub mod cron;
pub mod demo;
pub mod events;
pub mod kv;
pub mod outbound;
pub mod routes;
pub mod scheduler;
pub mod tls;
pub mod webhooks;

use std::path::Path;
use std::sync::Arc;

use arcp_server::{Agent, AgentError, AgentRegistry, JobContext, Runtime};
use async_trait::async_trait;
use parking_lot::Mutex;
use plugin_api::{
    Format, Origin, PLUGIN_API_VERSION, PluginRefused, PolicyViolation, PolicyViolationReason, RefusalReason,
    ValidPolicy, Version, decide, load_manifest, load_policy,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use context::{AuditRecord, MtlsRef, PluginContext};
pub use kv::{KvError, KvStore, MemoryKv, RuntimeKv};
pub use outbound::{OutboundRequest, OutboundResponse};
pub use routes::{RouteRequest, RouteResponse};
pub use tls::OutboundTls;

/// A manifest as the plugin ships it: text and format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestSource {
    /// The manifest text.
    pub text: String,
    /// JSON or TOML.
    pub format: Format,
}

/// A plugin compiled into the runtime.
#[async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// The plugin's name (its manifest's `name`).
    fn name(&self) -> &str;

    /// The plugin API version it was built against (its manifest's `apiVersion`).
    fn api_version(&self) -> Version {
        PLUGIN_API_VERSION
    }

    /// Its manifest. `config` is the policy entry's `config`: a plugin whose needs depend on
    /// the operator's configuration (the `webhooks` plugin's outbound hosts are the hosts of
    /// the configured URLs) may derive its request from it; the grant is still manifest ∩
    /// policy.
    fn manifest(&self, config: Option<&Value>) -> ManifestSource;

    /// Starts the plugin: register agents and routes, subscribe, schedule. Runs before the
    /// ARCP runtime is built. An error refuses the whole load.
    async fn init(&self, ctx: PluginContext) -> Result<(), PluginError>;

    /// Stops the plugin. Its context is already revoked (so it cannot use any surface) and
    /// its scheduled tasks cancelled.
    async fn teardown(&self) {}
}

/// What a surface call (or a plugin's init) can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// A violation (audited): capability not granted, context revoked, outbound host or
    /// address refused, duplicate notification kind.
    #[error(transparent)]
    Denied(plugin_api::Error),
    /// A bad argument (name, path, size, or registration after init).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The plugin's key/value store failed.
    #[error("storage: {0}")]
    Storage(#[from] KvError),
    /// An outbound call failed after its checks passed (connect, timeout, body cap).
    #[error("outbound request failed: {0}")]
    Outbound(String),
    /// An outbound `https` call failed its TLS handshake (untrusted certificate, a
    /// certificate for another name, no CA bundle).
    #[error("TLS: {0}")]
    Tls(String),
    /// The plugin's own failure (e.g. invalid `config` at init).
    #[error("{0}")]
    Plugin(String),
}

impl PluginError {
    /// A stable machine-readable reason: the violation's for [`PluginError::Denied`], else
    /// `invalid_argument`, `storage`, `outbound_failed`, `tls_failed`, `plugin_error`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Denied(e) => e.reason(),
            Self::Invalid(_) => "invalid_argument",
            Self::Storage(_) => "storage",
            Self::Outbound(_) => "outbound_failed",
            Self::Tls(_) => "tls_failed",
            Self::Plugin(_) => "plugin_error",
        }
    }
}

/// Why plugins could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The policy file cannot be read or is invalid, or names an unknown plugin.
    #[error(transparent)]
    Policy(#[from] PolicyViolation),
    /// A plugin with a policy entry was refused.
    #[error("plugin refused ({reason}): {0}", reason = .0.reason)]
    Refused(#[from] PluginRefused),
    /// A plugin's init (or the registration of its agents) failed.
    #[error("plugin `{plugin}` failed to start: {error}")]
    Init {
        /// The plugin.
        plugin: String,
        /// Why.
        error: Box<PluginError>,
    },
}

impl LoadError {
    /// The stable reason (`policy_invalid`, a refusal reason, `plugin_error`, …).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Policy(v) => v.reason.as_str(),
            Self::Refused(r) => r.reason.as_str(),
            Self::Init { error, .. } => error.reason(),
        }
    }
}

/// The compiled-in plugins, all [`Origin::Builtin`].
pub fn builtin_plugins() -> Vec<Arc<dyn Plugin>> {
    vec![Arc::new(demo::Demo), Arc::new(webhooks::Webhooks::default())]
}

/// Reads and validates the operator policy file (`.json` or `.toml`).
pub fn read_policy(path: &Path) -> Result<ValidPolicy, PolicyViolation> {
    let unreadable = |message: String| PolicyViolation {
        reason: PolicyViolationReason::PolicyInvalid,
        message,
        problems: Vec::new(),
    };
    let format = path
        .extension()
        .and_then(|e| e.to_str())
        .and_then(Format::from_extension)
        .ok_or_else(|| unreadable(format!("{}: the policy file must end in .json or .toml", path.display())))?;
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(format!("{}: {e}", path.display())))?;
    load_policy(&text, format)
}

/// How the plugin host is set up: the plugins' key/value store and what outbound `https`
/// calls trust. [`HostConfig::default`]: an in-memory store and the system CA bundle;
/// `arcp serve` uses [`HostConfig::for_runtime_store`].
#[derive(Clone, Default)]
pub struct HostConfig {
    kv: Option<Arc<dyn KvStore>>,
    tls: OutboundTls,
}

impl std::fmt::Debug for HostConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostConfig").field("kv", &self.kv.is_some()).field("tls", &self.tls).finish()
    }
}

impl HostConfig {
    /// Uses `kv` for `storage.kv` (default: a fresh [`MemoryKv`]).
    #[must_use]
    pub fn kv(mut self, kv: Arc<dyn KvStore>) -> Self {
        self.kv = Some(kv);
        self
    }

    /// Keeps `storage.kv` in the runtime's principal-scoped store (see [`RuntimeKv`]: one
    /// reserved principal per plugin), so plugin records live as long as that store's.
    #[must_use]
    pub fn durable_kv(self, store: Arc<dyn arcp_server::store::KvStore>) -> Self {
        self.kv(Arc::new(RuntimeKv::new(store)))
    }

    /// What `arcp serve` uses: [`HostConfig::durable_kv`] over the runtime's store when
    /// `--store` opened a durable one (`Some`), else the default in-memory plugin store.
    pub fn for_runtime_store(store: Option<Arc<dyn arcp_server::store::KvStore>>) -> Self {
        match store {
            Some(store) => Self::default().durable_kv(store),
            None => Self::default(),
        }
    }

    /// Uses `tls` for outbound `https` calls (default: [`OutboundTls::system`]).
    #[must_use]
    pub fn tls(mut self, tls: OutboundTls) -> Self {
        self.tls = tls;
        self
    }

    fn shared(self) -> Arc<context::Shared> {
        let kv = self.kv.unwrap_or_else(|| Arc::new(MemoryKv::default()));
        Arc::new(context::Shared::new(kv, self.tls))
    }
}

struct Loaded {
    plugin: Arc<dyn Plugin>,
    ctx: PluginContext,
}

/// The loaded plugins.
pub struct Plugins {
    shared: Arc<context::Shared>,
    loaded: Vec<Loaded>,
    skipped: Vec<PluginRefused>,
    forwarder: CancellationToken,
    torn_down: Mutex<bool>,
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugins").field("loaded", &self.names()).finish_non_exhaustive()
    }
}

impl Plugins {
    /// No plugins (no policy given).
    pub fn none() -> Self {
        Self {
            shared: HostConfig::default().shared(),
            loaded: Vec::new(),
            skipped: Vec::new(),
            forwarder: CancellationToken::new(),
            torn_down: Mutex::new(false),
        }
    }

    /// Loads the `candidates` the `policy` grants (see the module docs), with an in-memory
    /// key/value store.
    pub async fn load(policy: &ValidPolicy, candidates: Vec<(Arc<dyn Plugin>, Origin)>) -> Result<Self, LoadError> {
        Self::load_with(policy, candidates, Arc::new(MemoryKv::default())).await
    }

    /// [`Plugins::load`] with a given key/value store.
    pub async fn load_with(
        policy: &ValidPolicy,
        candidates: Vec<(Arc<dyn Plugin>, Origin)>,
        kv: Arc<dyn KvStore>,
    ) -> Result<Self, LoadError> {
        Self::load_in(policy, candidates, HostConfig::default().kv(kv)).await
    }

    /// [`Plugins::load`] with the key/value store and TLS trust of `host`.
    pub async fn load_in(
        policy: &ValidPolicy,
        candidates: Vec<(Arc<dyn Plugin>, Origin)>,
        host: HostConfig,
    ) -> Result<Self, LoadError> {
        if let Some(unknown) = policy.entries().keys().find(|n| !candidates.iter().any(|(p, _)| p.name() == n.as_str()))
        {
            return Err(PolicyViolation {
                reason: PolicyViolationReason::UnknownPlugin,
                message: format!(
                    "the policy has an entry for `{unknown}`, which is not installed (installed: {})",
                    candidates.iter().map(|(p, _)| p.name()).collect::<Vec<_>>().join(", ")
                ),
                problems: Vec::new(),
            }
            .into());
        }
        let mut plugins = Self::none();
        plugins.shared = host.shared();
        for (plugin, origin) in candidates {
            let name = plugin.name().to_owned();
            let Some(entry) = policy.entries().iter().find(|(n, _)| n.as_str() == name).map(|(_, e)| e) else {
                tracing::debug!(plugin = %name, "not in the plugin policy: not loaded");
                continue;
            };
            match admit(&*plugin, entry, origin, &plugins.shared) {
                Ok(ctx) => {
                    for combo in ctx.grant().root_equivalent() {
                        tracing::warn!(plugin = %name, combination = %combo, "plugin holds a root-equivalent combination: {}", combo.why());
                    }
                    if ctx.grant().allow_private_addresses() {
                        tracing::warn!(plugin = %name, "allowPrivateAddresses is set: outbound calls may reach private addresses (test-only setting)");
                    }
                    if let Err(error) = plugin.init(ctx.clone()).await {
                        ctx.revoke();
                        plugin.teardown().await;
                        plugins.teardown().await;
                        return Err(LoadError::Init { plugin: name, error: Box::new(error) });
                    }
                    tracing::info!(plugin = %name, capabilities = ?ctx.grant().capabilities(), "plugin loaded");
                    plugins.loaded.push(Loaded { plugin, ctx });
                }
                Err(refusal) if refusal.reason == RefusalReason::Disabled => {
                    tracing::info!(plugin = %name, "plugin disabled by policy");
                    plugins.skipped.push(refusal);
                }
                Err(refusal) => {
                    plugins.teardown().await;
                    return Err(refusal.into());
                }
            }
        }
        Ok(plugins)
    }

    /// The names of the loaded plugins.
    pub fn names(&self) -> Vec<&str> {
        self.loaded.iter().map(|l| l.ctx.plugin().as_str()).collect()
    }

    /// The plugins skipped as `disabled`.
    pub fn skipped(&self) -> &[PluginRefused] {
        &self.skipped
    }

    /// A loaded plugin's context (for tests and diagnostics).
    pub fn context(&self, plugin: &str) -> Option<PluginContext> {
        self.loaded.iter().find(|l| l.ctx.plugin().as_str() == plugin).map(|l| l.ctx.clone())
    }

    /// The most recent audit records (at most [`context::AUDIT_CAPACITY`]).
    pub fn audit(&self) -> Vec<AuditRecord> {
        self.shared.audit.snapshot()
    }

    /// Moves the agents registered during init into `registry` (as `<plugin>.<agent>`),
    /// each wrapped so a call after teardown fails. Closes agent registration.
    pub fn register_agents(&self, registry: &mut AgentRegistry) -> Result<Vec<String>, LoadError> {
        let pending = self.shared.pending_agents.lock().take().unwrap_or_default();
        let mut names = Vec::with_capacity(pending.len());
        for (name, ctx, agent) in pending {
            registry.register(&name, Membraned { ctx: ctx.clone(), agent }).map_err(|e| LoadError::Init {
                plugin: ctx.plugin().to_string(),
                error: Box::new(PluginError::Invalid(format!("agent `{name}`: {e}"))),
            })?;
            names.push(name);
        }
        Ok(names)
    }

    /// Feeds the runtime's job lifecycle events to the plugins' `session.events`
    /// subscriptions (until [`Plugins::teardown`]).
    pub fn attach(&self, runtime: &Runtime) {
        let mut rx = runtime.lifecycle();
        let tx = self.shared.lifecycle.clone();
        let stop = self.forwarder.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => break,
                    next = rx.recv() => next,
                };
                match next {
                    Ok(event) => {
                        let _ = tx.send(event);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(lost = n, "the plugin host lagged behind the job lifecycle feed");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }

    /// Feeds one job lifecycle event to the plugins' `session.events` subscriptions, as
    /// [`Plugins::attach`] does for each event of the runtime (for embedders that produce
    /// their own events, and for tests that drive plugins without a runtime).
    pub fn publish(&self, event: arcp_server::JobLifecycle) {
        let _ = self.shared.lifecycle.send(event);
    }

    /// Whether the listener should hand `path` to [`Plugins::dispatch`].
    pub fn handles(&self, path: &str) -> bool {
        self.shared.routes.handles(path)
    }

    /// Answers a request under a plugin mount point (`path` is the full request path).
    pub async fn dispatch(&self, req: RouteRequest) -> RouteResponse {
        self.shared.routes.dispatch(req).await
    }

    /// Delivers a notification of `kind` to the plugin that claimed it; whether one did.
    pub fn notify(&self, kind: &str, payload: Value) -> bool {
        let handler = self.shared.notifications.lock().get(kind).map(|(ctx, h)| (ctx.clone(), h.clone()));
        match handler {
            Some((ctx, h)) if !ctx.is_revoked() => {
                h(payload);
                true
            }
            _ => false,
        }
    }

    /// Revokes every context (in reverse load order) and calls each plugin's teardown. Calls
    /// after the first do nothing.
    pub async fn teardown(&self) {
        {
            let mut done = self.torn_down.lock();
            if *done {
                return;
            }
            *done = true;
        }
        self.forwarder.cancel();
        for l in self.loaded.iter().rev() {
            l.ctx.revoke();
            l.plugin.teardown().await;
            tracing::info!(plugin = %l.ctx.plugin(), "plugin unloaded");
        }
    }
}

/// Manifest → decision → mTLS files → roster → context.
fn admit(
    plugin: &dyn Plugin,
    entry: &plugin_api::ValidPolicyEntry,
    origin: Origin,
    shared: &Arc<context::Shared>,
) -> Result<PluginContext, PluginRefused> {
    let source = plugin.manifest(entry.config());
    let manifest = load_manifest(&source.text, source.format)?;
    if manifest.name().as_str() != plugin.name() || manifest.api_version() != plugin.api_version() {
        return Err(PluginRefused::new(
            RefusalReason::ManifestInvalid,
            Some(plugin.name()),
            format!(
                "plugin `{}` (API {}) ships a manifest for `{}` (API {})",
                plugin.name(),
                plugin.api_version(),
                manifest.name(),
                manifest.api_version()
            ),
        ));
    }
    let grant = decide(&manifest, Some(entry), origin)?;
    grant.verify_mtls_files(|path| std::fs::metadata(path).map(|_| ()).map_err(|e| e.to_string()))?;
    shared.roster.lock().admit(&grant)?;
    Ok(PluginContext::new(grant, shared.clone()))
}

/// A plugin's agent behind the membrane: refused once the plugin's context is revoked.
struct Membraned {
    ctx: PluginContext,
    agent: Arc<dyn Agent>,
}

#[async_trait]
impl Agent for Membraned {
    async fn run(&self, job: JobContext, input: Value) -> Result<Value, AgentError> {
        if self.ctx.is_revoked() {
            self.ctx.audit(
                "context_revoked",
                format!("an agent of plugin `{}` was called after teardown", self.ctx.plugin()),
            );
            return Err(AgentError::internal(format!("plugin `{}` is not loaded", self.ctx.plugin())));
        }
        self.agent.run(job, input).await
    }
}
