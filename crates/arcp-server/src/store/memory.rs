//! In-memory stores: for tests, embedding, and `arcp serve` until durable stores land.
//! Bounded where the runtime cannot bound them itself (events per session).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;

use arcp_core::{EventSeq, JobId, SessionId};
use async_trait::async_trait;
use parking_lot::Mutex;

use super::{
    Claim, EventLog, IdempotencyRecord, IdempotencyStore, JobQuery, JobRecord, JobStore, JobUpdate, ListKey, LogBounds,
    ResumeRecord, ResumeStore, StoreError, StoredEvent,
};

/// The default cap of buffered events per session in memory (TS SDK default).
pub const DEFAULT_MAX_EVENTS_PER_SESSION: usize = 10_000;

/// The default cap of buffered event bytes (encoded frames) per session in memory (TS SDK
/// default, 16 MiB).
pub const DEFAULT_MAX_BYTES_PER_SESSION: usize = 16 << 20;

/// One session's buffered events and their total size.
#[derive(Debug, Default)]
struct SessionLog {
    events: VecDeque<StoredEvent>,
    bytes: usize,
}

impl SessionLog {
    /// Drops events with `seq <= through`.
    fn trim(&mut self, through: EventSeq) {
        while let Some(front) = self.events.front()
            && front.seq <= through
        {
            self.bytes = self.bytes.saturating_sub(front.frame.len());
            self.events.pop_front();
        }
    }
}

/// An in-memory [`EventLog`], bounded per session by an event count and a byte total.
/// Appending beyond either cap is a [`StoreError::CapacityExceeded`] (never a silent drop);
/// purging, and releasing acknowledged events ([`EventLog::release_acked`]), frees space.
#[derive(Debug)]
pub struct MemoryEventLog {
    sessions: Mutex<HashMap<SessionId, SessionLog>>,
    max_events_per_session: usize,
    max_bytes_per_session: usize,
    free_acked_eagerly: bool,
}

impl Default for MemoryEventLog {
    fn default() -> Self {
        Self::with_caps(DEFAULT_MAX_EVENTS_PER_SESSION, DEFAULT_MAX_BYTES_PER_SESSION)
    }
}

impl MemoryEventLog {
    /// A log keeping at most `max_events_per_session` events per session (and the default
    /// byte cap).
    pub fn with_capacity(max_events_per_session: usize) -> Self {
        Self::with_caps(max_events_per_session, DEFAULT_MAX_BYTES_PER_SESSION)
    }

    /// A log keeping at most `max_events` events and `max_bytes` bytes of encoded frames per
    /// session.
    pub fn with_caps(max_events: usize, max_bytes: usize) -> Self {
        MemoryEventLog {
            sessions: Mutex::new(HashMap::new()),
            max_events_per_session: max_events,
            max_bytes_per_session: max_bytes,
            free_acked_eagerly: false,
        }
    }

    /// Whether [`EventLog::release_acked`] frees acknowledged events at once (`true`) or
    /// leaves them until a cap needs the room (`false`, the default: a subscriber's history
    /// and a resume from before the acknowledged point keep working until then).
    pub fn free_acked_eagerly(mut self, on: bool) -> Self {
        self.free_acked_eagerly = on;
        self
    }
}

#[async_trait]
impl EventLog for MemoryEventLog {
    async fn append(&self, session: &SessionId, event: StoredEvent) -> Result<(), StoreError> {
        let mut sessions = self.sessions.lock();
        let log = sessions.entry(session.clone()).or_default();
        if let Some(last) = log.events.back()
            && event.seq <= last.seq
        {
            return Err(StoreError::Conflict(format!("event_seq {} is not above {}", event.seq, last.seq)));
        }
        if log.events.len() >= self.max_events_per_session {
            return Err(StoreError::CapacityExceeded(format!(
                "session {session} holds {} buffered events (cap {})",
                log.events.len(),
                self.max_events_per_session
            )));
        }
        let bytes = log.bytes.saturating_add(event.frame.len());
        if bytes > self.max_bytes_per_session {
            return Err(StoreError::CapacityExceeded(format!(
                "session {session} would buffer {bytes} bytes of events (cap {})",
                self.max_bytes_per_session
            )));
        }
        log.bytes = bytes;
        log.events.push_back(event);
        Ok(())
    }

