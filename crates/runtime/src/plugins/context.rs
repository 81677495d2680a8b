//! [`PluginContext`]: the membrane. One per loaded plugin; every surface (`agents()`,
//! `routes()`, `storage()`, `http()`, `notifications()`, `scheduler()`,
//! `session_events()`, `secrets()`) checks the grant **at call time**, writes every violation
//! to the audit log (tracing target `arcp::audit`, plus a bounded in-memory ring), and fails
//! every call with `context_revoked` once the context was revoked (teardown).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use arcp_server::Agent;
use parking_lot::Mutex;
use plugin_api::{Capability, CapabilityViolation, CapabilityViolationReason, Grant, PluginName, Roster, SecretName};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::PluginError;
use super::events::SessionEvents;
use super::kv::{KvStore, Storage};
use super::outbound::Http;
use super::routes::{RouteTable, Routes};
use super::scheduler::Scheduler;
use super::tls::OutboundTls;

/// How many audit records the in-memory ring keeps (the tracing log keeps them all).
pub const AUDIT_CAPACITY: usize = 256;

/// The largest number of agents one plugin may register.
pub const MAX_AGENTS_PER_PLUGIN: usize = 64;

/// One audited violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// The plugin.
    pub plugin: String,
    /// The stable reason (`capability_not_granted`, `context_revoked`, `host_not_allowed`, …).
    pub reason: &'static str,
    /// What was refused, for a human.
    pub message: String,
}

/// The bounded audit ring shared by every context.
#[derive(Debug, Default)]
pub(crate) struct Audit {
    ring: Mutex<VecDeque<AuditRecord>>,
}

impl Audit {
    pub(crate) fn record(&self, plugin: &str, reason: &'static str, message: String) {
        tracing::warn!(target: "arcp::audit", plugin, reason, "{message}");
        let mut ring = self.ring.lock();
        if ring.len() >= AUDIT_CAPACITY {
            ring.pop_front();
        }
        ring.push_back(AuditRecord { plugin: plugin.to_owned(), reason, message });
    }

    pub(crate) fn snapshot(&self) -> Vec<AuditRecord> {
        self.ring.lock().iter().cloned().collect()
    }
}

/// A notification handler claimed by a plugin.
pub type NotificationHandler = Arc<dyn Fn(Value) + Send + Sync>;

/// An agent registered during init: its full name, its plugin's context, the agent.
pub(crate) type PendingAgent = (String, PluginContext, Arc<dyn Agent>);

/// State shared by every context of one plugin host.
pub(crate) struct Shared {
    pub(crate) audit: Audit,
    pub(crate) kv: Arc<dyn KvStore>,
    pub(crate) routes: RouteTable,
    pub(crate) roster: Mutex<Roster>,
    pub(crate) notifications: Mutex<HashMap<String, (PluginContext, NotificationHandler)>>,
    /// Agents registered during init, `None` once they were handed to the agent registry.
    pub(crate) pending_agents: Mutex<Option<Vec<PendingAgent>>>,
    pub(crate) lifecycle: broadcast::Sender<arcp_server::JobLifecycle>,
    /// What outbound `https` calls trust.
    pub(crate) tls: OutboundTls,
}

impl Shared {
    pub(crate) fn new(kv: Arc<dyn KvStore>, tls: OutboundTls) -> Self {
        Self {
            audit: Audit::default(),
            kv,
            tls,
            routes: RouteTable::default(),
            roster: Mutex::new(Roster::new()),
            notifications: Mutex::new(HashMap::new()),
            pending_agents: Mutex::new(Some(Vec::new())),
            lifecycle: broadcast::channel(arcp_server::LIFECYCLE_CAPACITY).0,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) grant: Grant,
    pub(crate) shared: Arc<Shared>,
    /// Fired at teardown: every surface fails afterwards and every task of the plugin stops.
    pub(crate) revoked: CancellationToken,
    pub(crate) scheduler: super::scheduler::Tasks,
}

/// A plugin's handle on the runtime: cheap to clone; all clones are revoked together.
#[derive(Clone)]
pub struct PluginContext {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for PluginContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginContext")
            .field("plugin", &self.inner.grant.plugin().as_str())
            .field("revoked", &self.is_revoked())
            .finish_non_exhaustive()
    }
}

