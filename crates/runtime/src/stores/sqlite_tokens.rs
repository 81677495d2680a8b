//! The channel's [`TokenStore`] over SQLite: table `channel_sessions` (migrated as component
//! [`COMPONENT`] with [`arcp_server::store::sqlite::migrate`]), usually in the same file as
//! the ARCP stores.
//!
//! Semantics are those of [`MemoryTokenStore`](channel_core::MemoryTokenStore), with these
//! storage rules:
//!
//! - **Digests only.** The store keeps the SHA-256 of the current token and of the token the
//!   last committed turn consumed, never a token, so
//!   [`current_token`](TokenStore::current_token) is always `None`. Recorded turn logs never
//!   hold a token either (the port strips it before recording). Digests are compared in the
//!   database (an index-free equality on 32 bytes of a hash: its timing reveals nothing
//!   about the token) or with a constant-time comparison.
//! - **One atomic statement per claim.** [`claim`](TokenStore::claim) is a single
//!   `UPDATE … WHERE session_id = ? AND owner = ? AND token_digest = ? AND <not held> AND
//!   <not expired> RETURNING …`; only when it matched nothing is the row read (in the same
//!   `BEGIN IMMEDIATE` transaction) to work out the refusal in the order of channel rule 1.
//!   SQLite serialises write transactions across connections and processes, so of any
//!   number of claims presenting one token — from any number of handles on the file —
//!   exactly one succeeds. [`recover`](TokenStore::recover)'s reissue is one conditional
//!   `UPDATE` in the same way.
//! - **Fencing.** A claim carries a random 63-bit nonce stored with it; `commit` and
//!   `release` apply only where `claim_nonce` still equals it ([`StoreError::ClaimLost`]
//!   otherwise). A claim expires at its `claim_until`, after which a new claim may take the
//!   session over.
//! - **Durability.** Every write commits before the method returns (WAL; `synchronous` as
//!   configured, see [`Synchronous`]).
//! - **Expiry.** A session whose `expires_at` has passed and that holds no live claim is
//!   treated as unknown everywhere; [`create`](TokenStore::create) with the id of such a
//!   session replaces it (it no longer exists), [`purge_expired`](TokenStore::purge_expired)
//!   deletes them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::row::{Row, ct_eq, digest, ms, refused, unsigned};
use arcp_core::{Entropy, OsEntropy};
use arcp_server::store::sqlite::{Synchronous, migrate};
use async_trait::async_trait;
use channel_core::{
    Claim, ContinuationToken, Recovered, Refusal, SessionId, SessionInfo, StoreError, TokenStore, TurnSummary,
};
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params};

/// The migration component of the channel tables.
pub const COMPONENT: &str = "channel";

/// The channel schema, as migration steps (append, never edit).
const STEPS: &[&str] = &["
CREATE TABLE channel_sessions (
    session_id TEXT PRIMARY KEY NOT NULL,
    owner TEXT NOT NULL,
    token_digest BLOB NOT NULL,
    consumed_digest BLOB,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    claim_nonce INTEGER,
    claim_until INTEGER,
    turns INTEGER NOT NULL DEFAULT 0,
    last_status TEXT,
    last_log TEXT
);
CREATE INDEX channel_sessions_expiry ON channel_sessions (expires_at);
"];

/// How [`SqliteTokenStore::open_with`] sets up the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteTokenOptions {
    /// The most sessions kept ([`StoreError::Full`] beyond; expired ones are purged first by
    /// the port).
    pub max_sessions: usize,
    /// How long a write waits for the database lock held by another connection (the ARCP
    /// writer, another handle, another process).
    pub busy_timeout: Duration,
    /// Durability of commits.
    pub synchronous: Synchronous,
}

impl Default for SqliteTokenOptions {
    fn default() -> Self {
        SqliteTokenOptions {
            max_sessions: channel_core::MemoryTokenStore::DEFAULT_MAX_SESSIONS,
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Normal,
        }
    }
}

/// A [`TokenStore`] in a SQLite file. Cheap to clone (clones share one connection); separate
/// [`open`](SqliteTokenStore::open)s of one file are separate connections that SQLite keeps
/// consistent.
#[derive(Clone)]
pub struct SqliteTokenStore {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
    max_sessions: usize,
}

impl fmt::Debug for SqliteTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteTokenStore")
            .field("path", &self.path)
            .field("max_sessions", &self.max_sessions)
            .finish_non_exhaustive()
    }
}

