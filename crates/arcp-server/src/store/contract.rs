//! Contract tests shared by every store implementation (behind the `test-support` feature).
//!
//! Each public function drives one store through the semantics of the in-memory reference
//! implementations in [`memory`](super::memory) and panics (like an `assert!`) on the first
//! deviation, so an implementation's test suite is a few lines:
//!
//! ```ignore
//! #[tokio::test]
//! async fn sqlite_event_log() {
//!     let store = open_a_fresh_store();
//!     arcp_server::store::contract::event_log(&store.event_log()).await;
//! }
//! ```
//!
//! Isolation: every function works on session ids, idempotency keys, principals and nodes
//! unique to its call, so records left by earlier runs (a persistent database) or by other
//! functions do not disturb it. The `purge_*` methods, however, act on the whole store: the
//! functions assume nothing else purges the store while they run, and they only assert lower
//! bounds on the counts those methods return. Times are taken relative to the wall clock
//! (expired records lie in the past, live ones an hour or more ahead), so the functions may
//! share one store with each other when run one after the other.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use arcp_core::message::{Credential, JobAccepted, JobStatus, LeaseConstraints, LeaseMap};
use arcp_core::{EventSeq, JobId, SessionId, Timestamp, TraceId};
use futures_util::future::join_all;

use super::memory::{MemoryEventLog, MemoryJobStore};
use super::{
    AgentMatch, Claim, EventLog, IdempotencyRecord, IdempotencyStore, JobQuery, JobRecord, JobStore, JobUpdate,
    ListKey, LogBounds, ResumeRecord, ResumeStore, StoreError, StoredEvent,
};

/// The event cap a log passed to [`event_log_caps`] must be configured with.
pub const CAPPED_MAX_EVENTS: usize = 4;
/// The byte cap a log passed to [`event_log_caps`] must be configured with.
pub const CAPPED_MAX_BYTES: usize = 64;

/// Every job state, for filters.
pub const ALL_STATUSES: [JobStatus; 6] = [
    JobStatus::Pending,
    JobStatus::Running,
    JobStatus::Success,
    JobStatus::Error,
    JobStatus::Cancelled,
    JobStatus::TimedOut,
];

/// A string unique to this process run and call (`<prefix>_<pid>_<nanos>_<counter>`).
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}_{}_{nanos}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The wall clock in Unix milliseconds.
pub fn wall_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

fn sid(prefix: &str) -> SessionId {
    SessionId::parse(&unique(prefix)).unwrap()
}

fn jid(prefix: &str) -> JobId {
    JobId::parse(&unique(prefix)).unwrap()
}

fn seq(n: u64) -> EventSeq {
    EventSeq::new(n).unwrap()
}

/// An event whose frame names its sequence number and job.
pub fn event(n: u64, job: &JobId) -> StoredEvent {
    StoredEvent {
        seq: seq(n),
        job_id: job.clone(),
        frame: Arc::from(format!(
            r#"{{"arcp":"1","type":"job.event","job_id":"{job}","event_seq":{n},"payload":{{"kind":"log","body":{{"msg":"é ✓ \"q\" \\ {n}"}}}}}}"#,
            job = job.as_str()
        )),
    }
}

fn event_with_frame(n: u64, job: &JobId, frame: &str) -> StoredEvent {
    StoredEvent { seq: seq(n), job_id: job.clone(), frame: Arc::from(frame) }
}

fn seqs(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq.get()).collect()
}

fn bounds(oldest: u64, newest: u64) -> Option<LogBounds> {
    Some(LogBounds { oldest: seq(oldest), newest: seq(newest) })
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{what}: expected Conflict, got {r:?}");
}

#[track_caller]
fn assert_capacity<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    assert!(matches!(r, Err(StoreError::CapacityExceeded(_))), "{what}: expected CapacityExceeded, got {r:?}");
}

// ---------------------------------------------------------------------------------------------
// Event log
// ---------------------------------------------------------------------------------------------

/// The [`EventLog`] contract (with caps of at least 64 events and 64 KiB per session): strict
/// per-session ordering with `Conflict` on a sequence number not above the newest, exact
/// frames, `read_since` windows and limits, bounds, partial and full purges, independent
/// sessions, `release_acked` never losing unacknowledged events, and concurrent appends to
/// many sessions.
pub async fn event_log(log: &dyn EventLog) {
    let s = sid("sess_log");
    let job = jid("job_log");
    assert_eq!(log.bounds(&s).await.unwrap(), None, "a fresh session has no bounds");
    assert!(log.read_since(&s, EventSeq::ZERO, 10).await.unwrap().is_empty());

    for n in 1..=5 {
        log.append(&s, event(n, &job)).await.unwrap();
    }
    assert_conflict(log.append(&s, event(5, &job)).await, "re-appending the newest seq");
    assert_conflict(log.append(&s, event(3, &job)).await, "appending an older seq");
    assert_eq!(log.bounds(&s).await.unwrap(), bounds(1, 5));

    let all = log.read_since(&s, EventSeq::ZERO, 100).await.unwrap();
    let expected: Vec<StoredEvent> = (1..=5).map(|n| event(n, &job)).collect();
    assert_eq!(all, expected, "frames and job ids come back exactly");
    assert_eq!(seqs(&log.read_since(&s, seq(2), 2).await.unwrap()), vec![3, 4]);
    assert_eq!(seqs(&log.read_since(&s, seq(4), 10).await.unwrap()), vec![5]);
    assert!(log.read_since(&s, seq(5), 10).await.unwrap().is_empty());
    assert!(log.read_since(&s, seq(99), 10).await.unwrap().is_empty());
    assert!(log.read_since(&s, EventSeq::ZERO, 0).await.unwrap().is_empty(), "limit 0");

    // Gaps are allowed: only strict increase is required.
    log.append(&s, event(9, &job)).await.unwrap();
    assert_eq!(seqs(&log.read_since(&s, seq(5), 10).await.unwrap()), vec![9]);
    assert_eq!(log.bounds(&s).await.unwrap(), bounds(1, 9));
    assert_conflict(log.append(&s, event(7, &job)).await, "appending into a gap");

    // Sessions are independent.
    let other = sid("sess_log_other");
    let other_job = jid("job_log_other");
    log.append(&other, event(1, &other_job)).await.unwrap();
    assert_eq!(log.bounds(&other).await.unwrap(), bounds(1, 1));
    assert_eq!(log.read_since(&other, EventSeq::ZERO, 10).await.unwrap(), vec![event(1, &other_job)]);
    assert_eq!(log.bounds(&s).await.unwrap(), bounds(1, 9));

    // Releasing acknowledged events never loses the unacknowledged ones.
    log.release_acked(&s, seq(2)).await.unwrap();
    let after = log.read_since(&s, seq(2), 10).await.unwrap();
    assert_eq!(seqs(&after), vec![3, 4, 5, 9]);
    let b = log.bounds(&s).await.unwrap().unwrap();
    assert!(b.oldest <= seq(3) && b.newest == seq(9), "bounds after release_acked: {b:?}");

    // Partial purge.
    log.purge(&s, Some(seq(4))).await.unwrap();
    assert_eq!(log.bounds(&s).await.unwrap(), bounds(5, 9));
    assert_eq!(seqs(&log.read_since(&s, EventSeq::ZERO, 10).await.unwrap()), vec![5, 9]);
    assert_conflict(log.append(&s, event(9, &job)).await, "the newest survives a partial purge");
    log.append(&s, event(10, &job)).await.unwrap();
    // Purging below the oldest is a no-op.
    log.purge(&s, Some(seq(1))).await.unwrap();
    assert_eq!(log.bounds(&s).await.unwrap(), bounds(5, 10));
    // Purging past the newest empties the log.
    log.purge(&s, Some(seq(1000))).await.unwrap();
    assert_eq!(log.bounds(&s).await.unwrap(), None);
    assert!(log.read_since(&s, EventSeq::ZERO, 10).await.unwrap().is_empty());

    // Full purge, then the session starts over.
    log.append(&other, event(2, &other_job)).await.unwrap();
    log.purge(&other, None).await.unwrap();
    assert_eq!(log.bounds(&other).await.unwrap(), None);
    assert!(log.read_since(&other, EventSeq::ZERO, 10).await.unwrap().is_empty());
    log.append(&other, event(1, &other_job)).await.unwrap();
    assert_eq!(log.bounds(&other).await.unwrap(), bounds(1, 1));
    log.purge(&other, None).await.unwrap();
    // Purging an unknown session is fine.
    log.purge(&sid("sess_log_unknown"), None).await.unwrap();
    log.purge(&sid("sess_log_unknown"), Some(seq(3))).await.unwrap();

    // Frames are kept byte for byte (empty, multi-byte, large, the largest seq).
    let odd = sid("sess_log_frames");
    let big = "x€".repeat(8_000);
    log.append(&odd, event_with_frame(1, &job, "")).await.unwrap();
    log.append(&odd, event_with_frame(2, &job, "\u{0}nul\u{1F600}\n\t")).await.unwrap();
    log.append(&odd, event_with_frame(3, &job, &big)).await.unwrap();
    log.append(&odd, event_with_frame(EventSeq::MAX.get(), &job, "max")).await.unwrap();
    let got = log.read_since(&odd, EventSeq::ZERO, 10).await.unwrap();
    assert_eq!(got.len(), 4);
    assert_eq!(&*got[0].frame, "");
    assert_eq!(&*got[1].frame, "\u{0}nul\u{1F600}\n\t");
    assert_eq!(&*got[2].frame, big.as_str());
    assert_eq!(got[3].seq, EventSeq::MAX);
    assert_conflict(log.append(&odd, event_with_frame(EventSeq::MAX.get(), &job, "again")).await, "seq MAX twice");
    log.purge(&odd, None).await.unwrap();

    event_log_concurrent(log, 20, 25).await;
}

