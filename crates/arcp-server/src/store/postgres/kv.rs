//! [`PgKvStore`]: the agents' key-value store in `arcp_kv`, keyed `(principal, key)`, values
//! kept as JSON text. Every statement names the principal.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::{Shared, corrupt, db_error, to_i64, to_u64};
use crate::store::StoreError;
use crate::store::kv::{KvEntry, KvError, KvPage, KvQuery, KvStore, check_entry, check_key, ttl_millis};

/// A PostgreSQL [`KvStore`] (from [`PgStore::kv_store`](super::PgStore::kv_store)). A `get`
/// is one `UPDATE … RETURNING` that slides the TTL of a live entry.
#[derive(Clone)]
pub struct PgKvStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PgKvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgKvStore").finish_non_exhaustive()
    }
}

impl PgKvStore {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        PgKvStore { shared }
    }
}

fn decode_value(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt("arcp_kv", e))
}

#[async_trait]
impl KvStore for PgKvStore {
    async fn get(&self, principal: &str, key: &str, now_millis: u64) -> Result<Option<KvEntry>, KvError> {
        check_key(key)?;
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(
                "UPDATE arcp_kv SET expires_at_millis = CASE WHEN ttl_ms IS NULL THEN NULL
                     ELSE LEAST($3::bigint::numeric + ttl_ms, 9223372036854775807)::bigint END
                 WHERE principal = $1 AND key = $2
                     AND (expires_at_millis IS NULL OR expires_at_millis > $3::bigint)
                 RETURNING value, expires_at_millis",
            )
            .await
            .map_err(db_error)?;
        let row = client.query_opt(&statement, &[&principal, &key, &to_i64(now_millis)]).await.map_err(db_error)?;
        let Some(row) = row else { return Ok(None) };
        let value: String = row.try_get(0).map_err(db_error)?;
        let expires: Option<i64> = row.try_get(1).map_err(db_error)?;
        Ok(Some(KvEntry {
            key: key.to_owned(),
            value: Some(decode_value(&value)?),
            expires_at_millis: expires.map(to_u64),
        }))
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
        let ttl_ms = ttl.map(|t| to_i64(ttl_millis(t)));
        let expires = ttl.map(|t| to_i64(now_millis.saturating_add(ttl_millis(t))));
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO arcp_kv (principal, key, value, ttl_ms, expires_at_millis)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (principal, key) DO UPDATE SET value = EXCLUDED.value,
                     ttl_ms = EXCLUDED.ttl_ms, expires_at_millis = EXCLUDED.expires_at_millis",
            )
            .await
            .map_err(db_error)?;
        client.execute(&statement, &[&principal, &key, &encoded, &ttl_ms, &expires]).await.map_err(db_error)?;
        Ok(())
    }

    async fn delete(&self, principal: &str, key: &str, now_millis: u64) -> Result<bool, KvError> {
        check_key(key)?;
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(
                "DELETE FROM arcp_kv WHERE principal = $1 AND key = $2
                 RETURNING (expires_at_millis IS NULL OR expires_at_millis > $3)",
            )
            .await
            .map_err(db_error)?;
        let row = client.query_opt(&statement, &[&principal, &key, &to_i64(now_millis)]).await.map_err(db_error)?;
        match row {
            Some(row) => Ok(row.try_get::<_, bool>(0).map_err(db_error)?),
            None => Ok(false),
        }
    }

    async fn list(&self, principal: &str, query: KvQuery, now_millis: u64) -> Result<KvPage, KvError> {
        let limit = query.effective_limit();
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT key, CASE WHEN $5 THEN NULL ELSE value END, expires_at_millis FROM arcp_kv
                 WHERE principal = $1 AND key >= $2 AND left(key, char_length($2)) = $2
                     AND ($3::text IS NULL OR key > $3)
                     AND (expires_at_millis IS NULL OR expires_at_millis > $4)
                 ORDER BY key LIMIT $6",
            )
            .await
            .map_err(db_error)?;
        let fetch = to_i64(limit + 1);
        let rows = client
            .query(
                &statement,
                &[&principal, &query.prefix, &query.after, &to_i64(now_millis), &query.keys_only, &fetch],
            )
            .await
            .map_err(db_error)?;
        let mut entries = Vec::new();
        let mut more = false;
        for row in rows {
            if entries.len() == limit {
                more = true;
                break;
            }
            let key: String = row.try_get(0).map_err(db_error)?;
            let value: Option<String> = row.try_get(1).map_err(db_error)?;
            let expires: Option<i64> = row.try_get(2).map_err(db_error)?;
            let value = value.map(|v| decode_value(&v)).transpose()?;
            entries.push(KvEntry { key, value, expires_at_millis: expires.map(to_u64) });
        }
        let next_cursor = if more { entries.last().map(|e| e.key.clone()) } else { None };
        Ok(KvPage { entries, next_cursor })
    }

    async fn purge_expired(&self, now_millis: u64) -> Result<usize, KvError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached("DELETE FROM arcp_kv WHERE expires_at_millis IS NOT NULL AND expires_at_millis <= $1")
            .await
            .map_err(db_error)?;
        let n = client.execute(&statement, &[&to_i64(now_millis)]).await.map_err(db_error)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}
