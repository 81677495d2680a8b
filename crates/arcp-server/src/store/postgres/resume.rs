//! [`PgResumeStore`]: resume records in `arcp_resume` (the token's SHA-256 digest, never the
//! token).

use std::sync::Arc;

use arcp_core::SessionId;
use async_trait::async_trait;

use super::{Shared, corrupt, db_error, to_i64, to_u64};
use crate::store::{ResumeRecord, ResumeStore, StoreError};

/// A PostgreSQL [`ResumeStore`] (from [`PgStore::resume_store`](super::PgStore::resume_store)).
#[derive(Clone)]
pub struct PgResumeStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PgResumeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgResumeStore").finish_non_exhaustive()
    }
}

impl PgResumeStore {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        PgResumeStore { shared }
    }
}

#[async_trait]
impl ResumeStore for PgResumeStore {
    async fn put(&self, record: ResumeRecord) -> Result<(), StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO arcp_resume (session_id, token_digest, principal, expires_at_millis) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (session_id) DO UPDATE SET token_digest = EXCLUDED.token_digest, \
                 principal = EXCLUDED.principal, expires_at_millis = EXCLUDED.expires_at_millis",
            )
            .await
            .map_err(db_error)?;
        client
            .execute(
                &statement,
                &[
                    &record.session_id.as_str(),
                    &&record.token_digest[..],
                    &record.principal,
                    &to_i64(record.expires_at_millis),
                ],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn get(&self, session: &SessionId) -> Result<Option<ResumeRecord>, StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached("SELECT token_digest, principal, expires_at_millis FROM arcp_resume WHERE session_id = $1")
            .await
            .map_err(db_error)?;
        let Some(row) = client.query_opt(&statement, &[&session.as_str()]).await.map_err(db_error)? else {
            return Ok(None);
        };
        let digest: &[u8] = row.try_get(0).map_err(db_error)?;
        let token_digest: [u8; 32] =
            digest.try_into().map_err(|_| corrupt("arcp_resume", format!("a {}-byte digest", digest.len())))?;
        Ok(Some(ResumeRecord {
            session_id: session.clone(),
            token_digest,
            principal: row.try_get(1).map_err(db_error)?,
            expires_at_millis: to_u64(row.try_get(2).map_err(db_error)?),
        }))
    }

    async fn remove(&self, session: &SessionId) -> Result<(), StoreError> {
        let client = self.shared.client().await?;
        let statement =
            client.prepare_cached("DELETE FROM arcp_resume WHERE session_id = $1").await.map_err(db_error)?;
        client.execute(&statement, &[&session.as_str()]).await.map_err(db_error)?;
        Ok(())
    }

    async fn set_expiry(&self, session: &SessionId, expires_at_millis: u64) -> Result<(), StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached("UPDATE arcp_resume SET expires_at_millis = $2 WHERE session_id = $1")
            .await
            .map_err(db_error)?;
        client.execute(&statement, &[&session.as_str(), &to_i64(expires_at_millis)]).await.map_err(db_error)?;
        Ok(())
    }

    async fn purge_expired(&self, now_millis: u64) -> Result<usize, StoreError> {
        let client = self.shared.client().await?;
        let statement =
            client.prepare_cached("DELETE FROM arcp_resume WHERE expires_at_millis <= $1").await.map_err(db_error)?;
        let n = client.execute(&statement, &[&to_i64(now_millis)]).await.map_err(db_error)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn expired(&self, now_millis: u64, limit: usize) -> Result<Vec<SessionId>, StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT session_id FROM arcp_resume WHERE expires_at_millis <= $1 \
                 ORDER BY expires_at_millis, session_id LIMIT $2",
            )
            .await
            .map_err(db_error)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client.query(&statement, &[&to_i64(now_millis), &limit]).await.map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let id: &str = row.try_get(0).map_err(db_error)?;
                SessionId::parse(id).map_err(|e| corrupt("arcp_resume", format!("session id {id:?}: {e}")))
            })
            .collect()
    }
}
