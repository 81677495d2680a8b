//! The [`TokenStore`] trait (sessions, current tokens, the atomic claim) and the bounded
//! in-memory [`MemoryTokenStore`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::{ContinuationToken, Refusal, SessionId, StoreError};

/// Proof that a turn holds a session (returned by [`TokenStore::claim`] and
/// [`TokenStore::create`]; consumed by [`TokenStore::commit`] or [`TokenStore::release`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    session: SessionId,
    nonce: u64,
}

impl Claim {
    /// A claim on `session` fenced by `nonce` (for store implementations).
    pub fn new(session: SessionId, nonce: u64) -> Self {
        Claim { session, nonce }
    }

    /// The claimed session.
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    /// The fencing nonce.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }
}

/// Where channel sessions and their current tokens live. All times are milliseconds since the
/// Unix epoch.
///
/// # Contract for implementations
///
/// - **Atomicity.** [`TokenStore::claim`] is one indivisible step: existence and expiry, the
///   constant-time token match and the in-flight check, then marking the session in flight.
///   Of any number of concurrent claims presenting the same valid token, exactly one
///   succeeds. A database store does this in one statement (for example an
///   `UPDATE … WHERE id = ? AND token_digest = ? AND claim IS NULL AND expires_at > ?
///   RETURNING …`, with the refusal worked out from a follow-up read when no row matched).
/// - **Refusal order.** When a claim or a validation fails, the refusal is the first that
///   applies of `unknown-session`, `missing-token`, `stale-token`, `in-flight`.
/// - **Claims are fenced.** A [`Claim`] carries a nonce; [`TokenStore::commit`] and
///   [`TokenStore::release`] act only if the session still holds that claim and otherwise
///   return [`StoreError::ClaimLost`].
/// - **Durability.** When `create`, `commit` or `release` return `Ok`, the change survives a
///   restart of a durable store and is visible to every node sharing it. A durable store
///   should keep only a digest of the token, never the token itself (then
///   [`TokenStore::current_token`] may return `None` for a session it knows).
/// - **Expiry.** A session whose `expires_at` (milliseconds since the epoch) is not after
///   `now` and that is not in flight is gone: every method treats it as unknown. A session in
///   flight does not expire until its claim is committed or released.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Creates `session` with `token`, already claimed (the first turn runs under the
    /// returned claim). Fails with [`StoreError::Duplicate`] if it exists and
    /// [`StoreError::Full`] if the store is at capacity.
    async fn create(
        &self,
        session: &SessionId,
        token: &ContinuationToken,
        expires_at: u64,
    ) -> Result<Claim, StoreError>;

    /// Atomically checks the session (exists, not expired), the presented token (present,
    /// current, compared in constant time) and that no turn is in flight, then marks it in
    /// flight. Refusals come back as [`StoreError::Refused`], in the order of channel rule 1.
    async fn claim(
        &self,
        session: &SessionId,
        presented: Option<&ContinuationToken>,
        now: u64,
    ) -> Result<Claim, StoreError>;

    /// The same checks as [`claim`](Self::claim) without claiming.
    async fn validate(
        &self,
        session: &SessionId,
        presented: Option<&ContinuationToken>,
        now: u64,
    ) -> Result<(), StoreError>;

    /// Commits a turn: replaces the token with `new_token`, sets the idle expiry and releases
    /// the claim, in one step.
    async fn commit(&self, claim: Claim, new_token: &ContinuationToken, expires_at: u64) -> Result<(), StoreError>;

    /// Releases a claim without rotating (the current token stays valid); sets the idle expiry.
    async fn release(&self, claim: Claim, expires_at: u64) -> Result<(), StoreError>;

    /// The current token of a live session (`None` if unknown, expired, or the store keeps
    /// only digests).
    async fn current_token(&self, session: &SessionId, now: u64) -> Result<Option<ContinuationToken>, StoreError>;

    /// Whether a turn is in flight for the session (`false` if unknown).
    async fn in_flight(&self, session: &SessionId, now: u64) -> Result<bool, StoreError>;

    /// Extends a live session's idle expiry to `expires_at`; `false` if unknown or expired.
    async fn touch(&self, session: &SessionId, expires_at: u64, now: u64) -> Result<bool, StoreError>;

    /// Deletes expired sessions; returns how many were deleted.
    async fn purge_expired(&self, now: u64) -> Result<usize, StoreError>;
}

#[derive(Debug)]
struct Entry {
    token: ContinuationToken,
    expires_at: u64,
    claim: Option<u64>,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        self.claim.is_some() || self.expires_at > now
    }

    fn check(&self, presented: Option<&ContinuationToken>) -> Result<(), Refusal> {
        let presented = presented.ok_or(Refusal::MissingToken)?;
        if !self.token.ct_eq(presented) {
            return Err(Refusal::StaleToken);
        }
        if self.claim.is_some() {
            return Err(Refusal::InFlight);
        }
        Ok(())
    }
}

