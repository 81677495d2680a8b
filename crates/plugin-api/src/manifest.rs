//! The plugin [`Manifest`] (what a plugin asks for), read from JSON or TOML, and
//! [`validate_manifest`], which turns it into a [`ValidManifest`] or returns **every** problem.
//!
//! Two layers, on purpose. [`Manifest`] is the document's shape: a closed key set (an unknown
//! key is an error), JSON types, strings kept as written; it derives the JSON Schema
//! (`spec/schemas/plugins/manifest.json`). [`ValidManifest`] is what the rules produce: parsed
//! names, versions, capabilities, normalised host patterns. The schema checks the shape and the
//! per-field grammars; the cross-field rules (listed on [`validate_manifest`]) exist only in
//! code, so a schema-valid manifest can still be invalid, never the reverse.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::capability::Capability;
use crate::host::HostPattern;
use crate::names::{
    MIGRATION_NAME_MAX_LEN, MIGRATION_NAME_PATTERN, MigrationName, PLUGIN_NAME_MAX_LEN, PLUGIN_NAME_PATTERN,
    PluginName, ROUTE_PREFIX_MAX_LEN, ROUTE_PREFIX_PATTERN, SCHEMA_PREFIX_MAX_LEN, SCHEMA_PREFIX_PATTERN,
    SECRET_NAME_MAX_LEN, SECRET_NAME_PATTERN, SchemaPrefix, SecretName, check_absolute_route_prefix,
};
use crate::problem::{Format, Problem, Reader, child};
use crate::version::{VERSION_MAX_LEN, VERSION_PATTERN, Version};

/// The JSON Schema `pattern` for a raw `outboundHosts` entry: no `/ : ? # @`, no inner
/// whitespace, `*` only as one leading `*.` (surrounding whitespace is trimmed). IDNA and
/// label rules are checked in code only.
pub const HOST_PATTERN_SHAPE: &str = r"^\s*(\*\.)?[^*/:?#@\s]+\s*$";

/// Every manifest key (the set is closed).
pub const MANIFEST_KEYS: &[&str] = &[
    "name",
    "version",
    "apiVersion",
    "capabilities",
    "outboundHosts",
    "routePrefix",
    "mtlsSecrets",
    "schemaPrefix",
    "migrations",
];
const MANIFEST_REQUIRED: &[&str] = &["name", "version", "apiVersion", "capabilities"];
const MIGRATION_KEYS: &[&str] = &["name", "up"];

/// A plugin manifest as written (JSON or TOML). Unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "ARCP plugin manifest")]
pub struct Manifest {
    /// The plugin's name: its route prefix `/plugins/<name>/`, log scope, storage namespace
    /// and migration namespace.
    #[schemars(regex(pattern = PLUGIN_NAME_PATTERN), length(min = 1, max = PLUGIN_NAME_MAX_LEN))]
    pub name: String,
    /// The plugin's own version, `major.minor.patch`.
    #[schemars(regex(pattern = VERSION_PATTERN), length(max = VERSION_MAX_LEN))]
    pub version: String,
    /// The plugin-api version the plugin was built against, `major.minor.patch`.
    #[schemars(regex(pattern = VERSION_PATTERN), length(max = VERSION_MAX_LEN))]
    pub api_version: String,
    /// The capabilities requested (no duplicates).
    #[schemars(with = "Vec<Capability>", extend("uniqueItems" = true))]
    pub capabilities: Vec<String>,
    /// Hostname patterns the plugin may call (requires and is required by `http.outbound`).
    /// Hostnames only; at most one leading `*.`, matching exactly one extra label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(inner(regex(pattern = HOST_PATTERN_SHAPE)), length(min = 1))]
    pub outbound_hosts: Option<Vec<String>>,
    /// `auto` (the default: `/plugins/<name>/`) or an absolute prefix (builtin plugins only).
    /// Requires `routes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ROUTE_PREFIX_PATTERN), length(max = ROUTE_PREFIX_MAX_LEN))]
    pub route_prefix: Option<String>,
    /// Logical names of the mTLS client certificates the plugin uses (requires and is required
    /// by `secrets.mtls`); the operator provisions the files in policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        inner(regex(pattern = SECRET_NAME_PATTERN), length(max = SECRET_NAME_MAX_LEN)),
        length(min = 1),
        extend("uniqueItems" = true)
    )]
    pub mtls_secrets: Option<Vec<String>>,
    /// Table-name prefix for the plugin's own tables: `<name with - as _>_…_`. Required by and
    /// requires `db.migrations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SCHEMA_PREFIX_PATTERN), length(max = SCHEMA_PREFIX_MAX_LEN))]
    pub schema_prefix: Option<String>,
    /// Ordered, named, idempotent SQL migrations, recorded as `<plugin>_<name>`. Requires
    /// `db.migrations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrations: Option<Vec<Migration>>,
}

