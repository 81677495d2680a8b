//! Schema migrations, versioned in code: a component's schema is a list of SQL steps; step
//! `i` (from 0) brings it to version `i + 1`. Applied versions are recorded in
//! [`MIGRATIONS_TABLE`], so several components (the ARCP stores, the channel token store)
//! can share one database file.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::unavailable;
use crate::store::StoreError;

/// The table recording applied migrations: `(component, version)`.
pub const MIGRATIONS_TABLE: &str = "arcp_schema_migrations";

/// The recorded schema version of `component` (0: none applied).
pub fn schema_version(conn: &Connection, component: &str) -> Result<u32, StoreError> {
    let exists: Option<i64> = conn
        .query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", [MIGRATIONS_TABLE], |r| r.get(0))
        .optional()
        .map_err(unavailable)?;
    if exists.is_none() {
        return Ok(0);
    }
    recorded(conn, component)
}

fn recorded(conn: &Connection, component: &str) -> Result<u32, StoreError> {
    let v: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM arcp_schema_migrations WHERE component = ?1",
            [component],
            |r| r.get(0),
        )
        .map_err(unavailable)?;
    u32::try_from(v).map_err(|_| StoreError::Unavailable(format!("schema version {v} of {component} is out of range")))
}

/// Brings `component`'s schema up to `steps.len()`: applies every missing step in its own
/// transaction (`BEGIN IMMEDIATE`, so concurrent openers of one file serialise and each step
/// runs once), recording it in [`MIGRATIONS_TABLE`]. Idempotent. Refuses (with
/// [`StoreError::Unavailable`]) a database whose recorded version is newer than `steps`
/// knows: it was written by a newer build, and this one must not touch it.
pub fn migrate(conn: &mut Connection, component: &str, steps: &[&str]) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS arcp_schema_migrations (
             component TEXT NOT NULL,
             version INTEGER NOT NULL,
             applied_at_millis INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
             PRIMARY KEY (component, version)
         )",
    )
    .map_err(unavailable)?;
    let known = steps.len();
    for (i, step) in steps.iter().enumerate() {
        let version = i + 1;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
        let current = recorded(&tx, component)? as usize;
        if current > known {
            return Err(too_new(component, current, known));
        }
        if current >= version {
            continue;
        }
        if current + 1 != version {
            return Err(StoreError::Unavailable(format!(
                "schema of {component} is at version {current}, expected {}",
                version - 1
            )));
        }
        tx.execute_batch(step)
            .map_err(|e| StoreError::Unavailable(format!("migration {version} of {component} failed: {e}")))?;
        tx.execute(
            "INSERT INTO arcp_schema_migrations (component, version) VALUES (?1, ?2)",
            rusqlite::params![component, i64::try_from(version).unwrap_or(i64::MAX)],
        )
        .map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
    }
    let current = recorded(conn, component)? as usize;
    if current > known {
        return Err(too_new(component, current, known));
    }
    Ok(())
}

fn too_new(component: &str, current: usize, known: usize) -> StoreError {
    StoreError::Unavailable(format!(
        "the database schema of {component} is at version {current}, newer than this build knows \
         (version {known}); refusing to use it (was it written by a newer arcp?)"
    ))
}
