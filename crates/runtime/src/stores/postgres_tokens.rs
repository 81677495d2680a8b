//! The channel's [`TokenStore`] over PostgreSQL: table `channel_sessions` and sequence
//! `channel_claim_nonce` (migrated as component [`COMPONENT`] with
//! [`arcp_server::store::postgres::migrate`]), usually in the database and schema of the ARCP
//! stores ([`PgTokenStore::from_store`] shares their connection pool). Several nodes share it.
//!
//! Semantics are those of [`MemoryTokenStore`](channel_core::MemoryTokenStore), with these
//! storage rules:
//!
//! - **Digests only.** The store keeps the SHA-256 of the current token and of the token the
//!   last committed turn consumed, never a token, so
//!   [`current_token`](TokenStore::current_token) is always `None`. Recorded turn logs never
//!   hold a token either (the port strips it before recording). Digests are compared in the
//!   database (equality of 32 bytes of a hash: its timing reveals nothing about the token) or
//!   with a constant-time comparison.
//! - **One atomic statement per claim.** [`claim`](TokenStore::claim) is a single
//!   `UPDATE … SET claim_nonce = nextval('channel_claim_nonce'), claim_until = … WHERE
//!   session_id = $1 AND owner = $2 AND token_digest = $3 AND <not held> AND <not expired>
//!   RETURNING claim_nonce`. PostgreSQL locks the row and re-checks the condition for every
//!   concurrent update, so of any number of claims presenting one token, on any number of
//!   nodes, exactly one succeeds. Only when it matched nothing is the row read to work out the
//!   refusal in the order of channel rule 1 (if that read finds the session claimable — a
//!   claim was released in between — the claim is tried again). [`recover`](TokenStore::recover)'s
//!   reissue is one conditional `UPDATE` in the same way.
//! - **Fencing.** A claim's nonce comes from the database sequence (unique across nodes);
//!   `commit` and `release` apply only where `claim_nonce` still equals it
//!   ([`StoreError::ClaimLost`] otherwise). A claim expires at its `claim_until`, after which
//!   a new claim may take the session over.
//! - **Durability.** Every method's write is committed before it returns.
//! - **Expiry.** A session whose `expires_at` has passed and that holds no live claim is
//!   treated as unknown everywhere; [`create`](TokenStore::create) with the id of such a
//!   session replaces it, [`purge_expired`](TokenStore::purge_expired) deletes them.
//! - **Capacity.** [`PgTokenOptions::max_sessions`] is checked by the insert itself
//!   (`count(*)` of the table); concurrent creates on several nodes may overshoot it by their
//!   number.
//! - **Failures.** An unreachable database is [`StoreError::Backend`], never a panic.

use std::fmt;

use super::row::{Row, ct_eq, digest, ms, refused, unsigned};
use arcp_server::store::postgres::{PgStore, migrate};
use async_trait::async_trait;
use channel_core::{
    Claim, ContinuationToken, Recovered, Refusal, SessionId, SessionInfo, StoreError, TokenStore, TurnLog, TurnSummary,
};
use deadpool_postgres::{Object, Pool};

/// The migration component of the channel tables.
pub const COMPONENT: &str = "channel";

/// The channel schema, as migration steps (append, never edit).
const STEPS: &[&str] = &["
CREATE SEQUENCE channel_claim_nonce;
CREATE TABLE channel_sessions (
    session_id text PRIMARY KEY,
    owner text NOT NULL,
    token_digest bytea NOT NULL,
    consumed_digest bytea,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    claim_nonce bigint,
    claim_until bigint,
    turns bigint NOT NULL DEFAULT 0,
    last_status text,
    last_log text
);
CREATE INDEX channel_sessions_expiry ON channel_sessions (expires_at);
"];

/// Whether the row is held by a live claim at `$now` (SQL, `$now` replaced by the caller).
const HELD: &str = "(claim_until IS NOT NULL AND claim_until > $now)";

/// How often a claim or recovery is retried when the follow-up read finds the session
/// claimable (each retry means another turn released it in between).
const ATTEMPTS: usize = 4;

/// How [`PgTokenStore`] is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTokenOptions {
    /// The most sessions kept ([`StoreError::Full`] beyond; expired ones are purged first by
    /// the port). Approximate under concurrent creates (see the module docs).
    pub max_sessions: usize,
}

