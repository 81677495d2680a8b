//! The wire's error codes: one table, an open string newtype, and the retryable rules.
//!
//! [`ErrorCode`] is *open*: a code this build does not know (from a newer peer, or a vendor
//! code inside a `tool_result`) still decodes and re-encodes unchanged. The fifteen canonical
//! codes of ARCP v1.1 are associated constants generated from [`CANONICAL_CODES`], the single
//! table that also drives the retryable rules, the JSON Schemas and the golden vectors.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How a canonical code treats the `retryable` flag (decision 10 of `spec/arcp.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retryable {
    /// The flag is always `value`, whatever the sender asked for; a payload that says
    /// otherwise is invalid.
    Pinned(bool),
    /// The sender chooses; `value` is used when it does not.
    Default(bool),
}

impl Retryable {
    /// The value used when the sender gives none.
    pub const fn default_value(self) -> bool {
        match self {
            Retryable::Pinned(v) | Retryable::Default(v) => v,
        }
    }
}

/// One row of the canonical error table.
#[derive(Debug, Clone, Copy)]
pub struct CodeInfo {
    /// The code as it appears on the wire.
    pub code: &'static str,
    /// What it means, in one line.
    pub meaning: &'static str,
    /// The retryable rule.
    pub retryable: Retryable,
    /// The protocol version that introduced the code.
    pub since: &'static str,
}

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $konst:ident = $wire:literal, $retry:expr, $since:literal, $meaning:literal; )*) => {
        /// Every canonical code, in the order of the spec's §12 table.
        pub const CANONICAL_CODES: &[CodeInfo] = &[
            $( CodeInfo { code: $wire, meaning: $meaning, retryable: $retry, since: $since }, )*
        ];

        impl ErrorCode {
            $(
                $(#[$doc])*
                pub const $konst: ErrorCode = ErrorCode(Cow::Borrowed($wire));
            )*
        }
    };
}

error_codes! {
    /// Rejected by lease enforcement, an unauthorised subscribe, or a cancel by a non-owner.
    PERMISSION_DENIED = "PERMISSION_DENIED", Retryable::Default(false), "1", "Operation rejected by lease enforcement or authorisation.";
    /// A delegation would widen the parent's lease.
    LEASE_SUBSET_VIOLATION = "LEASE_SUBSET_VIOLATION", Retryable::Default(false), "1", "Delegated lease is not a subset of the parent lease.";
    /// The job does not exist or is not visible to the caller.
    JOB_NOT_FOUND = "JOB_NOT_FOUND", Retryable::Default(false), "1", "Referenced job does not exist or is not visible.";
    /// An idempotency key was reused with a different submit payload.
    DUPLICATE_KEY = "DUPLICATE_KEY", Retryable::Default(false), "1", "idempotency_key reused with conflicting parameters.";
    /// No agent of that name is registered.
    AGENT_NOT_AVAILABLE = "AGENT_NOT_AVAILABLE", Retryable::Default(false), "1", "Requested agent is not registered.";
    /// The agent exists but not in the requested version.
    AGENT_VERSION_NOT_AVAILABLE = "AGENT_VERSION_NOT_AVAILABLE", Retryable::Pinned(false), "1.1", "Agent name known, requested version unavailable.";
    /// The job ended because the client cancelled it.
    CANCELLED = "CANCELLED", Retryable::Default(false), "1", "Job ended by client cancellation.";
    /// The job exceeded `max_runtime_sec`.
    TIMEOUT = "TIMEOUT", Retryable::Default(true), "1", "Job exceeded max_runtime_sec.";
    /// Resume after the buffer window closed, or with an unknown or wrong token.
    RESUME_WINDOW_EXPIRED = "RESUME_WINDOW_EXPIRED", Retryable::Default(false), "1", "Resume outside the buffer window or with an invalid token.";
    /// The peer was silent for two heartbeat intervals.
    HEARTBEAT_LOST = "HEARTBEAT_LOST", Retryable::Default(false), "1", "Peer silent for two heartbeat intervals.";
    /// The lease's `expires_at` has passed.
    LEASE_EXPIRED = "LEASE_EXPIRED", Retryable::Pinned(false), "1.1", "Lease expires_at reached.";
    /// A `cost.budget` counter reached zero.
    BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED", Retryable::Pinned(false), "1.1", "A cost.budget counter reached zero.";
    /// A malformed envelope or a schema violation.
    INVALID_REQUEST = "INVALID_REQUEST", Retryable::Default(false), "1", "Malformed envelope or schema violation.";
    /// Missing or invalid authentication.
    UNAUTHENTICATED = "UNAUTHENTICATED", Retryable::Default(false), "1", "Missing or invalid authentication.";
    /// An unrecoverable runtime fault; always retryable.
    INTERNAL_ERROR = "INTERNAL_ERROR", Retryable::Pinned(true), "1", "Unrecoverable runtime fault. Always retryable.";
}