impl PluginContext {
    pub(crate) fn new(grant: Grant, shared: Arc<Shared>) -> Self {
        Self {
            inner: Arc::new(Inner {
                grant,
                shared,
                revoked: CancellationToken::new(),
                scheduler: super::scheduler::Tasks::default(),
            }),
        }
    }

    /// The plugin's name.
    pub fn plugin(&self) -> &PluginName {
        self.inner.grant.plugin()
    }

    /// The effective grant (read-only).
    pub fn grant(&self) -> &Grant {
        &self.inner.grant
    }

    /// The plugin's configuration from its policy entry (`config`), if any.
    pub fn config(&self) -> Option<&Value> {
        self.inner.grant.config()
    }

    /// Whether the context was revoked.
    pub fn is_revoked(&self) -> bool {
        self.inner.revoked.is_cancelled()
    }

    /// Resolves once the context is revoked (for a plugin's own long-running loops).
    pub async fn revoked(&self) {
        self.inner.revoked.cancelled().await;
    }

    /// The call-time check every surface runs first: revoked → `context_revoked`; not granted
    /// → `capability_not_granted`. Both are audited.
    pub(crate) fn check(&self, capability: Capability) -> Result<(), PluginError> {
        let plugin = self.plugin().as_str();
        let violation = if self.is_revoked() {
            CapabilityViolation::new(CapabilityViolationReason::Revoked, plugin, capability)
        } else {
            match self.inner.grant.require(capability) {
                Ok(()) => return Ok(()),
                Err(v) => v,
            }
        };
        self.audit(violation.reason.as_str(), violation.to_string());
        Err(PluginError::Denied(violation.into()))
    }

    /// Writes one audit record.
    pub(crate) fn audit(&self, reason: &'static str, message: String) {
        self.inner.shared.audit.record(self.plugin().as_str(), reason, message);
    }

    /// Audits and wraps a `plugin-api` error (an outbound refusal, …).
    pub(crate) fn deny(&self, e: plugin_api::Error) -> PluginError {
        self.audit(e.reason(), e.to_string());
        PluginError::Denied(e)
    }

    /// Revokes the context: every surface fails afterwards, scheduled tasks and event streams
    /// stop, routes and notification handlers are removed.
    pub(crate) fn revoke(&self) {
        self.inner.revoked.cancel();
        let plugin = self.plugin().as_str().to_owned();
        self.inner.shared.routes.remove_plugin(&plugin);
        self.inner.shared.notifications.lock().retain(|_, (ctx, _)| ctx.plugin().as_str() != plugin);
    }

    /// `agents.register`: ARCP agents named `<plugin>.<agent>`.
    pub fn agents(&self) -> Agents<'_> {
        Agents { ctx: self }
    }

    /// `routes`: HTTP routes under the plugin's mount point.
    pub fn routes(&self) -> Routes<'_> {
        Routes { ctx: self }
    }

    /// `storage.kv`: the plugin's own key/value namespace.
    pub fn storage(&self) -> Storage<'_> {
        Storage { ctx: self }
    }

    /// `http.outbound`: audited outbound HTTP to the allowlisted hosts.
    pub fn http(&self) -> Http<'_> {
        Http { ctx: self }
    }

    /// `notifications`: claim a notification kind.
    pub fn notifications(&self) -> Notifications<'_> {
        Notifications { ctx: self }
    }

    /// `scheduler`: named interval and one-shot tasks, cancelled at teardown.
    pub fn scheduler(&self) -> Scheduler<'_> {
        Scheduler { ctx: self }
    }

    /// `session.events`: the job lifecycle feed.
    pub fn session_events(&self) -> SessionEvents<'_> {
        SessionEvents { ctx: self }
    }

    /// `secrets.mtls`: opaque references to provisioned client certificates.
    pub fn secrets(&self) -> Secrets<'_> {
        Secrets { ctx: self }
    }
}