/// `sessions` sessions appended to concurrently, `per_session` events each (in order within
/// a session, interleaved across sessions): every event is there, in order, exactly once.
pub async fn event_log_concurrent(log: &dyn EventLog, sessions: usize, per_session: u64) {
    let ids: Vec<(SessionId, JobId)> = (0..sessions).map(|_| (sid("sess_conc"), jid("job_conc"))).collect();
    join_all(ids.iter().map(|(s, job)| async move {
        for n in 1..=per_session {
            log.append(s, event(n, job)).await.unwrap();
        }
    }))
    .await;
    for (s, job) in &ids {
        let got = log.read_since(s, EventSeq::ZERO, usize::MAX).await.unwrap();
        let expected: Vec<StoredEvent> = (1..=per_session).map(|n| event(n, job)).collect();
        assert_eq!(got, expected, "session {s}");
        assert_eq!(log.bounds(s).await.unwrap(), bounds(1, per_session));
        log.purge(s, None).await.unwrap();
    }
}

/// The caps of an [`EventLog`] configured with [`CAPPED_MAX_EVENTS`] events and
/// [`CAPPED_MAX_BYTES`] bytes per session: appending beyond either is `CapacityExceeded`
/// (the log unchanged), a conflict is still reported as such, purging frees room.
pub async fn event_log_caps(log: &dyn EventLog) {
    let job = jid("job_caps");
    // The event cap (1-byte frames keep clear of the byte cap).
    let s = sid("sess_caps");
    for n in 1..=CAPPED_MAX_EVENTS as u64 {
        log.append(&s, event_with_frame(n, &job, "x")).await.unwrap();
    }
    let full = CAPPED_MAX_EVENTS as u64;
    assert_capacity(log.append(&s, event_with_frame(full + 1, &job, "x")).await, "one event too many");
    assert_conflict(log.append(&s, event_with_frame(full, &job, "x")).await, "a conflict at the cap");
    assert_eq!(log.bounds(&s).await.unwrap(), bounds(1, full), "a refused append changes nothing");
    log.purge(&s, Some(seq(1))).await.unwrap();
    log.append(&s, event_with_frame(full + 1, &job, "x")).await.unwrap();
    assert_capacity(log.append(&s, event_with_frame(full + 2, &job, "x")).await, "full again");
    assert_eq!(log.bounds(&s).await.unwrap(), bounds(2, full + 1));
    // Other sessions have their own room.
    let t = sid("sess_caps_other");
    log.append(&t, event_with_frame(1, &job, "x")).await.unwrap();

    // The byte cap.
    let b = sid("sess_caps_bytes");
    let half = "y".repeat(CAPPED_MAX_BYTES / 2);
    log.append(&b, event_with_frame(1, &job, &half)).await.unwrap();
    log.append(&b, event_with_frame(2, &job, &half)).await.unwrap();
    assert_capacity(log.append(&b, event_with_frame(3, &job, "z")).await, "one byte too many");
    assert_eq!(log.bounds(&b).await.unwrap(), bounds(1, 2));
    log.purge(&b, Some(seq(1))).await.unwrap();
    log.append(&b, event_with_frame(3, &job, "z")).await.unwrap();
    log.purge(&b, None).await.unwrap();
    // A single frame above the cap never fits; one exactly at the cap does.
    assert_capacity(
        log.append(&b, event_with_frame(1, &job, &"w".repeat(CAPPED_MAX_BYTES + 1))).await,
        "a frame above the byte cap",
    );
    assert_eq!(log.bounds(&b).await.unwrap(), None);
    log.append(&b, event_with_frame(1, &job, &"w".repeat(CAPPED_MAX_BYTES))).await.unwrap();
    // Bytes are counted as UTF-8 bytes, not characters.
    let m = sid("sess_caps_utf8");
    let euro = "€".repeat(CAPPED_MAX_BYTES / 3 + 1); // 3 bytes each: just above the cap
    assert_capacity(log.append(&m, event_with_frame(1, &job, &euro)).await, "bytes, not characters");
    for s in [&s, &t, &b, &m] {
        log.purge(s, None).await.unwrap();
    }
}

