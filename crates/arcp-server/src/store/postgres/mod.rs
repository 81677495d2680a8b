//! PostgreSQL stores: several `arcp serve` processes ("nodes") share one database.
//!
//! [`PgStore::connect`] opens a connection pool (deadpool), checks the schema, applies the
//! migrations ([`migrate`]) and starts one listening connection; [`PgStore::event_log`],
//! [`PgStore::resume_store`], [`PgStore::idempotency_store`] and [`PgStore::job_store`] hand
//! out cheap handles implementing the store traits over the same pool.
//!
//! # What holds across nodes
//!
//! Every write that the traits require to be atomic is **one SQL statement**, so it holds
//! whichever node runs it:
//!
//! - [`EventLog::append`](super::EventLog::append) bumps the session's row in
//!   `arcp_event_sessions` (`INSERT … ON CONFLICT DO UPDATE … WHERE newest_seq < $seq AND`
//!   the caps) and inserts the event under the `(session_id, seq)` primary key; a sequence
//!   number not above the newest, or taken by another node, is
//!   [`StoreError::Conflict`] (the runtime retries with a fresh
//!   one), a full session [`StoreError::CapacityExceeded`].
//! - [`IdempotencyStore::claim`](super::IdempotencyStore::claim) is `INSERT … ON CONFLICT
//!   (principal, key) DO UPDATE … WHERE <the existing record expired> RETURNING`: of any
//!   number of racing claims exactly one is `Claimed`; the others read the winner's record.
//! - [`JobStore::update`](super::JobStore::update) never lowers `last_event_seq`
//!   (`GREATEST`).
//!
//! # Live events across nodes (LISTEN/NOTIFY)
//!
//! Every committed append also runs `pg_notify(<channel>, '<session_id> <seq>')` in the same
//! statement, so the notification is delivered exactly when (and only if) the event commits.
//! Each [`PgStore`] keeps **one** dedicated listening connection (outside the pool) whose
//! notifications are fanned out to [`PgStore::appends`] (and
//! [`EventLog::watch`](super::EventLog::watch)) receivers as [`AppendNotice::Appended`]. If that connection is lost, the store reconnects with
//! exponential backoff and, once it listens again, sends [`AppendNotice::Resync`]:
//! notifications may have been missed in between. A consumer therefore keeps a cursor per
//! session (the last `seq` it handled) and, on `Appended`, reads the log after its cursor
//! ([`EventLog::read_since`](super::EventLog::read_since)) — the notice is a wake-up, the log
//! is the truth; on `Resync` (or a [`broadcast` lag](tokio::sync::broadcast::error::RecvError::Lagged))
//! it re-reads every session it follows from its cursor. Nothing is missed and nothing is
//! handled twice.
//!
//! The channel is `arcp_events` when no schema is configured and `arcp_events_<schema>`
//! otherwise (NOTIFY channels are database-wide, so deployments in different schemas of one
//! database do not wake each other; a name longer than PostgreSQL's 63 bytes is replaced by
//! a digest of the schema).
//!
//! # Node liveness
//!
//! The protocol, for runtimes sharing a database:
//!
//! 1. every node calls [`PgStore::heartbeat`] periodically (say every 10 s);
//! 2. every node periodically asks [`PgStore::dead_nodes`] for the nodes to adopt: those whose
//!    heartbeat is older than a cut-off (say `now - 60 s`, well above the heartbeat period and
//!    the clock skew between nodes: times are the nodes' wall clocks), unless a live node
//!    already adopted them;
//! 3. for each, it claims the node, one of two ways (the same cut-off, one statement each, so
//!    of any number of racing adopters exactly one wins):
//!    - [`PgStore::adopt`] marks the dead node as adopted by the caller and leaves its jobs
//!      recorded under the dead node's id; the winner then ends them
//!      ([`Runtime::recover_node`](crate::Runtime::recover_node) reads
//!      [`JobStore::unfinished`](crate::store::JobStore::unfinished) of the dead node). If
//!      the adopter dies before it is done, the dead node becomes adoptable again once the
//!      adopter itself counts as dead. A dead node without unfinished jobs is simply forgotten
//!      (its row deleted; the claim answers `false`).
//!    - [`PgStore::adopt_orphans`] moves the dead node's unfinished jobs to the caller and
//!      returns them, deleting the dead node's row; the caller ends them as its own (and its
//!      own restart would find them if it died first).
//!
//! An adopter must heartbeat itself: an adoption by a node without a live heartbeat does not
//! hold. A node that never sent a heartbeat is never presumed dead (its own restart recovers
//! its jobs). A node presumed dead that comes back heartbeats again, which clears any adoption of
//! it — but jobs another node already ended stay ended: the cut-off must be long enough that
//! a live node is never presumed dead.
//!
//! # Numbers and failures
//!
//! PostgreSQL has no unsigned 64-bit integer: millisecond times above `i64::MAX` (only ever
//! used as "never") are stored as `i64::MAX`, which compares the same way against any real
//! time. Sequence numbers are always within range. A database outage is
//! [`StoreError::Unavailable`], never a panic; the pool drops
//! broken connections and opens fresh ones for later calls.

