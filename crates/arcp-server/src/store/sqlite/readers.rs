//! The read pool: a few read-only connections, used inside `spawn_blocking` so reads never
//! block the async runtime (and, in WAL mode, never wait for the writer).

use std::fmt;
use std::path::PathBuf;

use parking_lot::Mutex;
use rusqlite::Connection;
use tokio::sync::Semaphore;

use super::{SqliteOptions, open_connection};
use crate::store::StoreError;

/// At most `options.readers` concurrent reads, each on an idle connection (opened lazily).
pub(super) struct Readers {
    path: PathBuf,
    options: SqliteOptions,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl fmt::Debug for Readers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readers").field("path", &self.path).field("idle", &self.idle.lock().len()).finish()
    }
}

impl Readers {
    pub(super) fn new(path: PathBuf, options: SqliteOptions) -> Readers {
        let permits = Semaphore::new(options.readers.clamp(1, Semaphore::MAX_PERMITS));
        Readers { path, options, idle: Mutex::new(Vec::new()), permits }
    }

    /// Opens one connection now (so an unusable file fails at open time).
    pub(super) fn warm_up(&self) -> Result<(), StoreError> {
        let conn = open_connection(&self.path, &self.options, true)?;
        self.idle.lock().push(conn);
        Ok(())
    }

    /// Runs `f` on a read-only connection off the async runtime.
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite read pool is closed".into()))?;
        let idle = self.idle.lock().pop();
        let path = self.path.clone();
        let options = self.options.clone();
        let (conn, out) = tokio::task::spawn_blocking(move || {
            let conn = match idle {
                Some(conn) => conn,
                None => open_connection(&path, &options, true)?,
            };
            let out = f(&conn);
            Ok::<_, StoreError>((conn, out))
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("a SQLite read task failed: {e}")))??;
        self.idle.lock().push(conn);
        out
    }
}
