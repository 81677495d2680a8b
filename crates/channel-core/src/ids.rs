//! The two identifiers of a channel conversation: [`SessionId`] and [`ContinuationToken`].

use std::fmt;

use arcp_core::{Clock, Entropy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A channel session id. Minted as `chs_` + a ULID; any opaque string is accepted when a
/// client presents one (an unknown id is simply `unknown-session`, never a parse error).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    /// The prefix of ids this implementation mints.
    pub const PREFIX: &'static str = "chs_";

    /// Wraps a presented id as is (any string; lookups decide whether it exists).
    pub fn presented(s: impl Into<String>) -> Self {
        SessionId(s.into())
    }

    /// Mints `chs_` + a ULID from the clock's time and 80 random bits.
    pub fn mint(clock: &dyn Clock, entropy: &dyn Entropy) -> Result<Self, Error> {
        let mut r = [0u8; 16];
        entropy.fill(&mut r[6..])?;
        let ulid = ulid::Ulid::from_parts(clock.now_millis(), u128::from_be_bytes(r));
        Ok(SessionId(format!("{}{ulid}", Self::PREFIX)))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({:?})", self.0)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A single-use continuation token: `ct_` + 64 lowercase hex (256 bits from the
/// [`Entropy`]). Compared in constant time (also by `==`); `Debug` never shows the value.
#[derive(Clone)]
pub struct ContinuationToken(String);

impl ContinuationToken {
    /// The prefix of tokens this implementation mints.
    pub const PREFIX: &'static str = "ct_";

    /// Mints a fresh token from 32 random bytes.
    pub fn mint(entropy: &dyn Entropy) -> Result<Self, Error> {
        let mut bytes = [0u8; 32];
        entropy.fill(&mut bytes)?;
        let mut s = String::with_capacity(Self::PREFIX.len() + 64);
        s.push_str(Self::PREFIX);
        for b in bytes {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        Ok(ContinuationToken(s))
    }

    /// Wraps a token presented by a client. `None` (or an empty string) means no token was
    /// presented, which the port refuses as `missing-token`.
    pub fn presented(s: Option<&str>) -> Option<Self> {
        s.filter(|s| !s.is_empty()).map(|s| ContinuationToken(s.to_owned()))
    }

    /// The secret value, for putting it on the wire. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether this token has the shape this implementation mints.
    pub fn is_canonical(&self) -> bool {
        self.0
            .strip_prefix(Self::PREFIX)
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    }

    /// Constant-time comparison: the time taken depends only on the lengths.
    pub fn ct_eq(&self, other: &ContinuationToken) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl PartialEq for ContinuationToken {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for ContinuationToken {}

impl fmt::Debug for ContinuationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContinuationToken(<redacted>)")
    }
}

impl Serialize for ContinuationToken {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ContinuationToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Err(serde::de::Error::custom("empty continuation token"));
        }
        Ok(ContinuationToken(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arcp_core::{ManualClock, SeededEntropy};

    #[test]
    fn minted_token_is_canonical_and_redacted() {
        let e = SeededEntropy::new(1);
        let t = ContinuationToken::mint(&e).unwrap();
        assert!(t.is_canonical());
        assert_eq!(format!("{t:?}"), "ContinuationToken(<redacted>)");
        assert!(!format!("{t:?}").contains(t.expose()));
        let u = ContinuationToken::mint(&e).unwrap();
        assert_ne!(t, u);
        assert!(t.ct_eq(&t.clone()));
        assert!(!t.ct_eq(&ContinuationToken::presented(Some("ct_short")).unwrap()));
    }

    #[test]
    fn empty_presented_token_is_none() {
        assert!(ContinuationToken::presented(Some("")).is_none());
        assert!(ContinuationToken::presented(None).is_none());
        assert!(serde_json::from_str::<ContinuationToken>("\"\"").is_err());
    }

    #[test]
    fn session_ids_are_prefixed_ulids_and_any_string_is_accepted() {
        let id = SessionId::mint(&ManualClock::new(1_000), &SeededEntropy::new(2)).unwrap();
        assert!(id.as_str().starts_with("chs_"));
        assert_eq!(id.as_str().len(), 4 + 26);
        assert_eq!(SessionId::presented("../../weird::id\n").as_str(), "../../weird::id\n");
    }
}
