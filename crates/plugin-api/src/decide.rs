//! The load decision: [`decide`] turns a validated manifest, the plugin's policy entry and its
//! [`Origin`] into the effective [`Grant`] or a [`PluginRefused`]; [`Grant`] answers the
//! call-time questions; [`Roster`] holds the checks across plugins (names, schema prefixes,
//! notification kinds). All pure: facts the runtime gathers (is this file readable?) come in
//! as arguments.
//!
//! Order of the checks in [`decide`] (the first failure is reported):
//! 1. the plugin itself: `api_version_incompatible`, `builtin_only` (an external plugin
//!    *requests* a builtin-only capability: it can never work as written),
//!    `absolute_route_denied` (an external plugin asks for an absolute route prefix);
//! 2. the policy: `policy_missing`, `disabled`, `policy_version_mismatch`;
//! 3. drift between them: `policy_capability_drift` (grant ⊄ requested),
//!    `policy_outbound_host_drift` (a policy pattern intersecting no manifest pattern),
//!    `policy_mtls_secret_drift` (provisioned ≠ declared, when `secrets.mtls` is granted);
//! 4. `external_root_combination`: an external plugin's grant holds a root-equivalent
//!    combination the entry does not acknowledge.
//!
//! Before [`decide`]: [`refuse_manifest`] (`manifest_invalid`, or `schema_prefix_invalid` when
//! every problem is about `/schemaPrefix`). After it, in the runtime: [`Grant::verify_mtls_files`]
//! (`mtls_secret_unreadable`), [`Roster::admit`] (`duplicate_name`, `schema_prefix_invalid` on
//! overlap) and [`Roster::claim_notification_kind`] (`duplicate_notification_kind`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::capability::{Capability, RootCombination};
use crate::error::{
    CapabilityViolation, CapabilityViolationReason, DbScopeReason, DbScopeViolation, Error, OutboundHostReason,
    OutboundHostViolation, PluginRefused, RefusalReason,
};
use crate::host::{HostPattern, normalize_host};
use crate::manifest::{Manifest, RoutePrefix, ValidManifest, validate_manifest};
use crate::names::{PluginName, SchemaPrefix, SecretName};
use crate::policy::{MtlsFiles, ValidPolicyEntry};
use crate::problem::{Format, Problem};
use crate::version::check_api_compatible;

/// Where a plugin comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Origin {
    /// Compiled into and shipped with the runtime (reviewed with it).
    Builtin,
    /// Anything else.
    External,
}

/// What a loaded plugin may do: the effective grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    plugin: PluginName,
    origin: Origin,
    capabilities: BTreeSet<Capability>,
    outbound_hosts: BTreeSet<HostPattern>,
    mtls_secrets: BTreeMap<SecretName, MtlsFiles>,
    mount_point: Option<String>,
    schema_prefix: Option<SchemaPrefix>,
    root_equivalent: Vec<RootCombination>,
    allow_private_addresses: bool,
    config: Option<serde_json::Value>,
}

fn refused(reason: RefusalReason, m: &ValidManifest, message: String) -> PluginRefused {
    PluginRefused::new(reason, Some(m.name().as_str()), message)
}

fn list<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items.into_iter().map(|i| format!("`{}`", i.to_string())).collect::<Vec<_>>().join(", ")
}

/// Refuses a manifest that failed to parse or validate: `schema_prefix_invalid` when every
/// problem concerns `/schemaPrefix`, `manifest_invalid` otherwise. `name` is the manifest's
/// name as written, if known.
pub fn refuse_manifest(name: Option<&str>, problems: Vec<Problem>) -> PluginRefused {
    let who = name.map_or_else(|| "plugin".to_owned(), |n| format!("plugin `{n}`"));
    let summary = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    let prefix_only = !problems.is_empty() && problems.iter().all(|p| p.path == "/schemaPrefix");
    let (reason, remediation) = if prefix_only {
        (RefusalReason::SchemaPrefixInvalid, "fix the manifest's `schemaPrefix` (`<name with - as _>_…_`)")
    } else {
        (RefusalReason::ManifestInvalid, "fix the plugin's manifest (ask its author)")
    };
    PluginRefused::new(reason, name, format!("{who}: invalid manifest: {summary}"))
        .with_remediation(remediation)
        .with_problems(problems)
}

