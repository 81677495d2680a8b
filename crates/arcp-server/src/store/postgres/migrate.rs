//! Versioned schema migrations, kept in code.
//!
//! Each component (`arcp-server`, `channel-tokens`, …) owns an ordered list of steps; step
//! `i` (0-based) brings the component to version `i + 1`. The versions applied are recorded in
//! [`MIGRATIONS_TABLE`] (`component, version, applied_at`). [`migrate`] applies the missing
//! steps in one transaction that first takes a transaction-scoped advisory lock, so several
//! nodes starting together against one database apply each step exactly once (the others
//! wait, then find nothing to do). A database whose version is newer than the steps this
//! build knows is refused with [`MigrateError::TooNew`]: an older binary must not write into a
//! layout it does not understand.

use std::fmt;

use tokio_postgres::Client;

use crate::store::StoreError;

/// The table recording applied migrations, in the connection's current schema.
pub const MIGRATIONS_TABLE: &str = "arcp_schema_migrations";

/// The advisory lock key serialising migrations (the bytes of `"arcpmigr"`). Advisory locks
/// are database-wide, so migrations of different schemas also take turns: harmless, they
/// only run at start-up.
const MIGRATION_LOCK_KEY: i64 = 0x6172_6370_6d69_6772;

/// Why [`migrate`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum MigrateError {
    /// The database is at a version newer than this build knows.
    TooNew {
        /// The component.
        component: String,
        /// The version recorded in the database.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// A statement failed (unreachable database, missing privilege, a broken step).
    Database(tokio_postgres::Error),
}

impl fmt::Display for MigrateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrateError::TooNew { component, found, known } => write!(
                f,
                "the database schema of `{component}` is at version {found}, newer than this build knows \
                 (version {known}): upgrade arcp, or point it at another database or schema"
            ),
            MigrateError::Database(e) => write!(f, "migration failed: {}", super::describe(e)),
        }
    }
}

impl std::error::Error for MigrateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MigrateError::Database(e) => Some(e),
            MigrateError::TooNew { .. } => None,
        }
    }
}

impl From<tokio_postgres::Error> for MigrateError {
    fn from(e: tokio_postgres::Error) -> Self {
        MigrateError::Database(e)
    }
}

impl From<MigrateError> for StoreError {
    fn from(e: MigrateError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// Brings `component` to version `steps.len()` in the connection's current schema: creates
/// [`MIGRATIONS_TABLE`] if needed, then, under `pg_advisory_xact_lock`, runs every step not
/// yet recorded (each step is a batch of SQL statements) and records it, all in one
/// transaction. Returns the version the component is at.
///
/// Steps are append-only: never edit a released step, add a new one.
pub async fn migrate(client: &mut Client, component: &str, steps: &[&str]) -> Result<i64, MigrateError> {
    let known = i64::try_from(steps.len()).unwrap_or(i64::MAX);
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY]).await?;
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
            component text NOT NULL,
            version bigint NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (component, version)
        )"
    ))
    .await?;
    let row = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0)::bigint FROM {MIGRATIONS_TABLE} WHERE component = $1"),
            &[&component],
        )
        .await?;
    let found: i64 = row.try_get(0)?;
    if found > known {
        return Err(MigrateError::TooNew { component: component.to_owned(), found, known });
    }
    let insert = format!("INSERT INTO {MIGRATIONS_TABLE} (component, version) VALUES ($1, $2)");
    for (version, step) in (1_i64..).zip(steps.iter()).skip(usize::try_from(found).unwrap_or(usize::MAX)) {
        tx.batch_execute(step).await?;
        tx.execute(&insert, &[&component, &version]).await?;
        tracing::info!(component, version, "applied database migration");
    }
    tx.commit().await?;
    Ok(known)
}