mod events;
mod idempotency;
mod jobs;
mod kv;
mod listener;
mod migrate;
mod nodes;
mod resume;
mod schema;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime as PoolRuntime};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use super::{AppendNotice, StoreError};
use super::{DURABLE_MAX_BYTES_PER_SESSION, DURABLE_MAX_EVENTS_PER_SESSION};

pub use events::PgEventLog;
pub use idempotency::PgIdempotencyStore;
pub use jobs::PgJobStore;
pub use kv::PgKvStore;
pub use migrate::{MIGRATIONS_TABLE, MigrateError, migrate};
pub use resume::PgResumeStore;

/// The migration component name of these stores (see [`migrate`]).
pub const COMPONENT: &str = "arcp-server";

/// The NOTIFY channel when no schema is configured.
pub const NOTIFY_CHANNEL: &str = "arcp_events";

/// How [`PgStore::connect`] sets up the pool, the schema and the caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// The most pooled connections (at least 1; the listening connection comes on top).
    pub pool_size: usize,
    /// The schema holding the tables: every connection (pooled and listening) runs with
    /// `search_path` set to it. It must exist. `None` uses the server's default search path.
    /// A name of ASCII letters, digits and `_` (not starting with a digit), at most 63 bytes.
    pub schema: Option<String>,
    /// The longest a new connection may take to open.
    pub connect_timeout: Duration,
    /// The longest a call waits for a free pooled connection before failing with
    /// [`StoreError::Unavailable`].
    pub acquire_timeout: Duration,
    /// The most buffered events per session. Default
    /// [`DURABLE_MAX_EVENTS_PER_SESSION`](super::DURABLE_MAX_EVENTS_PER_SESSION).
    pub max_events_per_session: usize,
    /// The most buffered bytes of encoded frames per session. Default
    /// [`DURABLE_MAX_BYTES_PER_SESSION`](super::DURABLE_MAX_BYTES_PER_SESSION).
    pub max_bytes_per_session: usize,
    /// How many [`AppendNotice`]s a slow [`PgStore::appends`] receiver may fall behind before
    /// it is told it lagged.
    pub notice_capacity: usize,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 16,
            schema: None,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(10),
            max_events_per_session: DURABLE_MAX_EVENTS_PER_SESSION,
            max_bytes_per_session: DURABLE_MAX_BYTES_PER_SESSION,
            notice_capacity: 4096,
        }
    }
}

impl PgOptions {
    /// These options with the tables in `schema`.
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// These options with at most `pool_size` pooled connections.
    pub fn with_pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size;
        self
    }

    /// These options with the given per-session event caps.
    pub fn with_event_caps(mut self, max_events: usize, max_bytes: usize) -> Self {
        self.max_events_per_session = max_events;
        self.max_bytes_per_session = max_bytes;
        self
    }
}

/// A connection pool to one PostgreSQL database (and schema) with the ARCP tables migrated,
/// plus the listening connection feeding [`PgStore::appends`]. Cheap to clone; the listening
/// task stops when the last clone and the last handle are dropped.
#[derive(Clone)]
pub struct PgStore {
    shared: Arc<Shared>,
}