/// One SQL migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    /// Unique within the plugin, e.g. `0001_initial_schema`.
    #[schemars(regex(pattern = MIGRATION_NAME_PATTERN), length(min = 1, max = MIGRATION_NAME_MAX_LEN))]
    pub name: String,
    /// Idempotent SQL (`CREATE TABLE IF NOT EXISTS …`).
    #[schemars(regex(pattern = r"\S"))]
    pub up: String,
}

impl Manifest {
    /// Reads a manifest in `format`, reporting every shape problem (unknown or missing keys,
    /// wrong types) rather than the first.
    pub fn parse(text: &str, format: Format) -> Result<Self, Vec<Problem>> {
        let value = format.parse(text).map_err(|p| vec![p])?;
        Self::from_value(&value)
    }

    /// [`Manifest::parse`] for JSON.
    pub fn from_json_str(text: &str) -> Result<Self, Vec<Problem>> {
        Self::parse(text, Format::Json)
    }

    /// [`Manifest::parse`] for TOML.
    pub fn from_toml_str(text: &str) -> Result<Self, Vec<Problem>> {
        Self::parse(text, Format::Toml)
    }

    /// Reads a manifest from a JSON value, reporting every shape problem.
    pub fn from_value(value: &Value) -> Result<Self, Vec<Problem>> {
        let mut r = Reader::default();
        let Some(map) = r.object(value, "", MANIFEST_KEYS, MANIFEST_REQUIRED) else { return Err(r.problems) };
        let name = r.string(map, "name", "");
        let version = r.string(map, "version", "");
        let api_version = r.string(map, "apiVersion", "");
        let capabilities = r.strings(map, "capabilities", "");
        let outbound_hosts = r.strings(map, "outboundHosts", "");
        let route_prefix = r.string(map, "routePrefix", "");
        let mtls_secrets = r.strings(map, "mtlsSecrets", "");
        let schema_prefix = r.string(map, "schemaPrefix", "");
        let migrations = r.array(map, "migrations", "").map(|items| {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let path = child("/migrations", &i.to_string());
                if let Some(m) = r.object(item, &path, MIGRATION_KEYS, MIGRATION_KEYS) {
                    let name = r.string(m, "name", &path);
                    let up = r.string(m, "up", &path);
                    if let (Some(name), Some(up)) = (name, up) {
                        out.push(Migration { name, up });
                    }
                }
            }
            out
        });
        if !r.problems.is_empty() {
            return Err(r.problems);
        }
        Ok(Self {
            name: name.unwrap_or_default(),
            version: version.unwrap_or_default(),
            api_version: api_version.unwrap_or_default(),
            capabilities: capabilities.unwrap_or_default(),
            outbound_hosts,
            route_prefix,
            mtls_secrets,
            schema_prefix,
            migrations,
        })
    }
}

/// Where a plugin's routes are mounted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum RoutePrefix {
    /// `/plugins/<name>/`.
    Auto,
    /// A checked absolute prefix (builtin plugins only; external ones are refused with
    /// `absolute_route_denied`).
    Absolute(String),
}

/// A validated migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidMigration {
    /// Its name.
    pub name: MigrationName,
    /// Its SQL.
    pub up: String,
}

/// A manifest that passed [`validate_manifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidManifest {
    name: PluginName,
    version: Version,
    api_version: Version,
    capabilities: BTreeSet<Capability>,
    outbound_hosts: BTreeSet<HostPattern>,
    route_prefix: RoutePrefix,
    mtls_secrets: BTreeSet<SecretName>,
    schema_prefix: Option<SchemaPrefix>,
    migrations: Vec<ValidMigration>,
}

