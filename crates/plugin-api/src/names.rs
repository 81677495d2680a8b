//! Name newtypes and their grammars: [`PluginName`], [`SecretName`], [`SchemaPrefix`],
//! [`MigrationName`], and the absolute route prefix check. Each `*_PATTERN` constant is the
//! JSON Schema spelling of the same grammar (the schemas use them; tests check they agree).

use std::fmt;

use serde::Serialize;

/// Plugin names: lowercase letters and digits in `-`-separated groups, starting with a letter.
/// No `.` or `_`: the name is joined with `.` (agents), `_` (migrations) and `/` (routes).
pub const PLUGIN_NAME_PATTERN: &str = "^[a-z][a-z0-9]*(-[a-z0-9]+)*$";
/// Longest plugin name.
pub const PLUGIN_NAME_MAX_LEN: usize = 64;
/// mTLS secret logical names: like plugin names, `_` allowed as a separator too.
pub const SECRET_NAME_PATTERN: &str = "^[a-z][a-z0-9]*([_-][a-z0-9]+)*$";
/// Longest mTLS secret name.
pub const SECRET_NAME_MAX_LEN: usize = 64;
/// Schema (table-name) prefixes: lowercase `_`-separated groups ending in `_`.
pub const SCHEMA_PREFIX_PATTERN: &str = "^[a-z][a-z0-9]*(_[a-z0-9]+)*_$";
/// Longest schema prefix.
pub const SCHEMA_PREFIX_MAX_LEN: usize = 32;
/// Migration names (`0001_initial_schema`): lowercase letters and digits in `_`-separated groups.
pub const MIGRATION_NAME_PATTERN: &str = "^[a-z0-9]+(_[a-z0-9]+)*$";
/// Longest migration name.
pub const MIGRATION_NAME_MAX_LEN: usize = 64;
/// `routePrefix`: `auto`, or `/`-separated segments of lowercase letters, digits, `-`, `_`, each
/// starting with a letter or digit (no trailing `/`, no `.` or `..`, no percent-encoding).
pub const ROUTE_PREFIX_PATTERN: &str = "^(auto|(/[a-z0-9][a-z0-9_-]*)+)$";
/// Longest absolute route prefix.
pub const ROUTE_PREFIX_MAX_LEN: usize = 128;
/// Schema prefixes no plugin may use, whatever its name (core and database internals).
pub const RESERVED_SCHEMA_PREFIXES: &[&str] = &["arcp_", "sqlite_", "pg_"];
/// First path segments reserved by the runtime; an absolute route prefix may not start with
/// one (nor with `v` followed by digits, kept for API versions).
pub const RESERVED_ROUTE_SEGMENTS: &[&str] = &["arcp", "plugins", "healthz", "readyz", "metrics"];

/// Whether `s` is groups of `[a-z0-9]` separated by one of `seps`, the first character
/// a letter if `letter_first`.
fn grouped(s: &str, letter_first: bool, seps: &[u8]) -> bool {
    let b = s.as_bytes();
    let Some(&first) = b.first() else { return false };
    if letter_first && !first.is_ascii_lowercase() {
        return false;
    }
    let mut prev_sep = true;
    for &c in b {
        if seps.contains(&c) {
            if prev_sep {
                return false;
            }
            prev_sep = true;
        } else if c.is_ascii_lowercase() || c.is_ascii_digit() {
            prev_sep = false;
        } else {
            return false;
        }
    }
    !prev_sep
}

macro_rules! name_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type! {
    /// A plugin's name ([`PLUGIN_NAME_PATTERN`]): its route prefix `/plugins/<name>/`, log
    /// scope, storage namespace and migration namespace.
    PluginName
}