/// What every handle shares.
pub(crate) struct Shared {
    pool: Pool,
    max_events: i64,
    max_bytes: i64,
    channel: String,
    schema: Option<String>,
    notices: broadcast::Sender<AppendNotice>,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl Shared {
    /// A pooled connection, or [`StoreError::Unavailable`].
    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.shared.schema)
            .field("channel", &self.shared.channel)
            .field("pool", &self.shared.pool.status())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` (a `postgres://` URL or a libpq key/value string; TLS is not
    /// supported), checks that the schema exists, applies the missing migrations and starts
    /// the listening connection. Fails with [`StoreError::Unavailable`] when the database
    /// cannot be reached, the options are invalid, the schema is missing, or the database
    /// was migrated by a newer build.
    pub async fn connect(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        if options.pool_size == 0 {
            return Err(StoreError::Unavailable("PgOptions::pool_size must be at least 1".into()));
        }
        if let Some(schema) = &options.schema {
            check_schema_name(schema)?;
        }
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?;
        config.connect_timeout(options.connect_timeout);
        // A dead server or network is noticed in about a minute (TCP keepalives, unacknowledged
        // writes), not after the operating system's defaults (hours): calls then fail with
        // `Unavailable` and the listener reconnects.
        config.keepalives_idle(Duration::from_secs(30));
        config.keepalives_interval(Duration::from_secs(10));
        config.keepalives_retries(3);
        config.tcp_user_timeout(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("arcp");
        }
        if let Some(schema) = &options.schema {
            let search_path = format!("-c search_path=\"{schema}\"");
            let combined = match config.get_options() {
                Some(existing) if !existing.trim().is_empty() => format!("{existing} {search_path}"),
                _ => search_path,
            };
            config.options(combined);
        }

        let manager =
            Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .wait_timeout(Some(options.acquire_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .runtime(PoolRuntime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build the PostgreSQL pool: {e}")))?;

        let mut client = pool.get().await.map_err(pool_error)?;
        let current: Option<String> = client
            .query_one("SELECT current_schema()::text", &[])
            .await
            .map_err(db_error)?
            .try_get(0)
            .map_err(db_error)?;
        match (&options.schema, current) {
            (Some(wanted), Some(current)) if *wanted == current => {}
            (Some(wanted), _) => {
                return Err(StoreError::Unavailable(format!(
                    "PostgreSQL schema \"{wanted}\" does not exist: create it (CREATE SCHEMA \"{wanted}\") first"
                )));
            }
            (None, None) => {
                return Err(StoreError::Unavailable(
                    "no schema of the PostgreSQL search_path exists: configure a schema".into(),
                ));
            }
            (None, Some(_)) => {}
        }
        migrate(&mut client, COMPONENT, schema::STEPS).await?;
        drop(client);

        let channel = notify_channel(options.schema.as_deref());
        let (notices, _) = broadcast::channel(options.notice_capacity.max(1));
        let first = listener::Listening::open(&config, &channel).await.map_err(|e| {
            StoreError::Unavailable(format!("cannot open the PostgreSQL listening connection: {}", describe(&e)))
        })?;
        let listener = tokio::spawn(listener::run(config, channel.clone(), notices.clone(), first));
        Ok(PgStore {
            shared: Arc::new(Shared {
                pool,
                max_events: to_i64(options.max_events_per_session),
                max_bytes: to_i64(options.max_bytes_per_session),
                channel,
                schema: options.schema,
                notices,
                listener,
            }),
        })
    }

    /// The event log.
    pub fn event_log(&self) -> PgEventLog {
        PgEventLog::new(self.shared.clone())
    }

    /// The resume store.
    pub fn resume_store(&self) -> PgResumeStore {
        PgResumeStore::new(self.shared.clone())
    }

    /// The idempotency store.
    pub fn idempotency_store(&self) -> PgIdempotencyStore {
        PgIdempotencyStore::new(self.shared.clone())
    }

    /// The job store.
    pub fn job_store(&self) -> PgJobStore {
        PgJobStore::new(self.shared.clone())
    }

    /// The [`KvStore`](super::KvStore) handle (the agents' key-value store).
    pub fn kv_store(&self) -> PgKvStore {
        PgKvStore::new(self.shared.clone())
    }

    /// A receiver of every append committed to this database and schema, by any node, from
    /// now on (see the [module docs](self) for how to consume it without missing or
    /// duplicating events).
    pub fn appends(&self) -> broadcast::Receiver<AppendNotice> {
        self.shared.notices.subscribe()
    }

    /// Readiness: `Ok` when a pooled connection answers a query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.shared.client().await?;
        client.simple_query("SELECT 1").await.map_err(db_error)?;
        Ok(())
    }

    /// The connection pool (for other components keeping their tables in the same database
    /// and schema, such as the channel token store).
    pub fn pool(&self) -> &Pool {
        &self.shared.pool
    }

    /// The configured schema, if any.
    pub fn schema(&self) -> Option<&str> {
        self.shared.schema.as_deref()
    }

    /// The NOTIFY channel appends are announced on.
    pub fn notify_channel(&self) -> &str {
        &self.shared.channel
    }
}

/// Accepts ASCII letters, digits and `_`, not starting with a digit, 1 to 63 bytes: safe to
/// put in a startup option and a quoted identifier.
fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(StoreError::Unavailable(format!(
            "invalid PostgreSQL schema name {schema:?}: use 1 to 63 ASCII letters, digits and `_`, not starting with a digit"
        )))
    }
}

