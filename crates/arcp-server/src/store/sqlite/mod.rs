//! SQLite stores: the embedded default of `arcp serve` (one file, no server).
//!
//! [`SqliteStore::open`] opens (or creates) the database file, applies the schema migrations
//! ([`migrate`]) and starts the **writer thread**; [`SqliteStore::event_log`],
//! [`SqliteStore::resume_store`], [`SqliteStore::idempotency_store`] and
//! [`SqliteStore::job_store`] (and [`SqliteStore::kv_store`], the agents' key-value store)
//! hand out cheap handles implementing the store traits over the
//! same database.
//!
//! # Writes: one thread, group commit
//!
//! Every write (appends, resume records, idempotency claims, job records, purges) is sent to
//! one thread that owns the only write connection. It takes whatever is queued (up to
//! [`SqliteOptions::max_batch`] operations; when more than one was waiting it lingers up to
//! [`SqliteOptions::group_commit_window`] for stragglers), applies them in **one**
//! transaction (each in its own savepoint, so one refused operation does not undo the
//! others), commits, and only then answers each waiter. So a write returning `Ok` is
//! committed (persist-before-send holds), and concurrent writers share a commit instead of
//! paying one each. If the batch cannot be committed, every waiter in it gets
//! [`StoreError::Unavailable`]; nothing is dropped silently. Serialising writes through one
//! thread also makes every read-modify-write (the idempotency claim, the event caps) atomic.
//!
//! # Reads
//!
//! Reads run on a small pool of read-only connections ([`SqliteOptions::readers`]) inside
//! [`tokio::task::spawn_blocking`], so they never block the async runtime and (WAL) never
//! wait for the writer.
//!
//! # Durability
//!
//! The database runs in WAL mode. With [`Synchronous::Normal`] (the default) a committed
//! write survives the process crashing or being killed (`SIGKILL`): it is in the WAL file,
//! which SQLite replays on the next open. A power loss or kernel crash may lose the last
//! transactions (never corrupt the file). With [`Synchronous::Full`] every commit waits for
//! the WAL to reach the disk (`fsync`), so committed writes also survive a power loss, at
//! the price of one `fsync` per batch (group commit amortises it across concurrent writers).
//!
//! # Numbers
//!
//! SQLite integers are signed 64-bit: millisecond times above `i64::MAX` (only ever meant as
//! "never", e.g. a saturated expiry) are stored as `i64::MAX`, which compares the same way
//! against any real time. Sequence numbers always fit ([`EventSeq::MAX`](arcp_core::EventSeq::MAX)).

mod events;
mod idempotency;
mod jobs;
mod kv;
mod migrate;
mod readers;
mod resume;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::StoreError;
use super::{DURABLE_MAX_BYTES_PER_SESSION, DURABLE_MAX_EVENTS_PER_SESSION};

pub use events::SqliteEventLog;
pub use idempotency::SqliteIdempotencyStore;
pub use jobs::SqliteJobStore;
pub use kv::SqliteKvStore;
pub use migrate::{MIGRATIONS_TABLE, migrate, schema_version};
pub use resume::SqliteResumeStore;

use readers::Readers;
use writer::Writer;

/// The migration component name of these stores (see [`migrate`]).
pub const COMPONENT: &str = "arcp-server";

/// When SQLite waits for the disk on commit (`PRAGMA synchronous`, in WAL mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// `NORMAL`: committed writes survive a process crash or `SIGKILL`; a power loss or OS
    /// crash may lose the most recent commits (the database stays consistent).
    #[default]
    Normal,
    /// `FULL`: every commit is `fsync`ed; committed writes also survive a power loss.
    Full,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        }
    }
}

/// How [`SqliteStore::open`] sets up the database, the writer and the caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Durability of commits (see [`Synchronous`]).
    pub synchronous: Synchronous,
    /// How long a connection waits for a lock held by another connection (another process,
    /// or the channel token store on the same file) before failing.
    pub busy_timeout: Duration,
    /// Cap of buffered events per session ([`StoreError::CapacityExceeded`] beyond it).
    /// Default [`DURABLE_MAX_EVENTS_PER_SESSION`](super::DURABLE_MAX_EVENTS_PER_SESSION).
    pub max_events_per_session: usize,
    /// Cap of buffered event bytes (encoded frames) per session. Default
    /// [`DURABLE_MAX_BYTES_PER_SESSION`](super::DURABLE_MAX_BYTES_PER_SESSION).
    pub max_bytes_per_session: usize,
    /// Read-only connections for concurrent reads (at least 1).
    pub readers: usize,
    /// The most write operations committed in one transaction (at least 1).
    pub max_batch: usize,
    /// How long the writer lingers for more operations once it holds more than one (group
    /// commit); zero commits at once. A lone writer never waits.
    pub group_commit_window: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            max_events_per_session: DURABLE_MAX_EVENTS_PER_SESSION,
            max_bytes_per_session: DURABLE_MAX_BYTES_PER_SESSION,
            readers: 4,
            max_batch: 512,
            group_commit_window: Duration::from_millis(2),
        }
    }
}