    async fn read_since(
        &self,
        session: &SessionId,
        after: EventSeq,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sessions = self.sessions.lock();
        let Some(log) = sessions.get(session) else { return Ok(Vec::new()) };
        let start = log.events.partition_point(|e| e.seq <= after);
        Ok(log.events.range(start..).take(limit).cloned().collect())
    }

    async fn bounds(&self, session: &SessionId) -> Result<Option<LogBounds>, StoreError> {
        let sessions = self.sessions.lock();
        Ok(sessions
            .get(session)
            .and_then(|log| Some(LogBounds { oldest: log.events.front()?.seq, newest: log.events.back()?.seq })))
    }

    async fn purge(&self, session: &SessionId, up_to: Option<EventSeq>) -> Result<(), StoreError> {
        let mut sessions = self.sessions.lock();
        match up_to {
            None => {
                sessions.remove(session);
            }
            Some(limit) => {
                if let Some(log) = sessions.get_mut(session) {
                    log.trim(limit);
                }
            }
        }
        Ok(())
    }

    /// With [`MemoryEventLog::free_acked_eagerly`], acknowledged events are freed at once;
    /// otherwise they stay until a cap needs the room (the session frees acknowledged events
    /// before a cap can end it, §14).
    async fn release_acked(&self, session: &SessionId, through: EventSeq) -> Result<(), StoreError> {
        if self.free_acked_eagerly { self.purge(session, Some(through)).await } else { Ok(()) }
    }
}

/// An in-memory [`ResumeStore`].
#[derive(Debug, Default)]
pub struct MemoryResumeStore(Mutex<HashMap<SessionId, ResumeRecord>>);

#[async_trait]
impl ResumeStore for MemoryResumeStore {
    async fn put(&self, record: ResumeRecord) -> Result<(), StoreError> {
        self.0.lock().insert(record.session_id.clone(), record);
        Ok(())
    }

    async fn get(&self, session: &SessionId) -> Result<Option<ResumeRecord>, StoreError> {
        Ok(self.0.lock().get(session).cloned())
    }

    async fn remove(&self, session: &SessionId) -> Result<(), StoreError> {
        self.0.lock().remove(session);
        Ok(())
    }

    async fn set_expiry(&self, session: &SessionId, expires_at_millis: u64) -> Result<(), StoreError> {
        if let Some(r) = self.0.lock().get_mut(session) {
            r.expires_at_millis = expires_at_millis;
        }
        Ok(())
    }

    async fn purge_expired(&self, now_millis: u64) -> Result<usize, StoreError> {
        Ok(retain_live(&mut self.0.lock(), now_millis, |r| r.expires_at_millis))
    }

    async fn expired(&self, now_millis: u64, limit: usize) -> Result<Vec<SessionId>, StoreError> {
        let map = self.0.lock();
        let mut out: Vec<(u64, SessionId)> = map
            .values()
            .filter(|r| r.expires_at_millis <= now_millis)
            .map(|r| (r.expires_at_millis, r.session_id.clone()))
            .collect();
        out.sort();
        Ok(out.into_iter().take(limit).map(|(_, s)| s).collect())
    }
}

/// An in-memory [`IdempotencyStore`]; the claim is atomic under one lock.
#[derive(Debug, Default)]
pub struct MemoryIdempotencyStore(Mutex<HashMap<(String, String), IdempotencyRecord>>);

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn claim(
        &self,
        principal: &str,
        key: &str,
        record: IdempotencyRecord,
        now_millis: u64,
    ) -> Result<Claim, StoreError> {
        let mut map = self.0.lock();
        let k = (principal.to_owned(), key.to_owned());
        if let Some(existing) = map.get(&k)
            && existing.expires_at_millis > now_millis
        {
            return Ok(Claim::Existing(Box::new(existing.clone())));
        }
        map.insert(k, record);
        Ok(Claim::Claimed)
    }

    async fn purge_expired(&self, now_millis: u64) -> Result<usize, StoreError> {
        Ok(retain_live(&mut self.0.lock(), now_millis, |r| r.expires_at_millis))
    }
}

/// The default cap of job records kept in memory.
pub const DEFAULT_MAX_JOB_RECORDS: usize = 100_000;