/// Reads and validates a manifest in one step, refusing it as [`refuse_manifest`] does.
pub fn load_manifest(text: &str, format: Format) -> Result<ValidManifest, PluginRefused> {
    let manifest = Manifest::parse(text, format).map_err(|p| refuse_manifest(None, p))?;
    validate_manifest(&manifest).map_err(|p| refuse_manifest(Some(&manifest.name), p))
}

/// The load decision (see the module docs for the order of the checks). `entry` is the
/// plugin's policy entry, `None` if the policy has none.
pub fn decide(
    manifest: &ValidManifest,
    entry: Option<&ValidPolicyEntry>,
    origin: Origin,
) -> Result<Grant, PluginRefused> {
    let m = manifest;
    let name = m.name().as_str();
    check_api_compatible(name, m.api_version())?;

    if origin == Origin::External {
        let only: Vec<Capability> = m.capabilities().iter().copied().filter(|c| c.is_builtin_only()).collect();
        if !only.is_empty() {
            return Err(refused(
                RefusalReason::BuiltinOnly,
                m,
                format!("plugin `{name}` is external but requests builtin-only {}", list(&only)),
            )
            .with_remediation(
                "remove the capability from the manifest; only plugins built into the runtime may hold it",
            ));
        }
        if let RoutePrefix::Absolute(prefix) = m.route_prefix() {
            return Err(refused(
                RefusalReason::AbsoluteRouteDenied,
                m,
                format!("plugin `{name}` is external but asks for the absolute route prefix `{prefix}`"),
            )
            .with_remediation(format!("use `routePrefix = \"auto\"` (mounted at {})", m.name().auto_route_prefix())));
        }
    }

    let Some(entry) = entry else {
        return Err(refused(RefusalReason::PolicyMissing, m, format!("the operator policy has no entry for `{name}`"))
            .with_remediation(format!(
                "add `[plugins.{name}]` with `enabled` and `grant` to the policy (requested: {})",
                list(m.capabilities())
            )));
    };
    if !entry.enabled() {
        return Err(refused(RefusalReason::Disabled, m, format!("plugin `{name}` is disabled by policy"))
            .with_remediation(format!("set `enabled = true` in `[plugins.{name}]` to load it")));
    }
    if let Some(pinned) = entry.version()
        && pinned != m.version()
    {
        return Err(refused(
            RefusalReason::PolicyVersionMismatch,
            m,
            format!("the policy pins `{name}` to version {pinned} but the installed plugin is {}", m.version()),
        )
        .with_remediation(format!("review version {} and update the pin, or install {pinned}", m.version())));
    }

    let drift: Vec<Capability> = entry.grant().difference(m.capabilities()).copied().collect();
    if !drift.is_empty() {
        return Err(refused(
            RefusalReason::PolicyCapabilityDrift,
            m,
            format!("the policy grants `{name}` {} which its manifest does not request", list(&drift)),
        )
        .with_remediation("remove them from `grant` (the plugin changed since the policy was written)"));
    }
    let capabilities = entry.grant().clone();

    let mut outbound_hosts = BTreeSet::new();
    if capabilities.contains(&Capability::HttpOutbound) {
        let mut stale = Vec::new();
        for p in entry.outbound_hosts() {
            let hits: Vec<HostPattern> = m.outbound_hosts().iter().filter_map(|mp| mp.intersect(p)).collect();
            if hits.is_empty() {
                stale.push(p.to_string());
            }
            outbound_hosts.extend(hits);
        }
        if !stale.is_empty() {
            return Err(refused(
                RefusalReason::PolicyOutboundHostDrift,
                m,
                format!(
                    "the policy allows `{name}` to reach {} which its manifest does not ask for (manifest: {})",
                    list(&stale),
                    list(m.outbound_hosts())
                ),
            )
            .with_remediation("remove those hosts from the policy's `outboundHosts`"));
        }
    }

    let mut mtls_secrets = BTreeMap::new();
    if capabilities.contains(&Capability::SecretsMtls) {
        let provisioned: BTreeSet<&SecretName> = entry.mtls_secrets().keys().collect();
        let declared: BTreeSet<&SecretName> = m.mtls_secrets().iter().collect();
        if provisioned != declared {
            let extra: Vec<&&SecretName> = provisioned.difference(&declared).collect();
            let missing: Vec<&&SecretName> = declared.difference(&provisioned).collect();
            return Err(refused(
                RefusalReason::PolicyMtlsSecretDrift,
                m,
                format!(
                    "mTLS secrets for `{name}` differ: provisioned but not declared: [{}]; declared but not \
                     provisioned: [{}]",
                    list(extra),
                    list(missing)
                ),
            )
            .with_remediation("provision exactly the manifest's `mtlsSecrets` in the policy's `mtlsSecrets`"));
        }
        mtls_secrets = entry.mtls_secrets().clone();
    }

    let root_equivalent = RootCombination::all_within(&capabilities);
    if origin == Origin::External {
        let unacknowledged: Vec<RootCombination> =
            root_equivalent.iter().copied().filter(|c| !entry.acknowledged().contains(c)).collect();
        if let Some(first) = unacknowledged.first() {
            return Err(refused(
                RefusalReason::ExternalRootCombination,
                m,
                format!(
                    "external plugin `{name}` would hold the root-equivalent combination{} {} ({})",
                    if unacknowledged.len() == 1 { "" } else { "s" },
                    list(&unacknowledged),
                    first.why()
                ),
            )
            .with_remediation(format!(
                "grant less, or add {} to `acknowledgeRootEquivalent` if you accept that",
                list(&unacknowledged)
            )));
        }
    }

    let mount_point = capabilities.contains(&Capability::Routes).then(|| match m.route_prefix() {
        RoutePrefix::Absolute(p) => format!("{p}/"),
        RoutePrefix::Auto => m.name().auto_route_prefix(),
    });
    let capabilities_allow_outbound = capabilities.contains(&Capability::HttpOutbound);
    let schema_prefix = capabilities.contains(&Capability::DbMigrations).then(|| m.schema_prefix().cloned()).flatten();

    Ok(Grant {
        plugin: m.name().clone(),
        origin,
        capabilities,
        outbound_hosts,
        mtls_secrets,
        mount_point,
        schema_prefix,
        root_equivalent,
        allow_private_addresses: entry.allow_private_addresses() && capabilities_allow_outbound,
        config: entry.config().cloned(),
    })
}

