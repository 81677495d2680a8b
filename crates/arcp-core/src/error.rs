//! The crate's one error type, [`Error`], and its mapping to wire error codes.
//!
//! Every variant says who caused it: all of them are caused by the *peer* (bad input) except
//! [`Error::EntropyUnavailable`], which is local. [`Error::code`] is the single mapping from a
//! failure to the code that goes on the wire.

use crate::error_code::ErrorCode;

/// Everything that can go wrong in `arcp-core`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The frame is longer than the configured maximum; it was not parsed.
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Size of the frame in bytes.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The frame is not valid UTF-8.
    #[error("frame is not valid UTF-8 (first bad byte at offset {offset})")]
    InvalidUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// The frame is not valid JSON.
    #[error("frame is not valid JSON at line {line}, column {column}: {reason}")]
    InvalidJson {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the parser reported.
        reason: String,
    },
    /// The frame nests arrays/objects deeper than the decoder allows.
    #[error("JSON nesting exceeds the maximum depth of {max}")]
    TooDeep {
        /// The maximum nesting depth.
        max: usize,
    },
    /// The frame is JSON but not a JSON object.
    #[error("an envelope must be a JSON object")]
    NotAnObject,
    /// A required field is absent.
    #[error("missing required field `{field}`")]
    MissingField {
        /// The field's wire name.
        field: &'static str,
    },
    /// A field is present but has the wrong type or an invalid value.
    #[error("invalid `{field}`: {reason}")]
    InvalidField {
        /// The field's wire name.
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// The `arcp` version literal is not one we speak.
    #[error("unsupported protocol version {version:?} (supported: \"1\", \"1.1\")")]
    UnsupportedVersion {
        /// The literal received (truncated).
        version: String,
    },
    /// The message type is unknown and cannot be dropped (see [`crate::TypeClass`]).
    #[error("unknown message type {type_name:?} ({class})")]
    UnknownType {
        /// The type received (truncated).
        type_name: String,
        /// How it was classified.
        class: crate::names::TypeClass,
    },
    /// The payload does not match the message type's schema.
    #[error("invalid {message_type} payload: {reason}")]
    InvalidPayload {
        /// The message type.
        message_type: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A string that should be an agent reference (`name` or `name@version`) is not one.
    #[error("invalid agent {value:?}: {reason}")]
    InvalidAgent {
        /// The value received (truncated).
        value: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// A capability name is neither reserved nor a vendor name.
    #[error("invalid capability {name:?}: {reason}")]
    InvalidCapability {
        /// The name received (truncated).
        name: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A lease pattern cannot be parsed.
    #[error("invalid pattern {pattern:?} for {capability}: {reason}")]
    InvalidPattern {
        /// The capability the pattern belongs to.
        capability: String,
        /// The pattern received (truncated).
        pattern: String,
        /// Why it is invalid.
        reason: String,
    },
    /// An operation target (path, URL, name) cannot be canonicalised.
    #[error("invalid target {target:?}: {reason}")]
    InvalidTarget {
        /// The target received (truncated).
        target: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A budget amount is not `currency:decimal`.
    #[error("invalid amount {amount:?}: {reason}")]
    InvalidAmount {
        /// The amount received (truncated).
        amount: String,
        /// Why it is invalid.
        reason: String,
    },
    /// `expires_at` is not an RFC 3339 UTC (`Z`) timestamp, or is not in the future.
    #[error("invalid expires_at {value:?}: {reason}")]
    InvalidExpiresAt {
        /// The value received (truncated).
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A delegated lease would widen its parent's.
    #[error("lease subset violation on {capability}: {reason}")]
    LeaseSubsetViolation {
        /// The capability (or `lease_constraints.expires_at`) that widens.
        capability: String,
        /// What widens.
        reason: String,
    },
    /// The lease does not cover the operation.
    #[error("{capability} does not cover {target:?}")]
    PermissionDenied {
        /// The capability checked.
        capability: String,
        /// The canonical target (truncated).
        target: String,
    },
    /// The lease's `expires_at` has passed.
    #[error("lease expired at {expires_at}")]
    LeaseExpired {
        /// When it expired.
        expires_at: String,
    },
    /// A budget counter is at or below zero.
    #[error("budget exhausted for {currency}")]
    BudgetExhausted {
        /// The exhausted currency.
        currency: String,
    },
    /// The operating system's randomness source failed (local fault).
    #[error("randomness source unavailable: {0}")]
    EntropyUnavailable(String),
}

impl Error {
    /// The wire error code this failure is reported with.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::FrameTooLarge { .. }
            | Error::InvalidUtf8 { .. }
            | Error::InvalidJson { .. }
            | Error::TooDeep { .. }
            | Error::NotAnObject
            | Error::MissingField { .. }
            | Error::InvalidField { .. }
            | Error::UnsupportedVersion { .. }
            | Error::UnknownType { .. }
            | Error::InvalidPayload { .. }
            | Error::InvalidAgent { .. }
            | Error::InvalidCapability { .. }
            | Error::InvalidPattern { .. }
            | Error::InvalidTarget { .. }
            | Error::InvalidAmount { .. }
            | Error::InvalidExpiresAt { .. } => ErrorCode::INVALID_REQUEST,
            Error::LeaseSubsetViolation { .. } => ErrorCode::LEASE_SUBSET_VIOLATION,
            Error::PermissionDenied { .. } => ErrorCode::PERMISSION_DENIED,
            Error::LeaseExpired { .. } => ErrorCode::LEASE_EXPIRED,
            Error::BudgetExhausted { .. } => ErrorCode::BUDGET_EXHAUSTED,
            Error::EntropyUnavailable(_) => ErrorCode::INTERNAL_ERROR,
        }
    }

    /// A stable snake_case name for the variant, used by golden vectors and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::FrameTooLarge { .. } => "frame_too_large",
            Error::InvalidUtf8 { .. } => "invalid_utf8",
            Error::InvalidJson { .. } => "invalid_json",
            Error::TooDeep { .. } => "too_deep",
            Error::NotAnObject => "not_an_object",
            Error::MissingField { .. } => "missing_field",
            Error::InvalidField { .. } => "invalid_field",
            Error::UnsupportedVersion { .. } => "unsupported_version",
            Error::UnknownType { .. } => "unknown_type",
            Error::InvalidPayload { .. } => "invalid_payload",
            Error::InvalidAgent { .. } => "invalid_agent",
            Error::InvalidCapability { .. } => "invalid_capability",
            Error::InvalidPattern { .. } => "invalid_pattern",
            Error::InvalidTarget { .. } => "invalid_target",
            Error::InvalidAmount { .. } => "invalid_amount",
            Error::InvalidExpiresAt { .. } => "invalid_expires_at",
            Error::LeaseSubsetViolation { .. } => "lease_subset_violation",
            Error::PermissionDenied { .. } => "permission_denied",
            Error::LeaseExpired { .. } => "lease_expired",
            Error::BudgetExhausted { .. } => "budget_exhausted",
            Error::EntropyUnavailable(_) => "entropy_unavailable",
        }
    }

    /// The wire error payload for this failure (`retryable` follows the code's rule).
    pub fn to_payload(&self) -> crate::ErrorPayload {
        crate::ErrorPayload::new(self.code(), self.to_string())
    }
}

/// Truncates untrusted text for inclusion in an error message.
pub(crate) fn clip(s: &str) -> String {
    crate::error_code::truncate(s).to_owned()
}
