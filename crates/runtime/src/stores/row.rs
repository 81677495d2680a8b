//! What the SQL token stores share: a session row as the refusal logic reads it, the rule-1
//! refusal order over it, and the digest-only token handling (constant-time comparison).

use channel_core::{ContinuationToken, Refusal, StoreError, TurnLog};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// SHA-256 of a token: the only form in which a durable store keeps it.
pub(crate) fn digest(token: &ContinuationToken) -> [u8; 32] {
    Sha256::digest(token.expose().as_bytes()).into()
}

/// Constant-time comparison of a stored digest with a presented one.
pub(crate) fn ct_eq(stored: &[u8], presented: &[u8; 32]) -> bool {
    stored.len() == presented.len() && bool::from(stored.ct_eq(presented))
}

/// A millisecond time as stored (saturated at `i64::MAX`, which compares as "never").
pub(crate) fn ms(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// A stored integer that must not be negative.
pub(crate) fn unsigned(what: &str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Backend(format!("corrupt {what} in the channel store: {v}")))
}

/// A refusal as a store error.
pub(crate) fn refused(r: Refusal) -> StoreError {
    StoreError::Refused(r)
}

/// A session row, as the refusal logic needs it.
pub(crate) struct Row {
    pub(crate) owner: String,
    pub(crate) token_digest: Vec<u8>,
    pub(crate) consumed_digest: Option<Vec<u8>>,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
    pub(crate) claim_until: Option<i64>,
    pub(crate) turns: i64,
    pub(crate) last_status: Option<String>,
    pub(crate) last_log: Option<String>,
}

impl Row {
    /// A turn holds the session's claim at `now`.
    pub(crate) fn held(&self, now: i64) -> bool {
        self.claim_until.is_some_and(|until| until > now)
    }

    /// The session exists at `now` (a held claim keeps it alive past its idle expiry).
    pub(crate) fn live(&self, now: i64) -> bool {
        self.held(now) || self.expires_at > now
    }

    /// The refusal a claim or validation gets (rule 1 order, after `unknown-session`).
    pub(crate) fn check(&self, presented: Option<&[u8; 32]>, now: i64) -> Result<(), Refusal> {
        let presented = presented.ok_or(Refusal::MissingToken)?;
        if !ct_eq(&self.token_digest, presented) {
            return Err(Refusal::StaleToken);
        }
        if self.held(now) {
            return Err(Refusal::InFlight);
        }
        Ok(())
    }

    /// The last turn's recording, if any.
    pub(crate) fn log(&self) -> Option<TurnLog> {
        self.last_log.clone().map(TurnLog::from_json)
    }
}