impl ValidManifest {
    /// The plugin's name.
    pub fn name(&self) -> &PluginName {
        &self.name
    }
    /// The plugin's version.
    pub fn version(&self) -> Version {
        self.version
    }
    /// The plugin-api version it was built against (not yet checked against ours: that is
    /// the load decision's job).
    pub fn api_version(&self) -> Version {
        self.api_version
    }
    /// The capabilities requested.
    pub fn capabilities(&self) -> &BTreeSet<Capability> {
        &self.capabilities
    }
    /// Whether `capability` is requested.
    pub fn requests(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }
    /// The normalised outbound host patterns requested.
    pub fn outbound_hosts(&self) -> &BTreeSet<HostPattern> {
        &self.outbound_hosts
    }
    /// The route prefix asked for.
    pub fn route_prefix(&self) -> &RoutePrefix {
        &self.route_prefix
    }
    /// The mTLS secret names declared.
    pub fn mtls_secrets(&self) -> &BTreeSet<SecretName> {
        &self.mtls_secrets
    }
    /// The schema prefix, if the plugin owns tables.
    pub fn schema_prefix(&self) -> Option<&SchemaPrefix> {
        self.schema_prefix.as_ref()
    }
    /// The migrations, in order.
    pub fn migrations(&self) -> &[ValidMigration] {
        &self.migrations
    }
}

