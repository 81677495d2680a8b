//! Capability names (§9.2): the validated [`Capability`] newtype, its [`CapabilityKind`] and
//! the [`TargetKind`] each capability is checked against.
//!
//! Deliberately does not hold patterns or decide whether an operation is allowed; that is
//! [`super::Lease`]'s job.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;
use crate::error::clip;

/// A capability name: one of the seven reserved namespaces or `x-vendor.<vendor>.<name>`.
///
/// Ordered and compared by name, so a `BTreeMap<Capability, _>` iterates in the same order as
/// the wire's `BTreeMap<String, _>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Capability(Cow<'static, str>);

/// What a capability governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CapabilityKind {
    /// `fs.read`: reading files (path globs).
    FsRead,
    /// `fs.write`: writing files (path globs).
    FsWrite,
    /// `net.fetch`: network requests (URL globs).
    NetFetch,
    /// `tool.call`: invoking tools (tool-name globs).
    ToolCall,
    /// `agent.delegate`: delegating to other agents (agent-name globs).
    AgentDelegate,
    /// `cost.budget` (v1.1): per-currency spending limits (`currency:decimal` amounts).
    CostBudget,
    /// `model.use` (v1.1): which models may be used (model-name globs).
    ModelUse,
    /// An `x-vendor.<vendor>.<name>` capability; its patterns are matched as names.
    Vendor,
}

/// How a capability's targets are canonicalised and matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TargetKind {
    /// A filesystem path: `.`/`..` resolved, `//` collapsed (see [`super::canonicalize_path`]).
    Path,
    /// An absolute URL, normalised with the `url` crate (see [`super::canonicalize_url`]).
    Url,
    /// A name (tool, agent, model, vendor target), matched as given.
    Name,
    /// A `currency:decimal` amount; never matched against a target.
    Amount,
}

impl Capability {
    /// `fs.read`.
    pub const FS_READ: Capability = Capability(Cow::Borrowed("fs.read"));
    /// `fs.write`.
    pub const FS_WRITE: Capability = Capability(Cow::Borrowed("fs.write"));
    /// `net.fetch`.
    pub const NET_FETCH: Capability = Capability(Cow::Borrowed("net.fetch"));
    /// `tool.call`.
    pub const TOOL_CALL: Capability = Capability(Cow::Borrowed("tool.call"));
    /// `agent.delegate`.
    pub const AGENT_DELEGATE: Capability = Capability(Cow::Borrowed("agent.delegate"));
    /// `cost.budget` (v1.1).
    pub const COST_BUDGET: Capability = Capability(Cow::Borrowed("cost.budget"));
    /// `model.use` (v1.1).
    pub const MODEL_USE: Capability = Capability(Cow::Borrowed("model.use"));

    /// The seven reserved capabilities, in wire-name order.
    pub const RESERVED: [Capability; 7] = [
        Capability::AGENT_DELEGATE,
        Capability::COST_BUDGET,
        Capability::FS_READ,
        Capability::FS_WRITE,
        Capability::MODEL_USE,
        Capability::NET_FETCH,
        Capability::TOOL_CALL,
    ];

    /// Parses a capability name; anything neither reserved nor a vendor name is
    /// [`Error::InvalidCapability`].
    pub fn parse(name: &str) -> Result<Capability, Error> {
        if let Some(reserved) = Capability::RESERVED.iter().find(|c| c.as_str() == name) {
            return Ok(reserved.clone());
        }
        if crate::names::is_vendor_name(name) {
            return Ok(Capability(Cow::Owned(name.to_owned())));
        }
        Err(Error::InvalidCapability {
            name: clip(name),
            reason: "not a reserved capability (fs.read, fs.write, net.fetch, tool.call, \
                     agent.delegate, cost.budget, model.use) or x-vendor.<vendor>.<name>"
                .to_owned(),
        })
    }

    /// The wire name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What this capability governs.
    pub fn kind(&self) -> CapabilityKind {
        match self.as_str() {
            "fs.read" => CapabilityKind::FsRead,
            "fs.write" => CapabilityKind::FsWrite,
            "net.fetch" => CapabilityKind::NetFetch,
            "tool.call" => CapabilityKind::ToolCall,
            "agent.delegate" => CapabilityKind::AgentDelegate,
            "cost.budget" => CapabilityKind::CostBudget,
            "model.use" => CapabilityKind::ModelUse,
            _ => CapabilityKind::Vendor,
        }
    }

    /// How this capability's targets (and patterns) are canonicalised and matched.
    pub fn target_kind(&self) -> TargetKind {
        self.kind().target_kind()
    }

    /// Whether this is a vendor (`x-vendor.*`) capability.
    pub fn is_vendor(&self) -> bool {
        self.kind() == CapabilityKind::Vendor
    }
}

impl CapabilityKind {
    /// How targets of this kind of capability are canonicalised and matched.
    pub fn target_kind(self) -> TargetKind {
        match self {
            CapabilityKind::FsRead | CapabilityKind::FsWrite => TargetKind::Path,
            CapabilityKind::NetFetch => TargetKind::Url,
            CapabilityKind::ToolCall
            | CapabilityKind::AgentDelegate
            | CapabilityKind::ModelUse
            | CapabilityKind::Vendor => TargetKind::Name,
            CapabilityKind::CostBudget => TargetKind::Amount,
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Capability {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Capability::parse(s)
    }
}

impl AsRef<str> for Capability {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Serialize for Capability {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Capability {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(deserializer)?;
        Capability::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn reserved_names_parse_to_their_consts() {
        for cap in Capability::RESERVED {
            assert_eq!(Capability::parse(cap.as_str()).unwrap(), cap);
            assert!(!cap.is_vendor());
        }
        assert_eq!(Capability::parse("fs.read").unwrap().kind(), CapabilityKind::FsRead);
        assert_eq!(Capability::COST_BUDGET.target_kind(), TargetKind::Amount);
        assert_eq!(Capability::NET_FETCH.target_kind(), TargetKind::Url);
        assert_eq!(Capability::FS_WRITE.target_kind(), TargetKind::Path);
        assert_eq!(Capability::MODEL_USE.target_kind(), TargetKind::Name);
    }

    #[test]
    fn reserved_list_is_sorted_like_the_wire() {
        let names: Vec<&str> = Capability::RESERVED.iter().map(Capability::as_str).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }

    #[test]
    fn vendor_names_are_accepted() {
        let cap = Capability::parse("x-vendor.acme.gpu").unwrap();
        assert!(cap.is_vendor());
        assert_eq!(cap.target_kind(), TargetKind::Name);
        assert_eq!(cap.to_string(), "x-vendor.acme.gpu");
    }

    #[test]
    fn anything_else_is_rejected() {
        for bad in ["", "fs", "fs.READ", "fs.delete", "x-vendor.acme", "shell.exec", " fs.read"] {
            let err = Capability::parse(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidCapability { .. }), "{bad:?}");
        }
    }

    #[test]
    fn serde_round_trip_validates() {
        let cap: Capability = serde_json::from_str("\"tool.call\"").unwrap();
        assert_eq!(cap, Capability::TOOL_CALL);
        assert_eq!(serde_json::to_string(&cap).unwrap(), "\"tool.call\"");
        assert!(serde_json::from_str::<Capability>("\"nope\"").is_err());
    }
}
