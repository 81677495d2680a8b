//! [`Capability`]: the closed list of what a plugin may ask for, each mapped to exactly one
//! surface of the plugin context; the [`BUILTIN_ONLY`] set; and the [`RootCombination`]s.
//!
//! | capability | surface (`ctx.…`) | what it allows |
//! |---|---|---|
//! | `agents.register` | `ctx.agents` | register ARCP agents, namespaced `<plugin>.<agent>` |
//! | `routes` | `ctx.routes` | HTTP routes under the plugin's prefix (`/plugins/<name>/` unless an absolute prefix is allowed) |
//! | `storage.kv` | `ctx.storage` | namespaced key/value store (`get`/`set`/`delete`/`list(prefix)`), filtered by plugin id server-side |
//! | `http.outbound` | `ctx.http` | audited outbound HTTP(S) to hosts in manifest ∩ policy; every resolved address checked; pinned connection; ≤ 3 redirects; 10 s / 1 MiB defaults, 30 s / 5 MiB caps |
//! | `notifications` | `ctx.notifications` | claim a notification kind (one handler per kind) |
//! | `scheduler` | `ctx.scheduler` | named 5-field UTC cron and interval jobs, cancelled by core at teardown |
//! | `session.events` | `ctx.session_events` | subscribe to job lifecycle events (accepted, event, result, error) |
//! | `secrets.mtls` | `ctx.secrets` | opaque references to operator-provisioned client certificates, never the bytes |
//! | `db.migrations` | `ctx.migrations` | the plugin's own SQL migrations inside its `schemaPrefix` |
//!
//! **Builtin-only** ([`BUILTIN_ONLY`]): `db.migrations`. A migration is SQL executed with the
//! runtime's own database role; the `schemaPrefix` is checked lexically on the names a
//! migration declares, which a determined plugin can sidestep (dynamic SQL, triggers, views
//! over core tables). On its own it is therefore root-equivalent over the runtime's data, so
//! only plugins compiled into and reviewed with the runtime may hold it.
//!
//! **Root-equivalent combinations** ([`RootCombination`]): pairs that together amount to the
//! runtime's own authority over its data. An *external* plugin holding one is refused
//! (`external_root_combination`) unless the policy entry acknowledges that exact combination;
//! a builtin plugin holds it without an acknowledgement (compiled-in code already runs with
//! the runtime's full authority: the membrane is not a sandbox for it), but the grant still
//! reports it so the runtime can log it.
//! - `db.migrations` + `http.outbound`: read or rewrite any table, and send it out.
//! - `session.events` + `http.outbound`: every principal's job inputs, events and results,
//!   across all sessions, and a way to send them out (the `webhooks` plugin is exactly this,
//!   which is why a deployment has to say so).
//!
//! Deliberately **not** root-equivalent: `secrets.mtls` + `http.outbound` (the certificate is
//! presented only to hosts in manifest ∩ policy and the plugin never holds the key bytes; the
//! operator already chose that blast radius when provisioning the secret for this plugin), and
//! `storage.kv` with anything (the store is filtered by plugin id, so it holds only the
//! plugin's own data).

use std::collections::BTreeSet;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One capability a plugin may request and an operator may grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub enum Capability {
    /// Register ARCP agents (namespaced `<plugin>.<agent>`).
    #[serde(rename = "agents.register")]
    AgentsRegister,
    /// HTTP routes under the plugin's prefix.
    #[serde(rename = "routes")]
    Routes,
    /// A key/value store namespaced by plugin id.
    #[serde(rename = "storage.kv")]
    StorageKv,
    /// Audited outbound HTTP to allowlisted hosts.
    #[serde(rename = "http.outbound")]
    HttpOutbound,
    /// Claim a notification kind.
    #[serde(rename = "notifications")]
    Notifications,
    /// Named cron and interval jobs.
    #[serde(rename = "scheduler")]
    Scheduler,
    /// Subscribe to job lifecycle events.
    #[serde(rename = "session.events")]
    SessionEvents,
    /// Opaque references to operator-provisioned mTLS client certificates.
    #[serde(rename = "secrets.mtls")]
    SecretsMtls,
    /// The plugin's own SQL migrations inside its schema prefix (builtin-only).
    #[serde(rename = "db.migrations")]
    DbMigrations,
}

/// The surface a capability unlocks in the plugin context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Surface {
    /// The context member (`ctx.storage`, …).
    pub context: &'static str,
    /// One line on what it allows.
    pub summary: &'static str,
}

/// Capabilities granted only to builtin plugins (see the module docs for why).
pub const BUILTIN_ONLY: &[Capability] = &[Capability::DbMigrations];

impl Capability {
    /// Every capability, in documentation order.
    pub const ALL: [Self; 9] = [
        Self::AgentsRegister,
        Self::Routes,
        Self::StorageKv,
        Self::HttpOutbound,
        Self::Notifications,
        Self::Scheduler,
        Self::SessionEvents,
        Self::SecretsMtls,
        Self::DbMigrations,
    ];