/// The `agents.register` surface.
#[derive(Debug)]
pub struct Agents<'a> {
    ctx: &'a PluginContext,
}

impl Agents<'_> {
    /// Registers `agent` as `<plugin>.<name>`. Only during `init` (the runtime's agent
    /// registry is fixed once it is built); afterwards, an `invalid_argument` error. Calls of
    /// the agent after teardown end the job with an error.
    pub fn register(&self, name: &str, agent: impl Agent) -> Result<String, PluginError> {
        self.ctx.check(Capability::AgentsRegister)?;
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid {
            return Err(PluginError::Invalid(format!(
                "agent name {:?} must be 1..=64 of [a-z0-9_-]",
                name.chars().take(80).collect::<String>()
            )));
        }
        let full = self.ctx.plugin().agent_name(name);
        let mut pending = self.ctx.inner.shared.pending_agents.lock();
        let Some(list) = pending.as_mut() else {
            return Err(PluginError::Invalid("agents can only be registered during init".to_owned()));
        };
        let mine = list.iter().filter(|(_, c, _)| c.plugin() == self.ctx.plugin()).count();
        if mine >= MAX_AGENTS_PER_PLUGIN {
            return Err(PluginError::Invalid(format!("at most {MAX_AGENTS_PER_PLUGIN} agents per plugin")));
        }
        if list.iter().any(|(n, _, _)| *n == full) {
            return Err(PluginError::Invalid(format!("agent `{full}` is already registered")));
        }
        list.push((full.clone(), self.ctx.clone(), Arc::new(agent)));
        Ok(full)
    }
}

/// The `notifications` surface.
#[derive(Debug)]
pub struct Notifications<'a> {
    ctx: &'a PluginContext,
}

impl Notifications<'_> {
    /// Claims `kind` with `handler`: one handler per kind across all plugins
    /// (`duplicate_notification_kind` otherwise).
    pub fn claim(&self, kind: &str, handler: impl Fn(Value) + Send + Sync + 'static) -> Result<(), PluginError> {
        self.ctx.check(Capability::Notifications)?;
        if kind.is_empty() || kind.len() > 128 {
            return Err(PluginError::Invalid("a notification kind is 1..=128 bytes".to_owned()));
        }
        self.ctx
            .inner
            .shared
            .roster
            .lock()
            .claim_notification_kind(self.ctx.grant(), kind)
            .map_err(|e| self.ctx.deny(e))?;
        self.ctx.inner.shared.notifications.lock().insert(kind.to_owned(), (self.ctx.clone(), Arc::new(handler)));
        Ok(())
    }
}

/// An opaque reference to an operator-provisioned mTLS client certificate: it names the
/// secret, never holds the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtlsRef {
    plugin: String,
    name: SecretName,
}

impl MtlsRef {
    /// The secret's logical name.
    pub fn name(&self) -> &SecretName {
        &self.name
    }
    /// The plugin it was issued to.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }
}

/// The `secrets.mtls` surface.
#[derive(Debug)]
pub struct Secrets<'a> {
    ctx: &'a PluginContext,
}

impl Secrets<'_> {
    /// The reference to secret `name`, if it was provisioned for this plugin.
    pub fn mtls(&self, name: &str) -> Result<MtlsRef, PluginError> {
        self.ctx.check(Capability::SecretsMtls)?;
        self.ctx
            .grant()
            .mtls_secrets()
            .keys()
            .find(|k| k.as_str() == name)
            .map(|k| MtlsRef { plugin: self.ctx.plugin().to_string(), name: k.clone() })
            .ok_or_else(|| PluginError::Invalid(format!("no mTLS secret `{name}` is provisioned for this plugin")))
    }
}
