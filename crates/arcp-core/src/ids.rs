//! Identifiers: session, job and message ids, resume tokens and W3C trace ids.
//!
//! Ids we mint are `sess_`/`job_`/`msg_` + a ULID (time-ordered, 80 random bits). Ids we
//! *receive* are opaque: any non-empty string of at most [`MAX_ID_LEN`] bytes without control
//! characters, because other implementations mint differently (the Python reference uses
//! `rtk_<ULID>` resume tokens, raw test clients send `msg_raw_…`). Resume tokens compare in
//! constant time and never print themselves.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::env::{Clock, Entropy};

/// The longest id or token accepted from a peer, in bytes.
pub const MAX_ID_LEN: usize = 256;

fn check_opaque(field: &'static str, s: &str) -> Result<(), crate::Error> {
    if s.is_empty() {
        return Err(crate::Error::InvalidField { field, reason: "must not be empty".into() });
    }
    if s.len() > MAX_ID_LEN {
        return Err(crate::Error::InvalidField { field, reason: format!("longer than {MAX_ID_LEN} bytes") });
    }
    if s.chars().any(char::is_control) {
        return Err(crate::Error::InvalidField { field, reason: "contains control characters".into() });
    }
    Ok(())
}

fn mint_ulid(prefix: &str, clock: &dyn Clock, entropy: &dyn Entropy) -> Result<String, crate::Error> {
    let mut random = [0u8; 10];
    entropy.fill(&mut random)?;
    let mut r = [0u8; 16];
    r[6..].copy_from_slice(&random);
    let ulid = ulid::Ulid::from_parts(clock.now_millis(), u128::from_be_bytes(r));
    Ok(format!("{prefix}{ulid}"))
}

fn is_canonical_ulid(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|rest| rest.len() == 26 && ulid::Ulid::from_string(rest).is_ok())
}

macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident, $field:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The prefix of ids this implementation mints.
            pub const PREFIX: &'static str = $prefix;

            /// Accepts any opaque id (non-empty, ≤ 256 bytes, no control characters).
            pub fn parse(s: &str) -> Result<Self, crate::Error> {
                check_opaque($field, s).map(|()| $name(s.to_owned()))
            }

            /// Mints a fresh id: the prefix plus a ULID from `clock` and `entropy`.
            pub fn mint(clock: &dyn Clock, entropy: &dyn Entropy) -> Result<Self, crate::Error> {
                mint_ulid($prefix, clock, entropy).map($name)
            }

            /// Whether this id has the shape we mint (prefix + 26-character ULID).
            pub fn is_canonical(&self) -> bool {
                is_canonical_ulid(&self.0, $prefix)
            }

            /// The id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <Cow<'de, str>>::deserialize(d)?;
                check_opaque($field, &s).map_err(serde::de::Error::custom)?;
                Ok($name(s.into_owned()))
            }
        }

        impl schemars::JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_ID_LEN,
                    "description": concat!("Opaque id; this implementation mints `", $prefix, "` + ULID."),
                })
            }
        }

        #[cfg(any(test, feature = "proptest"))]
        impl proptest::arbitrary::Arbitrary for $name {
            type Parameters = ();
            type Strategy = proptest::strategy::BoxedStrategy<Self>;

            fn arbitrary_with(_: ()) -> Self::Strategy {
                use proptest::prelude::*;
                prop_oneof![
                    (any::<u64>(), any::<u64>()).prop_map(|(t, r)| {
                        let clock = crate::env::ManualClock::new(t >> 16);
                        let entropy = crate::env::SeededEntropy::new(r);
                        $name(mint_ulid($prefix, &clock, &entropy).unwrap_or_default())
                    }),
                    "[a-zA-Z0-9_\\-]{1,40}".prop_map($name),
                ]
                .boxed()
            }
        }
    };
}

opaque_id!(
    /// A session id (`sess_<ULID>` when we mint it).
    SessionId, "session_id", "sess_"
);
opaque_id!(
    /// A job id (`job_<ULID>` when we mint it).
    JobId, "job_id", "job_"
);
opaque_id!(
    /// A message (envelope) id (`msg_<ULID>` when we mint it).
    MessageId, "id", "msg_"
);

/// A resume token: a session credential. Minted as `rt_` + 64 lowercase hex (32 CSPRNG
/// bytes); accepted from peers as an opaque string. Equality is constant-time and `Debug`
/// never shows the value.
#[derive(Clone)]
pub struct ResumeToken(String);

impl ResumeToken {
    /// The prefix of tokens this implementation mints.
    pub const PREFIX: &'static str = "rt_";

    /// Accepts any opaque token (non-empty, ≤ 256 bytes, no control characters).
    pub fn parse(s: &str) -> Result<Self, crate::Error> {
        check_opaque("resume_token", s).map(|()| ResumeToken(s.to_owned()))
    }

    /// Mints `rt_` + 64 lowercase hex from 32 random bytes.
    pub fn mint(entropy: &dyn Entropy) -> Result<Self, crate::Error> {
        let mut bytes = [0u8; 32];
        entropy.fill(&mut bytes)?;
        Ok(ResumeToken(format!("rt_{}", hex(&bytes))))
    }