/// An error code as carried in `{code, message, retryable, details?}`.
///
/// Open: any string matching the code grammar (`[A-Z][A-Z0-9_]*`, or a vendor code
/// `x-vendor.<vendor>.<name>`) is accepted, so codes from newer peers round-trip.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(Cow<'static, str>);

impl ErrorCode {
    /// Parses a code, checking only its grammar.
    pub fn parse(s: &str) -> Result<Self, crate::Error> {
        if is_valid_code(s) {
            Ok(match info(s) {
                Some(row) => ErrorCode(Cow::Borrowed(row.code)),
                None => ErrorCode(Cow::Owned(s.to_owned())),
            })
        } else {
            Err(crate::Error::InvalidField {
                field: "code",
                reason: format!("`{}` is not an error code (expected UPPER_SNAKE or x-vendor.*)", truncate(s)),
            })
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The table row, if this is one of the fifteen canonical codes.
    pub fn info(&self) -> Option<&'static CodeInfo> {
        info(&self.0)
    }

    /// Whether this is one of the fifteen canonical codes.
    pub fn is_canonical(&self) -> bool {
        self.info().is_some()
    }

    /// The retryable rule: the canonical row's, or "sender decides, default false" for codes
    /// this build does not know.
    pub fn retryable_rule(&self) -> Retryable {
        self.info().map_or(Retryable::Default(false), |row| row.retryable)
    }
}

fn info(s: &str) -> Option<&'static CodeInfo> {
    CANONICAL_CODES.iter().find(|row| row.code == s)
}

fn is_valid_code(s: &str) -> bool {
    if s.len() > 128 {
        return false;
    }
    if s.starts_with("x-vendor.") {
        return crate::names::is_vendor_name(s);
    }
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'A'..=b'Z')) && bytes.all(|b| matches!(b, b'A'..=b'Z' | b'0'..=b'9' | b'_'))
}

pub(crate) fn truncate(s: &str) -> &str {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s;
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        ErrorCode::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for ErrorCode {
    fn schema_name() -> Cow<'static, str> {
        "ErrorCode".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A canonical ARCP error code, or a code from a newer peer or vendor (open set).",
            "pattern": "^([A-Z][A-Z0-9_]*|x-vendor(\\.[a-z0-9_-]+){2,})$",
            "maxLength": 128,
            "examples": CANONICAL_CODES.iter().map(|c| c.code).collect::<Vec<_>>(),
        })
    }
}

#[cfg(any(test, feature = "proptest"))]
impl proptest::arbitrary::Arbitrary for ErrorCode {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        use proptest::prelude::*;
        prop_oneof![
            4 => proptest::sample::select(CANONICAL_CODES).prop_map(|row| ErrorCode(Cow::Borrowed(row.code))),
            1 => "[A-Z][A-Z0-9_]{0,20}".prop_map(|s| ErrorCode::parse(&s).unwrap_or(ErrorCode::INTERNAL_ERROR)),
        ]
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_the_fifteen_codes_once_each() {
        assert_eq!(CANONICAL_CODES.len(), 15);
        let mut names: Vec<_> = CANONICAL_CODES.iter().map(|c| c.code).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 15);
    }

    #[test]
    fn decision_10_pins() {
        assert_eq!(ErrorCode::INTERNAL_ERROR.retryable_rule(), Retryable::Pinned(true));
        for c in [ErrorCode::LEASE_EXPIRED, ErrorCode::BUDGET_EXHAUSTED, ErrorCode::AGENT_VERSION_NOT_AVAILABLE] {
            assert_eq!(c.retryable_rule(), Retryable::Pinned(false), "{c}");
        }
        assert_eq!(ErrorCode::TIMEOUT.retryable_rule(), Retryable::Default(true));
    }

    #[test]
    fn unknown_codes_round_trip() {
        let c: ErrorCode = serde_json::from_str("\"RATE_LIMITED\"").unwrap();
        assert!(!c.is_canonical());
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"RATE_LIMITED\"");
        let v: ErrorCode = serde_json::from_str("\"x-vendor.acme.quota\"").unwrap();
        assert_eq!(v.as_str(), "x-vendor.acme.quota");
    }

    #[test]
    fn bad_grammar_is_rejected() {
        for bad in ["", "lower", "1ABC", "A-B", "x-vendor.acme", "ÄÖ"] {
            assert!(ErrorCode::parse(bad).is_err(), "{bad:?}");
        }
    }
}
