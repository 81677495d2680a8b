//! The `arcp` version literal (decision 1): we accept `"1"` and `"1.1"` and answer in kind.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A protocol version literal we speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub enum ProtocolVersion {
    /// `"1"`: what the v1.0 text requires and v1.0 peers send.
    V1,
    /// `"1.1"`: what the TypeScript SDK sends and requires since 2026-05-19. Our default.
    #[default]
    V1_1,
}

impl ProtocolVersion {
    /// The wire literal.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::V1 => "1",
            ProtocolVersion::V1_1 => "1.1",
        }
    }

    /// Parses a wire literal; anything but `"1"` and `"1.1"` is `UnsupportedVersion`.
    pub fn parse(s: &str) -> Result<Self, crate::Error> {
        match s {
            "1" => Ok(ProtocolVersion::V1),
            "1.1" => Ok(ProtocolVersion::V1_1),
            other => Err(crate::Error::UnsupportedVersion { version: crate::error::clip(other) }),
        }
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ProtocolVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ProtocolVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ProtocolVersion::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(ProtocolVersion::parse("1").unwrap(), ProtocolVersion::V1);
        assert_eq!(ProtocolVersion::parse("1.1").unwrap(), ProtocolVersion::V1_1);
        for bad in ["1.0", "2", "", " 1", "1.1.0"] {
            assert!(ProtocolVersion::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(ProtocolVersion::default().as_str(), "1.1");
    }
}