fn backend(e: impl fmt::Display) -> StoreError {
    StoreError::Backend(format!("sqlite: {e}"))
}

/// A fresh fencing nonce (63 random bits, so it fits SQLite's signed integers).
fn nonce() -> Result<i64, StoreError> {
    let mut b = [0u8; 8];
    OsEntropy.fill(&mut b).map_err(|e| StoreError::Backend(format!("no randomness for a claim nonce: {e}")))?;
    Ok(i64::from_be_bytes(b) & i64::MAX)
}

/// The row of a live session owned by `owner` (any owner when `None`).
fn live_row(conn: &Connection, session: &SessionId, owner: Option<&str>, now: i64) -> Result<Option<Row>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT owner, token_digest, consumed_digest, created_at, expires_at, claim_until, turns, last_status,
                    last_log
             FROM channel_sessions WHERE session_id = ?1",
        )
        .and_then(|mut s| {
            s.query_row([session.as_str()], |r| {
                Ok(Row {
                    owner: r.get(0)?,
                    token_digest: r.get(1)?,
                    consumed_digest: r.get(2)?,
                    created_at: r.get(3)?,
                    expires_at: r.get(4)?,
                    claim_until: r.get(5)?,
                    turns: r.get(6)?,
                    last_status: r.get(7)?,
                    last_log: r.get(8)?,
                })
            })
            .optional()
        })
        .map_err(backend)?;
    Ok(row.filter(|r| r.live(now) && owner.is_none_or(|o| r.owner == o)))
}

fn immediate(conn: &mut Connection) -> Result<Transaction<'_>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)
}

impl SqliteTokenStore {
    /// Opens (creating and migrating as needed) the channel tables in the SQLite file at
    /// `path`, with the default options.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteTokenStore, StoreError> {
        SqliteTokenStore::open_with(path, SqliteTokenOptions::default()).await
    }

    /// Opens the store with `options` (parent directories are created; WAL mode).
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: SqliteTokenOptions,
    ) -> Result<SqliteTokenStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || SqliteTokenStore::open_blocking(path, options))
            .await
            .map_err(|e| StoreError::Backend(format!("opening the channel store failed: {e}")))?
    }

    fn open_blocking(path: PathBuf, options: SqliteTokenOptions) -> Result<SqliteTokenStore, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", parent.display())))?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&path, flags)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(options.busy_timeout).map_err(backend)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(backend)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!("{} cannot use write-ahead logging ({mode})", path.display())));
        }
        let sync = match options.synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync).map_err(backend)?;
        migrate(&mut conn, COMPONENT, STEPS).map_err(|e| StoreError::Backend(e.to_string()))?;
        Ok(SqliteTokenStore {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path),
            max_sessions: options.max_sessions,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection off the async runtime.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut conn.lock()))
            .await
            .map_err(|e| StoreError::Backend(format!("a channel store task failed: {e}")))?
    }

    /// Clears the claim of `claim`'s session if it still holds `claim`'s nonce, applying
    /// `set` (extra `SET` clauses) and `args` (bound from `?3` on); `ClaimLost` otherwise.
    async fn finish(
        &self,
        claim: Claim,
        set: &'static str,
        args: Vec<rusqlite::types::Value>,
    ) -> Result<(), StoreError> {
        let nonce = i64::try_from(claim.nonce()).map_err(|_| StoreError::ClaimLost)?;
        let session = claim.session().as_str().to_owned();
        self.run(move |conn| {
            let sql = format!(
                "UPDATE channel_sessions SET claim_nonce = NULL, claim_until = NULL, {set}
                 WHERE session_id = ?1 AND claim_nonce = ?2"
            );
            let mut all = vec![rusqlite::types::Value::Text(session), rusqlite::types::Value::Integer(nonce)];
            all.extend(args);
            let changed = conn
                .prepare_cached(&sql)
                .and_then(|mut s| s.execute(rusqlite::params_from_iter(all)))
                .map_err(backend)?;
            if changed == 1 { Ok(()) } else { Err(StoreError::ClaimLost) }
        })
        .await
    }
}

fn text(s: impl Into<String>) -> rusqlite::types::Value {
    rusqlite::types::Value::Text(s.into())
}

fn int(v: i64) -> rusqlite::types::Value {
    rusqlite::types::Value::Integer(v)
}

