//! The SQLite [`EventLog`]: `arcp_events` keyed `(session_id, seq)`, with per-session totals
//! in `arcp_event_sessions` so the caps and the conflict check read one row.

use std::sync::Arc;

use arcp_core::{EventSeq, JobId, SessionId};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::writer::ApplyError;
use super::{Shared, corrupt, unavailable};
use crate::store::{EventLog, LogBounds, StoreError, StoredEvent};

/// The SQLite [`EventLog`], bounded per session like
/// [`MemoryEventLog`](crate::store::memory::MemoryEventLog) (by
/// [`SqliteOptions::max_events_per_session`](super::SqliteOptions::max_events_per_session)
/// and [`max_bytes_per_session`](super::SqliteOptions::max_bytes_per_session)). Acknowledged
/// events are kept until purged ([`EventLog::release_acked`] keeps its default).
#[derive(Debug, Clone)]
pub struct SqliteEventLog {
    shared: Arc<Shared>,
}

impl SqliteEventLog {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        SqliteEventLog { shared }
    }
}

fn seq_value(seq: EventSeq) -> Result<i64, StoreError> {
    i64::try_from(seq.get()).map_err(|_| StoreError::Conflict(format!("event_seq {seq} is out of range")))
}

fn seq_from(v: i64) -> Result<EventSeq, StoreError> {
    u64::try_from(v).ok().and_then(EventSeq::new).ok_or_else(|| corrupt("event_seq", v))
}

/// `session`'s `(events, bytes, newest_seq)`, if it holds any event.
fn totals(conn: &Connection, session: &str) -> rusqlite::Result<Option<(i64, i64, i64)>> {
    conn.prepare_cached("SELECT events, bytes, newest_seq FROM arcp_event_sessions WHERE session_id = ?1")?
        .query_row([session], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
}

#[async_trait]
impl EventLog for SqliteEventLog {
    async fn append(&self, session: &SessionId, event: StoredEvent) -> Result<(), StoreError> {
        let seq = seq_value(event.seq)?;
        let session = session.as_str().to_owned();
        let max_events = i64::try_from(self.shared.options.max_events_per_session).unwrap_or(i64::MAX);
        let max_bytes = i64::try_from(self.shared.options.max_bytes_per_session).unwrap_or(i64::MAX);
        self.shared
            .writer
            .write(move |conn| {
                let (events, bytes) = match totals(conn, &session)? {
                    Some((_, _, newest)) if seq <= newest => {
                        return Err(ApplyError::Refused(StoreError::Conflict(format!(
                            "event_seq {seq} is not above {newest}"
                        ))));
                    }
                    Some((events, bytes, _)) => (events, bytes),
                    None => (0, 0),
                };
                if events >= max_events {
                    return Err(ApplyError::Refused(StoreError::CapacityExceeded(format!(
                        "session {session} holds {events} buffered events (cap {max_events})"
                    ))));
                }
                let frame_bytes = i64::try_from(event.frame.len()).unwrap_or(i64::MAX);
                let total = bytes.saturating_add(frame_bytes);
                if total > max_bytes {
                    return Err(ApplyError::Refused(StoreError::CapacityExceeded(format!(
                        "session {session} would buffer {total} bytes of events (cap {max_bytes})"
                    ))));
                }
                conn.prepare_cached(
                    "INSERT INTO arcp_events (session_id, seq, job_id, frame, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![session, seq, event.job_id.as_str(), &*event.frame, frame_bytes])?;
                conn.prepare_cached(
                    "INSERT INTO arcp_event_sessions (session_id, events, bytes, newest_seq) VALUES (?1, 1, ?2, ?3)
                     ON CONFLICT (session_id) DO UPDATE
                     SET events = events + 1, bytes = bytes + excluded.bytes, newest_seq = excluded.newest_seq",
                )?
                .execute(params![session, frame_bytes, seq])?;
                Ok(())
            })
            .await
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
        let session = session.as_str().to_owned();
        let after = seq_value(after)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.shared
            .readers
            .read(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "SELECT seq, job_id, frame FROM arcp_events WHERE session_id = ?1 AND seq > ?2
                         ORDER BY seq LIMIT ?3",
                    )
                    .map_err(unavailable)?;
                let rows = stmt
                    .query_map(params![session, after, limit], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
                    })
                    .map_err(unavailable)?;
                let mut out = Vec::new();
                for row in rows {
                    let (seq, job_id, frame) = row.map_err(unavailable)?;
                    out.push(StoredEvent {
                        seq: seq_from(seq)?,
                        job_id: JobId::parse(&job_id).map_err(|e| corrupt("job_id", e))?,
                        frame: Arc::from(frame),
                    });
                }
                Ok(out)
            })
            .await
    }

    async fn bounds(&self, session: &SessionId) -> Result<Option<LogBounds>, StoreError> {
        let session = session.as_str().to_owned();
        self.shared
            .readers
            .read(move |conn| {
                // Two subqueries, so each is a single index probe (min/max optimisation).
                let (oldest, newest): (Option<i64>, Option<i64>) = conn
                    .prepare_cached(
                        "SELECT (SELECT MIN(seq) FROM arcp_events WHERE session_id = ?1),
                                (SELECT MAX(seq) FROM arcp_events WHERE session_id = ?1)",
                    )
                    .and_then(|mut s| s.query_row([&session], |r| Ok((r.get(0)?, r.get(1)?))))
                    .map_err(unavailable)?;
                match (oldest, newest) {
                    (Some(oldest), Some(newest)) => {
                        Ok(Some(LogBounds { oldest: seq_from(oldest)?, newest: seq_from(newest)? }))
                    }
                    _ => Ok(None),
                }
            })
            .await
    }

    async fn purge(&self, session: &SessionId, up_to: Option<EventSeq>) -> Result<(), StoreError> {
        let session = session.as_str().to_owned();
        let up_to = up_to.map(seq_value).transpose()?;
        self.shared
            .writer
            .write(move |conn| {
                match up_to {
                    None => {
                        conn.prepare_cached("DELETE FROM arcp_events WHERE session_id = ?1")?.execute([&session])?;
                        conn.prepare_cached("DELETE FROM arcp_event_sessions WHERE session_id = ?1")?
                            .execute([&session])?;
                    }
                    Some(up_to) => {
                        let (count, bytes): (i64, i64) = conn
                            .prepare_cached(
                                "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM arcp_events
                                 WHERE session_id = ?1 AND seq <= ?2",
                            )?
                            .query_row(params![session, up_to], |r| Ok((r.get(0)?, r.get(1)?)))?;
                        if count == 0 {
                            return Ok(());
                        }
                        conn.prepare_cached("DELETE FROM arcp_events WHERE session_id = ?1 AND seq <= ?2")?
                            .execute(params![session, up_to])?;
                        conn.prepare_cached(
                            "UPDATE arcp_event_sessions SET events = events - ?2, bytes = bytes - ?3
                             WHERE session_id = ?1",
                        )?
                        .execute(params![session, count, bytes])?;
                        // An emptied session forgets its newest seq, like the memory log.
                        conn.prepare_cached("DELETE FROM arcp_event_sessions WHERE session_id = ?1 AND events <= 0")?
                            .execute([&session])?;
                    }
                }
                Ok(())
            })
            .await
    }
}
