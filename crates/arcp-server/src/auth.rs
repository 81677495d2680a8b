//! Bearer authentication (§6.1): the [`BearerVerifier`] trait and a static-map implementation.
//! The verified principal scopes idempotency keys, job visibility and cancel authority.

use std::collections::HashMap;

use arcp_core::ErrorCode;
use async_trait::async_trait;

use crate::Error;

/// Who a bearer token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The principal: scopes idempotency, listing, subscription and cancel.
    pub principal: String,
}

/// Turns a bearer token into an [`Identity`], or refuses it with `UNAUTHENTICATED`.
#[async_trait]
pub trait BearerVerifier: Send + Sync + 'static {
    /// Verifies `token`.
    async fn verify(&self, token: &str) -> Result<Identity, Error>;
}

/// A fixed token → identity map. Tokens are compared in constant time against every entry.
#[derive(Debug, Clone, Default)]
pub struct StaticBearerVerifier {
    entries: Vec<(String, Identity)>,
}

impl StaticBearerVerifier {
    /// An empty verifier (refuses everything).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `token` for `principal`.
    pub fn with_token(mut self, token: impl Into<String>, principal: impl Into<String>) -> Self {
        self.entries.push((token.into(), Identity { principal: principal.into() }));
        self
    }

    /// Builds a verifier from a map.
    pub fn from_map(map: HashMap<String, String>) -> Self {
        map.into_iter().fold(Self::new(), |v, (t, p)| v.with_token(t, p))
    }
}

#[async_trait]
impl BearerVerifier for StaticBearerVerifier {
    async fn verify(&self, token: &str) -> Result<Identity, Error> {
        let mut found = None;
        for (candidate, identity) in &self.entries {
            if crate::digest::secret_eq(candidate.as_bytes(), token.as_bytes()) && found.is_none() {
                found = Some(identity.clone());
            }
        }
        found.ok_or_else(|| Error::refused(ErrorCode::UNAUTHENTICATED, "Unknown bearer token"))
    }
}
