//! [`PgEventLog`]: the per-session event log in `arcp_events`, with the per-session totals in
//! `arcp_event_sessions`.

use std::sync::Arc;

use arcp_core::{EventSeq, JobId, SessionId};
use async_trait::async_trait;

use super::{Shared, corrupt, db_error, to_i64, to_u64};
use crate::store::{AppendNotice, EventLog, LogBounds, StoreError, StoredEvent};

/// One statement: bump the session's totals if the seq is above the newest and the caps
/// allow, insert the event, announce it. `$1` session, `$2` seq, `$3` job, `$4` frame,
/// `$5` frame bytes, `$6` max events, `$7` max bytes, `$8` NOTIFY channel. Returns one row
/// when appended, none when refused (the caller works out why).
const APPEND: &str = "
WITH s AS (
    INSERT INTO arcp_event_sessions AS s (session_id, newest_seq, events, bytes)
    SELECT $1::text, $2::bigint, 1, $5::bigint
    WHERE $5::bigint <= $7::bigint AND 1 <= $6::bigint
    ON CONFLICT (session_id) DO UPDATE
        SET newest_seq = EXCLUDED.newest_seq, events = s.events + 1, bytes = s.bytes + EXCLUDED.bytes
        WHERE s.newest_seq < EXCLUDED.newest_seq
          AND s.events < $6::bigint
          AND s.bytes + EXCLUDED.bytes <= $7::bigint
    RETURNING s.session_id
), e AS (
    INSERT INTO arcp_events (session_id, seq, job_id, frame, frame_bytes)
    SELECT session_id, $2::bigint, $3::text, $4::bytea, $5::bigint FROM s
    RETURNING session_id, seq
)
SELECT pg_notify($8::text, e.session_id || ' ' || e.seq::text) FROM e";

/// Drops a session's events up to a seq and lowers its totals by what was dropped; a session
/// left with no event forgets its newest seq (as [`MemoryEventLog`] does: the next append may
/// start anywhere).
///
/// [`MemoryEventLog`]: crate::store::memory::MemoryEventLog
const PURGE_UP_TO: &str = "
WITH d AS (
    DELETE FROM arcp_events WHERE session_id = $1 AND seq <= $2 RETURNING frame_bytes
)
UPDATE arcp_event_sessions
SET events = events - (SELECT count(*) FROM d),
    bytes = bytes - (SELECT coalesce(sum(frame_bytes), 0)::bigint FROM d)
WHERE session_id = $1 AND EXISTS (SELECT 1 FROM d)";

/// The second statement of a partial purge (same transaction).
const FORGET_EMPTY: &str = "DELETE FROM arcp_event_sessions WHERE session_id = $1 AND events <= 0";

/// Drops a session's whole log: it starts over.
const PURGE_ALL: &str = "
WITH d AS (DELETE FROM arcp_events WHERE session_id = $1)
DELETE FROM arcp_event_sessions WHERE session_id = $1";

/// A PostgreSQL [`EventLog`] (from [`PgStore::event_log`](super::PgStore::event_log)).
///
/// Caps per session (events and bytes, [`PgOptions`](super::PgOptions)) are enforced by the
/// append statement itself, like [`MemoryEventLog`](crate::store::memory::MemoryEventLog).
/// Acknowledged events are kept until purged (the trait's default
/// [`EventLog::release_acked`]): a session that hits a cap purges what was acknowledged.
#[derive(Clone)]
pub struct PgEventLog {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PgEventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgEventLog").finish_non_exhaustive()
    }
}

impl PgEventLog {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        PgEventLog { shared }
    }

    /// Why an append matched nothing: the newest kept seq, or a cap.
    async fn refusal(&self, session: &SessionId, seq: i64, frame_bytes: i64) -> Result<StoreError, StoreError> {
        let client = self.shared.client().await?;
        let row = client
            .query_opt(
                "SELECT newest_seq, events, bytes FROM arcp_event_sessions WHERE session_id = $1",
                &[&session.as_str()],
            )
            .await
            .map_err(db_error)?;
        let row_exists = row.is_some();
        let (newest, events, bytes) = match row {
            Some(row) => (
                row.try_get::<_, i64>(0).map_err(db_error)?,
                row.try_get::<_, i64>(1).map_err(db_error)?,
                row.try_get::<_, i64>(2).map_err(db_error)?,
            ),
            None => (0, 0, 0),
        };
        Ok(if row_exists && seq <= newest {
            StoreError::Conflict(format!("event_seq {seq} is not above {newest}"))
        } else if events >= self.shared.max_events {
            StoreError::CapacityExceeded(format!(
                "session {session} holds {events} buffered events (cap {})",
                self.shared.max_events
            ))
        } else if bytes.saturating_add(frame_bytes) > self.shared.max_bytes {
            StoreError::CapacityExceeded(format!(
                "session {session} would buffer {} bytes of events (cap {})",
                bytes.saturating_add(frame_bytes),
                self.shared.max_bytes
            ))
        } else {
            // The state changed between the two statements (another node appended or
            // purged): the seq raced with another writer.
            StoreError::Conflict(format!("event_seq {seq} raced with another append to session {session}"))
        })
    }
}

