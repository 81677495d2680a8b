//! Crash recovery over shared stores (issue 6): a second runtime on the stores of one that
//! "died" restores its sessions on resume, ends its orphaned jobs with a durable terminal
//! `INTERNAL_ERROR` after every event written before, corrects records of jobs that had
//! already ended, and answers idempotent resubmits from the store without running anything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arcp_core::message::{ErrorStatus, JobStatus, Message};
use arcp_core::{ErrorCode, JobId};
use arcp_server::store::memory::{MemoryEventLog, MemoryIdempotencyStore, MemoryJobStore, MemoryResumeStore};
use arcp_server::store::{JobStore, JobUpdate};
use arcp_server::{AgentRegistry, JobContext, Runtime, StaticBearerVerifier};
use serde_json::{Value, json};
use support::*;

#[derive(Clone, Default)]
struct Stores {
    events: Arc<MemoryEventLog>,
    resumes: Arc<MemoryResumeStore>,
    idempotency: Arc<MemoryIdempotencyStore>,
    jobs: Arc<MemoryJobStore>,
}

/// A runtime over `stores` whose `hang` agent logs `n` lines and then never ends, and whose
/// `once` agent counts its runs.
fn node(stores: &Stores, runs: Arc<AtomicUsize>) -> Runtime {
    let mut reg = AgentRegistry::new();
    reg.register("hang", |ctx: JobContext, input: Value| async move {
        for i in 0..input["n"].as_u64().unwrap_or(3) {
            ctx.info(format!("line {i}")).await?;
        }
        std::future::pending::<()>().await;
        Ok(Value::Null)
    })
    .unwrap();
    reg.register("once", move |_ctx: JobContext, input: Value| {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok(input)
        }
    })
    .unwrap();
    let verifier = StaticBearerVerifier::new().with_token(TOKEN, "alice").with_token(ALICE_TOO, "alice");
    Runtime::builder(verifier)
        .agents(reg)
        .event_log(stores.events.clone())
        .resume_store(stores.resumes.clone())
        .idempotency_store(stores.idempotency.clone())
        .job_store(stores.jobs.clone())
        .build()
}

#[tokio::test]
async fn an_orphaned_job_ends_with_a_durable_restart_error_after_its_events() {
    let stores = Stores::default();
    let runs = Arc::new(AtomicUsize::new(0));
    let a = node(&stores, runs.clone());
    let mut client = Client::connect(&a);
    client.hello().await;
    client.submit("hang", json!({ "n": 3 }));
    let Message::JobAccepted(acc) = client.next().await.message else { panic!("accepted first") };
    // status running + 3 log lines.
    for _ in 0..4 {
        client.next().await;
    }
    assert_eq!(client.last_seq, 4);
    let (session, token) = (client.session_id.clone().unwrap(), client.resume_token.clone().unwrap());

    // Node A "dies" (its job will never emit again); node B starts on the same stores.
    let b = node(&stores, runs);
    let report = b.recover().await.unwrap();
    assert_eq!(report.orphaned, vec![acc.job_id.clone()]);
    assert!(report.already_ended.is_empty());
    let again = b.recover().await.unwrap();
    assert!(again.orphaned.is_empty() && again.already_ended.is_empty(), "recovery is idempotent: {again:?}");

    // The client resumes on B from seq 2: it gets 3, 4 and then the restart error.
    let mut resumed = Client::connect(&b);
    let welcome = resumed.resume(&session, &token, 2).await;
    assert!(matches!(welcome.message, Message::SessionWelcome(_)), "{welcome:?}");
    assert_eq!(welcome.session_id.unwrap().as_str(), session);
    let three = resumed.next().await;
    assert_eq!(three.event_seq.unwrap().get(), 3);
    let four = resumed.next().await;
    assert_eq!(four.event_seq.unwrap().get(), 4);
    let end = resumed.next().await;
    assert_eq!(end.event_seq.unwrap().get(), 5);
    assert_eq!(end.job_id.as_ref(), Some(&acc.job_id));
    assert_eq!(end.trace_id, acc.trace_id);
    let Message::JobError(e) = &end.message else { panic!("{end:?}") };
    assert_eq!(e.final_status, ErrorStatus::Error);
    assert_eq!(e.error().code, ErrorCode::INTERNAL_ERROR);
    assert!(e.error().retryable);
    assert!(e.error().message.contains("restarted"), "{}", e.error().message);

    let record = stores.jobs.get(&acc.job_id).await.unwrap().unwrap();
    assert_eq!(record.status, JobStatus::Error);
    assert_eq!(record.last_event_seq.get(), 5);
    assert!(record.ended_at_millis.is_some());

    // The restored session goes on: its next job continues the sequence.
    resumed.submit("once", json!({ "x": 1 }));
    let Message::JobAccepted(next) = resumed.next().await.message else { panic!() };
    let events = resumed.until_terminal(next.job_id.as_str()).await;
    assert_eq!(events.first().unwrap().event_seq.unwrap().get(), 6);
}