/// Counters of the writer since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SqliteStats {
    /// Write operations answered (committed, refused or failed).
    pub operations: u64,
    /// Transactions the writer committed (one per batch).
    pub transactions: u64,
    /// Batches that failed as a whole (every waiter got [`StoreError::Unavailable`]).
    pub failed_batches: u64,
    /// The largest batch so far.
    pub largest_batch: u64,
}

/// What every handle shares: the writer's queue and the read pool.
#[derive(Debug)]
struct Shared {
    writer: Writer,
    readers: Readers,
    options: SqliteOptions,
}

/// A SQLite database holding the ARCP stores. Cheap to clone; every clone and every handle
/// share one writer thread and one read pool. The writer thread ends (and the file is
/// closed) once the store and every handle are dropped.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
    path: Arc<PathBuf>,
}

impl SqliteStore {
    /// Opens or creates the database at `path` (creating missing parent directories),
    /// switches it to WAL, applies the migrations and starts the writer thread. The blocking
    /// work runs on [`tokio::task::spawn_blocking`].
    ///
    /// Fails with [`StoreError::Unavailable`] when the file cannot be opened, is not a
    /// database, or holds a schema newer than this build knows.
    pub async fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        tokio::task::spawn_blocking(move || SqliteStore::open_blocking(path, options))
            .await
            .map_err(|e| StoreError::Unavailable(format!("opening the SQLite store failed: {e}")))?
    }

    /// [`SqliteStore::open`] for synchronous callers (blocks the calling thread; inside an
    /// async runtime use [`SqliteStore::open`]).
    pub fn open_blocking(path: impl AsRef<Path>, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!("cannot create the directory {}: {e}", parent.display()))
            })?;
        }
        let mut conn = open_connection(&path, &options, false)?;
        migrate(&mut conn, COMPONENT, schema::STEPS)?;
        let readers = Readers::new(path.clone(), options.clone());
        // Open one reader now, so a path a reader cannot open fails here rather than later.
        readers.warm_up()?;
        let writer = Writer::start(conn, &options)?;
        Ok(SqliteStore { shared: Arc::new(Shared { writer, readers, options }), path: Arc::new(path) })
    }

    /// Checks that the database answers: a read on the read pool, and an (empty) write
    /// transaction through the writer thread (so a database locked by another process, or a
    /// stopped writer, is reported).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.shared
            .readers
            .read(|conn| {
                conn.query_row("SELECT COUNT(*) FROM arcp_schema_migrations", [], |r| r.get::<_, i64>(0))
                    .map_err(unavailable)
            })
            .await?;
        self.shared.writer.write(|_| Ok(())).await
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options it was opened with.
    pub fn options(&self) -> &SqliteOptions {
        &self.shared.options
    }

    /// The writer's counters (batches, operations).
    pub fn stats(&self) -> SqliteStats {
        self.shared.writer.stats()
    }

    /// The [`EventLog`](super::EventLog) handle.
    pub fn event_log(&self) -> SqliteEventLog {
        SqliteEventLog::new(self.shared.clone())
    }

    /// The [`ResumeStore`](super::ResumeStore) handle.
    pub fn resume_store(&self) -> SqliteResumeStore {
        SqliteResumeStore::new(self.shared.clone())
    }

    /// The [`IdempotencyStore`](super::IdempotencyStore) handle.
    pub fn idempotency_store(&self) -> SqliteIdempotencyStore {
        SqliteIdempotencyStore::new(self.shared.clone())
    }

    /// The [`JobStore`](super::JobStore) handle.
    pub fn job_store(&self) -> SqliteJobStore {
        SqliteJobStore::new(self.shared.clone())
    }

    /// The [`KvStore`](super::KvStore) handle (the agents' key-value store).
    pub fn kv_store(&self) -> SqliteKvStore {
        SqliteKvStore::new(self.shared.clone())
    }
}

/// Opens a connection with the store's pragmas (`read_only`: a reader).
fn open_connection(path: &Path, options: &SqliteOptions, read_only: bool) -> Result<Connection, StoreError> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    };
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(options.busy_timeout).map_err(unavailable)?;
    if !read_only {
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(unavailable)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!(
                "{} cannot use write-ahead logging (journal_mode is {mode})",
                path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", options.synchronous.pragma()).map_err(unavailable)?;
    } else {
        conn.pragma_update(None, "query_only", true).map_err(unavailable)?;
    }
    Ok(conn)
}

/// A SQLite failure as a store failure.
fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {e}"))
}

/// A stored row that cannot be decoded.
fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("corrupt {what} in the database: {detail}"))
}

/// A millisecond time as SQLite stores it (saturated at `i64::MAX`).
fn millis(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// A stored millisecond time or count back as `u64` (negative values are corrupt).
fn unsigned(what: &str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt(what, format!("negative value {v}")))
}