#[derive(Debug, Default)]
struct JobTable {
    /// Records by principal, then listing key (a listing is one range scan).
    by_key: HashMap<String, BTreeMap<ListKey, JobRecord>>,
    /// `job_id` → (principal, key).
    index: HashMap<JobId, (String, ListKey)>,
    /// Finished records by (ended_at, key), oldest first: eviction and retention order.
    finished: BTreeSet<(u64, String, ListKey)>,
}

/// An in-memory [`JobStore`], bounded by a record count. When full, inserting drops the
/// oldest *finished* record; if every record belongs to a running job the insert is refused
/// ([`StoreError::CapacityExceeded`]), never silently lost.
#[derive(Debug)]
pub struct MemoryJobStore {
    table: Mutex<JobTable>,
    max_records: usize,
}

impl Default for MemoryJobStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_MAX_JOB_RECORDS)
    }
}

impl MemoryJobStore {
    /// A store keeping at most `max_records` records.
    pub fn with_capacity(max_records: usize) -> Self {
        MemoryJobStore { table: Mutex::new(JobTable::default()), max_records }
    }

    /// How many records are kept.
    pub fn len(&self) -> usize {
        self.table.lock().index.len()
    }

    /// Whether no record is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl JobTable {
    fn remove(&mut self, job_id: &JobId) -> Option<JobRecord> {
        let (principal, key) = self.index.remove(job_id)?;
        let table = self.by_key.get_mut(&principal)?;
        let record = table.remove(&key)?;
        if table.is_empty() {
            self.by_key.remove(&principal);
        }
        if let Some(ended) = record.ended_at_millis {
            self.finished.remove(&(ended, principal, key));
        }
        Some(record)
    }
}

#[async_trait]
impl JobStore for MemoryJobStore {
    async fn insert(&self, record: JobRecord) -> Result<(), StoreError> {
        let mut t = self.table.lock();
        if t.index.contains_key(&record.job_id) {
            return Err(StoreError::Conflict(format!("job {} is already stored", record.job_id)));
        }
        while t.index.len() >= self.max_records {
            let Some((_, _, key)) = t.finished.first().cloned() else {
                return Err(StoreError::CapacityExceeded(format!("{} job records, none finished", self.max_records)));
            };
            t.remove(&key.job_id);
        }
        let key = record.key();
        if let Some(ended) = record.ended_at_millis {
            t.finished.insert((ended, record.principal.clone(), key.clone()));
        }
        t.index.insert(record.job_id.clone(), (record.principal.clone(), key.clone()));
        t.by_key.entry(record.principal.clone()).or_default().insert(key, record);
        Ok(())
    }

    async fn update(&self, job_id: &JobId, update: JobUpdate) -> Result<(), StoreError> {
        let mut t = self.table.lock();
        let Some(slot) = t.index.get(job_id).cloned() else { return Ok(()) };
        let Some(record) = t.by_key.get_mut(&slot.0).and_then(|m| m.get_mut(&slot.1)) else { return Ok(()) };
        let old_end = record.ended_at_millis;
        record.status = update.status;
        record.last_event_seq = record.last_event_seq.max(update.last_event_seq);
        if update.ended_at_millis.is_some() {
            record.ended_at_millis = update.ended_at_millis;
        }
        let new_end = record.ended_at_millis;
        if old_end != new_end {
            let (principal, key) = slot;
            if let Some(old) = old_end {
                t.finished.remove(&(old, principal.clone(), key.clone()));
            }
            if let Some(new) = new_end {
                t.finished.insert((new, principal, key));
            }
        }
        Ok(())
    }

    async fn get(&self, job_id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        let t = self.table.lock();
        Ok(t.index.get(job_id).and_then(|(p, k)| t.by_key.get(p).and_then(|m| m.get(k))).cloned())
    }

    async fn remove(&self, job_id: &JobId) -> Result<(), StoreError> {
        self.table.lock().remove(job_id);
        Ok(())
    }

    async fn list(&self, query: &JobQuery) -> Result<Vec<JobRecord>, StoreError> {
        let t = self.table.lock();
        let Some(table) = t.by_key.get(&query.principal) else { return Ok(Vec::new()) };
        let lower = match &query.after {
            Some(k) => Bound::Excluded(k.clone()),
            None => Bound::Unbounded,
        };
        Ok(table
            .range((lower, Bound::Unbounded))
            .map(|(_, r)| r)
            .filter(|r| query.matches(r))
            .take(query.limit)
            .cloned()
            .collect())
    }

