//! The [`TokenStore`] trait (sessions, owners, current tokens, the atomic claim, recovery) and the bounded
//! in-memory [`MemoryTokenStore`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::{ContinuationToken, Recovered, Refusal, SessionId, SessionInfo, StoreError, TurnLog, TurnSummary};

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

/// Where channel sessions, their owners and current tokens live. All times are milliseconds
/// since the Unix epoch.
///
/// # Contract for implementations
///
/// - **Atomicity.** [`TokenStore::claim`] is one indivisible step: existence, owner and
///   expiry, the constant-time token match and the in-flight check, then marking the session
///   in flight. Of any number of concurrent claims presenting the same valid token, exactly
///   one succeeds. A database store does this in one statement (for example an
///   `UPDATE … WHERE id = ? AND owner = ? AND token_digest = ? AND (claim IS NULL OR
///   claim_until <= ?) AND … RETURNING …`, with the refusal worked out from a follow-up read
///   when no row matched). [`TokenStore::recover`] is atomic in the same way.
/// - **Refusal order.** When a claim or a validation fails, the refusal is the first that
///   applies of `unknown-session`, `missing-token`, `stale-token`, `in-flight`. A session
///   owned by another principal is `unknown-session` (its existence is not revealed).
/// - **Claims are fenced and time-limited.** A [`Claim`] carries a nonce; `commit` and
///   `release` act only if the session still holds that claim and otherwise return
///   [`StoreError::ClaimLost`]. A claim counts as in flight until its `claim_until`; after
///   that a new claim may take the session over (a crashed node cannot lock a conversation
///   forever), and the old claim's `commit` then fails.
/// - **Durability.** When `create`, `commit`, `release` or `recover` return `Ok`, the change
///   survives a restart of a durable store and is visible to every node sharing it. A durable
///   store should keep only a digest of the tokens, never the tokens themselves (then
///   [`TokenStore::current_token`] returns `None`). [`TurnLog`]s never contain a token.
/// - **Expiry.** A session whose `expires_at` is not after `now` and that holds no live claim
///   is gone: every method treats it as unknown.
/// - **Recovery.** A store remembers which token the last turn consumed when that turn
///   committed (`commit`), and forgets it when a later turn completes without committing
///   (`release` with a summary) or commits again.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Creates `session` for `owner` with `token`, already claimed until `claim_until` (the
    /// first turn runs under the returned claim). Fails with [`StoreError::Duplicate`] if it
    /// exists and [`StoreError::Full`] if the store is at capacity.
    async fn create(
        &self,
        session: &SessionId,
        owner: &str,
        token: &ContinuationToken,
        now: u64,
        claim_until: u64,
    ) -> Result<Claim, StoreError>;

    /// Atomically checks the session (exists, owned by `owner`, not expired), the presented
    /// token (present, current, compared in constant time) and that no live claim holds it,
    /// then claims it until `claim_until`. Refusals come back as [`StoreError::Refused`], in
    /// the order of channel rule 1.
    async fn claim(
        &self,
        session: &SessionId,
        owner: &str,
        presented: Option<&ContinuationToken>,
        now: u64,
        claim_until: u64,
    ) -> Result<Claim, StoreError>;

    /// The same checks as [`claim`](Self::claim) without claiming.
    async fn validate(
        &self,
        session: &SessionId,
        owner: &str,
        presented: Option<&ContinuationToken>,
        now: u64,
    ) -> Result<(), StoreError>;

    /// Commits a turn, in one step: remembers the consumed (current) token as the one the
    /// last turn consumed, replaces it with `new_token`, records `turn`, sets the idle expiry
    /// and releases the claim.
    async fn commit(
        &self,
        claim: Claim,
        new_token: &ContinuationToken,
        expires_at: u64,
        turn: &TurnSummary,
    ) -> Result<(), StoreError>;

    /// Releases a claim without rotating (the current token stays valid) and sets the idle
    /// expiry. With a `turn` (a start, or a turn that completed without committing) the turn
    /// is recorded and the consumed-token memory is cleared; without one (a failed turn)
    /// both are left as they were.
    async fn release(&self, claim: Claim, expires_at: u64, turn: Option<&TurnSummary>) -> Result<(), StoreError>;

    /// Recovery of the last turn, in one step. After the `unknown-session` (owner included)
    /// and `missing-token` checks: if `presented` is the current token, answers the last
    /// turn's log with `reissued: false`; if it is the token the last (committed) turn
    /// consumed and no live claim holds the session, replaces the current token with
    /// `reissue` and answers the log with `reissued: true` (a live claim is `in-flight`);
    /// anything else is `stale-token`.
    async fn recover(
        &self,
        session: &SessionId,
        owner: &str,
        presented: Option<&ContinuationToken>,
        reissue: &ContinuationToken,
        now: u64,
    ) -> Result<Recovered, StoreError>;

    /// The token-free status of a live session owned by `owner` (`None` if unknown, expired
    /// or owned by someone else).
    async fn info(&self, session: &SessionId, owner: &str, now: u64) -> Result<Option<SessionInfo>, StoreError>;

    /// The current token of a live session (`None` if unknown, expired, or the store keeps
    /// only digests).
    async fn current_token(&self, session: &SessionId, now: u64) -> Result<Option<ContinuationToken>, StoreError>;

    /// Whether a live claim holds the session (`false` if unknown).
    async fn in_flight(&self, session: &SessionId, now: u64) -> Result<bool, StoreError>;

    /// Extends a live session's idle expiry to `expires_at`; `false` if unknown or expired.
    async fn touch(&self, session: &SessionId, expires_at: u64, now: u64) -> Result<bool, StoreError>;

    /// Deletes expired sessions; returns how many were deleted.
    async fn purge_expired(&self, now: u64) -> Result<usize, StoreError>;
}