/// A deterministic random walk (from `seed`) of `steps` appends (in order, repeated, out of
/// order, large), partial and full purges and reads over a few sessions, compared with a
/// [`MemoryEventLog`] with the same caps (`max_events`, `max_bytes`: what `log` was
/// configured with): every outcome (`Ok`, `Conflict`, `CapacityExceeded`), every read and
/// every bound equal.
pub async fn event_log_against_model(log: &dyn EventLog, seed: u64, steps: usize, max_events: usize, max_bytes: usize) {
    let model = MemoryEventLog::with_caps(max_events, max_bytes);
    let mut rng = Rng(seed);
    let sessions: Vec<SessionId> = (0..3).map(|_| sid("sess_model")).collect();
    let job = jid("job_model");
    let mut newest = [0u64; 3];
    for step in 0..steps {
        let i = rng.below(sessions.len());
        let s = &sessions[i];
        match rng.below(10) {
            0..=5 => {
                let n = match rng.below(6) {
                    0 => newest[i],                                     // a repeat
                    1 => newest[i].saturating_sub(rng.below(3) as u64), // an older one
                    2 => newest[i] + 2 + rng.below(5) as u64,           // a gap
                    _ => newest[i] + 1,
                }
                .max(1);
                let len =
                    if rng.below(8) == 0 { rng.below(max_bytes.saturating_add(2).min(100_000)) } else { rng.below(40) };
                let frame = "f".repeat(len);
                let a = log.append(s, event_with_frame(n, &job, &frame)).await;
                let b = model.append(s, event_with_frame(n, &job, &frame)).await;
                assert_eq!(
                    std::mem::discriminant(&a),
                    std::mem::discriminant(&b),
                    "step {step}: append {n} ({len} bytes): {a:?} vs model {b:?}"
                );
                match (&a, &b) {
                    (Err(x), Err(y)) => assert_eq!(
                        std::mem::discriminant(x),
                        std::mem::discriminant(y),
                        "step {step}: append {n}: {a:?} vs model {b:?}"
                    ),
                    (Ok(()), Ok(())) => newest[i] = n,
                    _ => {}
                }
            }
            6 => {
                let up_to = if rng.below(4) == 0 { None } else { Some(seq(rng.below(newest[i] as usize + 2) as u64)) };
                log.purge(s, up_to).await.unwrap();
                model.purge(s, up_to).await.unwrap();
                if up_to.is_none_or(|u| u.get() >= newest[i]) {
                    newest[i] = 0;
                }
            }
            _ => {
                let after = seq(rng.below(newest[i] as usize + 2) as u64);
                let limit = [0, 1, 3, usize::MAX][rng.below(4)];
                assert_eq!(
                    log.read_since(s, after, limit).await.unwrap(),
                    model.read_since(s, after, limit).await.unwrap(),
                    "step {step}: read_since({after}, {limit})"
                );
            }
        }
        assert_eq!(log.bounds(s).await.unwrap(), model.bounds(s).await.unwrap(), "step {step}: bounds");
    }
    for s in &sessions {
        log.purge(s, None).await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Resume store
// ---------------------------------------------------------------------------------------------

fn resume_record(session: &SessionId, principal: &str, digest_byte: u8, expires_at_millis: u64) -> ResumeRecord {
    let mut token_digest = [digest_byte; 32];
    token_digest[0] = 0;
    token_digest[31] = 0xff;
    ResumeRecord { session_id: session.clone(), token_digest, principal: principal.to_owned(), expires_at_millis }
}

/// The [`ResumeStore`] contract: put/get/replace/remove, expiry purge, concurrent puts.
pub async fn resume_store(store: &dyn ResumeStore) {
    let now = wall_millis();
    let live_until = now + 3_600_000;
    let s = sid("sess_resume");
    assert_eq!(store.get(&s).await.unwrap(), None);
    store.remove(&s).await.unwrap();

    let first = resume_record(&s, "alice", 7, live_until);
    store.put(first.clone()).await.unwrap();
    assert_eq!(store.get(&s).await.unwrap(), Some(first));
    let second = resume_record(&s, "alice ✓", 9, live_until + 1);
    store.put(second.clone()).await.unwrap();
    assert_eq!(store.get(&s).await.unwrap(), Some(second), "put replaces");
    store.remove(&s).await.unwrap();
    assert_eq!(store.get(&s).await.unwrap(), None);
    store.remove(&s).await.unwrap();

    // Expiry: a record is expired at `now` when `expires_at_millis <= now`.
    let expired = sid("sess_resume_expired");
    let at_now = sid("sess_resume_at_now");
    let live = sid("sess_resume_live");
    store.put(resume_record(&expired, "bob", 1, now - 60_000)).await.unwrap();
    store.put(resume_record(&at_now, "bob", 2, now)).await.unwrap();
    store.put(resume_record(&live, "bob", 3, live_until)).await.unwrap();
    let listed = store.expired(now, 10_000).await.unwrap();
    let at = |s: &SessionId| listed.iter().position(|x| x == s);
    assert!(at(&expired).is_some() && at(&at_now).is_some(), "expired lists both expired records: {listed:?}");
    assert!(at(&expired) < at(&at_now), "soonest-expired first: {listed:?}");
    assert_eq!(at(&live), None, "a live record is not expired: {listed:?}");
    assert_eq!(store.expired(now, 1).await.unwrap().len(), 1, "expired honours its limit");
    assert_eq!(
        store.get(&expired).await.unwrap().map(|r| r.session_id),
        Some(expired.clone()),
        "listing removes nothing"
    );
    let purged = store.purge_expired(now).await.unwrap();
    assert!(purged >= 2, "purge_expired counted {purged}, expected at least 2");
    assert_eq!(store.get(&expired).await.unwrap(), None);
    assert_eq!(store.get(&at_now).await.unwrap(), None);
    assert_eq!(store.get(&live).await.unwrap(), Some(resume_record(&live, "bob", 3, live_until)));
    store.remove(&live).await.unwrap();

    // Concurrent puts of distinct sessions all land.
    let many: Vec<ResumeRecord> =
        (0..32u8).map(|i| resume_record(&sid("sess_resume_many"), "carol", i, live_until + u64::from(i))).collect();
    join_all(many.iter().map(|r| store.put(r.clone()))).await.into_iter().for_each(|r| r.unwrap());
    for r in &many {
        assert_eq!(store.get(&r.session_id).await.unwrap().as_ref(), Some(r));
        store.remove(&r.session_id).await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Idempotency store
// ---------------------------------------------------------------------------------------------

/// A `job.accepted` payload using every optional field, for round-trip checks.
pub fn rich_accepted(job: &JobId) -> JobAccepted {
    let mut lease = BTreeMap::new();
    lease.insert("fs.read".to_owned(), vec!["/data/**".to_owned(), "/tmp/*.txt".to_owned()]);
    lease.insert("cost.budget".to_owned(), vec!["USD:12.50".to_owned()]);
    let mut unknown = BTreeMap::new();
    unknown.insert("max_x".to_owned(), serde_json::json!({"nested": [1, 2.5, "é"]}));
    let mut budget = BTreeMap::new();
    budget.insert("USD".to_owned(), serde_json::Number::from_f64(12.5).unwrap());
    budget.insert("EUR".to_owned(), serde_json::Number::from(3u64));
    JobAccepted {
        job_id: job.clone(),
        agent: Some("sum@1.0.0".to_owned()),
        lease: LeaseMap(lease),
        lease_constraints: Some(LeaseConstraints { expires_at: Some("2031-01-02T03:04:05Z".to_owned()), unknown }),
        budget: Some(budget),
        accepted_at: Timestamp::from_millis(1_700_000_000_123),
        parent_job_id: Some(jid("job_parent")),
        delegate_id: Some("del_1".to_owned()),
        trace_id: Some(TraceId::parse("0af7651916cd43dd8448eb211c80319c").unwrap()),
        credentials: Some(vec![Credential {
            id: "cred_1".to_owned(),
            scheme: "bearer".to_owned(),
            value: "s3cr3t".to_owned(),
            endpoint: "https://api.example.com/".to_owned(),
            profile: None,
            constraints: Some(serde_json::json!({"max_calls": 3})),
        }]),
    }
}

/// A `job.accepted` payload with only the required fields.
pub fn plain_accepted(job: &JobId) -> JobAccepted {
    JobAccepted {
        job_id: job.clone(),
        agent: None,
        lease: LeaseMap::default(),
        lease_constraints: None,
        budget: None,
        accepted_at: Timestamp::from_millis(0),
        parent_job_id: None,
        delegate_id: None,
        trace_id: None,
        credentials: None,
    }
}

fn idem_record(job: &JobId, digest_byte: u8, expires_at_millis: u64, rich: bool) -> IdempotencyRecord {
    IdempotencyRecord {
        digest: [digest_byte; 32],
        job_id: job.clone(),
        accepted: if rich { rich_accepted(job) } else { plain_accepted(job) },
        expires_at_millis,
    }
}

#[track_caller]
fn assert_existing(claim: Claim, expected: &IdempotencyRecord, what: &str) {
    match claim {
        Claim::Existing(got) => assert_eq!(*got, *expected, "{what}"),
        Claim::Claimed => panic!("{what}: expected Existing, got Claimed"),
    }
}

/// The [`IdempotencyStore`] contract: first claim wins, identical payload returned (every
/// field of `job.accepted`), scoping by principal and key, expiry makes a key reclaimable,
/// purge, and `concurrent` racing claims of one key yield exactly one `Claimed`.
pub async fn idempotency_store(store: &dyn IdempotencyStore) {
    let now = wall_millis();
    let live_until = now + 3_600_000;
    let principal = unique("alice");
    let key = unique("key ✓ 'quoted' \"double\"");

    let first_job = jid("job_idem");
    let first = idem_record(&first_job, 1, live_until, true);
    assert_eq!(store.claim(&principal, &key, first.clone(), now).await.unwrap(), Claim::Claimed);
    let second = idem_record(&jid("job_idem"), 2, live_until + 5, false);
    assert_existing(store.claim(&principal, &key, second.clone(), now).await.unwrap(), &first, "second claim");
    assert_existing(store.claim(&principal, &key, second.clone(), now + 1000).await.unwrap(), &first, "still live");

    // Scope: another principal, or another key, is another slot.
    let bob = unique("bob");
    assert_eq!(store.claim(&bob, &key, second.clone(), now).await.unwrap(), Claim::Claimed);
    let other_key = unique("key");
    assert_eq!(store.claim(&principal, &other_key, second.clone(), now).await.unwrap(), Claim::Claimed);
    assert_existing(store.claim(&bob, &key, first.clone(), now).await.unwrap(), &second, "bob's slot");

    // Expiry: a record expiring at `now` is no longer live, so the key is reclaimable.
    let short_key = unique("key_short");
    let short = idem_record(&jid("job_short"), 3, now + 10, false);
    assert_eq!(store.claim(&principal, &short_key, short.clone(), now).await.unwrap(), Claim::Claimed);
    assert_existing(store.claim(&principal, &short_key, first.clone(), now + 9).await.unwrap(), &short, "live");
    let renewed = idem_record(&jid("job_renewed"), 4, live_until, true);
    assert_eq!(store.claim(&principal, &short_key, renewed.clone(), now + 10).await.unwrap(), Claim::Claimed);
    assert_existing(store.claim(&principal, &short_key, short.clone(), now + 11).await.unwrap(), &renewed, "renewed");

    // Purge removes expired records (and only those).
    let gone_key = unique("key_gone");
    let gone = idem_record(&jid("job_gone"), 5, now - 1000, false);
    assert_eq!(store.claim(&principal, &gone_key, gone, now - 2000).await.unwrap(), Claim::Claimed);
    let purged = store.purge_expired(now).await.unwrap();
    assert!(purged >= 1, "purge_expired counted {purged}");
    let fresh = idem_record(&jid("job_fresh"), 6, live_until, false);
    assert_eq!(store.claim(&principal, &gone_key, fresh.clone(), now).await.unwrap(), Claim::Claimed);
    assert_existing(store.claim(&principal, &key, second, now).await.unwrap(), &first, "a live record survives purge");

    idempotency_race(store, 32).await;
}

/// `n` concurrent claims of one fresh key with distinct records: exactly one `Claimed`, and
/// every other claim sees the winner's record.
pub async fn idempotency_race(store: &dyn IdempotencyStore, n: usize) {
    let now = wall_millis();
    let principal = unique("racer");
    let key = unique("race");
    let records: Vec<IdempotencyRecord> =
        (0..n).map(|i| idem_record(&jid("job_race"), (i % 251) as u8, now + 3_600_000, i % 2 == 0)).collect();
    let results = join_all(records.iter().map(|r| store.claim(&principal, &key, r.clone(), now))).await;
    let results: Vec<Claim> = results.into_iter().map(Result::unwrap).collect();
    let winners: Vec<usize> =
        results.iter().enumerate().filter(|(_, c)| **c == Claim::Claimed).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "exactly one of {n} racing claims wins: {winners:?}");
    let winner = &records[winners[0]];
    for (i, c) in results.into_iter().enumerate() {
        if i != winners[0] {
            assert_existing(c, winner, "a losing claim sees the winner");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Job store
// ---------------------------------------------------------------------------------------------

/// A job record with every optional field set when `rich`.
pub fn job_record(
    principal: &str,
    node: &str,
    agent: &str,
    status: JobStatus,
    created_at_millis: u64,
    rich: bool,
) -> JobRecord {
    let job_id = jid("job");
    let mut lease = BTreeMap::new();
    if rich {
        lease.insert("net.fetch".to_owned(), vec!["https://*.example.com/**".to_owned()]);
        lease.insert("tool.call".to_owned(), vec!["calc.*".to_owned(), "é*".to_owned()]);
    }
    let ended_at_millis = status.is_terminal().then_some(created_at_millis + 50);
    JobRecord {
        principal: principal.to_owned(),
        session_id: sid("sess_job"),
        agent: agent.to_owned(),
        status,
        lease: LeaseMap(lease),
        lease_constraints: rich.then(|| LeaseConstraints {
            expires_at: Some("2030-05-06T07:08:09.123Z".to_owned()),
            unknown: BTreeMap::new(),
        }),
        parent_job_id: rich.then(|| jid("job_parent")),
        created_at_millis,
        trace_id: rich.then(|| TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()),
        last_event_seq: if rich { seq(17) } else { EventSeq::ZERO },
        ended_at_millis,
        node: node.to_owned(),
        job_id,
    }
}

fn query(principal: &str) -> JobQuery {
    JobQuery {
        principal: principal.to_owned(),
        statuses: None,
        agent: None,
        created_after_millis: None,
        created_before_millis: None,
        after: None,
        limit: usize::MAX,
    }
}

/// What a conforming store answers to `q` when it holds `records`.
pub fn expected_page(records: &[JobRecord], q: &JobQuery) -> Vec<JobRecord> {
    let mut out: Vec<JobRecord> = records.iter().filter(|r| q.matches(r)).cloned().collect();
    out.sort_by_key(JobRecord::key);
    out.truncate(q.limit);
    out
}

fn ids(records: &[JobRecord]) -> Vec<String> {
    records.iter().map(|r| r.job_id.as_str().to_owned()).collect()
}

/// The [`JobStore`] contract: insert/get round-trip of every field, duplicate insert is a
/// `Conflict`, updates (never lowering `last_event_seq`, never clearing `ended_at`), remove,
/// every listing filter exactly as [`JobQuery::matches`], keyset pagination under concurrent
/// inserts and updates, `unfinished`, `purge_finished`.
pub async fn job_store(store: &dyn JobStore) {
    job_store_records(store).await;
    job_store_filters(store).await;
    job_store_pagination(store).await;
    job_store_unfinished(store).await;
    job_store_purge(store).await;
    job_store_against_model(store, 0x5eed, 300).await;
}

/// Insert, get, update, remove.
pub async fn job_store_records(store: &dyn JobStore) {
    let principal = unique("p_records");
    let node = unique("node");
    let rich = job_record(&principal, &node, "sum@1.0", JobStatus::Pending, 1_000, true);
    let plain = job_record(&principal, &node, "bare", JobStatus::Success, 2_000, false);
    store.insert(rich.clone()).await.unwrap();
    store.insert(plain.clone()).await.unwrap();
    assert_eq!(store.get(&rich.job_id).await.unwrap().as_ref(), Some(&rich), "every field round-trips");
    assert_eq!(store.get(&plain.job_id).await.unwrap().as_ref(), Some(&plain));
    assert_eq!(store.get(&jid("job_missing")).await.unwrap(), None);

    let mut dup = plain.clone();
    dup.principal = unique("p_other");
    assert_conflict(store.insert(dup).await, "inserting a stored job id again");
    assert_eq!(store.get(&plain.job_id).await.unwrap().as_ref(), Some(&plain), "the conflict changed nothing");

    // Updates: status and seq; seq never lowered; ended_at set once terminal, never cleared.
    store
        .update(&rich.job_id, JobUpdate { status: JobStatus::Running, last_event_seq: seq(40), ended_at_millis: None })
        .await
        .unwrap();
    let got = store.get(&rich.job_id).await.unwrap().unwrap();
    assert_eq!((got.status, got.last_event_seq, got.ended_at_millis), (JobStatus::Running, seq(40), None));
    store
        .update(&rich.job_id, JobUpdate { status: JobStatus::Running, last_event_seq: seq(3), ended_at_millis: None })
        .await
        .unwrap();
    assert_eq!(store.get(&rich.job_id).await.unwrap().unwrap().last_event_seq, seq(40), "seq never lowered");
    store
        .update(
            &rich.job_id,
            JobUpdate { status: JobStatus::Cancelled, last_event_seq: seq(41), ended_at_millis: Some(9_000) },
        )
        .await
        .unwrap();
    store
        .update(&rich.job_id, JobUpdate { status: JobStatus::Cancelled, last_event_seq: seq(0), ended_at_millis: None })
        .await
        .unwrap();
    let got = store.get(&rich.job_id).await.unwrap().unwrap();
    let mut want = rich.clone();
    want.status = JobStatus::Cancelled;
    want.last_event_seq = seq(41);
    want.ended_at_millis = Some(9_000);
    assert_eq!(got, want, "only status, seq and ended_at change");
    store
        .update(
            &rich.job_id,
            JobUpdate { status: JobStatus::Error, last_event_seq: seq(41), ended_at_millis: Some(9_500) },
        )
        .await
        .unwrap();
    assert_eq!(store.get(&rich.job_id).await.unwrap().unwrap().ended_at_millis, Some(9_500));
    // A missing record is not an error.
    store
        .update(
            &jid("job_missing"),
            JobUpdate { status: JobStatus::Running, last_event_seq: seq(1), ended_at_millis: None },
        )
        .await
        .unwrap();
    assert_eq!(store.get(&jid("job_missing")).await.unwrap(), None);

    store.remove(&rich.job_id).await.unwrap();
    assert_eq!(store.get(&rich.job_id).await.unwrap(), None);
    store.remove(&rich.job_id).await.unwrap();
    // A removed id can be inserted again.
    store.insert(rich.clone()).await.unwrap();
    assert_eq!(store.get(&rich.job_id).await.unwrap(), Some(rich.clone()));
    assert_eq!(
        ids(&store.list(&query(&principal)).await.unwrap()),
        ids(&expected_page(&[rich.clone(), plain.clone()], &query(&principal)))
    );
    store.remove(&rich.job_id).await.unwrap();
    store.remove(&plain.job_id).await.unwrap();
    assert!(store.list(&query(&principal)).await.unwrap().is_empty());
}

/// Agent labels that exercise prefix matching, including SQL `LIKE` metacharacters.
const AGENTS: [&str; 10] =
    ["sum", "sum@1.0", "sum@2.0", "summarizer@1.0", "summ", "x_y@1", "xzy@1", "a%b", "a%b@2", "aXb@2"];

/// Builds a varied set of records for one principal (plus decoys under another principal).
async fn fill(store: &dyn JobStore, principal: &str, node: &str, n: usize, seed: u64) -> Vec<JobRecord> {
    let mut rng = Rng(seed);
    let mut records = Vec::new();
    for i in 0..n {
        let agent = AGENTS[rng.below(AGENTS.len())];
        let status = ALL_STATUSES[rng.below(ALL_STATUSES.len())];
        // Few distinct creation times, so ties are broken by job id.
        let created = 1_000 + 10 * rng.below(12) as u64;
        let r = job_record(principal, node, agent, status, created, i % 3 == 0);
        store.insert(r.clone()).await.unwrap();
        records.push(r);
    }
    let decoy_principal = format!("{principal}x");
    for _ in 0..5 {
        let r = job_record(&decoy_principal, node, "sum", JobStatus::Running, 1_050, false);
        store.insert(r).await.unwrap();
    }
    records
}

fn agent_matches() -> Vec<Option<AgentMatch>> {
    let mut out = vec![None];
    for name in ["sum", "summ", "x_y", "a%b", "a", "nope", "s%", "x_"] {
        out.push(Some(AgentMatch::Name(name.to_owned())));
    }
    for exact in ["sum@1.0", "a%b@2", "x_y@1", "sum", "sum@1"] {
        out.push(Some(AgentMatch::Exact(exact.to_owned())));
    }
    out
}

fn status_sets() -> Vec<Option<Vec<JobStatus>>> {
    vec![
        None,
        Some(vec![]),
        Some(vec![JobStatus::Running]),
        Some(vec![JobStatus::Pending, JobStatus::Running]),
        Some(vec![JobStatus::Success, JobStatus::Error, JobStatus::Cancelled, JobStatus::TimedOut]),
        Some(ALL_STATUSES.to_vec()),
    ]
}

/// Every listing filter, alone and combined, against [`JobQuery::matches`].
pub async fn job_store_filters(store: &dyn JobStore) {
    let principal = unique("p_filters");
    let node = unique("node");
    let records = fill(store, &principal, &node, 60, 7).await;
    let mut sorted = records.clone();
    sorted.sort_by_key(JobRecord::key);

    let bounds: [(Option<i64>, Option<i64>); 7] = [
        (None, None),
        (Some(1_040), None),
        (None, Some(1_060)),
        (Some(1_030), Some(1_080)),
        (Some(1_050), Some(1_050)),
        (Some(i64::MIN), Some(i64::MAX)),
        (Some(-5), Some(0)),
    ];
    let afters: Vec<Option<ListKey>> = vec![
        None,
        Some(sorted[10].key()),
        Some(ListKey { created_at_millis: 1_050, job_id: sorted[0].job_id.clone() }),
        Some(sorted[sorted.len() - 1].key()),
        Some(ListKey { created_at_millis: 0, job_id: JobId::parse("a").unwrap() }),
    ];
    let mut checked = 0;
    for statuses in status_sets() {
        for agent in agent_matches() {
            for (after_t, before_t) in bounds {
                for (i, after) in afters.iter().enumerate() {
                    for limit in [usize::MAX, 0, 1, 7] {
                        // Keep the product reasonable: vary `after` and `limit` only on some rows.
                        if (i > 0 || limit != usize::MAX) && (checked % 5 != 0) {
                            checked += 1;
                            continue;
                        }
                        checked += 1;
                        let q = JobQuery {
                            principal: principal.clone(),
                            statuses: statuses.clone(),
                            agent: agent.clone(),
                            created_after_millis: after_t,
                            created_before_millis: before_t,
                            after: after.clone(),
                            limit,
                        };
                        let got = store.list(&q).await.unwrap();
                        let want = expected_page(&records, &q);
                        assert_eq!(ids(&got), ids(&want), "query {q:?}");
                        assert_eq!(got, want, "records come back whole for {q:?}");
                    }
                }
            }
        }
    }
    // A principal that is a prefix or a LIKE pattern of another sees nothing of it.
    for p in [principal[..principal.len() - 1].to_owned(), format!("{principal}%"), "%".to_owned(), String::new()] {
        assert!(store.list(&query(&p)).await.unwrap().iter().all(|r| r.principal == p), "principal {p:?}");
    }
    for r in &records {
        store.remove(&r.job_id).await.unwrap();
    }
}

/// Keyset pagination never skips or repeats a record while records are inserted (before and
/// after the cursor) and updated between pages.
pub async fn job_store_pagination(store: &dyn JobStore) {
    let principal = unique("p_pages");
    let node = unique("node");
    let records = fill(store, &principal, &node, 40, 11).await;
    let mut rng = Rng(99);
    for (limit, statuses) in [(3, None), (1, None), (7, Some(vec![JobStatus::Success, JobStatus::Error]))] {
        let base = JobQuery { statuses: statuses.clone(), limit, ..query(&principal) };
        // Records whose status is not touched during the walk and that match throughout.
        let stable: BTreeSet<String> = ids(&expected_page(&records, &base)).into_iter().collect();
        let mut seen: Vec<JobRecord> = Vec::new();
        let mut after: Option<ListKey> = None;
        let mut inserted = Vec::new();
        let mut pages = 0;
        loop {
            let q = JobQuery { after: after.clone(), ..base.clone() };
            let page = store.list(&q).await.unwrap();
            assert!(page.len() <= limit, "page longer than its limit");
            pages += 1;
            assert!(pages <= records.len() + 100, "pagination does not terminate");
            let Some(last) = page.last() else { break };
            for r in &page {
                if let Some(prev) = seen.last() {
                    assert!(r.key() > prev.key(), "keys strictly increase across pages");
                }
                assert!(q.matches(r), "a listed record matches its query");
                seen.push(r.clone());
            }
            after = Some(last.key());
            // Between the first pages: insert records before and after the cursor, and
            // update last_event_seq of a record (its status unchanged, so it stays listed).
            let late: &[u64] = if pages <= 5 { &[1_000, 1_115, 1_200] } else { &[] };
            for &created in late {
                let status = if rng.below(2) == 0 { JobStatus::Running } else { JobStatus::Success };
                let r = job_record(&principal, &node, "late", status, created, false);
                store.insert(r.clone()).await.unwrap();
                inserted.push(r);
            }
            let victim = &records[rng.below(records.len())];
            store
                .update(
                    &victim.job_id,
                    JobUpdate {
                        status: victim.status,
                        last_event_seq: seq(100 + pages as u64),
                        ended_at_millis: victim.ended_at_millis,
                    },
                )
                .await
                .unwrap();
        }
        let seen_ids: Vec<String> = ids(&seen);
        let unique_ids: BTreeSet<&String> = seen_ids.iter().collect();
        assert_eq!(unique_ids.len(), seen_ids.len(), "no record is listed twice");
        for id in &stable {
            assert!(seen_ids.contains(id), "record {id} present throughout was skipped");
        }
        for r in inserted {
            store.remove(&r.job_id).await.unwrap();
        }
    }
    for r in &records {
        store.remove(&r.job_id).await.unwrap();
    }
}

/// `unfinished(node)`: the node's pending and running jobs, in key order, across principals.
pub async fn job_store_unfinished(store: &dyn JobStore) {
    let node = unique("node_a");
    let other_node = unique("node_b");
    let mut mine = Vec::new();
    let mut all = Vec::new();
    for (i, status) in ALL_STATUSES.iter().cycle().take(18).enumerate() {
        let principal = if i % 2 == 0 { unique("p_unf") } else { "shared-principal".to_owned() };
        let n = if i % 3 == 0 { &other_node } else { &node };
        let r = job_record(&principal, n, "sum", *status, 5_000 - 10 * i as u64, i % 4 == 0);
        store.insert(r.clone()).await.unwrap();
        if n == &node && !status.is_terminal() {
            mine.push(r.clone());
        }
        all.push(r);
    }
    mine.sort_by_key(JobRecord::key);
    assert_eq!(store.unfinished(&node).await.unwrap(), mine);
    assert!(store.unfinished(&unique("node_none")).await.unwrap().is_empty());
    // Ending one removes it from the set.
    let first = mine[0].clone();
    store
        .update(
            &first.job_id,
            JobUpdate { status: JobStatus::Error, last_event_seq: seq(2), ended_at_millis: Some(6_000) },
        )
        .await
        .unwrap();
    assert_eq!(ids(&store.unfinished(&node).await.unwrap()), ids(&mine[1..]));
    for r in &all {
        store.remove(&r.job_id).await.unwrap();
    }
}

/// `purge_finished(t)` removes exactly the records that ended at or before `t`.
pub async fn job_store_purge(store: &dyn JobStore) {
    let now = wall_millis();
    let principal = unique("p_purge");
    let node = unique("node");
    let mut old = job_record(&principal, &node, "sum", JobStatus::Success, 1, false);
    old.ended_at_millis = Some(now - 600_000);
    let mut at_limit = job_record(&principal, &node, "sum", JobStatus::Error, 2, false);
    at_limit.ended_at_millis = Some(now - 300_000);
    let mut recent = job_record(&principal, &node, "sum", JobStatus::Cancelled, 3, false);
    recent.ended_at_millis = Some(now + 600_000);
    let running = job_record(&principal, &node, "sum", JobStatus::Running, 4, false);
    let updated = job_record(&principal, &node, "sum", JobStatus::Running, 5, false);
    for r in [&old, &at_limit, &recent, &running, &updated] {
        store.insert(r.clone()).await.unwrap();
    }
    // Ended through an update.
    store
        .update(
            &updated.job_id,
            JobUpdate { status: JobStatus::TimedOut, last_event_seq: seq(9), ended_at_millis: Some(now - 400_000) },
        )
        .await
        .unwrap();
    let purged = store.purge_finished(now - 300_000).await.unwrap();
    assert!(purged >= 3, "purge_finished counted {purged}");
    let left = store.list(&query(&principal)).await.unwrap();
    assert_eq!(ids(&left), ids(&[recent.clone(), running.clone()]));
    for r in [&recent, &running] {
        store.remove(&r.job_id).await.unwrap();
    }
}

/// A deterministic random walk (from `seed`) of `steps` inserts, re-inserts, updates, removes
/// and listings, compared with [`MemoryJobStore`] (the reference semantics): every listing
/// equal, and every few steps the whole principal, `unfinished` and each record. Purges are
/// left out (they act on the whole store; [`job_store_purge`] covers them).
pub async fn job_store_against_model(store: &dyn JobStore, seed: u64, steps: usize) {
    let model = MemoryJobStore::default();
    let principal = unique("p_model");
    let node = unique("node_model");
    let mut rng = Rng(seed);
    let mut live: Vec<JobId> = Vec::new();
    for step in 0..steps {
        match rng.below(10) {
            0..=2 => {
                let agent = AGENTS[rng.below(AGENTS.len())];
                let status = ALL_STATUSES[rng.below(ALL_STATUSES.len())];
                let r = job_record(&principal, &node, agent, status, 1_000 + rng.below(20) as u64, rng.below(2) == 0);
                let a = store.insert(r.clone()).await;
                let b = model.insert(r.clone()).await;
                assert_eq!(a.is_ok(), b.is_ok(), "step {step}: insert {a:?} vs model {b:?}");
                live.push(r.job_id);
            }
            3 => {
                // Re-insert an existing id: both refuse.
                if let Some(id) = live.get(rng.below(live.len().max(1))) {
                    let mut r = job_record(&principal, &node, "sum", JobStatus::Pending, 1_000, false);
                    r.job_id = id.clone();
                    assert_conflict(store.insert(r.clone()).await, "re-insert");
                    assert_conflict(model.insert(r).await, "model re-insert");
                }
            }
            4..=5 => {
                if !live.is_empty() {
                    let id = live[rng.below(live.len())].clone();
                    let status = ALL_STATUSES[rng.below(ALL_STATUSES.len())];
                    let u = JobUpdate {
                        status,
                        last_event_seq: seq(rng.below(50) as u64),
                        ended_at_millis: (status.is_terminal() && rng.below(3) > 0)
                            .then(|| 2_000 + rng.below(100) as u64),
                    };
                    store.update(&id, u.clone()).await.unwrap();
                    model.update(&id, u).await.unwrap();
                }
            }
            6 => {
                if !live.is_empty() {
                    let id = live.swap_remove(rng.below(live.len()));
                    store.remove(&id).await.unwrap();
                    model.remove(&id).await.unwrap();
                }
            }
            _ => {
                let statuses = status_sets().swap_remove(rng.below(6));
                let agents = agent_matches();
                let agent = agents[rng.below(agents.len())].clone();
                let after = if live.is_empty() || rng.below(3) == 0 {
                    None
                } else {
                    model.get(&live[rng.below(live.len())]).await.unwrap().map(|r| r.key())
                };
                let q = JobQuery {
                    principal: principal.clone(),
                    statuses,
                    agent,
                    created_after_millis: (rng.below(3) == 0).then(|| 1_000 + rng.below(20) as i64),
                    created_before_millis: (rng.below(3) == 0).then(|| 1_000 + rng.below(20) as i64),
                    after,
                    limit: [1, 3, 10, usize::MAX][rng.below(4)],
                };
                assert_eq!(store.list(&q).await.unwrap(), model.list(&q).await.unwrap(), "step {step}: {q:?}");
            }
        }
        if step % 25 == 0 || step + 1 == steps {
            assert_eq!(store.list(&query(&principal)).await.unwrap(), model.list(&query(&principal)).await.unwrap());
            assert_eq!(store.unfinished(&node).await.unwrap(), model.unfinished(&node).await.unwrap());
            for id in &live {
                assert_eq!(store.get(id).await.unwrap(), model.get(id).await.unwrap(), "step {step}: get {id}");
            }
        }
    }
    for id in live {
        store.remove(&id).await.unwrap();
    }
}

/// Deterministic pseudo-random numbers (SplitMix64) for reproducible walks.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// The key-value store contract ([`KvStore`](super::KvStore)): get/set/delete, listings
/// (prefix, cursor pagination that never skips or repeats, limits, keys only), sliding TTLs
/// on a manual clock, the size limits, and principal isolation (get, list, delete, overwrite).
pub async fn kv_store(store: &dyn super::KvStore) {
    use std::time::Duration;

    use serde_json::json;

    use super::kv::{KvError, KvQuery, MAX_KEY_BYTES, MAX_VALUE_BYTES};

    let alice = unique("kv-alice");
    let bob = unique("kv-bob");
    let now = wall_millis();

    // get / set / delete.
    assert_eq!(store.get(&alice, "missing", now).await.unwrap(), None);
    store.set(&alice, "a", json!({"n": 1, "s": "x"}), None, now).await.unwrap();
    let got = store.get(&alice, "a", now).await.unwrap().unwrap();
    assert_eq!(got.key, "a");
    assert_eq!(got.value, Some(json!({"n": 1, "s": "x"})));
    assert_eq!(got.expires_at_millis, None);
    store.set(&alice, "a", json!([1, 2, 3]), None, now).await.unwrap();
    assert_eq!(store.get(&alice, "a", now).await.unwrap().unwrap().value, Some(json!([1, 2, 3])));
    assert!(store.delete(&alice, "a", now).await.unwrap());
    assert!(!store.delete(&alice, "a", now).await.unwrap());
    assert_eq!(store.get(&alice, "a", now).await.unwrap(), None);
    // Keys are any UTF-8 (up to the limit), compared bytewise.
    store.set(&alice, "ключ/é", json!("ü"), None, now).await.unwrap();
    assert_eq!(store.get(&alice, "ключ/é", now).await.unwrap().unwrap().value, Some(json!("ü")));
    assert!(store.delete(&alice, "ключ/é", now).await.unwrap());

    // Two principals never see each other's keys.
    store.set(&alice, "shared/name", json!("alice's"), None, now).await.unwrap();
    store.set(&alice, "only-alice", json!(1), None, now).await.unwrap();
    assert_eq!(store.get(&bob, "shared/name", now).await.unwrap(), None, "bob read alice's key");
    assert_eq!(store.get(&bob, "only-alice", now).await.unwrap(), None, "bob read alice's key");
    let bob_list = store.list(&bob, KvQuery::default(), now).await.unwrap();
    assert!(bob_list.entries.is_empty(), "bob listed alice's keys: {bob_list:?}");
    assert!(!store.delete(&bob, "only-alice", now).await.unwrap(), "bob deleted alice's key");
    store.set(&bob, "shared/name", json!("bob's"), None, now).await.unwrap();
    assert_eq!(store.get(&alice, "shared/name", now).await.unwrap().unwrap().value, Some(json!("alice's")));
    assert_eq!(store.get(&bob, "shared/name", now).await.unwrap().unwrap().value, Some(json!("bob's")));
    assert!(store.delete(&bob, "shared/name", now).await.unwrap());
    assert_eq!(store.get(&alice, "shared/name", now).await.unwrap().unwrap().value, Some(json!("alice's")));
    assert_eq!(store.get(&alice, "only-alice", now).await.unwrap().unwrap().value, Some(json!(1)));
    let alice_keys: Vec<String> =
        store.list(&alice, KvQuery::default(), now).await.unwrap().entries.into_iter().map(|e| e.key).collect();
    assert_eq!(alice_keys, vec!["only-alice".to_owned(), "shared/name".to_owned()]);
    assert!(store.delete(&alice, "only-alice", now).await.unwrap());
    assert!(store.delete(&alice, "shared/name", now).await.unwrap());

    // Listings: prefix, cursor, limit, keys only. Keys that sort around the prefix too.
    let lister = unique("kv-lister");
    let mut expected = Vec::new();
    for i in 0..23 {
        let key = format!("user/{i:03}");
        store.set(&lister, &key, json!({ "i": i }), None, now).await.unwrap();
        expected.push(key);
    }
    for key in ["user", "user0", "usea", "users/x", "v", "a"] {
        store.set(&lister, key, json!(key), None, now).await.unwrap();
    }
    // Another principal's keys under the same prefix never show up.
    store.set(&bob, "user/000", json!("bob"), None, now).await.unwrap();
    for limit in [1, 4, 5, 23, 100] {
        let mut seen = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let query = KvQuery { prefix: "user/".into(), after: after.clone(), limit, keys_only: false };
            let page = store.list(&lister, query, now).await.unwrap();
            assert!(page.entries.len() <= limit, "page of {} above limit {limit}", page.entries.len());
            for e in &page.entries {
                let i: usize = e.key["user/".len()..].parse().unwrap();
                assert_eq!(e.value, Some(json!({ "i": i })));
            }
            seen.extend(page.entries.iter().map(|e| e.key.clone()));
            pages += 1;
            assert!(pages <= 30, "pagination does not end");
            match page.next_cursor {
                Some(c) => {
                    assert_eq!(Some(&c), seen.last(), "the cursor is the last key of the page");
                    after = Some(c);
                }
                None => break,
            }
        }
        assert_eq!(seen, expected, "pages with limit {limit} skipped or repeated a key");
    }
    let keys = store
        .list(&lister, KvQuery { prefix: "user/".into(), after: None, limit: 3, keys_only: true }, now)
        .await
        .unwrap();
    assert_eq!(keys.entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["user/000", "user/001", "user/002"]);
    assert!(keys.entries.iter().all(|e| e.value.is_none()), "keys_only returned values");
    assert_eq!(keys.next_cursor.as_deref(), Some("user/002"));
    // A cursor before the prefix starts at the prefix; one after it ends the listing.
    let before = store
        .list(&lister, KvQuery { prefix: "user/".into(), after: Some("a".into()), limit: 1, keys_only: true }, now)
        .await
        .unwrap();
    assert_eq!(before.entries[0].key, "user/000");
    let beyond = store
        .list(&lister, KvQuery { prefix: "user/".into(), after: Some("user0".into()), limit: 10, keys_only: true }, now)
        .await
        .unwrap();
    assert!(beyond.entries.is_empty() && beyond.next_cursor.is_none());
    let all = store.list(&lister, KvQuery::default(), now).await.unwrap();
    assert_eq!(all.entries.len(), 29);
    assert_eq!(all.entries.first().unwrap().key, "a");
    assert_eq!(all.entries.last().unwrap().key, "v");
    assert!(all.next_cursor.is_none());
    assert_eq!(store.get(&bob, "user/000", now).await.unwrap().unwrap().value, Some(json!("bob")));

    // Sliding TTL on a manual clock.
    let ttl = Duration::from_secs(10);
    let timed = unique("kv-ttl");
    store.set(&timed, "t", json!("soon"), Some(ttl), now).await.unwrap();
    store.set(&timed, "forever", json!("stays"), None, now).await.unwrap();
    let hit = store.get(&timed, "t", now + 9_000).await.unwrap().unwrap();
    assert_eq!(hit.expires_at_millis, Some(now + 19_000), "a get slides the expiry to now + ttl");
    // 18 s after the set: expired without the slide, alive with it.
    let hit = store.get(&timed, "t", now + 18_000).await.unwrap().unwrap();
    assert_eq!(hit.expires_at_millis, Some(now + 28_000));
    // Listing neither slides nor shows expired entries.
    let listed = store.list(&timed, KvQuery::default(), now + 27_999).await.unwrap();
    assert_eq!(listed.entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["forever", "t"]);
    assert_eq!(store.get(&timed, "t", now + 28_000).await.unwrap(), None, "expired at now + ttl after the last get");
    let listed = store.list(&timed, KvQuery::default(), now + 28_000).await.unwrap();
    assert_eq!(listed.entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["forever"]);
    assert!(!store.delete(&timed, "t", now + 28_000).await.unwrap(), "deleting an expired entry removes nothing live");
    // A set replaces the TTL (here: removes it).
    store.set(&timed, "u", json!(1), Some(ttl), now).await.unwrap();
    store.set(&timed, "u", json!(2), None, now).await.unwrap();
    assert_eq!(store.get(&timed, "u", now + 3_600_000).await.unwrap().unwrap().expires_at_millis, None);
    // purge_expired drops expired entries only.
    store.set(&timed, "p", json!(1), Some(ttl), now).await.unwrap();
    assert!(store.purge_expired(now + 10_000).await.unwrap() >= 1);
    assert_eq!(store.get(&timed, "p", now).await.unwrap(), None, "a purged entry came back");
    assert_eq!(store.get(&timed, "forever", now + 10_000).await.unwrap().unwrap().value, Some(json!("stays")));

    // Limits: typed refusals, nothing stored.
    let long = "k".repeat(MAX_KEY_BYTES + 1);
    assert_eq!(
        store.set(&alice, &long, json!(1), None, now).await,
        Err(KvError::KeyTooLong { len: MAX_KEY_BYTES + 1, max: MAX_KEY_BYTES })
    );
    assert!(matches!(store.get(&alice, &long, now).await, Err(KvError::KeyTooLong { .. })));
    let exact = "é".repeat(MAX_KEY_BYTES / 2);
    store.set(&alice, &exact, json!(1), None, now).await.unwrap();
    assert!(store.delete(&alice, &exact, now).await.unwrap());
    assert_eq!(store.set(&alice, "", json!(1), None, now).await, Err(KvError::EmptyKey));
    assert_eq!(store.set(&alice, "a\0b", json!(1), None, now).await, Err(KvError::NulInKey));
    // A string of n bytes encodes to n + 2 (its quotes).
    let fits = json!("x".repeat(MAX_VALUE_BYTES - 2));
    store.set(&alice, "big", fits.clone(), None, now).await.unwrap();
    assert_eq!(store.get(&alice, "big", now).await.unwrap().unwrap().value, Some(fits));
    let too_big = json!("x".repeat(MAX_VALUE_BYTES - 1));
    assert_eq!(
        store.set(&alice, "big", too_big, None, now).await,
        Err(KvError::ValueTooLarge { len: MAX_VALUE_BYTES + 1, max: MAX_VALUE_BYTES })
    );
    assert!(store.delete(&alice, "big", now).await.unwrap(), "the refused set replaced the stored value");
}