impl Grant {
    /// The plugin.
    pub fn plugin(&self) -> &PluginName {
        &self.plugin
    }
    /// Builtin or external.
    pub fn origin(&self) -> Origin {
        self.origin
    }
    /// The capabilities granted (⊆ requested).
    pub fn capabilities(&self) -> &BTreeSet<Capability> {
        &self.capabilities
    }
    /// Whether `capability` is granted.
    pub fn allows(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }
    /// The effective outbound allowlist, manifest ∩ policy (empty without `http.outbound`).
    pub fn outbound_hosts(&self) -> &BTreeSet<HostPattern> {
        &self.outbound_hosts
    }
    /// The provisioned mTLS files by secret name (empty without `secrets.mtls`).
    pub fn mtls_secrets(&self) -> &BTreeMap<SecretName, MtlsFiles> {
        &self.mtls_secrets
    }
    /// Where routes are mounted (with a trailing `/`), if `routes` is granted.
    pub fn mount_point(&self) -> Option<&str> {
        self.mount_point.as_deref()
    }
    /// The schema prefix, if `db.migrations` is granted.
    pub fn schema_prefix(&self) -> Option<&SchemaPrefix> {
        self.schema_prefix.as_ref()
    }
    /// The root-equivalent combinations held (acknowledged, or held by a builtin); the runtime
    /// logs them at load.
    pub fn root_equivalent(&self) -> &[RootCombination] {
        &self.root_equivalent
    }

    /// Whether outbound calls may reach private and loopback addresses (the policy's
    /// **test-only** `allowPrivateAddresses`; always `false` without `http.outbound`).
    pub fn allow_private_addresses(&self) -> bool {
        self.allow_private_addresses
    }
    /// The plugin-specific configuration from the policy entry, if any.
    pub fn config(&self) -> Option<&serde_json::Value> {
        self.config.as_ref()
    }

    /// `Ok` if `capability` is granted, else the violation to raise (and audit).
    pub fn require(&self, capability: Capability) -> Result<(), CapabilityViolation> {
        if self.allows(capability) {
            Ok(())
        } else {
            Err(CapabilityViolation::new(CapabilityViolationReason::NotGranted, self.plugin.as_str(), capability))
        }
    }