fn blob(d: [u8; 32]) -> rusqlite::types::Value {
    rusqlite::types::Value::Blob(d.to_vec())
}

#[async_trait]
impl TokenStore for SqliteTokenStore {
    async fn create(
        &self,
        session: &SessionId,
        owner: &str,
        token: &ContinuationToken,
        now: u64,
        claim_until: u64,
    ) -> Result<Claim, StoreError> {
        let nonce = nonce()?;
        let (id, owner, token, now, until) =
            (session.clone(), owner.to_owned(), digest(token), ms(now), ms(claim_until));
        let max = self.max_sessions;
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let live: Option<bool> = tx
                .query_row(
                    "SELECT (claim_until IS NOT NULL AND claim_until > ?2) OR expires_at > ?2
                     FROM channel_sessions WHERE session_id = ?1",
                    params![id.as_str(), now],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            match live {
                Some(true) => return Err(StoreError::Duplicate),
                // An expired session is gone: its id may be used again.
                Some(false) => {
                    tx.execute("DELETE FROM channel_sessions WHERE session_id = ?1", [id.as_str()]).map_err(backend)?;
                }
                None => {}
            }
            let count: i64 =
                tx.query_row("SELECT COUNT(*) FROM channel_sessions", [], |r| r.get(0)).map_err(backend)?;
            if usize::try_from(count).unwrap_or(usize::MAX) >= max {
                return Err(StoreError::Full { max });
            }
            tx.execute(
                "INSERT INTO channel_sessions
                     (session_id, owner, token_digest, created_at, expires_at, claim_nonce, claim_until, turns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?5, 0)",
                params![id.as_str(), owner, &token[..], now, until, nonce],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(Claim::new(id, nonce.unsigned_abs()))
        })
        .await
    }

