//! Store traits: everything the runtime must not lose sits behind one of these, so durable
//! implementations (SQLite, PostgreSQL) can replace the in-memory ones in [`memory`].
//!
//! Durability contract, for every implementation: when a method returns `Ok`, its effect is
//! committed (a later call on any handle to the same store observes it, and for a durable
//! store it survives a crash). The runtime relies on this for persist-before-send
//! (decision 7): an event is written to the wire only after [`EventLog::append`] returned.

#[cfg(feature = "test-support")]
pub mod contract;
pub mod jobs;
pub mod kv;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// The default cap of buffered events per session of the durable stores (SQLite, PostgreSQL):
/// disk-sized, so a session that never acknowledges can run millions of jobs (runtime.md's
/// endurance goal) while a runaway session still meets a typed
/// [`StoreError::CapacityExceeded`] before it fills the disk. The in-memory log keeps
/// RAM-sized caps ([`memory::DEFAULT_MAX_EVENTS_PER_SESSION`]).
pub const DURABLE_MAX_EVENTS_PER_SESSION: usize = 100_000_000;
/// The default cap of buffered event bytes (encoded frames) per session of the durable
/// stores: 64 GiB (see [`DURABLE_MAX_EVENTS_PER_SESSION`]).
pub const DURABLE_MAX_BYTES_PER_SESSION: usize = 64 << 30;

pub use jobs::{AgentMatch, JobQuery, JobRecord, JobStore, JobUpdate, ListKey};
pub use kv::{KvEntry, KvError, KvPage, KvQuery, KvStore, MemoryKvStore};

use std::sync::Arc;

use arcp_core::message::JobAccepted;
use arcp_core::{EventSeq, JobId, SessionId};
use async_trait::async_trait;

/// A store failed. Surfaces as `INTERNAL_ERROR` (retryable) on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store is unreachable or failed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A cap was hit (e.g. buffered events per session).
    #[error("store capacity exceeded: {0}")]
    CapacityExceeded(String),
    /// The write conflicts with what is stored (e.g. a sequence number already used).
    #[error("store conflict: {0}")]
    Conflict(String),
}

/// One persisted, sequence-bearing envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its session-scoped sequence number.
    pub seq: EventSeq,
    /// The job it belongs to.
    pub job_id: JobId,
    /// The exact bytes that were (or will be) sent.
    pub frame: Arc<str>,
}

/// The oldest and newest sequence numbers a session's log still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    /// The oldest kept event.
    pub oldest: EventSeq,
    /// The newest event.
    pub newest: EventSeq,
}

/// A wake-up from an event log shared by several runtimes (nodes): another node appended to
/// a session's log. The log stays the truth: a runtime reads it after its own cursor, so a
/// notice that is late, duplicated or coalesced loses nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendNotice {
    /// `session`'s log now holds `seq`.
    Appended {
        /// The session appended to.
        session: SessionId,
        /// The appended sequence number.
        seq: EventSeq,
    },
    /// Notices may have been missed (the feed reconnected or the receiver fell behind):
    /// re-read every followed session from its cursor.
    Resync,
}

/// The per-session event log: append in sequence order, read back after a cursor.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends `event` to `session`'s log. Sequence numbers are strictly increasing per
    /// session; appending a number not above the newest is [`StoreError::Conflict`].
    async fn append(&self, session: &SessionId, event: StoredEvent) -> Result<(), StoreError>;

    /// Up to `limit` events with `seq > after`, in ascending order.
    async fn read_since(
        &self,
        session: &SessionId,
        after: EventSeq,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// The bounds of what is kept, or `None` if nothing is (never appended, or all purged).
    async fn bounds(&self, session: &SessionId) -> Result<Option<LogBounds>, StoreError>;

    /// Drops events with `seq <= up_to` (all of them when `up_to` is `None`).
    async fn purge(&self, session: &SessionId, up_to: Option<EventSeq>) -> Result<(), StoreError>;

    /// The client acknowledged every event with `seq <= through` (`session.ack`, §6.5): the
    /// store MAY free them before the resume window ends. The runtime calls it with the
    /// running maximum of the acks, never above the newest appended seq. A resume whose
    /// cursor is below a freed event is then refused (`RESUME_WINDOW_EXPIRED`), never
    /// replayed with a gap. Unacknowledged events are never passed here.
    ///
    /// The default keeps everything until the window ends (durable stores have room); the
    /// in-memory store frees at once.
    async fn release_acked(&self, session: &SessionId, through: EventSeq) -> Result<(), StoreError> {
        let _ = (session, through);
        Ok(())
    }

    /// Appends made by other runtimes sharing this log (several `arcp serve` nodes on one
    /// database), for live delivery to sessions attached here. `None` (the default): no other
    /// runtime writes to this log.
    fn watch(&self) -> Option<tokio::sync::broadcast::Receiver<AppendNotice>> {
        None
    }
}

/// What a session needs to be resumed: kept for the resume window after its last activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeRecord {
    /// The session.
    pub session_id: SessionId,
    /// SHA-256 of the current resume token (the token itself is never stored).
    pub token_digest: [u8; 32],
    /// The principal that owns the session.
    pub principal: String,
    /// When the record expires, in Unix milliseconds.
    pub expires_at_millis: u64,
}

