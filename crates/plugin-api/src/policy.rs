//! The operator [`Policy`] (what this deployment grants each plugin), read from JSON or TOML,
//! and [`validate_policy`], which returns a [`ValidPolicy`] or **every** problem.
//!
//! ```toml
//! [plugins.webhooks]
//! enabled = true
//! version = "0.3.1"                     # optional pin: another version is refused
//! grant = ["http.outbound", "session.events", "storage.kv", "scheduler"]
//! outboundHosts = ["hooks.example.com"]   # effective allowlist = manifest ∩ policy
//! acknowledgeRootEquivalent = ["session.events+http.outbound"]
//!
//! [plugins.webhooks.config]               # free-form, read by the plugin itself at init
//! maxAttempts = 5
//!
//! [plugins.bank.mtlsSecrets.partner]
//! certFile = "/etc/arcp/partner.crt"
//! keyFile = "/etc/arcp/partner.key"
//! ```
//!
//! What can be checked without the manifest is checked here; what needs both (grant ⊆
//! requested, host and secret drift) is the load decision's job (`decide`). Reading the
//! certificate files is the runtime's.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::capability::{Capability, RootCombination};
use crate::host::HostPattern;
use crate::manifest::{HOST_PATTERN_SHAPE, host_patterns};
use crate::names::{
    PLUGIN_NAME_MAX_LEN, PLUGIN_NAME_PATTERN, PluginName, SECRET_NAME_MAX_LEN, SECRET_NAME_PATTERN, SecretName,
};
use crate::problem::{Format, Problem, Reader, child};
use crate::version::{VERSION_MAX_LEN, VERSION_PATTERN, Version};

/// Every top-level policy key.
pub const POLICY_KEYS: &[&str] = &["plugins"];
/// Every key of a plugin's policy entry (the set is closed).
pub const POLICY_ENTRY_KEYS: &[&str] = &[
    "enabled",
    "version",
    "grant",
    "outboundHosts",
    "mtlsSecrets",
    "acknowledgeRootEquivalent",
    "allowPrivateAddresses",
    "config",
];
const POLICY_ENTRY_REQUIRED: &[&str] = &["enabled", "grant"];
const MTLS_FILE_KEYS: &[&str] = &["certFile", "keyFile"];

/// The operator policy as written. Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "ARCP plugin operator policy")]
pub struct Policy {
    /// One entry per plugin, by plugin name. A plugin without an entry is not loaded
    /// (`policy_missing`).
    #[schemars(extend("propertyNames" = {
        "pattern": PLUGIN_NAME_PATTERN,
        "maxLength": PLUGIN_NAME_MAX_LEN,
    }))]
    pub plugins: BTreeMap<String, PolicyEntry>,
}

/// What the operator grants one plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyEntry {
    /// `false` refuses the plugin (`disabled`).
    pub enabled: bool,
    /// Pins the plugin's version: another version is refused (`policy_version_mismatch`), so an
    /// upgraded plugin is reviewed before it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = VERSION_PATTERN), length(max = VERSION_MAX_LEN))]
    pub version: Option<String>,
    /// The capabilities granted; must be a subset of those requested
    /// (`policy_capability_drift` otherwise).
    #[schemars(with = "Vec<Capability>", extend("uniqueItems" = true))]
    pub grant: Vec<String>,
    /// Host patterns this deployment allows; required with `http.outbound`. Each must
    /// intersect a manifest pattern (`policy_outbound_host_drift` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(regex(pattern = HOST_PATTERN_SHAPE)), length(min = 1))]
    pub outbound_hosts: Option<Vec<String>>,
    /// Certificate and key files per mTLS secret name; required with `secrets.mtls`, and must
    /// provision exactly the manifest's `mtlsSecrets` (`policy_mtls_secret_drift` otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("propertyNames" = {
        "pattern": SECRET_NAME_PATTERN,
        "maxLength": SECRET_NAME_MAX_LEN,
    }), extend("minProperties" = 1))]
    pub mtls_secrets: Option<BTreeMap<String, MtlsFiles>>,
    /// Root-equivalent combinations the operator knowingly grants to an external plugin; each
    /// must be fully granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Vec<RootCombination>>", extend("uniqueItems" = true))]
    pub acknowledge_root_equivalent: Option<Vec<String>>,
    /// **Test-only.** `true` lets the plugin's outbound calls reach private, loopback and
    /// link-local addresses (still only hosts in manifest ∩ policy); needs `http.outbound`.
    /// Never set it in production: it reopens server-side request forgery against the
    /// runtime's network. The runtime logs a warning for every plugin loaded with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_private_addresses: Option<bool>,
    /// Plugin-specific configuration, an object the plugin reads and validates at init (e.g.
    /// the `webhooks` plugin's endpoints). The policy checks only that it is an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<serde_json::Map<String, Value>>")]
    pub config: Option<Value>,
}