/// An in-memory [`TokenStore`] (one `parking_lot` mutex, never held across an `.await`),
/// bounded to a maximum number of sessions. Expired sessions are dropped lazily when met and
/// by [`purge_expired`](TokenStore::purge_expired) (which [`Channel`](crate::Channel) calls
/// before giving up on a full store).
#[derive(Debug)]
pub struct MemoryTokenStore {
    max_sessions: usize,
    sessions: Mutex<HashMap<SessionId, Entry>>,
    next_nonce: AtomicU64,
}

impl MemoryTokenStore {
    /// The default capacity.
    pub const DEFAULT_MAX_SESSIONS: usize = 100_000;

    /// A store holding at most `max_sessions` sessions.
    pub fn new(max_sessions: usize) -> Self {
        MemoryTokenStore { max_sessions, sessions: Mutex::new(HashMap::new()), next_nonce: AtomicU64::new(1) }
    }

    /// How many sessions are stored (expired ones not yet purged included).
    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Whether the store holds no session.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn nonce(&self) -> u64 {
        self.next_nonce.fetch_add(1, Ordering::Relaxed)
    }

    fn with_live<T>(&self, session: &SessionId, now: u64, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
        let mut map = self.sessions.lock();
        match map.get_mut(session) {
            Some(e) if e.live(now) => Some(f(e)),
            Some(_) => {
                map.remove(session);
                None
            }
            None => None,
        }
    }

    fn finish(&self, claim: &Claim, f: impl FnOnce(&mut Entry)) -> Result<(), StoreError> {
        let mut map = self.sessions.lock();
        match map.get_mut(&claim.session) {
            Some(e) if e.claim == Some(claim.nonce) => {
                f(e);
                e.claim = None;
                Ok(())
            }
            _ => Err(StoreError::ClaimLost),
        }
    }
}

impl Default for MemoryTokenStore {
    fn default() -> Self {
        MemoryTokenStore::new(Self::DEFAULT_MAX_SESSIONS)
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn create(
        &self,
        session: &SessionId,
        token: &ContinuationToken,
        expires_at: u64,
    ) -> Result<Claim, StoreError> {
        let nonce = self.nonce();
        let mut map = self.sessions.lock();
        if map.contains_key(session) {
            return Err(StoreError::Duplicate);
        }
        if map.len() >= self.max_sessions {
            return Err(StoreError::Full { max: self.max_sessions });
        }
        map.insert(session.clone(), Entry { token: token.clone(), expires_at, claim: Some(nonce) });
        Ok(Claim::new(session.clone(), nonce))
    }

    async fn claim(
        &self,
        session: &SessionId,
        presented: Option<&ContinuationToken>,
        now: u64,
    ) -> Result<Claim, StoreError> {
        let nonce = self.nonce();
        self.with_live(session, now, |e| {
            e.check(presented)?;
            e.claim = Some(nonce);
            Ok(Claim::new(session.clone(), nonce))
        })
        .unwrap_or(Err(Refusal::UnknownSession))
        .map_err(StoreError::Refused)
    }

    async fn validate(
        &self,
        session: &SessionId,
        presented: Option<&ContinuationToken>,
        now: u64,
    ) -> Result<(), StoreError> {
        self.with_live(session, now, |e| e.check(presented))
            .unwrap_or(Err(Refusal::UnknownSession))
            .map_err(StoreError::Refused)
    }

    async fn commit(&self, claim: Claim, new_token: &ContinuationToken, expires_at: u64) -> Result<(), StoreError> {
        self.finish(&claim, |e| {
            e.token = new_token.clone();
            e.expires_at = expires_at;
        })
    }

    async fn release(&self, claim: Claim, expires_at: u64) -> Result<(), StoreError> {
        self.finish(&claim, |e| e.expires_at = expires_at)
    }

    async fn current_token(&self, session: &SessionId, now: u64) -> Result<Option<ContinuationToken>, StoreError> {
        Ok(self.with_live(session, now, |e| e.token.clone()))
    }

    async fn in_flight(&self, session: &SessionId, now: u64) -> Result<bool, StoreError> {
        Ok(self.with_live(session, now, |e| e.claim.is_some()).unwrap_or(false))
    }

    async fn touch(&self, session: &SessionId, expires_at: u64, now: u64) -> Result<bool, StoreError> {
        Ok(self.with_live(session, now, |e| e.expires_at = e.expires_at.max(expires_at)).is_some())
    }

    async fn purge_expired(&self, now: u64) -> Result<usize, StoreError> {
        let mut map = self.sessions.lock();
        let before = map.len();
        map.retain(|_, e| e.live(now));
        Ok(before - map.len())
    }
}