impl Default for PgTokenOptions {
    fn default() -> Self {
        PgTokenOptions { max_sessions: channel_core::MemoryTokenStore::DEFAULT_MAX_SESSIONS }
    }
}

/// A [`TokenStore`] in PostgreSQL. Cheap to clone (clones share the pool); any number of
/// stores, on any number of nodes, may share one database and schema.
#[derive(Clone)]
pub struct PgTokenStore {
    pool: Pool,
    max_sessions: usize,
}

impl fmt::Debug for PgTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTokenStore")
            .field("pool", &self.pool.status())
            .field("max_sessions", &self.max_sessions)
            .finish_non_exhaustive()
    }
}

fn backend(e: impl fmt::Display) -> StoreError {
    StoreError::Backend(format!("postgres: {e}"))
}

fn db(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(d) => backend(format_args!("{} ({})", d.message(), d.code().code())),
        None => backend(e),
    }
}

/// `sql` with the [`HELD`] placeholder `$now` bound to parameter `n`.
fn held_at(n: usize) -> String {
    HELD.replace("$now", &format!("${n}"))
}

/// The row of a live session owned by `owner` (any owner when `None`).
async fn live_row(
    client: &Object,
    session: &SessionId,
    owner: Option<&str>,
    now: i64,
) -> Result<Option<Row>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT owner, token_digest, consumed_digest, created_at, expires_at, claim_until, turns, last_status,
                    last_log
             FROM channel_sessions WHERE session_id = $1",
        )
        .await
        .map_err(db)?;
    let Some(r) = client.query_opt(&statement, &[&session.as_str()]).await.map_err(db)? else { return Ok(None) };
    let row = Row {
        owner: r.try_get(0).map_err(db)?,
        token_digest: r.try_get(1).map_err(db)?,
        consumed_digest: r.try_get(2).map_err(db)?,
        created_at: r.try_get(3).map_err(db)?,
        expires_at: r.try_get(4).map_err(db)?,
        claim_until: r.try_get(5).map_err(db)?,
        turns: r.try_get(6).map_err(db)?,
        last_status: r.try_get(7).map_err(db)?,
        last_log: r.try_get(8).map_err(db)?,
    };
    Ok(Some(row).filter(|r| r.live(now) && owner.is_none_or(|o| r.owner == o)))
}

impl PgTokenStore {
    /// The channel tables in `store`'s database and schema, over its connection pool
    /// (migrated as needed), with the default options.
    pub async fn from_store(store: &PgStore) -> Result<PgTokenStore, StoreError> {
        PgTokenStore::new(store.pool().clone(), PgTokenOptions::default()).await
    }

    /// The channel tables over `pool` (whose connections' `search_path` selects the schema),
    /// migrated as needed.
    pub async fn new(pool: Pool, options: PgTokenOptions) -> Result<PgTokenStore, StoreError> {
        let mut client = pool.get().await.map_err(backend)?;
        migrate(&mut client, COMPONENT, STEPS).await.map_err(backend)?;
        drop(client);
        Ok(PgTokenStore { pool, max_sessions: options.max_sessions })
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(backend)
    }

    /// Clears the claim of `claim`'s session if it still holds `claim`'s nonce, applying
    /// `set` (extra `SET` clauses using parameters from `$3` on) with `args`; `ClaimLost`
    /// otherwise.
    async fn finish(
        &self,
        claim: Claim,
        set: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<(), StoreError> {
        let nonce = i64::try_from(claim.nonce()).map_err(|_| StoreError::ClaimLost)?;
        let session = claim.session().as_str();
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "UPDATE channel_sessions SET claim_nonce = NULL, claim_until = NULL, {set}
                 WHERE session_id = $1 AND claim_nonce = $2"
            ))
            .await
            .map_err(db)?;
        let mut all: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&session, &nonce];
        all.extend_from_slice(args);
        let changed = client.execute(&statement, &all).await.map_err(db)?;
        if changed == 1 { Ok(()) } else { Err(StoreError::ClaimLost) }
    }
}