/// The files behind one mTLS secret (read by the runtime, never handed to the plugin).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MtlsFiles {
    /// PEM client certificate (chain).
    #[schemars(regex(pattern = r"^[^\x00]*\S[^\x00]*$"))]
    pub cert_file: String,
    /// PEM private key.
    #[schemars(regex(pattern = r"^[^\x00]*\S[^\x00]*$"))]
    pub key_file: String,
}

impl Policy {
    /// Reads a policy in `format`, reporting every shape problem.
    pub fn parse(text: &str, format: Format) -> Result<Self, Vec<Problem>> {
        let value = format.parse(text).map_err(|p| vec![p])?;
        Self::from_value(&value)
    }

    /// [`Policy::parse`] for JSON.
    pub fn from_json_str(text: &str) -> Result<Self, Vec<Problem>> {
        Self::parse(text, Format::Json)
    }

    /// [`Policy::parse`] for TOML.
    pub fn from_toml_str(text: &str) -> Result<Self, Vec<Problem>> {
        Self::parse(text, Format::Toml)
    }

    /// Reads a policy from a JSON value, reporting every shape problem.
    pub fn from_value(value: &Value) -> Result<Self, Vec<Problem>> {
        let mut r = Reader::default();
        let Some(top) = r.object(value, "", POLICY_KEYS, POLICY_KEYS) else { return Err(r.problems) };
        let mut plugins = BTreeMap::new();
        if let Some(map) = r.map(top, "plugins", "") {
            for (name, entry) in map {
                let path = child("/plugins", name);
                if let Some(e) = read_entry(&mut r, entry, &path) {
                    plugins.insert(name.clone(), e);
                }
            }
        }
        if r.problems.is_empty() { Ok(Self { plugins }) } else { Err(r.problems) }
    }
}

fn read_entry(r: &mut Reader, v: &Value, path: &str) -> Option<PolicyEntry> {
    let e = r.object(v, path, POLICY_ENTRY_KEYS, POLICY_ENTRY_REQUIRED)?;
    let enabled = r.boolean(e, "enabled", path);
    let version = r.string(e, "version", path);
    let grant = r.strings(e, "grant", path);
    let outbound_hosts = r.strings(e, "outboundHosts", path);
    let ack = r.strings(e, "acknowledgeRootEquivalent", path);
    let allow_private_addresses = r.boolean(e, "allowPrivateAddresses", path);
    let config = r.map(e, "config", path).map(|m| Value::Object(m.clone()));
    let mtls_secrets = r.map(e, "mtlsSecrets", path).map(|m| {
        let base = child(path, "mtlsSecrets");
        let mut out = BTreeMap::new();
        for (name, files) in m {
            let fpath = child(&base, name);
            if let Some(f) = r.object(files, &fpath, MTLS_FILE_KEYS, MTLS_FILE_KEYS) {
                let cert = r.string(f, "certFile", &fpath);
                let key = r.string(f, "keyFile", &fpath);
                if let (Some(cert_file), Some(key_file)) = (cert, key) {
                    out.insert(name.clone(), MtlsFiles { cert_file, key_file });
                }
            }
        }
        out
    });
    Some(PolicyEntry {
        enabled: enabled?,
        version,
        grant: grant?,
        outbound_hosts,
        mtls_secrets,
        acknowledge_root_equivalent: ack,
        allow_private_addresses,
        config,
    })
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ValidPolicy {
    plugins: BTreeMap<PluginName, ValidPolicyEntry>,
}

impl ValidPolicy {
    /// The entry for `plugin`, if any.
    pub fn entry(&self, plugin: &PluginName) -> Option<&ValidPolicyEntry> {
        self.plugins.get(plugin)
    }

    /// Every entry.
    pub fn entries(&self) -> &BTreeMap<PluginName, ValidPolicyEntry> {
        &self.plugins
    }
}

/// A validated policy entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidPolicyEntry {
    pub(crate) enabled: bool,
    pub(crate) version: Option<Version>,
    pub(crate) grant: BTreeSet<Capability>,
    pub(crate) outbound_hosts: BTreeSet<HostPattern>,
    pub(crate) mtls_secrets: BTreeMap<SecretName, MtlsFiles>,
    pub(crate) acknowledged: BTreeSet<RootCombination>,
    pub(crate) allow_private_addresses: bool,
    pub(crate) config: Option<Value>,
}