fn capabilities(raw: &[String], base: &str, problems: &mut Vec<Problem>) -> BTreeSet<Capability> {
    let mut out = BTreeSet::new();
    for (i, s) in raw.iter().enumerate() {
        let path = child(base, &i.to_string());
        match Capability::parse(s) {
            Some(c) if !out.insert(c) => problems.push(Problem::new(path, format!("duplicate capability `{s}`"))),
            Some(_) => {}
            None => problems.push(Problem::new(
                path,
                format!(
                    "unknown capability {s:?} (known: {})",
                    Capability::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }
    out
}

pub(crate) fn host_patterns(raw: &[String], base: &str, problems: &mut Vec<Problem>) -> BTreeSet<HostPattern> {
    let mut out = BTreeSet::new();
    for (i, s) in raw.iter().enumerate() {
        let path = child(base, &i.to_string());
        match HostPattern::parse(s) {
            Ok(p) => {
                let shown = p.to_string();
                if !out.insert(p) {
                    problems
                        .push(Problem::new(path, format!("duplicate host pattern `{shown}` (after normalisation)")));
                }
            }
            Err(e) => problems.push(Problem::new(path, e.to_string())),
        }
    }
    out
}

fn version(raw: &str, path: &str, problems: &mut Vec<Problem>) -> Option<Version> {
    Version::parse(raw).map_err(|e| problems.push(Problem::new(path, e.to_string()))).ok()
}

/// Validates a manifest, returning **every** problem. The rules, each with its path:
///
/// - `/name`: a [`PluginName`]; `/version`, `/apiVersion`: `major.minor.patch` (compatibility
///   with ours is the load decision's job, not validity);
/// - `/capabilities/i`: a known capability, no duplicates;
/// - `/outboundHosts/i`: a valid host pattern, no duplicates after normalisation;
///   `/outboundHosts`: non-empty if and only if `http.outbound` is requested;
/// - `/routePrefix`: `auto` or a valid absolute prefix; only with `routes`;
/// - `/mtlsSecrets/i`: a [`SecretName`], no duplicates; `/mtlsSecrets`: non-empty if and only
///   if `secrets.mtls` is requested; `/capabilities`: `secrets.mtls` needs `http.outbound`
///   (a certificate is only ever presented on an outbound call);
/// - `/schemaPrefix`: a [`SchemaPrefix`] starting with the plugin's own root, present if and
///   only if `db.migrations` is requested;
/// - `/migrations`: only with `db.migrations`; `/migrations/i/name`: a [`MigrationName`],
///   unique; `/migrations/i/up`: not blank.
pub fn validate_manifest(m: &Manifest) -> Result<ValidManifest, Vec<Problem>> {
    let mut p = Vec::new();
    let name = PluginName::parse(&m.name).map_err(|e| p.push(Problem::new("/name", e))).ok();
    let version_ = version(&m.version, "/version", &mut p);
    let api_version = version(&m.api_version, "/apiVersion", &mut p);
    let caps = capabilities(&m.capabilities, "/capabilities", &mut p);
    let requests = |c: Capability| caps.contains(&c);

    let hosts = host_patterns(m.outbound_hosts.as_deref().unwrap_or_default(), "/outboundHosts", &mut p);
    match (requests(Capability::HttpOutbound), m.outbound_hosts.as_ref().is_some_and(|h| !h.is_empty())) {
        (true, false) => p.push(Problem::new("/outboundHosts", "`http.outbound` needs a non-empty `outboundHosts`")),
        (false, _) if m.outbound_hosts.is_some() => {
            p.push(Problem::new("/outboundHosts", "`outboundHosts` without the `http.outbound` capability"));
        }
        _ => {}
    }

    let route_prefix = match m.route_prefix.as_deref() {
        None | Some("auto") => RoutePrefix::Auto,
        Some(abs) => {
            if let Err(e) = check_absolute_route_prefix(abs) {
                p.push(Problem::new("/routePrefix", e));
            }
            RoutePrefix::Absolute(abs.to_owned())
        }
    };
    if m.route_prefix.is_some() && !requests(Capability::Routes) {
        p.push(Problem::new("/routePrefix", "`routePrefix` without the `routes` capability"));
    }

    let mut secrets = BTreeSet::new();
    for (i, s) in m.mtls_secrets.iter().flatten().enumerate() {
        let path = child("/mtlsSecrets", &i.to_string());
        match SecretName::parse(s) {
            Ok(n) => {
                if !secrets.insert(n) {
                    p.push(Problem::new(path, format!("duplicate mTLS secret `{s}`")));
                }
            }
            Err(e) => p.push(Problem::new(path, e)),
        }
    }
    match (requests(Capability::SecretsMtls), m.mtls_secrets.as_ref().is_some_and(|s| !s.is_empty())) {
        (true, false) => p.push(Problem::new("/mtlsSecrets", "`secrets.mtls` needs a non-empty `mtlsSecrets`")),
        (false, _) if m.mtls_secrets.is_some() => {
            p.push(Problem::new("/mtlsSecrets", "`mtlsSecrets` without the `secrets.mtls` capability"));
        }
        _ => {}
    }
    if requests(Capability::SecretsMtls) && !requests(Capability::HttpOutbound) {
        p.push(Problem::new(
            "/capabilities",
            "`secrets.mtls` needs `http.outbound`: a certificate is only presented on an outbound call",
        ));
    }

    let schema_prefix = match (&m.schema_prefix, requests(Capability::DbMigrations)) {
        (Some(s), true) => {
            SchemaPrefix::parse(s, name.as_ref()).map_err(|e| p.push(Problem::new("/schemaPrefix", e))).ok()
        }
        (Some(_), false) => {
            p.push(Problem::new("/schemaPrefix", "`schemaPrefix` without the `db.migrations` capability"));
            None
        }
        (None, true) => {
            p.push(Problem::new("/schemaPrefix", "`db.migrations` needs a `schemaPrefix`"));
            None
        }
        (None, false) => None,
    };

    let mut migrations = Vec::new();
    if m.migrations.is_some() && !requests(Capability::DbMigrations) {
        p.push(Problem::new("/migrations", "`migrations` without the `db.migrations` capability"));
    }
    let mut seen = BTreeSet::new();
    for (i, mig) in m.migrations.iter().flatten().enumerate() {
        let path = child("/migrations", &i.to_string());
        let name = match MigrationName::parse(&mig.name) {
            Ok(n) if seen.contains(&n) => {
                p.push(Problem::new(child(&path, "name"), format!("duplicate migration `{}`", mig.name)));
                None
            }
            Ok(n) => {
                seen.insert(n.clone());
                Some(n)
            }
            Err(e) => {
                p.push(Problem::new(child(&path, "name"), e));
                None
            }
        };
        if mig.up.trim().is_empty() {
            p.push(Problem::new(child(&path, "up"), "empty SQL"));
        }
        if let Some(name) = name {
            migrations.push(ValidMigration { name, up: mig.up.clone() });
        }
    }

    match (name, version_, api_version) {
        (Some(name), Some(version), Some(api_version)) if p.is_empty() => Ok(ValidManifest {
            name,
            version,
            api_version,
            capabilities: caps,
            outbound_hosts: hosts,
            route_prefix,
            mtls_secrets: secrets,
            schema_prefix,
            migrations,
        }),
        _ => Err(p),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn base() -> Value {
        json!({"name": "demo", "version": "0.1.0", "apiVersion": "1.0.0", "capabilities": ["routes"]})
    }

    fn with(patch: Value) -> Value {
        let mut v = base();
        for (k, val) in patch.as_object().unwrap() {
            if val.is_null() {
                v.as_object_mut().unwrap().remove(k);
            } else {
                v[k] = val.clone();
            }
        }
        v
    }

    /// The paths of every problem (shape or rule) for a manifest value.
    fn problems(v: Value) -> Vec<String> {
        match Manifest::from_value(&v) {
            Err(ps) => ps.into_iter().map(|p| p.path).collect(),
            Ok(m) => validate_manifest(&m).err().unwrap_or_default().into_iter().map(|p| p.path).collect(),
        }
    }

    fn valid(v: Value) -> ValidManifest {
        let m = Manifest::from_value(&v).unwrap();
        validate_manifest(&m).unwrap_or_else(|e| panic!("{e:#?}"))
    }

    #[test]
    fn minimal_manifest_is_valid() {
        let m = valid(base());
        assert_eq!(m.name().as_str(), "demo");
        assert_eq!(m.route_prefix(), &RoutePrefix::Auto);
        assert!(m.requests(Capability::Routes));
    }

    #[test]
    fn shape_unknown_missing_and_mistyped_keys_all_reported() {
        let v = json!({"name": 3, "apiVersion": "1.0.0", "capabilities": ["routes", 7], "extra": 1, "other": {}});
        assert_eq!(problems(v), ["/extra", "/other", "/version", "/name", "/capabilities/1"]);
        assert_eq!(problems(json!([])), [""]);
        let v = with(json!({"migrations": [{"name": "a", "up": "x", "down": "y"}, {"up": 1}]}));
        assert_eq!(problems(v), ["/migrations/0/down", "/migrations/1/name", "/migrations/1/up"]);
    }

    #[test]
    fn serde_and_the_reader_agree_on_valid_input() {
        let v = with(
            json!({"capabilities": ["http.outbound", "routes"], "outboundHosts": ["x.com"], "routePrefix": "auto"}),
        );
        let via_reader = Manifest::from_value(&v).unwrap();
        let via_serde: Manifest = serde_json::from_value(v).unwrap();
        assert_eq!(via_reader, via_serde);
        assert!(serde_json::from_value::<Manifest>(with(json!({"bogus": 1}))).is_err());
    }

    #[test]
    fn rule_name() {
        assert_eq!(problems(with(json!({"name": "Demo"}))), ["/name"]);
        assert_eq!(problems(with(json!({"name": "my_plugin"}))), ["/name"]);
    }

    #[test]
    fn rule_versions() {
        assert_eq!(problems(with(json!({"version": "1.0"}))), ["/version"]);
        assert_eq!(problems(with(json!({"apiVersion": "v1.0.0"}))), ["/apiVersion"]);
        // Incompatible but well-formed: valid here, refused by the load decision.
        assert!(problems(with(json!({"apiVersion": "9.0.0"}))).is_empty());
    }

    #[test]
    fn rule_capabilities_known_and_unique() {
        assert_eq!(
            problems(with(json!({"capabilities": ["routes", "mcp.register", "routes"]}))),
            ["/capabilities/1", "/capabilities/2"]
        );
        assert!(problems(with(json!({"capabilities": []}))).is_empty());
    }

    #[test]
    fn rule_outbound_hosts() {
        let ok = with(
            json!({"capabilities": ["http.outbound"], "outboundHosts": [" API.Example.com. ", "*.hooks.example"]}),
        );
        let m = valid(ok);
        let hosts: Vec<String> = m.outbound_hosts().iter().map(ToString::to_string).collect();
        assert_eq!(hosts, ["api.example.com", "*.hooks.example"]);
        let bad =
            with(json!({"capabilities": ["http.outbound"], "outboundHosts": ["x.com", "X.com.", "x.com/a", "*.com"]}));
        assert_eq!(problems(bad), ["/outboundHosts/1", "/outboundHosts/2", "/outboundHosts/3"]);
        assert_eq!(problems(with(json!({"capabilities": ["http.outbound"]}))), ["/outboundHosts"]);
        assert_eq!(problems(with(json!({"capabilities": ["http.outbound"], "outboundHosts": []}))), ["/outboundHosts"]);
        assert_eq!(problems(with(json!({"outboundHosts": ["x.com"]}))), ["/outboundHosts"]);
    }

    #[test]
    fn rule_route_prefix() {
        let m = valid(with(json!({"routePrefix": "/slack"})));
        assert_eq!(m.route_prefix(), &RoutePrefix::Absolute("/slack".into()));
        assert_eq!(problems(with(json!({"routePrefix": "/plugins/demo"}))), ["/routePrefix"]);
        assert_eq!(problems(with(json!({"routePrefix": "slack"}))), ["/routePrefix"]);
        assert_eq!(problems(with(json!({"capabilities": [], "routePrefix": "auto"}))), ["/routePrefix"]);
    }

    #[test]
    fn rule_mtls_secrets() {
        let caps = json!(["http.outbound", "secrets.mtls"]);
        let ok = with(json!({"capabilities": caps, "outboundHosts": ["bank.example"], "mtlsSecrets": ["bank"]}));
        assert_eq!(valid(ok).mtls_secrets().len(), 1);
        let bad = with(
            json!({"capabilities": caps, "outboundHosts": ["bank.example"], "mtlsSecrets": ["bank", "Bank", "bank"]}),
        );
        assert_eq!(problems(bad), ["/mtlsSecrets/1", "/mtlsSecrets/2"]);
        assert_eq!(problems(with(json!({"capabilities": caps, "outboundHosts": ["b.example"]}))), ["/mtlsSecrets"]);
        assert_eq!(problems(with(json!({"mtlsSecrets": ["bank"]}))), ["/mtlsSecrets"]);
        assert_eq!(
            problems(with(json!({"capabilities": ["secrets.mtls"], "mtlsSecrets": ["bank"]}))),
            ["/capabilities"]
        );
    }

    #[test]
    fn rule_schema_prefix() {
        let caps = json!(["db.migrations"]);
        assert!(valid(with(json!({"capabilities": caps, "schemaPrefix": "demo_"}))).schema_prefix().is_some());
        assert_eq!(problems(with(json!({"capabilities": caps}))), ["/schemaPrefix"]);
        assert_eq!(problems(with(json!({"capabilities": caps, "schemaPrefix": "other_"}))), ["/schemaPrefix"]);
        assert_eq!(problems(with(json!({"capabilities": caps, "schemaPrefix": "demo"}))), ["/schemaPrefix"]);
        assert_eq!(problems(with(json!({"schemaPrefix": "demo_"}))), ["/schemaPrefix"]);
    }

    #[test]
    fn rule_migrations() {
        let caps = json!(["db.migrations"]);
        let ok = with(json!({"capabilities": caps, "schemaPrefix": "demo_", "migrations": [
            {"name": "0001_init", "up": "CREATE TABLE IF NOT EXISTS demo_things (id TEXT)"},
            {"name": "0002_more", "up": "SELECT 1"}
        ]}));
        let m = valid(ok);
        assert_eq!(m.name().migration_key(&m.migrations()[1].name), "demo_0002_more");
        let bad = with(json!({"capabilities": caps, "schemaPrefix": "demo_", "migrations": [
            {"name": "0001_init", "up": "SELECT 1"},
            {"name": "0001_init", "up": "SELECT 1"},
            {"name": "Bad-Name", "up": "  "}
        ]}));
        assert_eq!(problems(bad), ["/migrations/1/name", "/migrations/2/name", "/migrations/2/up"]);
        assert_eq!(problems(with(json!({"migrations": []}))), ["/migrations"]);
    }

    #[test]
    fn every_problem_is_returned_at_once() {
        let v = json!({
            "name": "Bad", "version": "x", "apiVersion": "1", "capabilities": ["nope", "http.outbound"],
            "routePrefix": "/arcp", "schemaPrefix": "bad_"
        });
        assert_eq!(
            problems(v),
            [
                "/name",
                "/version",
                "/apiVersion",
                "/capabilities/0",
                "/outboundHosts",
                "/routePrefix",
                "/routePrefix",
                "/schemaPrefix"
            ]
        );
    }

    #[test]
    fn toml_manifests_read_the_same() {
        let toml = r#"
            name = "demo"
            version = "0.1.0"
            apiVersion = "1.0.0"
            capabilities = ["routes"]
        "#;
        assert_eq!(Manifest::from_toml_str(toml).unwrap(), Manifest::from_value(&base()).unwrap());
        assert_eq!(Manifest::from_toml_str("name = 1\nbogus = true").unwrap_err().len(), 5);
    }
}
