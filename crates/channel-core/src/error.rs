//! The crate's error enum, the four refusals and the store and runner failures.

use serde::{Deserialize, Serialize};

/// Why a continue (or a validation) was refused. Checked in this order: `unknown-session`,
/// `missing-token`, `stale-token`, `in-flight` (channel rule 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Refusal {
    /// No such session (never existed, expired, or a garbage id).
    UnknownSession,
    /// No token, or an empty one, was presented.
    MissingToken,
    /// The presented token is not the session's current token.
    StaleToken,
    /// A turn is already running for this session.
    InFlight,
}

impl Refusal {
    /// All four refusals, in check order.
    pub const ALL: [Refusal; 4] =
        [Refusal::UnknownSession, Refusal::MissingToken, Refusal::StaleToken, Refusal::InFlight];

    /// The stable reason string (`unknown-session`, `missing-token`, `stale-token`, `in-flight`).
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::UnknownSession => "unknown-session",
            Refusal::MissingToken => "missing-token",
            Refusal::StaleToken => "stale-token",
            Refusal::InFlight => "in-flight",
        }
    }

    /// A human-readable message for the refusal.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::UnknownSession => "no such channel session (it may have expired)",
            Refusal::MissingToken => "a continuation token is required to continue this session",
            Refusal::StaleToken => "the continuation token is not the session's current token",
            Refusal::InFlight => "a turn is already running for this session",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// A failure reported by a [`TokenStore`](crate::TokenStore).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store refused the claim or validation.
    #[error("{0}")]
    Refused(Refusal),
    /// The store holds its maximum number of sessions.
    #[error("the token store is full ({max} sessions)")]
    Full {
        /// The configured maximum.
        max: usize,
    },
    /// A session with this id already exists.
    #[error("a channel session with this id already exists")]
    Duplicate,
    /// The claim is no longer held (the session expired, was purged, or was claimed anew).
    #[error("the turn's claim on the session was lost")]
    ClaimLost,
    /// The backing storage failed.
    #[error("token store failure: {0}")]
    Backend(String),
}

/// A failure of a [`TurnRunner`](crate::TurnRunner): the turn did not complete. The presented
/// token stays valid and the claim is released.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RunnerError {
    /// What went wrong, safe to show to the client.
    pub message: String,
}

impl RunnerError {
    /// A runner error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        RunnerError { message: message.into() }
    }
}

/// The `channel-core` error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request was refused before anything ran.
    #[error("{0}")]
    Refused(Refusal),
    /// The runner refused the body before anything ran (a client error).
    #[error("invalid body: {0}")]
    InvalidBody(String),
    /// The token store failed.
    #[error(transparent)]
    Store(StoreError),
    /// The turn runner failed.
    #[error("turn failed: {0}")]
    Runner(#[from] RunnerError),
    /// Randomness was unavailable (minting an id or a token).
    #[error("entropy unavailable: {0}")]
    Entropy(#[from] arcp_core::Error),
}

impl Error {
    /// The refusal, when this error is one.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            Error::Refused(r) => Some(*r),
            _ => None,
        }
    }

    /// A stable machine-readable code: the refusal's reason, or `invalid-body`,
    /// `store-failure`, `turn-failed`, `entropy-unavailable`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Refused(r) => r.reason(),
            Error::InvalidBody(_) => "invalid-body",
            Error::Store(_) => "store-failure",
            Error::Runner(_) => "turn-failed",
            Error::Entropy(_) => "entropy-unavailable",
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Refused(r) => Error::Refused(r),
            other => Error::Store(other),
        }
    }
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        Error::Refused(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_stable_and_serde_matches() {
        let reasons: Vec<_> = Refusal::ALL.iter().map(|r| r.reason()).collect();
        assert_eq!(reasons, ["unknown-session", "missing-token", "stale-token", "in-flight"]);
        for r in Refusal::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), serde_json::json!(r.reason()));
            assert!(!r.message().is_empty());
            assert_eq!(Error::from(StoreError::Refused(r)).refusal(), Some(r));
            assert_eq!(Error::from(r).code(), r.reason());
        }
    }
}