    async fn purge_finished(&self, ended_before_millis: u64) -> Result<usize, StoreError> {
        let mut t = self.table.lock();
        let mut n = 0;
        while let Some((ended, _, key)) = t.finished.first().cloned()
            && ended <= ended_before_millis
        {
            t.remove(&key.job_id);
            n += 1;
        }
        Ok(n)
    }

    async fn unfinished(&self, node: &str) -> Result<Vec<JobRecord>, StoreError> {
        let t = self.table.lock();
        let mut out: Vec<JobRecord> = t
            .by_key
            .values()
            .flat_map(|m| m.values())
            .filter(|r| r.node == node && !r.status.is_terminal())
            .cloned()
            .collect();
        out.sort_by_key(JobRecord::key);
        Ok(out)
    }
}

/// Drops the entries expired at `now_millis`; returns how many.
fn retain_live<K: Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    now_millis: u64,
    expires: impl Fn(&V) -> u64,
) -> usize {
    let before = map.len();
    map.retain(|_, v| expires(v) > now_millis);
    before - map.len()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arcp_core::JobId;

    use super::*;

    fn ev(seq: u64) -> StoredEvent {
        StoredEvent {
            seq: EventSeq::new(seq).unwrap(),
            job_id: JobId::parse("job_1").unwrap(),
            frame: Arc::from(format!("{{\"n\":{seq}}}")),
        }
    }

    #[tokio::test]
    async fn event_log_appends_reads_bounds_and_purges() {
        let log = MemoryEventLog::with_capacity(3);
        let s = SessionId::parse("sess_1").unwrap();
        assert_eq!(log.bounds(&s).await.unwrap(), None);
        for n in 1..=3 {
            log.append(&s, ev(n)).await.unwrap();
        }
        assert!(matches!(log.append(&s, ev(3)).await, Err(StoreError::Conflict(_))));
        assert!(matches!(log.append(&s, ev(4)).await, Err(StoreError::CapacityExceeded(_))));
        let got: Vec<u64> =
            log.read_since(&s, EventSeq::new(1).unwrap(), 10).await.unwrap().iter().map(|e| e.seq.get()).collect();
        assert_eq!(got, vec![2, 3]);
        log.purge(&s, EventSeq::new(2)).await.unwrap();
        let b = log.bounds(&s).await.unwrap().unwrap();
        assert_eq!((b.oldest.get(), b.newest.get()), (3, 3));
        log.append(&s, ev(4)).await.unwrap();
        log.purge(&s, None).await.unwrap();
        assert_eq!(log.bounds(&s).await.unwrap(), None);
    }

    #[tokio::test]
    async fn by_default_acknowledged_events_stay_until_purged() {
        let log = MemoryEventLog::with_caps(100, 1000);
        let s = SessionId::parse("sess_1").unwrap();
        log.append(&s, ev(1)).await.unwrap();
        log.append(&s, ev(2)).await.unwrap();
        log.release_acked(&s, EventSeq::new(2).unwrap()).await.unwrap();
        let b = log.bounds(&s).await.unwrap().unwrap();
        assert_eq!((b.oldest.get(), b.newest.get()), (1, 2));
    }

    #[tokio::test]
    async fn event_log_caps_bytes_and_frees_acknowledged_events() {
        // Frames of ev(n) for one-digit n are 7 bytes: room for two, not three.
        let log = MemoryEventLog::with_caps(100, 15).free_acked_eagerly(true);
        let s = SessionId::parse("sess_1").unwrap();
        log.append(&s, ev(1)).await.unwrap();
        log.append(&s, ev(2)).await.unwrap();
        assert!(matches!(log.append(&s, ev(3)).await, Err(StoreError::CapacityExceeded(_))));
        log.release_acked(&s, EventSeq::new(1).unwrap()).await.unwrap();
        log.append(&s, ev(3)).await.unwrap();
        let b = log.bounds(&s).await.unwrap().unwrap();
        assert_eq!((b.oldest.get(), b.newest.get()), (2, 3));
        // Releasing past the newest event empties the log without error.
        log.release_acked(&s, EventSeq::new(9).unwrap()).await.unwrap();
        assert_eq!(log.bounds(&s).await.unwrap(), None);
    }
}