    /// The pre-flight check of one outbound request (and of every redirect): `http.outbound`
    /// granted, scheme `http` or `https` (ASCII case-insensitive), host in the effective
    /// allowlist. Address checks after resolution are the runtime's
    /// (`is_forbidden_address`).
    pub fn check_outbound(&self, scheme: &str, host: &str) -> Result<(), Error> {
        self.require(Capability::HttpOutbound)?;
        let violation = |reason, target: &str| OutboundHostViolation {
            reason,
            plugin: self.plugin.to_string(),
            target: target.chars().take(256).collect(),
        };
        if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
            return Err(violation(OutboundHostReason::SchemeNotAllowed, scheme).into());
        }
        let Ok(normal) = normalize_host(host) else {
            return Err(violation(OutboundHostReason::InvalidUrl, host).into());
        };
        if self.outbound_hosts.iter().any(|p| p.matches_normalized(&normal)) {
            Ok(())
        } else {
            Err(violation(OutboundHostReason::HostNotAllowed, &normal).into())
        }
    }

    /// Whether a database object name lies in the plugin's schema prefix; the violation
    /// otherwise (also without `db.migrations`, which the caller checks first with
    /// [`Grant::require`]).
    pub fn check_db_object(&self, object: &str) -> Result<(), DbScopeViolation> {
        match &self.schema_prefix {
            Some(p) if p.contains(object) => Ok(()),
            p => Err(DbScopeViolation {
                reason: DbScopeReason::OutsideSchemaPrefix,
                plugin: self.plugin.to_string(),
                object: object.chars().take(256).collect(),
                schema_prefix: p.as_ref().map(ToString::to_string).unwrap_or_default(),
            }),
        }
    }

    /// `mtls_secret_unreadable` if any provisioned file cannot be read. The runtime passes
    /// `readable`, which tries a path and says why it failed; every failure is reported.
    pub fn verify_mtls_files(&self, mut readable: impl FnMut(&str) -> Result<(), String>) -> Result<(), PluginRefused> {
        let mut failures = Vec::new();
        for (name, files) in &self.mtls_secrets {
            for (what, path) in [("certFile", &files.cert_file), ("keyFile", &files.key_file)] {
                if let Err(why) = readable(path) {
                    failures.push(format!("`{name}` {what} {path:?}: {why}"));
                }
            }
        }
        if failures.is_empty() {
            return Ok(());
        }
        Err(PluginRefused::new(
            RefusalReason::MtlsSecretUnreadable,
            Some(self.plugin.as_str()),
            format!("mTLS files for `{}` cannot be read: {}", self.plugin, failures.join("; ")),
        )
        .with_remediation("provision the files, readable by the runtime's user, at the paths in the policy"))
    }
}

/// The checks across plugins: one name per plugin, non-overlapping schema prefixes, one
/// handler per notification kind. The runtime admits each granted plugin, then lets it claim
/// kinds during init.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    plugins: BTreeMap<PluginName, Option<SchemaPrefix>>,
    kinds: BTreeMap<String, PluginName>,
}

impl Roster {
    /// An empty roster.
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits a plugin: `duplicate_name` if one with its name is in, `schema_prefix_invalid`
    /// if its schema prefix overlaps another's (one would name the other's tables).
    pub fn admit(&mut self, grant: &Grant) -> Result<(), PluginRefused> {
        let name = grant.plugin();
        if self.plugins.contains_key(name) {
            return Err(PluginRefused::new(
                RefusalReason::DuplicateName,
                Some(name.as_str()),
                format!("a plugin named `{name}` is already loaded"),
            )
            .with_remediation("install only one plugin with this name"));
        }
        if let Some(prefix) = grant.schema_prefix() {
            let clash = self
                .plugins
                .iter()
                .find_map(|(other, p)| p.as_ref().filter(|p| p.overlaps(prefix)).map(|p| (other, p)));
            if let Some((other, theirs)) = clash {
                return Err(PluginRefused::new(
                    RefusalReason::SchemaPrefixInvalid,
                    Some(name.as_str()),
                    format!("schema prefix `{prefix}` of `{name}` overlaps `{theirs}` of `{other}`"),
                )
                .with_remediation("choose a schema prefix that neither starts nor is started by another's"));
            }
        }
        self.plugins.insert(name.clone(), grant.schema_prefix().cloned());
        Ok(())
    }

    /// Claims a notification kind for a plugin: a [`CapabilityViolation`] without
    /// `notifications`, `duplicate_notification_kind` if another plugin (or this one) holds it.
    pub fn claim_notification_kind(&mut self, grant: &Grant, kind: &str) -> Result<(), Error> {
        grant.require(Capability::Notifications)?;
        if let Some(owner) = self.kinds.get(kind) {
            return Err(PluginRefused::new(
                RefusalReason::DuplicateNotificationKind,
                Some(grant.plugin().as_str()),
                format!("notification kind `{kind}` is already claimed by `{owner}`"),
            )
            .with_remediation("disable one of the two plugins; a kind has exactly one handler")
            .into());
        }
        self.kinds.insert(kind.to_owned(), grant.plugin().clone());
        Ok(())
    }

