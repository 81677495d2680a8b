//! §6.6 job listing: keyset pagination (property test on the store, and over the wire),
//! filters, request correlation, `last_event_seq`, retention, and principal isolation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeSet, HashMap};

use arcp_core::message::{JobStatus, Message, SessionJobs};
use arcp_core::{EventSeq, JobId, SessionId};
use arcp_server::store::memory::MemoryJobStore;
use arcp_server::store::{JobQuery, JobRecord, JobStore, JobUpdate};
use proptest::prelude::*;
use serde_json::json;
use support::*;

fn record(id: u32, principal: &str, created: u64) -> JobRecord {
    JobRecord {
        job_id: JobId::parse(&format!("job_{id:08}")).unwrap(),
        principal: principal.into(),
        session_id: SessionId::parse("sess_x").unwrap(),
        agent: "echo".into(),
        status: JobStatus::Running,
        lease: Default::default(),
        lease_constraints: None,
        parent_job_id: None,
        created_at_millis: created,
        trace_id: None,
        last_event_seq: EventSeq::ZERO,
        ended_at_millis: None,
        node: "local".into(),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Create { other_principal: bool, random_id: u32 },
    Finish(usize),
    Page(usize),
    Purge,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<bool>(), any::<u32>()).prop_map(|(other_principal, random_id)| Op::Create { other_principal, random_id }),
        2 => any::<usize>().prop_map(Op::Finish),
        3 => (1usize..4).prop_map(Op::Page),
        1 => Just(Op::Purge),
    ]
}

fn query(after: Option<arcp_server::store::ListKey>, limit: usize) -> JobQuery {
    JobQuery {
        principal: "alice".into(),
        statuses: None,
        agent: None,
        created_after_millis: None,
        created_before_millis: None,
        after,
        limit,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Random interleavings of creating, finishing, purging and paging: a listing pass never
    /// repeats a job, never goes backwards, terminates, and lists every job of the principal
    /// that existed when the pass started and was not purged during it exactly once.
    #[test]
    fn keyset_pages_never_loop_or_skip(ops in proptest::collection::vec(op(), 1..120)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let store = MemoryJobStore::with_capacity(10_000);
            let mut clock = 1_000u64;
            let mut alice: Vec<JobId> = Vec::new();
            let mut purged: BTreeSet<JobId> = BTreeSet::new();
            // The pass in progress: the cursor, what it has seen, and what it must see.
            let mut cursor = None;
            let mut seen: Vec<JobId> = Vec::new();
            let mut must: BTreeSet<JobId> = BTreeSet::new();
            let mut used = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Create { other_principal, random_id } => {
                        // Ties in created_at are frequent (two jobs per millisecond).
                        clock += u64::from(random_id % 2);
                        if !used.insert(random_id) { continue; }
                        let principal = if other_principal { "bob" } else { "alice" };
                        let r = record(random_id, principal, clock);
                        if !other_principal { alice.push(r.job_id.clone()); }
                        store.insert(r).await.unwrap();
                    }
                    Op::Finish(i) => {
                        if alice.is_empty() { continue; }
                        let id = alice[i % alice.len()].clone();
                        clock += 1;
                        let update = JobUpdate { status: JobStatus::Success, last_event_seq: EventSeq::new(3).unwrap(), ended_at_millis: Some(clock) };
                        store.update(&id, update).await.unwrap();
                    }
                    Op::Purge => {
                        // Retention purges what ended long enough ago.
                        for id in &alice {
                            if let Some(r) = store.get(id).await.unwrap()
                                && r.ended_at_millis.is_some_and(|e| e + 5 <= clock) { purged.insert(id.clone()); }
                        }
                        store.purge_finished(clock.saturating_sub(5)).await.unwrap();
                    }
                    Op::Page(limit) => {
                        if cursor.is_none() && seen.is_empty() {
                            must = alice.iter().filter(|id| !purged.contains(*id)).cloned().collect();
                        }
                        let page = store.list(&query(cursor.clone(), limit)).await.unwrap();
                        for r in &page {
                            prop_assert_eq!(&r.principal, "alice");
                            prop_assert!(!seen.contains(&r.job_id), "listed twice: {}", r.job_id);
                            if let Some(c) = &cursor { prop_assert!(r.key() > *c); }
                            seen.push(r.job_id.clone());
                        }
                        if page.len() < limit {
                            for id in &must {
                                prop_assert!(seen.contains(id) || purged.contains(id), "skipped {}", id);
                            }
                            cursor = None;
                            seen.clear();
                        } else {
                            cursor = page.last().map(JobRecord::key);
                        }
                    }
                }
            }
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn memory_job_store_is_bounded_and_evicts_finished_first() {
    let store = MemoryJobStore::with_capacity(2);
    store.insert(record(1, "a", 1)).await.unwrap();
    store.insert(record(2, "a", 2)).await.unwrap();
    assert!(store.insert(record(3, "a", 3)).await.is_err(), "all running: refused, not dropped");
    let done = JobUpdate { status: JobStatus::Success, last_event_seq: EventSeq::ZERO, ended_at_millis: Some(5) };
    store.update(&record(1, "a", 1).job_id, done).await.unwrap();
    store.insert(record(3, "a", 3)).await.unwrap();
    assert_eq!(store.len(), 2);
    assert!(store.get(&record(1, "a", 1).job_id).await.unwrap().is_none());
}

async fn list(c: &mut Client, payload: serde_json::Value) -> (String, SessionJobs) {
    let id = c.send("session.list_jobs", payload, json!({}));
    loop {
        let env = c.next().await;
        if let Message::SessionJobs(page) = env.message {
            return (id, page);
        }
    }
}

#[tokio::test]
async fn s6_6_listing_pages_filters_and_correlates() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        c.submit("echo", json!({ "i": i }));
        let Message::JobAccepted(a) = c.next().await.message else { panic!() };
        c.until_terminal(a.job_id.as_str()).await;
        ids.push(a.job_id.to_string());
    }
    c.submit("summarizer@1.0.0", json!({}));
    let Message::JobAccepted(s1) = c.next().await.message else { panic!() };
    c.until_terminal(s1.job_id.as_str()).await;
    // A running job shows its live status and newest event_seq.
    c.submit("sleep", json!({}));
    let Message::JobAccepted(sleeping) = c.next().await.message else { panic!() };
    let running = c.next().await;
    assert_eq!(kind(&running), "event:status");

    // Paging by 2: every job once, in order, request_id echoed, null cursor at the end.
    let mut all = Vec::new();
    let mut cursor = serde_json::Value::Null;
    loop {
        let (req, page) = list(&mut c, json!({ "limit": 2, "cursor": cursor })).await;
        assert_eq!(page.request_id.as_str(), req);
        assert!(page.jobs.len() <= 2);
        all.extend(page.jobs.iter().cloned());
        match page.next_cursor {
            Some(next) => cursor = json!(next),
            None => break,
        }
    }
    let listed: Vec<String> = all.iter().map(|j| j.job_id.to_string()).collect();
    assert_eq!(listed.len(), 7);
    let keys: Vec<(i64, String)> = all.iter().map(|j| (j.created_at.unix_millis(), j.job_id.to_string())).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "ordered by (created_at, job_id)");
    assert!(ids.iter().all(|id| listed.contains(id)));
    let last = all.iter().find(|j| j.job_id == sleeping.job_id).unwrap();
    assert_eq!(last.status, JobStatus::Running);
    assert_eq!(last.last_event_seq.get(), running.event_seq.unwrap().get());
    let first = all.iter().find(|j| j.job_id.as_str() == ids[0]).unwrap();
    assert!(first.last_event_seq.get() > 0);
    assert_eq!(first.status, JobStatus::Success);

    // Filters.
    let (_, page) = list(&mut c, json!({ "filter": { "status": ["running"] } })).await;
    assert_eq!(page.jobs.len(), 1);
    let (_, page) = list(&mut c, json!({ "filter": { "agent": "summarizer" } })).await;
    assert_eq!(page.jobs.len(), 1);
    assert_eq!(page.jobs[0].agent, "summarizer@1.0.0");
    let (_, page) = list(&mut c, json!({ "filter": { "agent": "summarizer@2.0.0" } })).await;
    assert!(page.jobs.is_empty());
    let created = all[2].created_at.clone();
    let (_, page) = list(&mut c, json!({ "filter": { "created_before": "2000-01-01T00:00:00Z" } })).await;
    assert!(page.jobs.is_empty());
    let (_, page) = list(&mut c, json!({ "filter": { "created_after": created } })).await;
    assert!(page.jobs.iter().all(|j| j.created_at.unix_millis() > all[2].created_at.unix_millis()));

    // A malformed cursor is INVALID_REQUEST.
    c.send("session.list_jobs", json!({ "cursor": "garbage" }), json!({}));
    loop {
        if let Message::SessionError(e) = c.next().await.message {
            assert_eq!(e.code, arcp_core::ErrorCode::INVALID_REQUEST);
            break;
        }
    }
}

