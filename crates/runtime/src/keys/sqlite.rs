//! [`SqliteKeyStore`]: API keys in table `api_keys` of a SQLite file (migrated as component
//! [`COMPONENT`] with [`arcp_server::store::sqlite::migrate`]), usually the file of the ARCP
//! stores.
//!
//! Any number of processes may open the file at once: `arcp serve` verifies keys while
//! `arcp keys revoke` writes to the same file (WAL mode; a write waits up to the busy timeout
//! for the lock). The store keeps no cache, so every lookup sees the last committed write of
//! any process. Writes use `synchronous=FULL`: keys change rarely, and a revocation must not
//! be undone by a power loss.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arcp_server::store::sqlite::migrate;
use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{ApiKeyStore, COMPONENT, KeyDigest, KeyError, KeyRecord, Revoked, digest_from_sql, from_sql, to_sql};

/// The key schema, as migration steps (append, never edit).
const STEPS: &[&str] = &["
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY NOT NULL,
    prefix TEXT NOT NULL,
    digest BLOB NOT NULL UNIQUE,
    principal TEXT NOT NULL,
    label TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);
CREATE INDEX api_keys_prefix ON api_keys (prefix);
"];

/// The columns of a [`KeyRecord`], in [`row`]'s order.
const COLUMNS: &str = "id, prefix, digest, principal, label, created_at, expires_at, revoked_at";

/// How long a write waits for the database lock held by another connection or process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// API keys in a SQLite file. Cheap to clone (clones share one connection).
#[derive(Clone)]
pub struct SqliteKeyStore {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for SqliteKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteKeyStore").field("path", &self.path).finish_non_exhaustive()
    }
}

fn backend(e: impl std::fmt::Display) -> KeyError {
    KeyError::Backend(format!("sqlite: {e}"))
}

/// A [`KeyRecord`] from the columns [`COLUMNS`].
fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: r.get(0)?,
        prefix: r.get(1)?,
        digest: r.get(2)?,
        principal: r.get(3)?,
        label: r.get(4)?,
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
        revoked_at: r.get(7)?,
    })
}

/// A row as stored, before its values are checked.
struct RawRow {
    id: String,
    prefix: String,
    digest: Vec<u8>,
    principal: String,
    label: Option<String>,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl RawRow {
    fn record(self) -> Result<KeyRecord, KeyError> {
        Ok(KeyRecord {
            digest: digest_from_sql(&self.digest)?,
            created_at: from_sql("created_at", self.created_at)?,
            expires_at: self.expires_at.map(|v| from_sql("expires_at", v)).transpose()?,
            revoked_at: self.revoked_at.map(|v| from_sql("revoked_at", v)).transpose()?,
            id: self.id,
            prefix: self.prefix,
            principal: self.principal,
            label: self.label,
        })
    }
}

impl SqliteKeyStore {
    /// Opens the key table in the SQLite file at `path`, creating the file (and its
    /// directory, private to the owner) and migrating as needed.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteKeyStore, KeyError> {
        SqliteKeyStore::open_with(path.as_ref().to_path_buf(), true).await
    }

    /// Opens the key table in the existing SQLite file at `path` (migrating as needed);
    /// [`KeyError::Backend`] naming the file if it does not exist.
    pub async fn open_existing(path: impl AsRef<Path>) -> Result<SqliteKeyStore, KeyError> {
        SqliteKeyStore::open_with(path.as_ref().to_path_buf(), false).await
    }

    async fn open_with(path: PathBuf, create: bool) -> Result<SqliteKeyStore, KeyError> {
        tokio::task::spawn_blocking(move || SqliteKeyStore::open_blocking(path, create))
            .await
            .map_err(|e| KeyError::Backend(format!("opening the key store failed: {e}")))?
    }