impl ValidPolicyEntry {
    /// Whether the plugin may load at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }
    /// The pinned plugin version, if any.
    pub fn version(&self) -> Option<Version> {
        self.version
    }
    /// The capabilities granted.
    pub fn grant(&self) -> &BTreeSet<Capability> {
        &self.grant
    }
    /// The normalised outbound host patterns allowed.
    pub fn outbound_hosts(&self) -> &BTreeSet<HostPattern> {
        &self.outbound_hosts
    }
    /// The mTLS files by secret name.
    pub fn mtls_secrets(&self) -> &BTreeMap<SecretName, MtlsFiles> {
        &self.mtls_secrets
    }
    /// The acknowledged root-equivalent combinations.
    pub fn acknowledged(&self) -> &BTreeSet<RootCombination> {
        &self.acknowledged
    }
    /// Whether outbound calls may reach private addresses (**test-only**, see
    /// [`PolicyEntry::allow_private_addresses`]).
    pub fn allow_private_addresses(&self) -> bool {
        self.allow_private_addresses
    }
    /// The plugin-specific configuration object, if any.
    pub fn config(&self) -> Option<&Value> {
        self.config.as_ref()
    }
}

fn file_ok(s: &str) -> bool {
    !s.trim().is_empty() && !s.contains('\0')
}