#[tokio::test]
async fn s6_6_listing_never_crosses_principals() {
    let rt = runtime();
    let mut alice = Client::connect(&rt);
    alice.hello().await;
    alice.submit("echo", json!({}));
    let Message::JobAccepted(a) = alice.next().await.message else { panic!() };
    alice.until_terminal(a.job_id.as_str()).await;
    let mut bob = Client::connect(&rt);
    bob.hello_with(OTHER_TOKEN, Some(ALL_FEATURES)).await;
    let (_, page) = list(&mut bob, json!({})).await;
    assert!(page.jobs.is_empty(), "bob sees none of alice's jobs");
    // Another session of alice's principal sees it (jobs outlive their session's view).
    let mut alice2 = Client::connect(&rt);
    alice2.hello_with(ALICE_TOO, Some(ALL_FEATURES)).await;
    let (_, page) = list(&mut alice2, json!({})).await;
    let ids: HashMap<String, JobStatus> = page.jobs.iter().map(|j| (j.job_id.to_string(), j.status)).collect();
    assert_eq!(ids.get(a.job_id.as_str()), Some(&JobStatus::Success));
}

#[tokio::test]
async fn s6_6_finished_jobs_stay_listed_until_retention() {
    let config = arcp_server::RuntimeConfig {
        job_retention: std::time::Duration::ZERO,
        idempotency_ttl: std::time::Duration::ZERO,
        ..Default::default()
    };
    let rt = runtime_with(config);
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.submit("echo", json!({}));
    let Message::JobAccepted(a) = c.next().await.message else { panic!() };
    c.until_terminal(a.job_id.as_str()).await;
    let (_, page) = list(&mut c, json!({})).await;
    assert_eq!(page.jobs.len(), 1);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    rt.sweep().await;
    let (_, page) = list(&mut c, json!({})).await;
    assert!(page.jobs.is_empty(), "purged after retention");
}
