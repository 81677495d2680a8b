//! [`Version`] (a strict `major.minor.patch`), [`PLUGIN_API_VERSION`] and the load rule
//! [`check_api_compatible`].
//!
//! The parser is deliberately small: three decimal components without leading zeros, nothing
//! else. Pre-release tags (`-rc.1`) and build metadata (`+abc`) are refused rather than half
//! supported: a plugin API version is a contract, and a pre-release of a contract has no
//! ordering we would want to load against.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, PluginRefused, RefusalReason};

/// The JSON Schema `pattern` equivalent of [`Version::parse`] (the length cap is separate).
pub const VERSION_PATTERN: &str = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$";

/// Longest version string accepted.
pub const VERSION_MAX_LEN: usize = 64;

/// A `major.minor.patch` version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Incompatible changes.
    pub major: u64,
    /// Backwards-compatible additions.
    pub minor: u64,
    /// Fixes.
    pub patch: u64,
}

/// The plugin API this crate defines. See [`check_api_compatible`] for the load rule.
pub const PLUGIN_API_VERSION: Version = Version::new(1, 0, 0);

impl Version {
    /// A version from its three components.
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Self { major, minor, patch }
    }

    /// Parses `major.minor.patch` (decimal, no leading zeros, no sign, no whitespace, no
    /// pre-release or build suffix, at most [`VERSION_MAX_LEN`] bytes).
    pub fn parse(input: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::InvalidVersion { input: truncate(input), reason: reason.to_owned() };
        if input.len() > VERSION_MAX_LEN {
            return Err(bad("longer than 64 bytes"));
        }
        if input.contains(['-', '+']) {
            return Err(bad("pre-release and build suffixes are not supported; use major.minor.patch"));
        }
        let mut parts = input.split('.');
        let mut next = |what: &str| -> Result<u64, Error> {
            let part = parts.next().ok_or_else(|| bad("expected major.minor.patch"))?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(&format!("{what} must be a decimal number")));
            }
            if part.len() > 1 && part.starts_with('0') {
                return Err(bad(&format!("{what} has a leading zero")));
            }
            part.parse().map_err(|_| bad(&format!("{what} is too large")))
        };
        let (major, minor, patch) = (next("major")?, next("minor")?, next("patch")?);
        if parts.next().is_some() {
            return Err(bad("expected exactly three components, major.minor.patch"));
        }
        Ok(Self { major, minor, patch })
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(VERSION_MAX_LEN).collect()
}

impl FromStr for Version {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Which side has to move for a plugin built against one API version to load into a runtime
/// providing another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Upgrade {
    /// The plugin targets a newer API (newer major, or same major and newer minor).
    Runtime,
    /// The plugin targets an older major.
    Plugin,
}

/// The load rule with both versions explicit: compatible iff the majors are equal and the
/// plugin's minor is not ahead of the runtime's (patch is ignored). `Err` says which side to
/// upgrade.
pub fn compatibility(plugin: Version, runtime: Version) -> Result<(), Upgrade> {
    if plugin.major > runtime.major || (plugin.major == runtime.major && plugin.minor > runtime.minor) {
        Err(Upgrade::Runtime)
    } else if plugin.major < runtime.major {
        Err(Upgrade::Plugin)
    } else {
        Ok(())
    }
}

/// The load rule against [`PLUGIN_API_VERSION`]: a plugin loads only if its major equals ours
/// and its minor is not ahead of ours. The refusal
/// ([`RefusalReason::ApiVersionIncompatible`]) names both versions and the side to upgrade.
pub fn check_api_compatible(plugin_name: &str, plugin: Version) -> Result<(), PluginRefused> {
    check_api_compatible_with(plugin_name, plugin, PLUGIN_API_VERSION)
}

/// [`check_api_compatible`] against an explicit runtime version (for tests and tools).
pub fn check_api_compatible_with(plugin_name: &str, plugin: Version, runtime: Version) -> Result<(), PluginRefused> {
    let Err(side) = compatibility(plugin, runtime) else { return Ok(()) };
    let (what, remediation) = match side {
        Upgrade::Runtime => (
            "upgrade the runtime",
            format!(
                "upgrade the runtime to one providing plugin-api {}.{}.x or later within major {}, \
                 or install a build of `{plugin_name}` targeting plugin-api {runtime}",
                plugin.major, plugin.minor, plugin.major
            ),
        ),
        Upgrade::Plugin => (
            "upgrade the plugin",
            format!("upgrade `{plugin_name}` to a version built against plugin-api {}.x", runtime.major),
        ),
    };
    Err(PluginRefused::new(
        RefusalReason::ApiVersionIncompatible,
        Some(plugin_name),
        format!(
            "plugin `{plugin_name}` was built against plugin-api {plugin} but this runtime provides \
             plugin-api {runtime}: {what}"
        ),
    )
    .with_remediation(remediation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strict_triples() {
        assert_eq!(Version::parse("1.2.3").unwrap(), Version::new(1, 2, 3));
        assert_eq!(Version::parse("0.0.0").unwrap(), Version::new(0, 0, 0));
        assert_eq!("10.20.30".parse::<Version>().unwrap().to_string(), "10.20.30");
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "01.2.3",
            "1.02.3",
            "1.2.03",
            "v1.2.3",
            " 1.2.3",
            "1.2.3 ",
            "1.2.3-rc.1",
            "1.2.3+b",
            "1..3",
            "-1.2.3",
            "1.2.x",
            "99999999999999999999.0.0",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(Version::parse(&"1".repeat(65)).is_err());
    }

    #[test]
    fn the_rule_compares_major_and_minor_only() {
        let rt = Version::new(1, 4, 2);
        assert_eq!(compatibility(Version::new(1, 4, 9), rt), Ok(()));
        assert_eq!(compatibility(Version::new(1, 0, 0), rt), Ok(()));
        assert_eq!(compatibility(Version::new(1, 5, 0), rt), Err(Upgrade::Runtime));
        assert_eq!(compatibility(Version::new(2, 0, 0), rt), Err(Upgrade::Runtime));
        assert_eq!(compatibility(Version::new(0, 9, 0), rt), Err(Upgrade::Plugin));
    }

    #[test]
    fn refusal_names_both_versions_and_the_side_to_upgrade() {
        let e = check_api_compatible_with("demo", Version::new(2, 0, 0), Version::new(1, 0, 0)).unwrap_err();
        assert_eq!(e.reason, RefusalReason::ApiVersionIncompatible);
        assert!(e.message.contains("2.0.0") && e.message.contains("1.0.0"), "{}", e.message);
        assert!(e.message.contains("upgrade the runtime"), "{}", e.message);
        let e = check_api_compatible_with("demo", Version::new(0, 3, 0), Version::new(1, 0, 0)).unwrap_err();
        assert!(e.message.contains("upgrade the plugin"), "{}", e.message);
        assert!(e.remediation.unwrap().contains("plugin-api 1.x"));
        assert!(check_api_compatible("demo", PLUGIN_API_VERSION).is_ok());
    }
}