    async fn claim(
        &self,
        session: &SessionId,
        owner: &str,
        presented: Option<&ContinuationToken>,
        now: u64,
        claim_until: u64,
    ) -> Result<Claim, StoreError> {
        let nonce = nonce()?;
        let (id, owner, presented, now, until) =
            (session.clone(), owner.to_owned(), presented.map(digest), ms(now), ms(claim_until));
        self.run(move |conn| {
            let tx = immediate(conn)?;
            if let Some(d) = &presented {
                // The claim: one statement checks existence, owner, expiry, token and
                // in-flight, and takes the session.
                let claimed = tx
                    .prepare_cached(
                        "UPDATE channel_sessions SET claim_nonce = ?5, claim_until = ?6
                         WHERE session_id = ?1 AND owner = ?2 AND token_digest = ?3
                           AND (claim_until IS NULL OR claim_until <= ?4) AND expires_at > ?4
                         RETURNING 1",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![id.as_str(), owner, &d[..], now, nonce, until], |r| r.get::<_, i64>(0))
                            .optional()
                    })
                    .map_err(backend)?;
                if claimed.is_some() {
                    tx.commit().map_err(backend)?;
                    return Ok(Claim::new(id, nonce.unsigned_abs()));
                }
            }
            // Nothing matched: work out why, in rule 1 order (same transaction, so the row
            // is the one the statement saw).
            let refusal = match live_row(&tx, &id, Some(&owner), now)? {
                None => Refusal::UnknownSession,
                Some(row) => match row.check(presented.as_ref(), now) {
                    Err(r) => r,
                    Ok(()) => {
                        return Err(StoreError::Backend(
                            "the claim matched no row but the session is claimable".into(),
                        ));
                    }
                },
            };
            Err(refused(refusal))
        })
        .await
    }

    async fn validate(
        &self,
        session: &SessionId,
        owner: &str,
        presented: Option<&ContinuationToken>,
        now: u64,
    ) -> Result<(), StoreError> {
        let (id, owner, presented, now) = (session.clone(), owner.to_owned(), presented.map(digest), ms(now));
        self.run(move |conn| match live_row(conn, &id, Some(&owner), now)? {
            None => Err(refused(Refusal::UnknownSession)),
            Some(row) => row.check(presented.as_ref(), now).map_err(refused),
        })
        .await
    }

    async fn commit(
        &self,
        claim: Claim,
        new_token: &ContinuationToken,
        expires_at: u64,
        turn: &TurnSummary,
    ) -> Result<(), StoreError> {
        self.finish(
            claim,
            "consumed_digest = token_digest, token_digest = ?3, expires_at = ?4, turns = turns + 1,
             last_status = ?5, last_log = ?6",
            vec![blob(digest(new_token)), int(ms(expires_at)), text(turn.status), text(turn.log.as_json())],
        )
        .await
    }

    async fn release(&self, claim: Claim, expires_at: u64, turn: Option<&TurnSummary>) -> Result<(), StoreError> {
        match turn {
            Some(turn) => {
                self.finish(
                    claim,
                    "expires_at = ?3, consumed_digest = NULL, turns = turns + 1, last_status = ?4, last_log = ?5",
                    vec![int(ms(expires_at)), text(turn.status), text(turn.log.as_json())],
                )
                .await
            }
            None => self.finish(claim, "expires_at = ?3", vec![int(ms(expires_at))]).await,
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
        let (id, owner, presented, reissue, now) =
            (session.clone(), owner.to_owned(), presented.map(digest), digest(reissue), ms(now));
        self.run(move |conn| {
            let tx = immediate(conn)?;
            let Some(row) = live_row(&tx, &id, Some(&owner), now)? else {
                return Err(refused(Refusal::UnknownSession));
            };
            let presented = presented.ok_or(refused(Refusal::MissingToken))?;
            let log = row.log();
            if ct_eq(&row.token_digest, &presented) {
                return Ok(Recovered { log, reissued: false });
            }
            if !row.consumed_digest.as_deref().is_some_and(|c| ct_eq(c, &presented)) {
                return Err(refused(Refusal::StaleToken));
            }
            if row.held(now) {
                return Err(refused(Refusal::InFlight));
            }
            // The reissue: one conditional statement (the same checks again, atomically).
            let changed = tx
                .prepare_cached(
                    "UPDATE channel_sessions SET token_digest = ?5
                     WHERE session_id = ?1 AND owner = ?2 AND consumed_digest = ?3
                       AND (claim_until IS NULL OR claim_until <= ?4) AND expires_at > ?4",
                )
                .and_then(|mut s| s.execute(params![id.as_str(), owner, &presented[..], now, &reissue[..]]))
                .map_err(backend)?;
            if changed != 1 {
                return Err(refused(Refusal::StaleToken));
            }
            tx.commit().map_err(backend)?;
            Ok(Recovered { log, reissued: true })
        })
        .await
    }

    async fn info(&self, session: &SessionId, owner: &str, now: u64) -> Result<Option<SessionInfo>, StoreError> {
        let (id, owner, at) = (session.clone(), owner.to_owned(), ms(now));
        self.run(move |conn| {
            let Some(row) = live_row(conn, &id, Some(&owner), at)? else { return Ok(None) };
            Ok(Some(SessionInfo {
                in_flight: row.held(at),
                created_at_ms: unsigned("created_at", row.created_at)?,
                expires_at_ms: unsigned("expires_at", row.expires_at)?,
                turns: unsigned("turns", row.turns)?,
                last_status: row.last_status,
                session_id: id,
            }))
        })
        .await
    }

    /// Always `None`: the store keeps only digests of tokens.
    async fn current_token(&self, _session: &SessionId, _now: u64) -> Result<Option<ContinuationToken>, StoreError> {
        Ok(None)
    }

    async fn in_flight(&self, session: &SessionId, now: u64) -> Result<bool, StoreError> {
        let (id, now) = (session.clone(), ms(now));
        self.run(move |conn| Ok(live_row(conn, &id, None, now)?.is_some_and(|r| r.held(now)))).await
    }

    async fn touch(&self, session: &SessionId, expires_at: u64, now: u64) -> Result<bool, StoreError> {
        let (id, expires_at, now) = (session.as_str().to_owned(), ms(expires_at), ms(now));
        self.run(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE channel_sessions SET expires_at = MAX(expires_at, ?2)
                     WHERE session_id = ?1 AND ((claim_until IS NOT NULL AND claim_until > ?3) OR expires_at > ?3)",
                )
                .and_then(|mut s| s.execute(params![id, expires_at, now]))
                .map_err(backend)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn purge_expired(&self, now: u64) -> Result<usize, StoreError> {
        let now = ms(now);
        self.run(move |conn| {
            conn.prepare_cached(
                "DELETE FROM channel_sessions
                 WHERE (claim_until IS NULL OR claim_until <= ?1) AND expires_at <= ?1",
            )
            .and_then(|mut s| s.execute([now]))
            .map_err(backend)
        })
        .await
    }
}