/// The NOTIFY channel for `schema` (at most 63 bytes, PostgreSQL's identifier limit).
fn notify_channel(schema: Option<&str>) -> String {
    match schema {
        None => NOTIFY_CHANNEL.to_owned(),
        Some(s) if NOTIFY_CHANNEL.len() + 1 + s.len() <= 63 => format!("{NOTIFY_CHANNEL}_{s}"),
        Some(s) => {
            let digest = Sha256::digest(s.as_bytes());
            let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
            format!("{NOTIFY_CHANNEL}_{hex}")
        }
    }
}

/// A database error's most useful text (the server's message when there is one).
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// A unique violation is a [`StoreError::Conflict`]; anything else means the database is
/// unavailable or failed.
pub(crate) fn db_error(e: tokio_postgres::Error) -> StoreError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        StoreError::Conflict(describe(&e))
    } else {
        StoreError::Unavailable(format!("PostgreSQL: {}", describe(&e)))
    }
}

/// A pool failure (no connection could be had in time, or the database refused one).
pub(crate) fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => StoreError::Unavailable(format!("PostgreSQL connection failed: {}", describe(&e))),
        other => StoreError::Unavailable(format!("PostgreSQL pool: {other}")),
    }
}

/// A corrupt stored value.
pub(crate) fn corrupt(table: &str, what: impl fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("corrupt row in {table}: {what}"))
}

/// `u64`/`usize` → `bigint`, saturating at `i64::MAX`.
pub(crate) fn to_i64<T: TryInto<i64>>(v: T) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

/// `bigint` → `u64` (negative values, never written by these stores, read as 0).
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_checked() {
        assert!(check_schema_name("t_0123abcd").is_ok());
        assert!(check_schema_name("Arcp").is_ok());
        for bad in ["", "1abc", "a-b", "a b", "a\"b", "é", &"x".repeat(64)] {
            assert!(check_schema_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn notify_channels_fit_an_identifier() {
        assert_eq!(notify_channel(None), "arcp_events");
        assert_eq!(notify_channel(Some("t_ab")), "arcp_events_t_ab");
        let long = notify_channel(Some(&"s".repeat(63)));
        assert!(long.len() <= 63 && long.starts_with("arcp_events_"), "{long}");
        assert_ne!(long, notify_channel(Some(&"t".repeat(63))));
    }

    #[test]
    fn integers_saturate() {
        assert_eq!(to_i64(u64::MAX), i64::MAX);
        assert_eq!(to_i64(5_u64), 5);
        assert_eq!(to_u64(-1), 0);
        assert_eq!(to_u64(7), 7);
    }
}
