//! [`PgIdempotencyStore`]: idempotency records in `arcp_idempotency`, claimed with one
//! `INSERT … ON CONFLICT … DO UPDATE … WHERE <expired>` statement.

use std::sync::Arc;

use arcp_core::JobId;
use arcp_core::message::JobAccepted;
use async_trait::async_trait;

use super::{Shared, corrupt, db_error, to_i64, to_u64};
use crate::store::{Claim, IdempotencyRecord, IdempotencyStore, StoreError};

/// Binds the key unless a live record holds it. Returns a row only when this call bound it.
const CLAIM: &str = "
INSERT INTO arcp_idempotency AS i (principal, key, digest, job_id, accepted, expires_at_millis)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (principal, key) DO UPDATE
    SET digest = EXCLUDED.digest, job_id = EXCLUDED.job_id, accepted = EXCLUDED.accepted,
        expires_at_millis = EXCLUDED.expires_at_millis
    WHERE i.expires_at_millis <= $7
RETURNING 1";

/// How often a claim is retried when the record that beat it vanished before it could be
/// read (purged or expired in between): each retry means another writer made progress.
const CLAIM_ATTEMPTS: usize = 8;

/// A PostgreSQL [`IdempotencyStore`] (from
/// [`PgStore::idempotency_store`](super::PgStore::idempotency_store)). Of any number of
/// concurrent claims of one key, on any number of nodes, exactly one is
/// [`Claim::Claimed`]; the `job.accepted` payload is kept as the JSON serde wrote.
#[derive(Clone)]
pub struct PgIdempotencyStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PgIdempotencyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgIdempotencyStore").finish_non_exhaustive()
    }
}

impl PgIdempotencyStore {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        PgIdempotencyStore { shared }
    }
}

#[async_trait]
impl IdempotencyStore for PgIdempotencyStore {
    async fn claim(
        &self,
        principal: &str,
        key: &str,
        record: IdempotencyRecord,
        now_millis: u64,
    ) -> Result<Claim, StoreError> {
        let accepted = serde_json::to_string(&record.accepted)
            .map_err(|e| StoreError::Unavailable(format!("cannot encode job.accepted: {e}")))?;
        let now = to_i64(now_millis);
        let client = self.shared.client().await?;
        let claim = client.prepare_cached(CLAIM).await.map_err(db_error)?;
        let read = client
            .prepare_cached(
                "SELECT digest, job_id, accepted, expires_at_millis FROM arcp_idempotency \
                 WHERE principal = $1 AND key = $2",
            )
            .await
            .map_err(db_error)?;
        for _ in 0..CLAIM_ATTEMPTS {
            let claimed = client
                .query_opt(
                    &claim,
                    &[
                        &principal,
                        &key,
                        &&record.digest[..],
                        &record.job_id.as_str(),
                        &accepted,
                        &to_i64(record.expires_at_millis),
                        &now,
                    ],
                )
                .await
                .map_err(db_error)?;
            if claimed.is_some() {
                return Ok(Claim::Claimed);
            }
            // A live record held the key when the claim ran; read it (a separate statement,
            // so it may have been purged or replaced meanwhile: then claim again).
            if let Some(row) = client.query_opt(&read, &[&principal, &key]).await.map_err(db_error)? {
                let existing = decode(&row)?;
                if existing.expires_at_millis > now_millis {
                    return Ok(Claim::Existing(Box::new(existing)));
                }
            }
        }
        Err(StoreError::Conflict(format!(
            "idempotency key {key:?} kept changing hands; {CLAIM_ATTEMPTS} claims did not settle"
        )))
    }

    async fn purge_expired(&self, now_millis: u64) -> Result<usize, StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached("DELETE FROM arcp_idempotency WHERE expires_at_millis <= $1")
            .await
            .map_err(db_error)?;
        let n = client.execute(&statement, &[&to_i64(now_millis)]).await.map_err(db_error)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

/// A stored record.
fn decode(row: &tokio_postgres::Row) -> Result<IdempotencyRecord, StoreError> {
    let digest: &[u8] = row.try_get(0).map_err(db_error)?;
    let digest: [u8; 32] =
        digest.try_into().map_err(|_| corrupt("arcp_idempotency", format!("a {}-byte digest", digest.len())))?;
    let job_id: &str = row.try_get(1).map_err(db_error)?;
    let accepted: &str = row.try_get(2).map_err(db_error)?;
    let accepted: JobAccepted = serde_json::from_str(accepted).map_err(|e| corrupt("arcp_idempotency", e))?;
    Ok(IdempotencyRecord {
        digest,
        job_id: JobId::parse(job_id).map_err(|e| corrupt("arcp_idempotency", e))?,
        accepted,
        expires_at_millis: to_u64(row.try_get(3).map_err(db_error)?),
    })
}
