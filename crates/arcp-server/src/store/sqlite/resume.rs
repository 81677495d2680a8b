//! The SQLite [`ResumeStore`]: `arcp_resume`, one row per session.

use std::sync::Arc;

use arcp_core::SessionId;
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{Shared, corrupt, millis, unavailable, unsigned};
use crate::store::{ResumeRecord, ResumeStore, StoreError};

/// The SQLite [`ResumeStore`].
#[derive(Debug, Clone)]
pub struct SqliteResumeStore {
    shared: Arc<Shared>,
}

impl SqliteResumeStore {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        SqliteResumeStore { shared }
    }
}

#[async_trait]
impl ResumeStore for SqliteResumeStore {
    async fn put(&self, record: ResumeRecord) -> Result<(), StoreError> {
        self.shared
            .writer
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO arcp_resume (session_id, token_digest, principal, expires_at_millis)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (session_id) DO UPDATE SET token_digest = excluded.token_digest,
                         principal = excluded.principal, expires_at_millis = excluded.expires_at_millis",
                )?
                .execute(params![
                    record.session_id.as_str(),
                    &record.token_digest[..],
                    record.principal,
                    millis(record.expires_at_millis)
                ])?;
                Ok(())
            })
            .await
    }

    async fn get(&self, session: &SessionId) -> Result<Option<ResumeRecord>, StoreError> {
        let session = session.clone();
        self.shared
            .readers
            .read(move |conn| {
                let row: Option<(Vec<u8>, String, i64)> = conn
                    .prepare_cached(
                        "SELECT token_digest, principal, expires_at_millis FROM arcp_resume WHERE session_id = ?1",
                    )
                    .and_then(|mut s| {
                        s.query_row([session.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional()
                    })
                    .map_err(unavailable)?;
                let Some((digest, principal, expires)) = row else { return Ok(None) };
                let token_digest: [u8; 32] = digest
                    .try_into()
                    .map_err(|d: Vec<u8>| corrupt("resume token digest", format!("{} bytes", d.len())))?;
                Ok(Some(ResumeRecord {
                    session_id: session,
                    token_digest,
                    principal,
                    expires_at_millis: unsigned("resume expiry", expires)?,
                }))
            })
            .await
    }

    async fn remove(&self, session: &SessionId) -> Result<(), StoreError> {
        let session = session.as_str().to_owned();
        self.shared
            .writer
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM arcp_resume WHERE session_id = ?1")?.execute([session])?;
                Ok(())
            })
            .await
    }

    async fn set_expiry(&self, session: &SessionId, expires_at_millis: u64) -> Result<(), StoreError> {
        let session = session.as_str().to_owned();
        let expires = millis(expires_at_millis);
        self.shared
            .writer
            .write(move |conn| {
                conn.prepare_cached("UPDATE arcp_resume SET expires_at_millis = ?2 WHERE session_id = ?1")?
                    .execute(rusqlite::params![session, expires])?;
                Ok(())
            })
            .await
    }

    async fn purge_expired(&self, now_millis: u64) -> Result<usize, StoreError> {
        let now = millis(now_millis);
        self.shared
            .writer
            .write(move |conn| {
                Ok(conn.prepare_cached("DELETE FROM arcp_resume WHERE expires_at_millis <= ?1")?.execute([now])?)
            })
            .await
    }

    async fn expired(&self, now_millis: u64, limit: usize) -> Result<Vec<SessionId>, StoreError> {
        let now = millis(now_millis);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.shared
            .readers
            .read(move |conn| {
                let ids: Vec<String> = conn
                    .prepare_cached(
                        "SELECT session_id FROM arcp_resume WHERE expires_at_millis <= ?1 \
                         ORDER BY expires_at_millis, session_id LIMIT ?2",
                    )
                    .and_then(|mut s| s.query_map(rusqlite::params![now, limit], |r| r.get(0))?.collect())
                    .map_err(unavailable)?;
                ids.into_iter()
                    .map(|id| SessionId::parse(&id).map_err(|e| corrupt("resume session id", e.to_string())))
                    .collect()
            })
            .await
    }
}