/// Resume records, keyed by session id.
#[async_trait]
pub trait ResumeStore: Send + Sync + 'static {
    /// Inserts or replaces the record of `record.session_id`.
    async fn put(&self, record: ResumeRecord) -> Result<(), StoreError>;
    /// The record, if any (expired ones may still be returned; callers check).
    async fn get(&self, session: &SessionId) -> Result<Option<ResumeRecord>, StoreError>;
    /// Removes the record.
    async fn remove(&self, session: &SessionId) -> Result<(), StoreError>;
    /// Moves the record's expiry to `expires_at_millis` without touching its token (a
    /// missing record is not an error). Never a read-then-write: a resume that rotates the
    /// token meanwhile must not be undone.
    async fn set_expiry(&self, session: &SessionId, expires_at_millis: u64) -> Result<(), StoreError>;
    /// Removes every record expired at `now_millis`; returns how many.
    async fn purge_expired(&self, now_millis: u64) -> Result<usize, StoreError>;
    /// Up to `limit` sessions whose records are expired at `now_millis`, soonest-expired
    /// first: the sweeper purges their events (they can no longer be resumed), then removes
    /// the records.
    async fn expired(&self, now_millis: u64, limit: usize) -> Result<Vec<SessionId>, StoreError>;
}

/// An idempotency record: the first submit's digest and its `job.accepted` payload.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    /// SHA-256 of the canonical submit payload.
    pub digest: [u8; 32],
    /// The job the key is bound to.
    pub job_id: JobId,
    /// The `job.accepted` payload every identical resubmit receives.
    pub accepted: JobAccepted,
    /// When the record expires, in Unix milliseconds.
    pub expires_at_millis: u64,
}

/// The result of an atomic claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The key was free (or expired): it is now bound to the offered record.
    Claimed,
    /// The key is bound to this earlier record.
    Existing(Box<IdempotencyRecord>),
}

/// Idempotency records, scoped to `(principal, key)`.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Atomically binds `(principal, key)` to `record` unless a live record exists (one whose
    /// `expires_at_millis` is after `now_millis`), in which case that record is returned.
    /// Two racing claims for one key: exactly one gets [`Claim::Claimed`].
    async fn claim(
        &self,
        principal: &str,
        key: &str,
        record: IdempotencyRecord,
        now_millis: u64,
    ) -> Result<Claim, StoreError>;
    /// Removes every record expired at `now_millis`; returns how many.
    async fn purge_expired(&self, now_millis: u64) -> Result<usize, StoreError>;
}

/// A shared store is a store: lets several runtimes (or a runtime and a test) hold one store.
#[async_trait]
impl<T: EventLog + ?Sized> EventLog for Arc<T> {
    async fn append(&self, session: &SessionId, event: StoredEvent) -> Result<(), StoreError> {
        (**self).append(session, event).await
    }
    async fn read_since(
        &self,
        session: &SessionId,
        after: EventSeq,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        (**self).read_since(session, after, limit).await
    }
    async fn bounds(&self, session: &SessionId) -> Result<Option<LogBounds>, StoreError> {
        (**self).bounds(session).await
    }
    async fn purge(&self, session: &SessionId, up_to: Option<EventSeq>) -> Result<(), StoreError> {
        (**self).purge(session, up_to).await
    }
    async fn release_acked(&self, session: &SessionId, through: EventSeq) -> Result<(), StoreError> {
        (**self).release_acked(session, through).await
    }
    fn watch(&self) -> Option<tokio::sync::broadcast::Receiver<AppendNotice>> {
        (**self).watch()
    }
}

/// A shared store is a store.
#[async_trait]
impl<T: ResumeStore + ?Sized> ResumeStore for Arc<T> {
    async fn put(&self, record: ResumeRecord) -> Result<(), StoreError> {
        (**self).put(record).await
    }
    async fn get(&self, session: &SessionId) -> Result<Option<ResumeRecord>, StoreError> {
        (**self).get(session).await
    }
    async fn remove(&self, session: &SessionId) -> Result<(), StoreError> {
        (**self).remove(session).await
    }
    async fn set_expiry(&self, session: &SessionId, expires_at_millis: u64) -> Result<(), StoreError> {
        (**self).set_expiry(session, expires_at_millis).await
    }
    async fn purge_expired(&self, now_millis: u64) -> Result<usize, StoreError> {
        (**self).purge_expired(now_millis).await
    }
    async fn expired(&self, now_millis: u64, limit: usize) -> Result<Vec<SessionId>, StoreError> {
        (**self).expired(now_millis, limit).await
    }
}

/// A shared store is a store.
#[async_trait]
impl<T: IdempotencyStore + ?Sized> IdempotencyStore for Arc<T> {
    async fn claim(
        &self,
        principal: &str,
        key: &str,
        record: IdempotencyRecord,
        now_millis: u64,
    ) -> Result<Claim, StoreError> {
        (**self).claim(principal, key, record, now_millis).await
    }
    async fn purge_expired(&self, now_millis: u64) -> Result<usize, StoreError> {
        (**self).purge_expired(now_millis).await
    }
}

/// A shared store is a store.
#[async_trait]
impl<T: JobStore + ?Sized> JobStore for Arc<T> {
    async fn insert(&self, record: JobRecord) -> Result<(), StoreError> {
        (**self).insert(record).await
    }
    async fn update(&self, job_id: &JobId, update: JobUpdate) -> Result<(), StoreError> {
        (**self).update(job_id, update).await
    }
    async fn get(&self, job_id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        (**self).get(job_id).await
    }
    async fn remove(&self, job_id: &JobId) -> Result<(), StoreError> {
        (**self).remove(job_id).await
    }
    async fn list(&self, query: &JobQuery) -> Result<Vec<JobRecord>, StoreError> {
        (**self).list(query).await
    }
    async fn purge_finished(&self, ended_before_millis: u64) -> Result<usize, StoreError> {
        (**self).purge_finished(ended_before_millis).await
    }
    async fn unfinished(&self, node: &str) -> Result<Vec<JobRecord>, StoreError> {
        (**self).unfinished(node).await
    }
}