#[tokio::test]
async fn a_job_whose_terminal_was_logged_only_has_its_record_corrected() {
    let stores = Stores::default();
    let runs = Arc::new(AtomicUsize::new(0));
    let a = node(&stores, runs.clone());
    let mut client = Client::connect(&a);
    client.hello().await;
    client.submit("once", json!({ "x": 1 }));
    let Message::JobAccepted(acc) = client.next().await.message else { panic!() };
    let events = client.until_terminal(acc.job_id.as_str()).await;
    let terminal_seq = events.last().unwrap().event_seq.unwrap();
    // The crash came between the terminal append and the record update.
    stores
        .jobs
        .update(
            &acc.job_id,
            JobUpdate { status: JobStatus::Running, last_event_seq: terminal_seq, ended_at_millis: None },
        )
        .await
        .unwrap();
    let tail_before = stores.events.bounds_newest(client.session_id.as_deref().unwrap()).await;

    let b = node(&stores, runs);
    let report = b.recover().await.unwrap();
    assert!(report.orphaned.is_empty(), "{report:?}");
    assert_eq!(report.already_ended, vec![acc.job_id.clone()]);
    let record = stores.jobs.get(&acc.job_id).await.unwrap().unwrap();
    assert_eq!(record.status, JobStatus::Success);
    assert_eq!(
        stores.events.bounds_newest(client.session_id.as_deref().unwrap()).await,
        tail_before,
        "nothing appended"
    );
}

#[tokio::test]
async fn an_idempotent_resubmit_after_a_restart_replays_from_the_store_and_runs_nothing() {
    let stores = Stores::default();
    let runs = Arc::new(AtomicUsize::new(0));
    let a = node(&stores, runs.clone());
    let mut client = Client::connect(&a);
    client.hello().await;
    let submit = json!({ "agent": "once", "input": { "x": 7 }, "idempotency_key": "k-restart" });
    client.send("job.submit", submit.clone(), json!({}));
    let Message::JobAccepted(acc) = client.next().await.message else { panic!() };
    client.until_terminal(acc.job_id.as_str()).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    let b = node(&stores, runs.clone());
    b.recover().await.unwrap();
    let mut other = Client::connect(&b);
    other.hello_with(ALICE_TOO, Some(ALL_FEATURES)).await;
    other.send("job.submit", submit, json!({}));
    let Message::JobAccepted(again) = other.next().await.message else { panic!() };
    assert_eq!(again, acc, "the very same job.accepted payload");
    let end = other.next().await;
    let Message::JobResult(r) = &end.message else { panic!("{end:?}") };
    assert_eq!(r.result, Some(json!({ "x": 7 })));
    assert_eq!(end.job_id.as_ref(), Some(&acc.job_id));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the agent never runs again");
}

#[tokio::test]
async fn a_live_job_is_not_an_orphan() {
    let stores = Stores::default();
    let a = node(&stores, Arc::new(AtomicUsize::new(0)));
    let mut client = Client::connect(&a);
    client.hello().await;
    client.submit("hang", json!({ "n": 1 }));
    let Message::JobAccepted(acc) = client.next().await.message else { panic!() };
    client.next().await;
    let report = a.recover().await.unwrap();
    assert!(report.orphaned.is_empty(), "{report:?}");
    let record: Option<JobId> = stores.jobs.get(&acc.job_id).await.unwrap().map(|r| r.job_id);
    assert_eq!(record, Some(acc.job_id));
}

/// The newest seq of a session's log, for "nothing was appended" checks.
trait Newest {
    async fn bounds_newest(&self, session: &str) -> Option<u64>;
}

impl Newest for Arc<MemoryEventLog> {
    async fn bounds_newest(&self, session: &str) -> Option<u64> {
        use arcp_server::store::EventLog;
        let id = arcp_core::SessionId::parse(session).unwrap();
        self.bounds(&id).await.unwrap().map(|b| b.newest.get())
    }
}

#[tokio::test]
async fn a_restarted_runtime_purges_the_events_of_sessions_that_can_no_longer_resume() {
    use arcp_server::store::{EventLog, ResumeStore};
    let stores = Stores::default();
    let a = node(&stores, Arc::new(AtomicUsize::new(0)));
    let mut client = Client::connect(&a);
    client.hello().await;
    client.submit("once", json!({ "x": 1 }));
    let Message::JobAccepted(acc) = client.next().await.message else { panic!() };
    client.until_terminal(acc.job_id.as_str()).await;
    let session = arcp_core::SessionId::parse(client.session_id.as_deref().unwrap()).unwrap();
    drop(client);

    // A restarted node that never saw the session, a resume window later.
    let clock = Arc::new(arcp_core::ManualClock::new(arcp_core::Clock::now_millis(&arcp_core::SystemClock)));
    let verifier = StaticBearerVerifier::new().with_token(TOKEN, "alice");
    let b = Runtime::builder(verifier)
        .clock(SharedClock(clock.clone()))
        .event_log(stores.events.clone())
        .resume_store(stores.resumes.clone())
        .idempotency_store(stores.idempotency.clone())
        .job_store(stores.jobs.clone())
        .build();
    b.sweep().await;
    assert!(stores.events.bounds(&session).await.unwrap().is_some(), "still resumable: kept");
    clock.advance(601_000);
    b.sweep().await;
    assert_eq!(stores.events.bounds(&session).await.unwrap(), None, "expired: its events are purged");
    assert_eq!(stores.resumes.get(&session).await.unwrap(), None);
}

/// A clock the test keeps a handle on.
struct SharedClock(Arc<arcp_core::ManualClock>);

impl arcp_core::Clock for SharedClock {
    fn now_millis(&self) -> u64 {
        self.0.now_millis()
    }
}
