//! The SQLite [`KvStore`]: `arcp_kv` keyed `(principal, key)`, values kept as JSON text.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

use super::writer::ApplyError;
use super::{Shared, corrupt, millis, unsigned};
use crate::store::kv::{KvEntry, KvError, KvPage, KvQuery, KvStore, check_entry, check_key, ttl_millis};

/// The SQLite [`KvStore`] (from [`SqliteStore::kv_store`](super::SqliteStore::kv_store)).
/// Every statement names the principal. A `get` goes through the writer thread (it slides
/// the TTL); listings run on the read pool.
#[derive(Debug, Clone)]
pub struct SqliteKvStore {
    shared: Arc<Shared>,
}

impl SqliteKvStore {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        SqliteKvStore { shared }
    }
}

fn decode_value(text: &str) -> Result<Value, ApplyError> {
    serde_json::from_str(text).map_err(|e| ApplyError::Invalid(corrupt("key-value entry", e)))
}

fn expiry(v: Option<i64>) -> Result<Option<u64>, ApplyError> {
    v.map(|v| unsigned("key-value expiry", v)).transpose().map_err(ApplyError::Invalid)
}

#[async_trait]
impl KvStore for SqliteKvStore {
    async fn get(&self, principal: &str, key: &str, now_millis: u64) -> Result<Option<KvEntry>, KvError> {
        check_key(key)?;
        let principal = principal.to_owned();
        let key = key.to_owned();
        let now = millis(now_millis);
        Ok(self
            .shared
            .writer
            .write(move |conn| {
                let row: Option<(String, Option<i64>)> = conn
                    .prepare_cached(
                        "UPDATE arcp_kv SET expires_at_millis = CASE WHEN ttl_ms IS NULL THEN NULL
                             ELSE MIN(?3 + ttl_ms, 9223372036854775807) END
                         WHERE principal = ?1 AND key = ?2
                             AND (expires_at_millis IS NULL OR expires_at_millis > ?3)
                         RETURNING value, expires_at_millis",
                    )?
                    .query_row(params![principal, key, now], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let Some((value, expires)) = row else { return Ok(None) };
                Ok(Some(KvEntry { key, value: Some(decode_value(&value)?), expires_at_millis: expiry(expires)? }))
            })
            .await?)
    }

    async fn set(
        &self,
        principal: &str,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        now_millis: u64,
    ) -> Result<(), KvError> {
        let encoded = check_entry(key, &value)?;
        let ttl_ms = ttl.map(|t| millis(ttl_millis(t)));
        let expires = ttl.map(|t| millis(now_millis.saturating_add(ttl_millis(t))));
        let principal = principal.to_owned();
        let key = key.to_owned();
        Ok(self
            .shared
            .writer
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO arcp_kv (principal, key, value, ttl_ms, expires_at_millis)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (principal, key) DO UPDATE SET value = excluded.value,
                         ttl_ms = excluded.ttl_ms, expires_at_millis = excluded.expires_at_millis",
                )?
                .execute(params![principal, key, encoded, ttl_ms, expires])?;
                Ok(())
            })
            .await?)
    }

    async fn delete(&self, principal: &str, key: &str, now_millis: u64) -> Result<bool, KvError> {
        check_key(key)?;
        let principal = principal.to_owned();
        let key = key.to_owned();
        let now = millis(now_millis);
        Ok(self
            .shared
            .writer
            .write(move |conn| {
                let live: Option<i64> = conn
                    .prepare_cached(
                        "DELETE FROM arcp_kv WHERE principal = ?1 AND key = ?2
                         RETURNING (expires_at_millis IS NULL OR expires_at_millis > ?3)",
                    )?
                    .query_row(params![principal, key, now], |r| r.get(0))
                    .optional()?;
                Ok(live == Some(1))
            })
            .await?)
    }

    async fn list(&self, principal: &str, query: KvQuery, now_millis: u64) -> Result<KvPage, KvError> {
        let limit = query.effective_limit();
        let principal = principal.to_owned();
        let now = millis(now_millis);
        Ok(self
            .shared
            .readers
            .read(move |conn| {
                let fetch = i64::try_from(limit + 1).unwrap_or(i64::MAX);
                let mut statement = conn
                    .prepare_cached(
                        "SELECT key, CASE WHEN ?5 THEN NULL ELSE value END, expires_at_millis FROM arcp_kv
                         WHERE principal = ?1 AND key >= ?2 AND substr(key, 1, length(?2)) = ?2
                             AND (?3 IS NULL OR key > ?3)
                             AND (expires_at_millis IS NULL OR expires_at_millis > ?4)
                         ORDER BY key LIMIT ?6",
                    )
                    .map_err(super::unavailable)?;
                let rows = statement
                    .query_map(params![principal, query.prefix, query.after, now, query.keys_only, fetch], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?, r.get::<_, Option<i64>>(2)?))
                    })
                    .map_err(super::unavailable)?;
                let mut entries = Vec::new();
                let mut more = false;
                for row in rows {
                    let (key, value, expires) = row.map_err(super::unavailable)?;
                    if entries.len() == limit {
                        more = true;
                        break;
                    }
                    let value = value.map(|v| decode_value(&v)).transpose().map_err(invalid)?;
                    entries.push(KvEntry { key, value, expires_at_millis: expiry(expires).map_err(invalid)? });
                }
                let next_cursor = if more { entries.last().map(|e: &KvEntry| e.key.clone()) } else { None };
                Ok(KvPage { entries, next_cursor })
            })
            .await?)
    }

    async fn purge_expired(&self, now_millis: u64) -> Result<usize, KvError> {
        let now = millis(now_millis);
        Ok(self
            .shared
            .writer
            .write(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "DELETE FROM arcp_kv WHERE expires_at_millis IS NOT NULL AND expires_at_millis <= ?1",
                    )?
                    .execute([now])?)
            })
            .await?)
    }
}

/// An [`ApplyError`] from a read (only decoding fails that way) as a store failure.
fn invalid(e: ApplyError) -> crate::store::StoreError {
    match e {
        ApplyError::Refused(e) | ApplyError::Invalid(e) => e,
        ApplyError::Sql(e) => super::unavailable(e),
    }
}
