//! `--store`: where `arcp serve` keeps what must survive — the ARCP event log, resume,
//! idempotency and job records, the channel's continuation tokens and the API keys.
//!
//! - `sqlite:PATH` (the default, `sqlite:./arcp-data/arcp.db`): one file, one process. The
//!   process holds an exclusive lock on `PATH.lock`, so a second `arcp serve` on the same file
//!   is refused instead of corrupting the other's recovery.
//! - `postgres://…` / `postgresql://…`: several processes (nodes, each with its own
//!   `--node-id`) share one database.
//! - `memory`: nothing survives the process (tests, demos).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use arcp_server::store::postgres::{PgOptions, PgStore};
use arcp_server::store::sqlite::{SqliteOptions, SqliteStore};
use arcp_server::store::{EventLog, IdempotencyStore, JobStore, KvStore, ResumeStore};
use channel_core::{MemoryTokenStore, TokenStore};
use runtime::keys::{ApiKeyStore, MemoryKeyStore, PgKeyStore, SqliteKeyStore};
use runtime::stores::postgres_tokens::PgTokenStore;
use runtime::stores::sqlite_tokens::SqliteTokenStore;

/// The default `--store`.
pub(crate) const DEFAULT_STORE: &str = "sqlite:./arcp-data/arcp.db";

/// A parsed `--store` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreSpec {
    /// Nothing survives the process.
    Memory,
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

impl StoreSpec {
    /// Parses `memory`, `sqlite:PATH` or `postgres://…`; the error names what is accepted.
    pub(crate) fn parse(value: &str) -> Result<StoreSpec, String> {
        if value == "memory" {
            return Ok(StoreSpec::Memory);
        }
        if let Some(path) = value.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err("invalid --store \"sqlite:\": the path is missing (e.g. sqlite:./arcp-data/arcp.db)".into());
            }
            return Ok(StoreSpec::Sqlite(PathBuf::from(path)));
        }
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            return Ok(StoreSpec::Postgres(value.to_owned()));
        }
        Err(format!("invalid --store {:?}: expected memory, sqlite:PATH or postgres://USER@HOST/DB", redact(value)))
    }

    /// A description for logs, with any password redacted.
    pub(crate) fn describe(&self) -> String {
        match self {
            StoreSpec::Memory => "memory (nothing survives the process)".into(),
            StoreSpec::Sqlite(p) => format!("sqlite:{}", p.display()),
            StoreSpec::Postgres(url) => redact(url),
        }
    }
}

/// `scheme://user:password@host` → `scheme://user:***@host`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((userinfo, host)) = rest.split_once('@') else { return url.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// The opened stores.
pub(crate) struct OpenStores {
    /// The ARCP stores (`None`: the runtime's in-memory defaults).
    pub(crate) arcp: Option<ArcpStores>,
    /// The channel's token store.
    pub(crate) tokens: Arc<dyn TokenStore>,
    /// The API keys.
    pub(crate) keys: Arc<dyn ApiKeyStore>,
    /// What readiness checks.
    pub(crate) health: Health,
    /// The SQLite lock file: held (open) for the process lifetime.
    pub(crate) lock: Option<std::fs::File>,
}

/// The ARCP stores (and the agents' key-value store).
pub(crate) struct ArcpStores {
    pub(crate) events: Arc<dyn EventLog>,
    pub(crate) resumes: Arc<dyn ResumeStore>,
    pub(crate) idempotency: Arc<dyn IdempotencyStore>,
    pub(crate) jobs: Arc<dyn JobStore>,
    /// The agents' key-value store (`JobContext::kv`).
    pub(crate) kv: Arc<dyn KvStore>,
}

/// How `/readyz` checks the store.
#[derive(Clone)]
pub(crate) enum Health {
    /// Always ready.
    Memory,
    /// SQLite: the database answers.
    Sqlite(SqliteStore),
    /// PostgreSQL: a pooled connection answers.
    Postgres(PgStore),
}

impl Health {
    /// `Ok` when the store answers.
    pub(crate) async fn check(&self) -> Result<(), String> {
        match self {
            Health::Memory => Ok(()),
            Health::Sqlite(s) => s.ping().await.map_err(|e| e.to_string()),
            Health::Postgres(p) => p.ping().await.map_err(|e| e.to_string()),
        }
    }

    /// The PostgreSQL store, for node liveness.
    pub(crate) fn postgres(&self) -> Option<&PgStore> {
        match self {
            Health::Postgres(p) => Some(p),
            _ => None,
        }
    }
}