    fn open_blocking(path: PathBuf, create: bool) -> Result<SqliteKeyStore, KeyError> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            create_private_dir(&path)?;
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        } else if !path.is_file() {
            return Err(KeyError::Backend(format!("there is no SQLite store at {}", path.display())));
        }
        let mut conn = Connection::open_with_flags(&path, flags)
            .map_err(|e| KeyError::Backend(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(backend)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(KeyError::Backend(format!("{} cannot use write-ahead logging ({mode})", path.display())));
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(backend)?;
        migrate(&mut conn, COMPONENT, STEPS).map_err(|e| KeyError::Backend(e.to_string()))?;
        Ok(SqliteKeyStore { conn: Arc::new(Mutex::new(conn)), path: Arc::new(path) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection off the async runtime.
    async fn run<T, F>(&self, f: F) -> Result<T, KeyError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, KeyError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut conn.lock()))
            .await
            .map_err(|e| KeyError::Backend(format!("a key store task failed: {e}")))?
    }
}

/// Creates the directory of `path` if it is missing, readable by its owner only (it will
/// hold the stores).
fn create_private_dir(path: &Path) -> Result<(), KeyError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) else { return Ok(()) };
    std::fs::create_dir_all(dir).map_err(|e| KeyError::Backend(format!("cannot create {}: {e}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| KeyError::Backend(format!("cannot restrict {}: {e}", dir.display())))?;
    }
    Ok(())
}

/// Inserts `r` (`only_first`: only into an empty table); whether a row was inserted.
fn insert(conn: &Connection, r: &KeyRecord, only_first: bool) -> Result<bool, KeyError> {
    let sql = format!(
        "INSERT INTO api_keys ({COLUMNS}) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 {}",
        if only_first { "WHERE NOT EXISTS (SELECT 1 FROM api_keys)" } else { "" }
    );
    let inserted = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.execute(params![
                r.id,
                r.prefix,
                &r.digest[..],
                r.principal,
                r.label,
                to_sql(r.created_at),
                r.expires_at.map(to_sql),
                r.revoked_at.map(to_sql),
            ])
        })
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => KeyError::Duplicate,
            _ => backend(e),
        })?;
    Ok(inserted == 1)
}

fn by_id(conn: &Connection, id: &str) -> Result<Option<KeyRecord>, KeyError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"))
        .and_then(|mut s| s.query_row([id], row).optional())
        .map_err(backend)?
        .map(RawRow::record)
        .transpose()
}

#[async_trait]
impl ApiKeyStore for SqliteKeyStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), KeyError> {
        let record = record.clone();
        self.run(move |conn| insert(conn, &record, false).map(drop)).await
    }

    async fn insert_first(&self, record: &KeyRecord) -> Result<bool, KeyError> {
        // One statement: SQLite serialises writers across connections and processes.
        let record = record.clone();
        self.run(move |conn| insert(conn, &record, true)).await
    }

    async fn list(&self) -> Result<Vec<KeyRecord>, KeyError> {
        self.run(|conn| {
            let mut s = conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"))
                .map_err(backend)?;
            let rows = s.query_map([], row).map_err(backend)?;
            rows.map(|r| r.map_err(backend).and_then(RawRow::record)).collect()
        })
        .await
    }

    async fn find(&self, digest: &KeyDigest) -> Result<Option<KeyRecord>, KeyError> {
        // Equality on a SHA-256 digest: how long it takes says nothing usable about the key.
        let digest = *digest;
        self.run(move |conn| {
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE digest = ?1"))
                .and_then(|mut s| s.query_row([&digest[..]], row).optional())
                .map_err(backend)?
                .map(RawRow::record)
                .transpose()
        })
        .await
    }

    async fn revoke(&self, id: &str, now: u64) -> Result<Revoked, KeyError> {
        let id = id.to_owned();
        self.run(move |conn| {
            let changed = conn
                .prepare_cached("UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")
                .and_then(|mut s| s.execute(params![id, to_sql(now)]))
                .map_err(backend)?;
            let record = by_id(conn, &id)?.ok_or_else(|| KeyError::NotFound(id.clone()))?;
            Ok(if changed == 1 { Revoked::Now(record) } else { Revoked::Already(record) })
        })
        .await
    }
}