    /// Whether this token has the shape we mint.
    pub fn is_canonical(&self) -> bool {
        self.0
            .strip_prefix("rt_")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    }

    /// The secret value. Handle with care: never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison (the time taken depends only on the lengths).
    pub fn ct_eq(&self, other: &ResumeToken) -> bool {
        use subtle::ConstantTimeEq;
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl PartialEq for ResumeToken {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other)
    }
}

impl Eq for ResumeToken {}

impl fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResumeToken(<redacted>)")
    }
}

impl Serialize for ResumeToken {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ResumeToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        check_opaque("resume_token", &s).map_err(serde::de::Error::custom)?;
        Ok(ResumeToken(s.into_owned()))
    }
}

impl schemars::JsonSchema for ResumeToken {
    fn schema_name() -> Cow<'static, str> {
        "ResumeToken".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ID_LEN,
            "description": "Opaque resume token; this implementation mints `rt_` + 64 lowercase hex.",
        })
    }
}

#[cfg(any(test, feature = "proptest"))]
impl proptest::arbitrary::Arbitrary for ResumeToken {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        use proptest::prelude::*;
        any::<u64>()
            .prop_map(|seed| {
                ResumeToken::mint(&crate::env::SeededEntropy::new(seed)).unwrap_or_else(|_| ResumeToken("rt_x".into()))
            })
            .boxed()
    }
}

/// A W3C trace id: 32 lowercase hex characters, not all zero.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TraceId(String);

impl TraceId {
    /// Parses and validates a trace id.
    pub fn parse(s: &str) -> Result<Self, crate::Error> {
        let hex_ok = s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !hex_ok {
            return Err(crate::Error::InvalidField {
                field: "trace_id",
                reason: format!("{:?} is not 32 lowercase hex characters", crate::error::clip(s)),
            });
        }
        if s.bytes().all(|b| b == b'0') {
            return Err(crate::Error::InvalidField {
                field: "trace_id",
                reason: "the all-zero trace id is invalid (W3C)".into(),
            });
        }
        Ok(TraceId(s.to_owned()))
    }

    /// Mints a random trace id.
    pub fn mint(entropy: &dyn Entropy) -> Result<Self, crate::Error> {
        let mut bytes = [0u8; 16];
        loop {
            entropy.fill(&mut bytes)?;
            if bytes != [0u8; 16] {
                return Ok(TraceId(hex(&bytes)));
            }
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for TraceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TraceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        TraceId::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for TraceId {
    fn schema_name() -> Cow<'static, str> {
        "TraceId".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^(?!0{32})[0-9a-f]{32}$",
            "description": "W3C trace-id: 32 lowercase hex characters, not all zero.",
        })
    }
}

#[cfg(any(test, feature = "proptest"))]
impl proptest::arbitrary::Arbitrary for TraceId {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        use proptest::prelude::*;
        any::<u64>()
            .prop_map(|seed| {
                TraceId::mint(&crate::env::SeededEntropy::new(seed)).unwrap_or_else(|_| TraceId("1".repeat(32)))
            })
            .boxed()
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{ManualClock, SeededEntropy};

    #[test]
    fn minted_ids_are_canonical_and_time_ordered() {
        let clock = ManualClock::new(1_700_000_000_000);
        let e = SeededEntropy::new(1);
        let a = JobId::mint(&clock, &e).unwrap();
        clock.advance(1);
        let b = JobId::mint(&clock, &e).unwrap();
        assert!(a.is_canonical() && b.is_canonical(), "{a} {b}");
        assert!(a.as_str().starts_with("job_") && a < b);
        assert!(SessionId::mint(&clock, &e).unwrap().as_str().starts_with("sess_"));
        assert!(MessageId::mint(&clock, &e).unwrap().as_str().starts_with("msg_"));
    }

    #[test]
    fn opaque_ids_from_peers() {
        assert!(MessageId::parse("msg_raw_hhds9b5c0hk").is_ok());
        assert!(!MessageId::parse("msg_raw_hhds9b5c0hk").unwrap().is_canonical());
        assert!(SessionId::parse("").is_err());
        assert!(SessionId::parse(&"x".repeat(257)).is_err());
        assert!(JobId::parse("job\n1").is_err());
    }

    #[test]
    fn resume_tokens() {
        let t = ResumeToken::mint(&SeededEntropy::new(3)).unwrap();
        assert!(t.is_canonical());
        assert_eq!(t.expose().len(), 67);
        assert_eq!(format!("{t:?}"), "ResumeToken(<redacted>)");
        let same = ResumeToken::parse(t.expose()).unwrap();
        assert_eq!(t, same);
        assert_ne!(t, ResumeToken::parse("rtk_01M83Q9S90AVHJJDJ1ZYGP2BK4").unwrap());
    }

    #[test]
    fn trace_ids() {
        assert!(TraceId::parse("c4abe905140b6d065d7399007ac7bdc3").is_ok());
        assert!(TraceId::parse(&"0".repeat(32)).is_err());
        assert!(TraceId::parse("C4ABE905140B6D065D7399007AC7BDC3").is_err());
        assert!(TraceId::parse("c4abe905").is_err());
        let t = TraceId::mint(&SeededEntropy::new(9)).unwrap();
        assert!(TraceId::parse(t.as_str()).is_ok());
    }
}