    /// The owner of a notification kind.
    pub fn notification_owner(&self, kind: &str) -> Option<&PluginName> {
        self.kinds.get(kind)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::policy::{Policy, validate_policy};

    fn manifest(v: serde_json::Value) -> ValidManifest {
        validate_manifest(&Manifest::from_value(&v).unwrap()).unwrap()
    }

    fn entry(v: serde_json::Value) -> ValidPolicyEntry {
        let p = validate_policy(&Policy::from_value(&json!({"plugins": {"demo": v}})).unwrap()).unwrap();
        p.entry(&PluginName::parse("demo").unwrap()).unwrap().clone()
    }

    fn reason(r: Result<Grant, PluginRefused>) -> &'static str {
        r.unwrap_err().reason.as_str()
    }

    #[test]
    fn plugin_checks_come_before_policy_checks() {
        let m = manifest(json!({"name": "demo", "version": "1.0.0", "apiVersion": "2.0.0", "capabilities": []}));
        assert_eq!(reason(decide(&m, None, Origin::Builtin)), "api_version_incompatible");
        let m = manifest(json!({"name": "demo", "version": "1.0.0", "apiVersion": "1.0.0",
            "capabilities": ["db.migrations"], "schemaPrefix": "demo_"}));
        assert_eq!(reason(decide(&m, None, Origin::External)), "builtin_only");
        assert_eq!(reason(decide(&m, None, Origin::Builtin)), "policy_missing");
    }

    #[test]
    fn disabled_wins_over_drift() {
        let m = manifest(json!({"name": "demo", "version": "1.0.0", "apiVersion": "1.0.0", "capabilities": []}));
        let e = entry(json!({"enabled": false, "version": "9.9.9", "grant": ["routes"]}));
        assert_eq!(reason(decide(&m, Some(&e), Origin::External)), "disabled");
    }

    #[test]
    fn requested_but_not_granted_is_fine_and_not_allowed() {
        let m = manifest(json!({"name": "demo", "version": "1.0.0", "apiVersion": "1.0.0",
            "capabilities": ["routes", "storage.kv", "http.outbound"], "outboundHosts": ["x.example"]}));
        let g = decide(&m, Some(&entry(json!({"enabled": true, "grant": ["storage.kv"]}))), Origin::External).unwrap();
        assert!(g.require(Capability::StorageKv).is_ok());
        assert_eq!(g.require(Capability::Routes).unwrap_err().reason.as_str(), "capability_not_granted");
        assert_eq!(g.mount_point(), None);
        assert!(g.outbound_hosts().is_empty());
        assert_eq!(g.check_outbound("https", "x.example").unwrap_err().reason(), "capability_not_granted");
    }

    #[test]
    fn effective_allowlist_is_the_intersection() {
        let m = manifest(json!({"name": "demo", "version": "1.0.0", "apiVersion": "1.0.0",
            "capabilities": ["http.outbound"], "outboundHosts": ["*.x.example", "y.example"]}));
        let e =
            entry(json!({"enabled": true, "grant": ["http.outbound"], "outboundHosts": ["a.x.example", "y.example"]}));
        let g = decide(&m, Some(&e), Origin::External).unwrap();
        let hosts: Vec<String> = g.outbound_hosts().iter().map(ToString::to_string).collect();
        assert_eq!(hosts, ["a.x.example", "y.example"]);
        assert!(g.check_outbound("HTTPS", "a.x.example.").is_ok());
        assert_eq!(g.check_outbound("https", "b.x.example").unwrap_err().reason(), "host_not_allowed");
        assert_eq!(g.check_outbound("https", "a b").unwrap_err().reason(), "invalid_url");
    }

    #[test]
    fn invalid_manifests_are_refused_with_every_problem() {
        let r = refuse_manifest(Some("x"), vec![Problem::new("/name", "a"), Problem::new("/schemaPrefix", "b")]);
        assert_eq!((r.reason.as_str(), r.problems.len()), ("manifest_invalid", 2));
        let r = refuse_manifest(Some("x"), vec![Problem::new("/schemaPrefix", "b")]);
        assert_eq!(r.reason.as_str(), "schema_prefix_invalid");
        let r = load_manifest("{", Format::Json).unwrap_err();
        assert_eq!(r.reason.as_str(), "manifest_invalid");
    }
}