impl PluginName {
    /// Parses a plugin name; `Err` is a message for a problem.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() > PLUGIN_NAME_MAX_LEN {
            return Err(format!("longer than {PLUGIN_NAME_MAX_LEN} bytes"));
        }
        if !grouped(s, true, b"-") {
            return Err(format!(
                "{s:?} is not a plugin name: lowercase letters, digits and single `-` between them, \
                 starting with a letter"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The automatic route prefix, `/plugins/<name>/`.
    pub fn auto_route_prefix(&self) -> String {
        format!("/plugins/{}/", self.0)
    }

    /// The namespaced name of one of the plugin's agents, `<plugin>.<agent>`.
    pub fn agent_name(&self, agent: &str) -> String {
        format!("{}.{agent}", self.0)
    }

    /// The key a migration is recorded under, `<plugin>_<migration>`.
    pub fn migration_key(&self, migration: &MigrationName) -> String {
        format!("{}_{}", self.0, migration.0)
    }

    /// The schema prefix every prefix of this plugin must start with: the name with `-`
    /// replaced by `_`, then `_`.
    pub fn schema_prefix_root(&self) -> String {
        format!("{}_", self.0.replace('-', "_"))
    }
}

name_type! {
    /// The logical name of an mTLS secret ([`SECRET_NAME_PATTERN`]).
    SecretName
}

impl SecretName {
    /// Parses a secret name; `Err` is a message for a problem.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() > SECRET_NAME_MAX_LEN {
            return Err(format!("longer than {SECRET_NAME_MAX_LEN} bytes"));
        }
        if !grouped(s, true, b"_-") {
            return Err(format!(
                "{s:?} is not an mTLS secret name: lowercase letters, digits and single `-` or `_` \
                 between them, starting with a letter"
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

name_type! {
    /// A table-name prefix ([`SCHEMA_PREFIX_PATTERN`]) owned by one plugin.
    SchemaPrefix
}

impl SchemaPrefix {
    /// Parses a prefix for `plugin`: the grammar, not reserved, and starting with
    /// [`PluginName::schema_prefix_root`]. `Err` is a message for a problem.
    pub fn parse(s: &str, plugin: Option<&PluginName>) -> Result<Self, String> {
        if s.len() > SCHEMA_PREFIX_MAX_LEN {
            return Err(format!("longer than {SCHEMA_PREFIX_MAX_LEN} bytes"));
        }
        let Some(body) = s.strip_suffix('_') else {
            return Err(format!("{s:?} must end with `_`"));
        };
        if !grouped(body, true, b"_") {
            return Err(format!(
                "{s:?} is not a schema prefix: lowercase letters, digits and single `_`, starting \
                 with a letter and ending with `_`"
            ));
        }
        if let Some(r) = RESERVED_SCHEMA_PREFIXES.iter().find(|r| s.starts_with(*r)) {
            return Err(format!("{s:?} starts with the reserved prefix `{r}`"));
        }
        if let Some(plugin) = plugin {
            let root = plugin.schema_prefix_root();
            if !s.starts_with(&root) {
                return Err(format!("{s:?} must start with `{root}` (the plugin's own namespace)"));
            }
        }
        Ok(Self(s.to_owned()))
    }

    /// Whether two prefixes can name the same table (one is a prefix of the other).
    pub fn overlaps(&self, other: &Self) -> bool {
        self.0.starts_with(&other.0) || other.0.starts_with(&self.0)
    }

    /// Whether a database object name lies inside this prefix.
    pub fn contains(&self, object: &str) -> bool {
        object.len() > self.0.len() && object.starts_with(&self.0)
    }
}

name_type! {
    /// A migration's name ([`MIGRATION_NAME_PATTERN`]), e.g. `0001_initial_schema`.
    MigrationName
}

impl MigrationName {
    /// Parses a migration name; `Err` is a message for a problem.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() > MIGRATION_NAME_MAX_LEN {
            return Err(format!("longer than {MIGRATION_NAME_MAX_LEN} bytes"));
        }
        if !grouped(s, false, b"_") {
            return Err(format!(
                "{s:?} is not a migration name: lowercase letters, digits and single `_` between them"
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

/// Checks an absolute route prefix (anything but `auto`); `Err` is a message for a problem.
pub fn check_absolute_route_prefix(s: &str) -> Result<(), String> {
    if s.len() > ROUTE_PREFIX_MAX_LEN {
        return Err(format!("longer than {ROUTE_PREFIX_MAX_LEN} bytes"));
    }
    let Some(rest) = s.strip_prefix('/') else {
        return Err(format!("{s:?} must be `auto` or an absolute path starting with `/`"));
    };
    for seg in rest.split('/') {
        let ok = seg.bytes().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && seg.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_');
        if !ok {
            return Err(format!(
                "{s:?}: segment {seg:?} must be lowercase letters, digits, `-` or `_`, starting with a \
                 letter or digit (no empty segment, no trailing `/`, no `.`, no percent-encoding)"
            ));
        }
    }
    let first = rest.split('/').next().unwrap_or_default();
    let versioned = first.len() > 1 && first.starts_with('v') && first[1..].bytes().all(|c| c.is_ascii_digit());
    if RESERVED_ROUTE_SEGMENTS.contains(&first) || versioned {
        return Err(format!("{s:?} starts with `/{first}`, which the runtime reserves"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names() {
        for ok in ["a", "webhooks", "demo-2", "a1-b2-c3"] {
            assert!(PluginName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "1a", "-a", "a-", "a--b", "a_b", "a.b", "a b", "ü", &"a".repeat(65)] {
            assert!(PluginName::parse(bad).is_err(), "{bad:?}");
        }
        let n = PluginName::parse("my-plugin").unwrap();
        assert_eq!(n.auto_route_prefix(), "/plugins/my-plugin/");
        assert_eq!(n.agent_name("echo"), "my-plugin.echo");
        assert_eq!(n.migration_key(&MigrationName::parse("0001_init").unwrap()), "my-plugin_0001_init");
        assert_eq!(n.schema_prefix_root(), "my_plugin_");
    }

    #[test]
    fn secret_names() {
        for ok in ["partner", "partner_a", "bank-1"] {
            assert!(SecretName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Partner", "_a", "a_", "a__b", "a/b", "1a", &"a".repeat(65)] {
            assert!(SecretName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn schema_prefixes() {
        let p = PluginName::parse("my-plugin").unwrap();
        assert!(SchemaPrefix::parse("my_plugin_", Some(&p)).is_ok());
        assert!(SchemaPrefix::parse("my_plugin_v2_", Some(&p)).is_ok());
        for bad in [
            "my_plugin",
            "other_",
            "my_plugin__",
            "My_plugin_",
            "_",
            "my-plugin_",
            &format!("my_plugin_{}_", "a".repeat(30)),
        ] {
            assert!(SchemaPrefix::parse(bad, Some(&p)).is_err(), "{bad:?}");
        }
        let arcp = PluginName::parse("arcp").unwrap();
        assert!(SchemaPrefix::parse("arcp_", Some(&arcp)).unwrap_err().contains("reserved"));
        let a = SchemaPrefix::parse("a_", None).unwrap();
        let ab = SchemaPrefix::parse("a_b_", None).unwrap();
        assert!(a.overlaps(&ab) && ab.overlaps(&a));
        assert!(!ab.overlaps(&SchemaPrefix::parse("a_c_", None).unwrap()));
        assert!(a.contains("a_things") && !a.contains("a_") && !a.contains("b_things"));
    }

    #[test]
    fn migration_names() {
        for ok in ["0001_initial_schema", "init", "2"] {
            assert!(MigrationName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "_a", "a_", "a__b", "A", "a-b", "a.sql"] {
            assert!(MigrationName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn absolute_route_prefixes() {
        for ok in ["/slack", "/hooks/telegram", "/a-b/c_d/0"] {
            assert!(check_absolute_route_prefix(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/",
            "slack",
            "/slack/",
            "//slack",
            "/Slack",
            "/a/../b",
            "/a/./b",
            "/.well-known",
            "/a%20b",
            "/a?b",
            "/arcp",
            "/plugins/x",
            "/v1/x",
            "/v12",
            "/healthz",
            "/-a",
        ] {
            assert!(check_absolute_route_prefix(bad).is_err(), "{bad:?}");
        }
        assert!(check_absolute_route_prefix("/version").is_ok());
    }
}