#[async_trait]
impl EventLog for PgEventLog {
    async fn append(&self, session: &SessionId, event: StoredEvent) -> Result<(), StoreError> {
        let seq = to_i64(event.seq.get());
        let frame_bytes = to_i64(event.frame.len());
        let appended = {
            let client = self.shared.client().await?;
            let statement = client.prepare_cached(APPEND).await.map_err(db_error)?;
            client
                .query(
                    &statement,
                    &[
                        &session.as_str(),
                        &seq,
                        &event.job_id.as_str(),
                        &event.frame.as_bytes(),
                        &frame_bytes,
                        &self.shared.max_events,
                        &self.shared.max_bytes,
                        &self.shared.channel,
                    ],
                )
                .await
                .map_err(db_error)?
                .len()
        };
        if appended == 1 { Ok(()) } else { Err(self.refusal(session, seq, frame_bytes).await?) }
    }

    async fn read_since(
        &self,
        session: &SessionId,
        after: EventSeq,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT seq, job_id, frame FROM arcp_events WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .await
            .map_err(db_error)?;
        let rows = client
            .query(&statement, &[&session.as_str(), &to_i64(after.get()), &to_i64(limit)])
            .await
            .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get(0).map_err(db_error)?;
                let job: &str = row.try_get(1).map_err(db_error)?;
                let frame: &[u8] = row.try_get(2).map_err(db_error)?;
                let frame = std::str::from_utf8(frame).map_err(|e| corrupt("arcp_events", e))?;
                Ok(StoredEvent {
                    seq: EventSeq::new(to_u64(seq)).ok_or_else(|| corrupt("arcp_events", format!("seq {seq}")))?,
                    job_id: JobId::parse(job).map_err(|e| corrupt("arcp_events", e))?,
                    frame: Arc::from(frame),
                })
            })
            .collect()
    }

    async fn bounds(&self, session: &SessionId) -> Result<Option<LogBounds>, StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached("SELECT min(seq), max(seq) FROM arcp_events WHERE session_id = $1")
            .await
            .map_err(db_error)?;
        let row = client.query_one(&statement, &[&session.as_str()]).await.map_err(db_error)?;
        let oldest: Option<i64> = row.try_get(0).map_err(db_error)?;
        let newest: Option<i64> = row.try_get(1).map_err(db_error)?;
        let seq = |n: i64| EventSeq::new(to_u64(n)).ok_or_else(|| corrupt("arcp_events", format!("seq {n}")));
        match (oldest, newest) {
            (Some(oldest), Some(newest)) => Ok(Some(LogBounds { oldest: seq(oldest)?, newest: seq(newest)? })),
            _ => Ok(None),
        }
    }

    async fn purge(&self, session: &SessionId, up_to: Option<EventSeq>) -> Result<(), StoreError> {
        let mut client = self.shared.client().await?;
        match up_to {
            None => {
                let statement = client.prepare_cached(PURGE_ALL).await.map_err(db_error)?;
                client.execute(&statement, &[&session.as_str()]).await.map_err(db_error)?;
            }
            Some(up_to) => {
                let tx = client.transaction().await.map_err(db_error)?;
                let purge = tx.prepare_cached(PURGE_UP_TO).await.map_err(db_error)?;
                tx.execute(&purge, &[&session.as_str(), &to_i64(up_to.get())]).await.map_err(db_error)?;
                let forget = tx.prepare_cached(FORGET_EMPTY).await.map_err(db_error)?;
                tx.execute(&forget, &[&session.as_str()]).await.map_err(db_error)?;
                tx.commit().await.map_err(db_error)?;
            }
        }
        Ok(())
    }

    /// Every append committed by any node (this one included), from the store's listening
    /// connection: see the [module docs](super) for the reconnection and `Resync` rules.
    fn watch(&self) -> Option<tokio::sync::broadcast::Receiver<AppendNotice>> {
        Some(self.shared.notices.subscribe())
    }
}