#[derive(Debug)]
struct Entry {
    owner: Box<str>,
    token: ContinuationToken,
    /// The token the last turn consumed, when that turn committed.
    consumed: Option<ContinuationToken>,
    created_at: u64,
    expires_at: u64,
    /// `(nonce, claim_until)` of the turn holding the session.
    claim: Option<(u64, u64)>,
    turns: u64,
    last_status: Option<&'static str>,
    last: Option<TurnLog>,
}

impl Entry {
    fn held(&self, now: u64) -> bool {
        self.claim.is_some_and(|(_, until)| until > now)
    }

    fn live(&self, now: u64) -> bool {
        self.held(now) || self.expires_at > now
    }

    fn check(&self, presented: Option<&ContinuationToken>, now: u64) -> Result<(), Refusal> {
        let presented = presented.ok_or(Refusal::MissingToken)?;
        if !self.token.ct_eq(presented) {
            return Err(Refusal::StaleToken);
        }
        if self.held(now) {
            return Err(Refusal::InFlight);
        }
        Ok(())
    }

    fn record(&mut self, turn: &TurnSummary) {
        self.turns += 1;
        self.last_status = Some(turn.status);
        self.last = Some(turn.log.clone());
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

    /// Runs `f` on the live session owned by `owner` (`None` when unknown, expired or owned by
    /// someone else; an expired entry is dropped on the way).
    fn with_live<T>(
        &self,
        session: &SessionId,
        owner: Option<&str>,
        now: u64,
        f: impl FnOnce(&mut Entry) -> T,
    ) -> Option<T> {
        let mut map = self.sessions.lock();
        match map.get_mut(session) {
            Some(e) if e.live(now) => owner.is_none_or(|o| *e.owner == *o).then(|| f(e)),
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
            Some(e) if e.claim.is_some_and(|(n, _)| n == claim.nonce) => {
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
        owner: &str,
        token: &ContinuationToken,
        now: u64,
        claim_until: u64,
    ) -> Result<Claim, StoreError> {
        let nonce = self.nonce();
        let mut map = self.sessions.lock();
        if map.contains_key(session) {
            return Err(StoreError::Duplicate);
        }
        if map.len() >= self.max_sessions {
            return Err(StoreError::Full { max: self.max_sessions });
        }
        let entry = Entry {
            owner: owner.into(),
            token: token.clone(),
            consumed: None,
            created_at: now,
            expires_at: claim_until,
            claim: Some((nonce, claim_until)),
            turns: 0,
            last_status: None,
            last: None,
        };
        map.insert(session.clone(), entry);
        Ok(Claim::new(session.clone(), nonce))
    }

    async fn claim(
        &self,
        session: &SessionId,
        owner: &str,
        presented: Option<&ContinuationToken>,
        now: u64,
        claim_until: u64,
    ) -> Result<Claim, StoreError> {
        let nonce = self.nonce();
        self.with_live(session, Some(owner), now, |e| {
            e.check(presented, now)?;
            e.claim = Some((nonce, claim_until));
            Ok(Claim::new(session.clone(), nonce))
        })
        .unwrap_or(Err(Refusal::UnknownSession))
        .map_err(StoreError::Refused)
    }

    async fn validate(
        &self,
        session: &SessionId,
        owner: &str,
        presented: Option<&ContinuationToken>,
        now: u64,
    ) -> Result<(), StoreError> {
        self.with_live(session, Some(owner), now, |e| e.check(presented, now))
            .unwrap_or(Err(Refusal::UnknownSession))
            .map_err(StoreError::Refused)
    }

    async fn commit(
        &self,
        claim: Claim,
        new_token: &ContinuationToken,
        expires_at: u64,
        turn: &TurnSummary,
    ) -> Result<(), StoreError> {
        self.finish(&claim, |e| {
            e.consumed = Some(std::mem::replace(&mut e.token, new_token.clone()));
            e.expires_at = expires_at;
            e.record(turn);
        })
    }

    async fn release(&self, claim: Claim, expires_at: u64, turn: Option<&TurnSummary>) -> Result<(), StoreError> {
        self.finish(&claim, |e| {
            e.expires_at = expires_at;
            if let Some(turn) = turn {
                e.consumed = None;
                e.record(turn);
            }
        })
    }

    async fn recover(
        &self,
        session: &SessionId,
        owner: &str,
        presented: Option<&ContinuationToken>,
        reissue: &ContinuationToken,
        now: u64,
    ) -> Result<Recovered, StoreError> {
        self.with_live(session, Some(owner), now, |e| {
            let presented = presented.ok_or(Refusal::MissingToken)?;
            if e.token.ct_eq(presented) {
                return Ok(Recovered { log: e.last.clone(), reissued: false });
            }
            if !e.consumed.as_ref().is_some_and(|c| c.ct_eq(presented)) {
                return Err(Refusal::StaleToken);
            }
            if e.held(now) {
                return Err(Refusal::InFlight);
            }
            e.token = reissue.clone();
            Ok(Recovered { log: e.last.clone(), reissued: true })
        })
        .unwrap_or(Err(Refusal::UnknownSession))
        .map_err(StoreError::Refused)
    }

    async fn info(&self, session: &SessionId, owner: &str, now: u64) -> Result<Option<SessionInfo>, StoreError> {
        Ok(self.with_live(session, Some(owner), now, |e| SessionInfo {
            session_id: session.clone(),
            in_flight: e.held(now),
            created_at_ms: e.created_at,
            expires_at_ms: e.expires_at,
            turns: e.turns,
            last_status: e.last_status.map(str::to_owned),
        }))
    }

    async fn current_token(&self, session: &SessionId, now: u64) -> Result<Option<ContinuationToken>, StoreError> {
        Ok(self.with_live(session, None, now, |e| e.token.clone()))
    }

    async fn in_flight(&self, session: &SessionId, now: u64) -> Result<bool, StoreError> {
        Ok(self.with_live(session, None, now, |e| e.held(now)).unwrap_or(false))
    }

    async fn touch(&self, session: &SessionId, expires_at: u64, now: u64) -> Result<bool, StoreError> {
        Ok(self.with_live(session, None, now, |e| e.expires_at = e.expires_at.max(expires_at)).is_some())
    }

    async fn purge_expired(&self, now: u64) -> Result<usize, StoreError> {
        let mut map = self.sessions.lock();
        let before = map.len();
        map.retain(|_, e| e.live(now));
        Ok(before - map.len())
    }
}
