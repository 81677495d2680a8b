//! The writer thread: owns the only write connection, applies queued operations in batches
//! (one transaction each, group commit) and answers every waiter after the commit.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::Instant;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use super::{SqliteOptions, SqliteStats, unavailable};
use crate::store::StoreError;

/// Why an operation did not apply.
#[derive(Debug)]
pub(super) enum ApplyError {
    /// A refusal the trait defines (`Conflict`, `CapacityExceeded`): the operation's changes
    /// are undone, the rest of the batch commits.
    Refused(StoreError),
    /// SQLite failed.
    Sql(rusqlite::Error),
    /// A value could not be encoded or a stored row decoded.
    Invalid(StoreError),
}

impl From<rusqlite::Error> for ApplyError {
    fn from(e: rusqlite::Error) -> Self {
        ApplyError::Sql(e)
    }
}

/// What applying one operation did to the transaction.
enum Applied {
    /// Its changes stand.
    Keep,
    /// Its changes must be undone (refused or failed); the batch goes on.
    Undo,
}

/// One queued write: applied inside the batch's transaction, answered after the commit.
trait Op: Send {
    fn apply(&mut self, conn: &Connection) -> Applied;
    /// Sends the outcome; `failure` replaces it when the batch as a whole failed.
    fn answer(self: Box<Self>, failure: Option<StoreError>);
}

struct Pending<T, F> {
    f: Option<F>,
    outcome: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Op for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, ApplyError> + Send,
{
    fn apply(&mut self, conn: &Connection) -> Applied {
        let Some(f) = self.f.take() else { return Applied::Undo };
        let (outcome, applied) = match f(conn) {
            Ok(v) => (Ok(v), Applied::Keep),
            Err(ApplyError::Refused(e) | ApplyError::Invalid(e)) => (Err(e), Applied::Undo),
            Err(ApplyError::Sql(e)) => (Err(unavailable(e)), Applied::Undo),
        };
        self.outcome = Some(outcome);
        applied
    }

    fn answer(self: Box<Self>, failure: Option<StoreError>) {
        let outcome = match failure {
            Some(e) => Err(e),
            None => self.outcome.unwrap_or_else(|| Err(StoreError::Unavailable("write was not applied".into()))),
        };
        // The waiter may have gone away (a cancelled future): nothing to tell.
        let _ = self.reply.send(outcome);
    }
}

#[derive(Debug, Default)]
struct Counters {
    operations: AtomicU64,
    transactions: AtomicU64,
    failed_batches: AtomicU64,
    largest_batch: AtomicU64,
}

/// The sending side of the writer's queue (the thread ends when every sender is dropped).
pub(super) struct Writer {
    queue: Sender<Box<dyn Op>>,
    counters: Arc<Counters>,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the writer thread over `conn`.
    pub(super) fn start(conn: Connection, options: &SqliteOptions) -> Result<Writer, StoreError> {
        let (queue, rx) = mpsc::channel::<Box<dyn Op>>();
        let counters = Arc::new(Counters::default());
        let thread = WriterThread {
            conn,
            rx,
            counters: counters.clone(),
            max_batch: options.max_batch.max(1),
            window: options.group_commit_window,
        };
        std::thread::Builder::new()
            .name("arcp-sqlite-writer".into())
            .spawn(move || thread.run())
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite writer thread: {e}")))?;
        Ok(Writer { queue, counters })
    }

    /// Runs `f` on the write connection inside the next batch's transaction; answers once
    /// that transaction committed (or failed).
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, ApplyError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Box::new(Pending { f: Some(f), outcome: None, reply }))
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the SQLite writer stopped before answering".into()))?
    }

    /// The counters so far.
    pub(super) fn stats(&self) -> SqliteStats {
        let c = &self.counters;
        SqliteStats {
            operations: c.operations.load(Ordering::Relaxed),
            transactions: c.transactions.load(Ordering::Relaxed),
            failed_batches: c.failed_batches.load(Ordering::Relaxed),
            largest_batch: c.largest_batch.load(Ordering::Relaxed),
        }
    }
}

struct WriterThread {
    conn: Connection,
    rx: Receiver<Box<dyn Op>>,
    counters: Arc<Counters>,
    max_batch: usize,
    window: std::time::Duration,
}

impl WriterThread {
    fn run(mut self) {
        while let Ok(first) = self.rx.recv() {
            let batch = self.collect(first);
            self.commit(batch);
        }
        // Every sender is gone: the connection closes here (checkpointing the WAL).
    }

    /// The next batch: `first`, everything already queued, and — when that is more than one
    /// operation, i.e. writers are concurrent — whatever arrives within the window.
    fn collect(&self, first: Box<dyn Op>) -> Vec<Box<dyn Op>> {
        let mut batch = vec![first];
        while batch.len() < self.max_batch {
            match self.rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if batch.len() > 1 && !self.window.is_zero() {
            let deadline = Instant::now() + self.window;
            while batch.len() < self.max_batch {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match self.rx.recv_timeout(left) {
                    Ok(op) => batch.push(op),
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
        }
        batch
    }

    /// Applies `batch` in one transaction, commits, then answers every waiter.
    fn commit(&mut self, mut batch: Vec<Box<dyn Op>>) {
        let n = batch.len() as u64;
        let failure = match self.apply_all(&mut batch) {
            Ok(()) => {
                self.counters.transactions.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(e) => {
                self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, operations = n, "SQLite write batch failed; every write in it is refused");
                Some(StoreError::Unavailable(format!("the write batch failed: {e}")))
            }
        };
        self.counters.operations.fetch_add(n, Ordering::Relaxed);
        self.counters.largest_batch.fetch_max(n, Ordering::Relaxed);
        for op in batch {
            op.answer(failure.clone());
        }
    }

    fn apply_all(&mut self, batch: &mut [Box<dyn Op>]) -> Result<(), rusqlite::Error> {
        let mut tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for op in batch.iter_mut() {
            let sp = tx.savepoint()?;
            match op.apply(&sp) {
                Applied::Keep => sp.commit()?,
                // Undoing fails only when SQLite already rolled the whole transaction back
                // (e.g. the disk is full): then the batch fails.
                Applied::Undo => sp.finish()?,
            }
        }
        tx.commit()
    }
}