#[async_trait]
impl TokenStore for PgTokenStore {
    async fn create(
        &self,
        session: &SessionId,
        owner: &str,
        token: &ContinuationToken,
        now: u64,
        claim_until: u64,
    ) -> Result<Claim, StoreError> {
        let (token, now, until) = (digest(token), ms(now), ms(claim_until));
        let max = i64::try_from(self.max_sessions).unwrap_or(i64::MAX);
        let client = self.client().await?;
        // One statement: insert (within the cap), or replace a session that is gone; a live
        // one is left alone and nothing is returned.
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO channel_sessions AS c
                     (session_id, owner, token_digest, consumed_digest, created_at, expires_at, claim_nonce,
                      claim_until, turns, last_status, last_log)
                 SELECT $1::text, $2::text, $3::bytea, NULL, $4::bigint, $5::bigint, nextval('channel_claim_nonce'), $5::bigint,
                        0, NULL, NULL
                 WHERE (SELECT count(*) FROM channel_sessions) < $6::bigint
                    OR EXISTS (SELECT 1 FROM channel_sessions WHERE session_id = $1::text)
                 ON CONFLICT (session_id) DO UPDATE SET
                     owner = EXCLUDED.owner, token_digest = EXCLUDED.token_digest, consumed_digest = NULL,
                     created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at,
                     claim_nonce = EXCLUDED.claim_nonce, claim_until = EXCLUDED.claim_until, turns = 0,
                     last_status = NULL, last_log = NULL
                 WHERE NOT ({held} OR c.expires_at > $4)
                 RETURNING claim_nonce",
                held = held_at(4).replace("claim_until", "c.claim_until"),
            ))
            .await
            .map_err(db)?;
        let row = client
            .query_opt(&statement, &[&session.as_str(), &owner, &&token[..], &now, &until, &max])
            .await
            .map_err(db)?;
        if let Some(row) = row {
            let nonce: i64 = row.try_get(0).map_err(db)?;
            return Ok(Claim::new(session.clone(), unsigned("claim nonce", nonce)?));
        }
        match live_row(&client, session, None, now).await? {
            Some(_) => Err(StoreError::Duplicate),
            None => Err(StoreError::Full { max: self.max_sessions }),
        }
    }

    async fn claim(
        &self,
        session: &SessionId,
        owner: &str,
        presented: Option<&ContinuationToken>,
        now: u64,
        claim_until: u64,
    ) -> Result<Claim, StoreError> {
        let (presented, now, until) = (presented.map(digest), ms(now), ms(claim_until));
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "UPDATE channel_sessions SET claim_nonce = nextval('channel_claim_nonce'), claim_until = $5
                 WHERE session_id = $1 AND owner = $2 AND token_digest = $3
                   AND NOT {held} AND expires_at > $4
                 RETURNING claim_nonce",
                held = held_at(4),
            ))
            .await
            .map_err(db)?;
        for _ in 0..ATTEMPTS {
            if let Some(d) = &presented {
                // The claim: one statement checks existence, owner, expiry, token and
                // in-flight, and takes the session.
                let claimed = client
                    .query_opt(&statement, &[&session.as_str(), &owner, &&d[..], &now, &until])
                    .await
                    .map_err(db)?;
                if let Some(row) = claimed {
                    let nonce: i64 = row.try_get(0).map_err(db)?;
                    return Ok(Claim::new(session.clone(), unsigned("claim nonce", nonce)?));
                }
            }
            // Nothing matched: work out why, in rule 1 order.
            match live_row(&client, session, Some(owner), now).await? {
                None => return Err(refused(Refusal::UnknownSession)),
                Some(row) => {
                    if let Err(r) = row.check(presented.as_ref(), now) {
                        return Err(refused(r));
                    }
                    // Claimable now: a claim was released after the update ran. Try again.
                }
            }
        }
        Err(refused(Refusal::InFlight))
    }

    async fn validate(
        &self,
        session: &SessionId,
        owner: &str,
        presented: Option<&ContinuationToken>,
        now: u64,
    ) -> Result<(), StoreError> {
        let (presented, now) = (presented.map(digest), ms(now));
        let client = self.client().await?;
        match live_row(&client, session, Some(owner), now).await? {
            None => Err(refused(Refusal::UnknownSession)),
            Some(row) => row.check(presented.as_ref(), now).map_err(refused),
        }
    }

    async fn commit(
        &self,
        claim: Claim,
        new_token: &ContinuationToken,
        expires_at: u64,
        turn: &TurnSummary,
    ) -> Result<(), StoreError> {
        let (new_token, expires_at) = (digest(new_token), ms(expires_at));
        let (status, log) = (turn.status, turn.log.as_json());
        self.finish(
            claim,
            "consumed_digest = token_digest, token_digest = $3, expires_at = $4, turns = turns + 1,
             last_status = $5, last_log = $6",
            &[&&new_token[..], &expires_at, &status, &log],
        )
        .await
    }

    async fn release(&self, claim: Claim, expires_at: u64, turn: Option<&TurnSummary>) -> Result<(), StoreError> {
        let expires_at = ms(expires_at);
        match turn {
            Some(turn) => {
                let (status, log) = (turn.status, turn.log.as_json());
                self.finish(
                    claim,
                    "expires_at = $3, consumed_digest = NULL, turns = turns + 1, last_status = $4, last_log = $5",
                    &[&expires_at, &status, &log],
                )
                .await
            }
            None => self.finish(claim, "expires_at = $3", &[&expires_at]).await,
        }
    }

    async fn recover(
        &self,
        session: &SessionId,
        owner: &str,
        presented: Option<&ContinuationToken>,
        reissue: &ContinuationToken,
        now: u64,
    ) -> Result<Recovered, StoreError> {
        let (presented, reissue, now) = (presented.map(digest), digest(reissue), ms(now));
        let client = self.client().await?;
        // The reissue: one statement checks owner, expiry, that the presented token is the
        // consumed one (and not the current one) and that no claim holds the session.
        let statement = client
            .prepare_cached(&format!(
                "UPDATE channel_sessions SET token_digest = $4
                 WHERE session_id = $1 AND owner = $2 AND consumed_digest = $3 AND token_digest <> $3
                   AND NOT {held} AND expires_at > $5
                 RETURNING last_log",
                held = held_at(5),
            ))
            .await
            .map_err(db)?;
        for _ in 0..ATTEMPTS {
            let Some(row) = live_row(&client, session, Some(owner), now).await? else {
                return Err(refused(Refusal::UnknownSession));
            };
            let presented = presented.as_ref().ok_or_else(|| refused(Refusal::MissingToken))?;
            if ct_eq(&row.token_digest, presented) {
                return Ok(Recovered { log: row.log(), reissued: false });
            }
            if !row.consumed_digest.as_deref().is_some_and(|c| ct_eq(c, presented)) {
                return Err(refused(Refusal::StaleToken));
            }
            if row.held(now) {
                return Err(refused(Refusal::InFlight));
            }
            let reissued = client
                .query_opt(&statement, &[&session.as_str(), &owner, &&presented[..], &&reissue[..], &now])
                .await
                .map_err(db)?;
            if let Some(r) = reissued {
                let log: Option<String> = r.try_get(0).map_err(db)?;
                return Ok(Recovered { log: log.map(TurnLog::from_json), reissued: true });
            }
            // The row changed between the read and the update (a claim, a commit, another
            // recovery): read it again.
        }
        Err(refused(Refusal::InFlight))
    }

    async fn info(&self, session: &SessionId, owner: &str, now: u64) -> Result<Option<SessionInfo>, StoreError> {
        let now = ms(now);
        let client = self.client().await?;
        let Some(row) = live_row(&client, session, Some(owner), now).await? else { return Ok(None) };
        Ok(Some(SessionInfo {
            session_id: session.clone(),
            in_flight: row.held(now),
            created_at_ms: unsigned("created_at", row.created_at)?,
            expires_at_ms: unsigned("expires_at", row.expires_at)?,
            turns: unsigned("turns", row.turns)?,
            last_status: row.last_status,
        }))
    }

    async fn current_token(&self, _session: &SessionId, _now: u64) -> Result<Option<ContinuationToken>, StoreError> {
        // Only digests are stored.
        Ok(None)
    }

    async fn in_flight(&self, session: &SessionId, now: u64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        Ok(live_row(&client, session, None, ms(now)).await?.is_some_and(|r| r.held(ms(now))))
    }

    async fn touch(&self, session: &SessionId, expires_at: u64, now: u64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "UPDATE channel_sessions SET expires_at = GREATEST(expires_at, $2)
                 WHERE session_id = $1 AND ({held} OR expires_at > $3)",
                held = held_at(3),
            ))
            .await
            .map_err(db)?;
        let changed = client.execute(&statement, &[&session.as_str(), &ms(expires_at), &ms(now)]).await.map_err(db)?;
        Ok(changed == 1)
    }

    async fn purge_expired(&self, now: u64) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "DELETE FROM channel_sessions WHERE NOT ({held} OR expires_at > $1)",
                held = held_at(1)
            ))
            .await
            .map_err(db)?;
        let n = client.execute(&statement, &[&ms(now)]).await.map_err(db)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}