    /// The wire name (`storage.kv`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AgentsRegister => "agents.register",
            Self::Routes => "routes",
            Self::StorageKv => "storage.kv",
            Self::HttpOutbound => "http.outbound",
            Self::Notifications => "notifications",
            Self::Scheduler => "scheduler",
            Self::SessionEvents => "session.events",
            Self::SecretsMtls => "secrets.mtls",
            Self::DbMigrations => "db.migrations",
        }
    }

    /// The capability with this wire name, if any (exact, case-sensitive).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The one surface this capability unlocks.
    pub const fn surface(self) -> Surface {
        let (context, summary) = match self {
            Self::AgentsRegister => ("ctx.agents", "register ARCP agents, namespaced `<plugin>.<agent>`"),
            Self::Routes => ("ctx.routes", "HTTP routes under the plugin's prefix"),
            Self::StorageKv => ("ctx.storage", "key/value store filtered by plugin id"),
            Self::HttpOutbound => ("ctx.http", "audited outbound HTTP to manifest ∩ policy hosts"),
            Self::Notifications => ("ctx.notifications", "claim a notification kind"),
            Self::Scheduler => ("ctx.scheduler", "named UTC cron and interval jobs"),
            Self::SessionEvents => ("ctx.session_events", "job lifecycle events"),
            Self::SecretsMtls => ("ctx.secrets", "opaque mTLS client-certificate references"),
            Self::DbMigrations => ("ctx.migrations", "own SQL migrations inside the schema prefix"),
        };
        Surface { context, summary }
    }

    /// Whether only builtin plugins may hold this capability.
    pub fn is_builtin_only(self) -> bool {
        BUILTIN_ONLY.contains(&self)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pair of capabilities that together are root-equivalent (see the module docs). Written
/// `a+b` in policies (`acknowledgeRootEquivalent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[non_exhaustive]
pub enum RootCombination {
    /// Own SQL plus outbound HTTP: read or rewrite any table, and send it out.
    #[serde(rename = "db.migrations+http.outbound")]
    DbMigrationsHttpOutbound,
    /// Every principal's job traffic plus outbound HTTP: send all of it out.
    #[serde(rename = "session.events+http.outbound")]
    SessionEventsHttpOutbound,
}

impl RootCombination {
    /// Every root-equivalent combination.
    pub const ALL: [Self; 2] = [Self::DbMigrationsHttpOutbound, Self::SessionEventsHttpOutbound];

    /// The policy spelling (`db.migrations+http.outbound`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DbMigrationsHttpOutbound => "db.migrations+http.outbound",
            Self::SessionEventsHttpOutbound => "session.events+http.outbound",
        }
    }

    /// The combination with this policy spelling, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The two capabilities.
    pub const fn capabilities(self) -> [Capability; 2] {
        match self {
            Self::DbMigrationsHttpOutbound => [Capability::DbMigrations, Capability::HttpOutbound],
            Self::SessionEventsHttpOutbound => [Capability::SessionEvents, Capability::HttpOutbound],
        }
    }

    /// Why the pair is root-equivalent, for messages.
    pub const fn why(self) -> &'static str {
        match self {
            Self::DbMigrationsHttpOutbound => "arbitrary SQL over the runtime's database plus a way to send data out",
            Self::SessionEventsHttpOutbound => {
                "every principal's job inputs, events and results plus a way to send them out"
            }
        }
    }

    /// Whether `set` holds both capabilities.
    pub fn is_within(self, set: &BTreeSet<Capability>) -> bool {
        self.capabilities().iter().all(|c| set.contains(c))
    }

    /// Every root-equivalent combination held by `set`.
    pub fn all_within(set: &BTreeSet<Capability>) -> Vec<Self> {
        Self::ALL.into_iter().filter(|c| c.is_within(set)).collect()
    }
}

impl fmt::Display for RootCombination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_parse() {
        for c in Capability::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
            assert_eq!(Capability::parse(c.as_str()), Some(c));
            assert_eq!(serde_json::from_value::<Capability>(c.as_str().into()).unwrap(), c);
        }
        assert_eq!(Capability::parse("Storage.KV"), None);
        assert_eq!(Capability::parse("mcp.register"), None);
        for r in RootCombination::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
            assert_eq!(RootCombination::parse(r.as_str()), Some(r));
        }
    }

    #[test]
    fn every_capability_has_its_own_surface() {
        let surfaces: BTreeSet<&str> = Capability::ALL.iter().map(|c| c.surface().context).collect();
        assert_eq!(surfaces.len(), Capability::ALL.len());
    }

    #[test]
    fn builtin_only_is_db_migrations() {
        let only: Vec<Capability> = Capability::ALL.into_iter().filter(|c| c.is_builtin_only()).collect();
        assert_eq!(only, [Capability::DbMigrations]);
    }

    #[test]
    fn root_combinations_are_found_in_sets() {
        let set: BTreeSet<Capability> =
            [Capability::SessionEvents, Capability::HttpOutbound, Capability::StorageKv].into();
        assert_eq!(RootCombination::all_within(&set), [RootCombination::SessionEventsHttpOutbound]);
        let set: BTreeSet<Capability> = [Capability::SecretsMtls, Capability::HttpOutbound].into();
        assert!(RootCombination::all_within(&set).is_empty(), "mTLS + outbound is not root-equivalent");
    }
}
