//! The SQLite [`IdempotencyStore`]: `arcp_idempotency` keyed `(principal, key)`, the
//! `job.accepted` payload kept as JSON.

use std::sync::Arc;

use arcp_core::JobId;
use arcp_core::message::JobAccepted;
use async_trait::async_trait;
use rusqlite::params;

use super::writer::ApplyError;
use super::{Shared, corrupt, millis, unsigned};
use crate::store::{Claim, IdempotencyRecord, IdempotencyStore, StoreError};

/// The SQLite [`IdempotencyStore`]. A claim is one upsert that only overwrites an expired
/// record, followed by a read-back in the same transaction; the single writer thread
/// serialises racing claims, so exactly one of them is [`Claim::Claimed`].
#[derive(Debug, Clone)]
pub struct SqliteIdempotencyStore {
    shared: Arc<Shared>,
}

impl SqliteIdempotencyStore {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        SqliteIdempotencyStore { shared }
    }
}

#[async_trait]
impl IdempotencyStore for SqliteIdempotencyStore {
    async fn claim(
        &self,
        principal: &str,
        key: &str,
        record: IdempotencyRecord,
        now_millis: u64,
    ) -> Result<Claim, StoreError> {
        let accepted = serde_json::to_string(&record.accepted)
            .map_err(|e| StoreError::Unavailable(format!("cannot encode the job.accepted payload: {e}")))?;
        let principal = principal.to_owned();
        let key = key.to_owned();
        let now = millis(now_millis);
        self.shared
            .writer
            .write(move |conn| {
                let changed = conn
                    .prepare_cached(
                        "INSERT INTO arcp_idempotency (principal, key, digest, job_id, accepted, expires_at_millis)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT (principal, key) DO UPDATE SET digest = excluded.digest,
                             job_id = excluded.job_id, accepted = excluded.accepted,
                             expires_at_millis = excluded.expires_at_millis
                         WHERE arcp_idempotency.expires_at_millis <= ?7",
                    )?
                    .execute(params![
                        principal,
                        key,
                        &record.digest[..],
                        record.job_id.as_str(),
                        accepted,
                        millis(record.expires_at_millis),
                        now
                    ])?;
                if changed == 1 {
                    return Ok(Claim::Claimed);
                }
                // A live record holds the key: read it back (same transaction, same writer).
                let (digest, job_id, accepted, expires): (Vec<u8>, String, String, i64) = conn
                    .prepare_cached(
                        "SELECT digest, job_id, accepted, expires_at_millis FROM arcp_idempotency
                         WHERE principal = ?1 AND key = ?2",
                    )?
                    .query_row(params![principal, key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
                let existing = IdempotencyRecord {
                    digest: digest.try_into().map_err(|d: Vec<u8>| {
                        ApplyError::Invalid(corrupt("idempotency digest", format!("{} bytes", d.len())))
                    })?,
                    job_id: JobId::parse(&job_id).map_err(|e| ApplyError::Invalid(corrupt("job_id", e)))?,
                    accepted: serde_json::from_str::<JobAccepted>(&accepted)
                        .map_err(|e| ApplyError::Invalid(corrupt("job.accepted payload", e)))?,
                    expires_at_millis: unsigned("idempotency expiry", expires).map_err(ApplyError::Invalid)?,
                };
                Ok(Claim::Existing(Box::new(existing)))
            })
            .await
    }

    async fn purge_expired(&self, now_millis: u64) -> Result<usize, StoreError> {
        let now = millis(now_millis);
        self.shared
            .writer
            .write(move |conn| {
                Ok(conn.prepare_cached("DELETE FROM arcp_idempotency WHERE expires_at_millis <= ?1")?.execute([now])?)
            })
            .await
    }
}