/// Opens (creating and migrating as needed) the stores `spec` names; a durable store's
/// per-session event caps are `limits`' where given, else its disk-sized defaults.
pub(crate) async fn open(spec: &StoreSpec, limits: &crate::cli::SessionLimitArgs) -> anyhow::Result<OpenStores> {
    match spec {
        StoreSpec::Memory => Ok(OpenStores {
            arcp: None,
            tokens: Arc::new(MemoryTokenStore::default()),
            keys: Arc::new(MemoryKeyStore::new()),
            health: Health::Memory,
            lock: None,
        }),
        StoreSpec::Sqlite(path) => {
            let lock = lock_database(path)?;
            let defaults = SqliteOptions::default();
            let (max_events_per_session, max_bytes_per_session) =
                limits.event_caps(defaults.max_events_per_session, defaults.max_bytes_per_session);
            let options = SqliteOptions { max_events_per_session, max_bytes_per_session, ..defaults };
            let store = SqliteStore::open(path, options)
                .await
                .with_context(|| format!("cannot open the SQLite store {}", path.display()))?;
            let tokens = SqliteTokenStore::open(path)
                .await
                .with_context(|| format!("cannot open the channel token store in {}", path.display()))?;
            let keys = SqliteKeyStore::open(path)
                .await
                .with_context(|| format!("cannot open the API key store in {}", path.display()))?;
            Ok(OpenStores {
                arcp: Some(ArcpStores {
                    events: Arc::new(store.event_log()),
                    resumes: Arc::new(store.resume_store()),
                    idempotency: Arc::new(store.idempotency_store()),
                    jobs: Arc::new(store.job_store()),
                    kv: Arc::new(store.kv_store()),
                }),
                tokens: Arc::new(tokens),
                keys: Arc::new(keys),
                health: Health::Sqlite(store),
                lock: Some(lock),
            })
        }
        StoreSpec::Postgres(url) => {
            let defaults = PgOptions::default();
            let (events, bytes) = limits.event_caps(defaults.max_events_per_session, defaults.max_bytes_per_session);
            let store = PgStore::connect(url, defaults.with_event_caps(events, bytes))
                .await
                .with_context(|| format!("cannot open the PostgreSQL store {}", redact(url)))?;
            let tokens = PgTokenStore::from_store(&store)
                .await
                .with_context(|| format!("cannot open the channel token store in {}", redact(url)))?;
            let keys = PgKeyStore::from_store(&store)
                .await
                .with_context(|| format!("cannot open the API key store in {}", redact(url)))?;
            Ok(OpenStores {
                arcp: Some(ArcpStores {
                    events: Arc::new(store.event_log()),
                    resumes: Arc::new(store.resume_store()),
                    idempotency: Arc::new(store.idempotency_store()),
                    jobs: Arc::new(store.job_store()),
                    kv: Arc::new(store.kv_store()),
                }),
                tokens: Arc::new(tokens),
                keys: Arc::new(keys),
                health: Health::Postgres(store),
                lock: None,
            })
        }
    }
}

/// Takes the exclusive lock `PATH.lock` (creating the directory), or explains who holds it.
fn lock_database(path: &Path) -> anyhow::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // The database holds job inputs and results: a directory we create is the owner's only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot restrict {}", dir.display()))?;
        }
    }
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open the lock file {}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "{} is in use by another arcp process (its lock {} is held); one SQLite store serves one process — use \
             --store postgres://… to run several nodes",
            path.display(),
            lock_path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", lock_path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(StoreSpec::parse("memory").unwrap(), StoreSpec::Memory);
        assert_eq!(StoreSpec::parse("sqlite:/tmp/x.db").unwrap(), StoreSpec::Sqlite("/tmp/x.db".into()));
        assert_eq!(StoreSpec::parse(DEFAULT_STORE).unwrap(), StoreSpec::Sqlite("./arcp-data/arcp.db".into()));
        assert_eq!(StoreSpec::parse("postgres://u@h/db").unwrap(), StoreSpec::Postgres("postgres://u@h/db".into()));
        assert!(StoreSpec::parse("postgresql://u@h/db").is_ok());
        for bad in ["", "sqlite:", "mysql://x", "Memory", "/tmp/x.db"] {
            assert!(StoreSpec::parse(bad).is_err(), "{bad}");
        }
        let err = StoreSpec::parse("redis://u:secret@h").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn a_second_lock_on_one_database_is_refused() {
        let dir = std::env::temp_dir().join(format!("arcp-lock-test-{}", std::process::id()));
        let db = dir.join("arcp.db");
        let first = lock_database(&db).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "a data directory we create is the owner's only");
        }
        let second = lock_database(&db).unwrap_err().to_string();
        assert!(second.contains("in use by another arcp process"), "{second}");
        drop(first);
        lock_database(&db).unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}
