//! Agent references (`name` or `name@version`, §7.5) and the two inventory shapes a welcome
//! may carry (flat `["name", …]` of v1.0, rich `[{name, versions, default?}]` of v1.1).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A parsed agent reference: `name ::= [a-z0-9][a-z0-9._-]*`, `version ::= [a-zA-Z0-9.+_-]+`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentRef {
    name: String,
    version: Option<String>,
}

/// The longest agent reference accepted, in bytes.
pub const MAX_AGENT_LEN: usize = 256;

impl AgentRef {
    /// Parses `name` or `name@version`.
    pub fn parse(s: &str) -> Result<Self, crate::Error> {
        let err = |reason| crate::Error::InvalidAgent { value: crate::error::clip(s), reason };
        if s.len() > MAX_AGENT_LEN {
            return Err(err("longer than 256 bytes"));
        }
        let (name, version) = match s.split_once('@') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        if !is_agent_name(name) {
            return Err(err("name must match [a-z0-9][a-z0-9._-]*"));
        }
        if let Some(v) = version
            && (v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'_' | b'-')))
        {
            return Err(err("version must match [a-zA-Z0-9.+_-]+"));
        }
        Ok(AgentRef { name: name.to_owned(), version: version.map(str::to_owned) })
    }

    /// A reference to `name` at `version` (validated).
    pub fn new(name: &str, version: Option<&str>) -> Result<Self, crate::Error> {
        match version {
            Some(v) => Self::parse(&format!("{name}@{v}")),
            None => Self::parse(name),
        }
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pinned version, if any.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }
}

/// Whether `s` matches the agent-name grammar `[a-z0-9][a-z0-9._-]*`.
pub fn is_agent_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && b.all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
}

impl fmt::Display for AgentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// One entry of the rich (v1.1) inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct AgentEntry {
    /// The agent's name.
    #[cfg_attr(any(test, feature = "proptest"), proptest(regex = "[a-z][a-z0-9-]{0,8}"))]
    pub name: String,
    /// Registered versions (an unversioned-only agent lists none).
    #[cfg_attr(
        any(test, feature = "proptest"),
        proptest(strategy = "proptest::collection::vec(\"[0-9]\\\\.[0-9]\\\\.[0-9]\", 0..3)")
    )]
    pub versions: Vec<String>,
    /// The version a bare name resolves to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        any(test, feature = "proptest"),
        proptest(strategy = "proptest::option::of(\"[0-9]\\\\.[0-9]\\\\.[0-9]\")")
    )]
    pub default: Option<String>,
}

/// `capabilities.agents`: either shape. An empty list decodes as [`AgentInventory::Rich`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum AgentInventory {
    /// `[{name, versions, default?}]` (v1.1, `agent_versions`).
    Rich(Vec<AgentEntry>),
    /// `["name", …]` (v1.0).
    Flat(Vec<String>),
}

impl AgentInventory {
    /// The rich view of either shape (a flat name becomes `{name, versions: []}`).
    pub fn normalize(&self) -> Vec<AgentEntry> {
        match self {
            AgentInventory::Rich(entries) => entries.clone(),
            AgentInventory::Flat(names) => {
                names.iter().map(|n| AgentEntry { name: n.clone(), versions: Vec::new(), default: None }).collect()
            }
        }
    }
}

#[cfg(any(test, feature = "proptest"))]
impl proptest::arbitrary::Arbitrary for AgentInventory {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        use proptest::prelude::*;
        prop_oneof![
            proptest::collection::vec(any::<AgentEntry>(), 0..3).prop_map(AgentInventory::Rich),
            proptest::collection::vec("[a-z][a-z0-9-]{0,8}", 1..3).prop_map(AgentInventory::Flat),
        ]
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        let a = AgentRef::parse("summarizer@2.0.0").unwrap();
        assert_eq!((a.name(), a.version()), ("summarizer", Some("2.0.0")));
        assert_eq!(a.to_string(), "summarizer@2.0.0");
        assert_eq!(AgentRef::parse("echo").unwrap().version(), None);
        assert!(AgentRef::parse("web-research@1.0.0+build_7").is_ok());
        for bad in ["Bad Name", "", "@1", "echo@", "echo@1@2", "-x", "Echo", "a b", "echo@1 0"] {
            assert!(AgentRef::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn both_inventory_shapes() {
        let flat: AgentInventory = serde_json::from_str(r#"["echo","count"]"#).unwrap();
        assert_eq!(flat.normalize()[1].name, "count");
        let rich: AgentInventory =
            serde_json::from_str(r#"[{"name":"s","versions":["1.0.0","2.0.0"],"default":"2.0.0"}]"#).unwrap();
        assert_eq!(rich.normalize()[0].default.as_deref(), Some("2.0.0"));
        assert!(serde_json::from_str::<AgentInventory>(r#"[1]"#).is_err());
    }
}
