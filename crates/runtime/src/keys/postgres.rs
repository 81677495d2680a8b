//! [`PgKeyStore`]: API keys in table `api_keys` of a PostgreSQL database (migrated as
//! component [`COMPONENT`] with [`arcp_server::store::postgres::migrate`]), usually in the
//! database and schema of the ARCP stores ([`PgKeyStore::from_store`] shares their pool).
//!
//! Every node reads the table on every verification (no cache), so a key revoked through any
//! node or by `arcp keys revoke` is refused by every node from the next handshake or request
//! on. [`insert_first`](ApiKeyStore::insert_first) locks the table for the length of its
//! transaction, so of several nodes starting together on an empty table exactly one inserts.

use std::fmt;

use arcp_server::store::postgres::{PgStore, migrate};
use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};

use super::{ApiKeyStore, COMPONENT, KeyDigest, KeyError, KeyRecord, Revoked, digest_from_sql, from_sql, to_sql};

/// The key schema, as migration steps (append, never edit).
const STEPS: &[&str] = &["
CREATE TABLE api_keys (
    id text PRIMARY KEY,
    prefix text NOT NULL,
    digest bytea NOT NULL UNIQUE,
    principal text NOT NULL,
    label text,
    created_at bigint NOT NULL,
    expires_at bigint,
    revoked_at bigint
);
CREATE INDEX api_keys_prefix ON api_keys (prefix);
"];

/// The columns of a [`KeyRecord`], in [`record`]'s order.
const COLUMNS: &str = "id, prefix, digest, principal, label, created_at, expires_at, revoked_at";

/// The SQLSTATE of a unique violation.
const UNIQUE_VIOLATION: &str = "23505";

/// API keys in PostgreSQL. Cheap to clone (clones share the pool); any number of stores, on
/// any number of nodes, may share one database and schema.
#[derive(Clone)]
pub struct PgKeyStore {
    pool: Pool,
}

impl fmt::Debug for PgKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgKeyStore").field("pool", &self.pool.status()).finish()
    }
}

fn backend(e: impl fmt::Display) -> KeyError {
    KeyError::Backend(format!("postgres: {e}"))
}

fn db(e: tokio_postgres::Error) -> KeyError {
    match e.as_db_error() {
        Some(d) if d.code().code() == UNIQUE_VIOLATION => KeyError::Duplicate,
        Some(d) => backend(format_args!("{} ({})", d.message(), d.code().code())),
        None => backend(e),
    }
}

/// A [`KeyRecord`] from the columns [`COLUMNS`].
fn record(r: &tokio_postgres::Row) -> Result<KeyRecord, KeyError> {
    let digest: Vec<u8> = r.try_get(2).map_err(db)?;
    let created_at: i64 = r.try_get(5).map_err(db)?;
    let expires_at: Option<i64> = r.try_get(6).map_err(db)?;
    let revoked_at: Option<i64> = r.try_get(7).map_err(db)?;
    Ok(KeyRecord {
        id: r.try_get(0).map_err(db)?,
        prefix: r.try_get(1).map_err(db)?,
        digest: digest_from_sql(&digest)?,
        principal: r.try_get(3).map_err(db)?,
        label: r.try_get(4).map_err(db)?,
        created_at: from_sql("created_at", created_at)?,
        expires_at: expires_at.map(|v| from_sql("expires_at", v)).transpose()?,
        revoked_at: revoked_at.map(|v| from_sql("revoked_at", v)).transpose()?,
    })
}

impl PgKeyStore {
    /// The key table in `store`'s database and schema, over its connection pool (migrated as
    /// needed).
    pub async fn from_store(store: &PgStore) -> Result<PgKeyStore, KeyError> {
        PgKeyStore::new(store.pool().clone()).await
    }

    /// The key table over `pool` (whose connections' `search_path` selects the schema),
    /// migrated as needed.
    pub async fn new(pool: Pool) -> Result<PgKeyStore, KeyError> {
        let mut client = pool.get().await.map_err(backend)?;
        migrate(&mut client, COMPONENT, STEPS).await.map_err(backend)?;
        drop(client);
        Ok(PgKeyStore { pool })
    }

    async fn client(&self) -> Result<Object, KeyError> {
        self.pool.get().await.map_err(backend)
    }
}

/// The insert statement (`only_first`: only into an empty table).
fn insert_sql(only_first: bool) -> String {
    format!(
        "INSERT INTO api_keys ({COLUMNS})
         SELECT $1::text, $2::text, $3::bytea, $4::text, $5::text, $6::bigint, $7::bigint, $8::bigint {}",
        if only_first { "WHERE NOT EXISTS (SELECT 1 FROM api_keys)" } else { "" }
    )
}

#[async_trait]
impl ApiKeyStore for PgKeyStore {
    async fn insert(&self, r: &KeyRecord) -> Result<(), KeyError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(&insert_sql(false)).await.map_err(db)?;
        client
            .execute(
                &statement,
                &[
                    &r.id,
                    &r.prefix,
                    &&r.digest[..],
                    &r.principal,
                    &r.label,
                    &to_sql(r.created_at),
                    &r.expires_at.map(to_sql),
                    &r.revoked_at.map(to_sql),
                ],
            )
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn insert_first(&self, r: &KeyRecord) -> Result<bool, KeyError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        // Blocks every other writer of the table (a concurrent `insert_first` waits here and
        // then sees this row), while readers go on.
        tx.batch_execute("LOCK TABLE api_keys IN EXCLUSIVE MODE").await.map_err(db)?;
        let inserted = tx
            .execute(
                &insert_sql(true),
                &[
                    &r.id,
                    &r.prefix,
                    &&r.digest[..],
                    &r.principal,
                    &r.label,
                    &to_sql(r.created_at),
                    &r.expires_at.map(to_sql),
                    &r.revoked_at.map(to_sql),
                ],
            )
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(inserted == 1)
    }

    async fn list(&self) -> Result<Vec<KeyRecord>, KeyError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"))
            .await
            .map_err(db)?;
        client.query(&statement, &[]).await.map_err(db)?.iter().map(record).collect()
    }

    async fn find(&self, digest: &KeyDigest) -> Result<Option<KeyRecord>, KeyError> {
        // Equality on a SHA-256 digest: how long it takes says nothing usable about the key.
        let client = self.client().await?;
        let statement =
            client.prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE digest = $1")).await.map_err(db)?;
        client.query_opt(&statement, &[&&digest[..]]).await.map_err(db)?.as_ref().map(record).transpose()
    }

    async fn revoke(&self, id: &str, now: u64) -> Result<Revoked, KeyError> {
        let client = self.client().await?;
        // One statement: the update (if the key is not revoked yet) and the row after it.
        let statement = client
            .prepare_cached(&format!(
                "WITH revoked AS (
                     UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING {COLUMNS}
                 )
                 SELECT {COLUMNS}, true FROM revoked
                 UNION ALL
                 SELECT {COLUMNS}, false FROM api_keys WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM revoked)"
            ))
            .await
            .map_err(db)?;
        let row = client.query_opt(&statement, &[&id, &to_sql(now)]).await.map_err(db)?;
        let row = row.ok_or_else(|| KeyError::NotFound(id.to_owned()))?;
        let now_revoked: bool = row.try_get(8).map_err(db)?;
        let r = record(&row)?;
        Ok(if now_revoked { Revoked::Now(r) } else { Revoked::Already(r) })
    }
}