/// Validates a policy, returning **every** problem. The rules, per entry at
/// `/plugins/<name>`:
///
/// - the key is a [`PluginName`];
/// - `/version`: `major.minor.patch`;
/// - `/grant/i`: a known capability, no duplicates;
/// - `/outboundHosts/i`: a valid host pattern, no duplicates after normalisation;
///   `/outboundHosts`: non-empty if and only if `http.outbound` is granted;
/// - `/mtlsSecrets/<name>`: a [`SecretName`]; `…/certFile`, `…/keyFile`: not blank, no NUL;
///   `/mtlsSecrets`: non-empty if and only if `secrets.mtls` is granted;
/// - `/acknowledgeRootEquivalent/i`: a known combination, no duplicates, both capabilities
///   granted (an acknowledgement of something not granted is stale);
/// - `/allowPrivateAddresses`: only with `http.outbound`.
pub fn validate_policy(policy: &Policy) -> Result<ValidPolicy, Vec<Problem>> {
    let mut p = Vec::new();
    let mut plugins = BTreeMap::new();
    for (name, e) in &policy.plugins {
        let base = child("/plugins", name);
        let name = PluginName::parse(name).map_err(|m| p.push(Problem::new(&base, m))).ok();
        let version = e.version.as_deref().and_then(|v| {
            Version::parse(v).map_err(|err| p.push(Problem::new(child(&base, "version"), err.to_string()))).ok()
        });

        let gpath = child(&base, "grant");
        let mut grant = BTreeSet::new();
        for (i, g) in e.grant.iter().enumerate() {
            let path = child(&gpath, &i.to_string());
            match Capability::parse(g) {
                Some(c) if !grant.insert(c) => p.push(Problem::new(path, format!("duplicate capability `{g}`"))),
                Some(_) => {}
                None => p.push(Problem::new(path, format!("unknown capability {g:?}"))),
            }
        }

        let hpath = child(&base, "outboundHosts");
        let hosts = host_patterns(e.outbound_hosts.as_deref().unwrap_or_default(), &hpath, &mut p);
        match (grant.contains(&Capability::HttpOutbound), e.outbound_hosts.as_ref().is_some_and(|h| !h.is_empty())) {
            (true, false) => p.push(Problem::new(hpath, "granting `http.outbound` needs a non-empty `outboundHosts`")),
            (false, _) if e.outbound_hosts.is_some() => {
                p.push(Problem::new(hpath, "`outboundHosts` without granting `http.outbound`"));
            }
            _ => {}
        }

        let mpath = child(&base, "mtlsSecrets");
        let mut secrets = BTreeMap::new();
        for (sname, files) in e.mtls_secrets.iter().flatten() {
            let spath = child(&mpath, sname);
            for (key, value) in [("certFile", &files.cert_file), ("keyFile", &files.key_file)] {
                if !file_ok(value) {
                    p.push(Problem::new(child(&spath, key), "a file path, not blank and without NUL"));
                }
            }
            match SecretName::parse(sname) {
                Ok(n) => {
                    secrets.insert(n, files.clone());
                }
                Err(m) => p.push(Problem::new(spath, m)),
            }
        }
        match (grant.contains(&Capability::SecretsMtls), e.mtls_secrets.as_ref().is_some_and(|m| !m.is_empty())) {
            (true, false) => p.push(Problem::new(mpath, "granting `secrets.mtls` needs a non-empty `mtlsSecrets`")),
            (false, _) if e.mtls_secrets.is_some() => {
                p.push(Problem::new(mpath, "`mtlsSecrets` without granting `secrets.mtls`"));
            }
            _ => {}
        }

        let allow_private = e.allow_private_addresses.unwrap_or(false);
        if allow_private && !grant.contains(&Capability::HttpOutbound) {
            p.push(Problem::new(
                child(&base, "allowPrivateAddresses"),
                "`allowPrivateAddresses` without granting `http.outbound`",
            ));
        }

        let apath = child(&base, "acknowledgeRootEquivalent");
        let mut acknowledged = BTreeSet::new();
        for (i, a) in e.acknowledge_root_equivalent.iter().flatten().enumerate() {
            let path = child(&apath, &i.to_string());
            match RootCombination::parse(a) {
                Some(c) if !acknowledged.insert(c) => {
                    p.push(Problem::new(path, format!("duplicate acknowledgement `{a}`")))
                }
                Some(c) if !c.is_within(&grant) => p.push(Problem::new(
                    path,
                    format!("acknowledges `{a}` but does not grant both capabilities (stale acknowledgement)"),
                )),
                Some(_) => {}
                None => p.push(Problem::new(
                    path,
                    format!(
                        "unknown root-equivalent combination {a:?} (known: {})",
                        RootCombination::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                )),
            }
        }

        if let Some(name) = name {
            plugins.insert(
                name,
                ValidPolicyEntry {
                    enabled: e.enabled,
                    version,
                    grant,
                    outbound_hosts: hosts,
                    mtls_secrets: secrets,
                    acknowledged,
                    allow_private_addresses: allow_private,
                    config: e.config.clone(),
                },
            );
        }
    }
    if p.is_empty() { Ok(ValidPolicy { plugins }) } else { Err(p) }
}

/// Reads and validates a policy in one step; every problem (shape or rule) is in the
/// [`crate::PolicyViolation`].
pub fn load_policy(text: &str, format: Format) -> Result<ValidPolicy, crate::PolicyViolation> {
    Policy::parse(text, format).and_then(|p| validate_policy(&p)).map_err(crate::PolicyViolation::invalid)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn problems(v: Value) -> Vec<String> {
        match Policy::from_value(&v) {
            Err(ps) => ps.into_iter().map(|p| p.path).collect(),
            Ok(pol) => validate_policy(&pol).err().unwrap_or_default().into_iter().map(|p| p.path).collect(),
        }
    }

    fn one(entry: Value) -> Value {
        json!({"plugins": {"demo": entry}})
    }

    #[test]
    fn minimal_policy_is_valid() {
        let v = one(json!({"enabled": true, "grant": ["routes"]}));
        let pol = validate_policy(&Policy::from_value(&v).unwrap()).unwrap();
        let e = pol.entry(&PluginName::parse("demo").unwrap()).unwrap();
        assert!(e.enabled() && e.grant().contains(&Capability::Routes));
        assert!(problems(json!({"plugins": {}})).is_empty());
    }

    #[test]
    fn shape_problems_all_reported() {
        assert_eq!(problems(json!({"plugin": {}})), ["/plugin", "/plugins"]);
        let v = json!({"plugins": {
            "a": {"enabled": "yes", "grant": "routes", "color": 1},
            "b": {"grant": [], "mtlsSecrets": {"x": {"certFile": "c"}}},
            "c": 3
        }});
        assert_eq!(
            problems(v),
            [
                "/plugins/a/color",
                "/plugins/a/enabled",
                "/plugins/a/grant",
                "/plugins/b/enabled",
                "/plugins/b/mtlsSecrets/x/keyFile",
                "/plugins/c"
            ]
        );
    }

    #[test]
    fn rule_plugin_key_is_a_name() {
        assert_eq!(problems(json!({"plugins": {"Bad/Name": {"enabled": true, "grant": []}}})), ["/plugins/Bad~1Name"]);
    }

    #[test]
    fn rule_version_pin() {
        assert_eq!(problems(one(json!({"enabled": true, "grant": [], "version": "1"}))), ["/plugins/demo/version"]);
    }

    #[test]
    fn rule_grant_known_and_unique() {
        let v = one(json!({"enabled": true, "grant": ["routes", "root", "routes"]}));
        assert_eq!(problems(v), ["/plugins/demo/grant/1", "/plugins/demo/grant/2"]);
    }

    #[test]
    fn rule_outbound_hosts() {
        let v = one(json!({"enabled": true, "grant": ["http.outbound"]}));
        assert_eq!(problems(v), ["/plugins/demo/outboundHosts"]);
        let v = one(json!({"enabled": true, "grant": [], "outboundHosts": ["x.com"]}));
        assert_eq!(problems(v), ["/plugins/demo/outboundHosts"]);
        let v = one(json!({"enabled": true, "grant": ["http.outbound"], "outboundHosts": ["x.com", "x.com.", "a@b"]}));
        assert_eq!(problems(v), ["/plugins/demo/outboundHosts/1", "/plugins/demo/outboundHosts/2"]);
    }

    #[test]
    fn rule_mtls_secrets() {
        let files = json!({"certFile": "/c.pem", "keyFile": "/k.pem"});
        let caps = json!(["http.outbound", "secrets.mtls"]);
        let ok = one(
            json!({"enabled": true, "grant": caps, "outboundHosts": ["b.example"], "mtlsSecrets": {"bank": files}}),
        );
        assert!(problems(ok).is_empty());
        let v = one(json!({"enabled": true, "grant": caps, "outboundHosts": ["b.example"]}));
        assert_eq!(problems(v), ["/plugins/demo/mtlsSecrets"]);
        let v = one(json!({"enabled": true, "grant": [], "mtlsSecrets": {"bank": files}}));
        assert_eq!(problems(v), ["/plugins/demo/mtlsSecrets"]);
        let v = one(json!({"enabled": true, "grant": caps, "outboundHosts": ["b.example"],
            "mtlsSecrets": {"Bank": files, "ok": {"certFile": " ", "keyFile": "a\u{0}b"}}}));
        assert_eq!(
            problems(v),
            [
                "/plugins/demo/mtlsSecrets/Bank",
                "/plugins/demo/mtlsSecrets/ok/certFile",
                "/plugins/demo/mtlsSecrets/ok/keyFile"
            ]
        );
    }

    #[test]
    fn rule_acknowledgements() {
        let caps = json!(["session.events", "http.outbound"]);
        let ok = one(json!({"enabled": true, "grant": caps, "outboundHosts": ["h.example"],
            "acknowledgeRootEquivalent": ["session.events+http.outbound"]}));
        assert!(problems(ok).is_empty());
        let v = one(json!({"enabled": true, "grant": caps, "outboundHosts": ["h.example"],
            "acknowledgeRootEquivalent": ["session.events+http.outbound", "session.events+http.outbound", "everything", "db.migrations+http.outbound"]}));
        assert_eq!(
            problems(v),
            [
                "/plugins/demo/acknowledgeRootEquivalent/1",
                "/plugins/demo/acknowledgeRootEquivalent/2",
                "/plugins/demo/acknowledgeRootEquivalent/3"
            ]
        );
    }

    #[test]
    fn rule_private_addresses_and_config() {
        let ok = one(json!({"enabled": true, "grant": ["http.outbound"], "outboundHosts": ["localhost"],
            "allowPrivateAddresses": true, "config": {"a": [1]}}));
        let pol = validate_policy(&Policy::from_value(&ok).unwrap()).unwrap();
        let e = pol.entry(&PluginName::parse("demo").unwrap()).unwrap();
        assert!(e.allow_private_addresses());
        assert_eq!(e.config(), Some(&json!({"a": [1]})));
        let v = one(json!({"enabled": true, "grant": [], "allowPrivateAddresses": true}));
        assert_eq!(problems(v), ["/plugins/demo/allowPrivateAddresses"]);
        let v = one(json!({"enabled": true, "grant": [], "config": [1], "allowPrivateAddresses": "yes"}));
        assert_eq!(problems(v), ["/plugins/demo/allowPrivateAddresses", "/plugins/demo/config"]);
    }

    #[test]
    fn load_policy_reports_a_violation_with_every_problem() {
        let e = load_policy(r#"{"plugins": {"X": {"enabled": true, "grant": ["nope"]}}}"#, Format::Json).unwrap_err();
        assert_eq!(e.reason.as_str(), "policy_invalid");
        assert_eq!(e.problems.len(), 2);
    }
}
