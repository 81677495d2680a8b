//! Two runtimes ("nodes") on one shared event log that announces appends (what the
//! PostgreSQL store does with LISTEN/NOTIFY): a session resumed on node B receives the live
//! events of a job still running on node A, and both nodes appending to one session keep a
//! single gap-free sequence (a taken `event_seq` is a conflict: the node catches up and
//! retries).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use arcp_core::message::Message;
use arcp_core::{EventSeq, SessionId};
use arcp_server::store::memory::{MemoryIdempotencyStore, MemoryJobStore, MemoryResumeStore};
use arcp_server::store::{AppendNotice, EventLog, LogBounds, StoreError, StoredEvent};
use arcp_server::{AgentRegistry, JobContext, Runtime, StaticBearerVerifier};
use async_trait::async_trait;
use serde_json::{Value, json};
use support::*;
use tokio::sync::broadcast;

/// A memory log that announces every append, like a database-backed log shared by nodes.
struct AnnouncingLog {
    inner: arcp_server::store::memory::MemoryEventLog,
    notices: broadcast::Sender<AppendNotice>,
}

#[async_trait]
impl EventLog for AnnouncingLog {
    async fn append(&self, session: &SessionId, event: StoredEvent) -> Result<(), StoreError> {
        let seq = event.seq;
        self.inner.append(session, event).await?;
        let _ = self.notices.send(AppendNotice::Appended { session: session.clone(), seq });
        Ok(())
    }
    async fn read_since(
        &self,
        session: &SessionId,
        after: EventSeq,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.inner.read_since(session, after, limit).await
    }
    async fn bounds(&self, session: &SessionId) -> Result<Option<LogBounds>, StoreError> {
        self.inner.bounds(session).await
    }
    async fn purge(&self, session: &SessionId, up_to: Option<EventSeq>) -> Result<(), StoreError> {
        self.inner.purge(session, up_to).await
    }
    fn watch(&self) -> Option<broadcast::Receiver<AppendNotice>> {
        Some(self.notices.subscribe())
    }
}

struct Shared {
    log: Arc<AnnouncingLog>,
    resumes: Arc<MemoryResumeStore>,
    idempotency: Arc<MemoryIdempotencyStore>,
    jobs: Arc<MemoryJobStore>,
}

fn shared() -> Shared {
    Shared {
        log: Arc::new(AnnouncingLog { inner: Default::default(), notices: broadcast::channel(4096).0 }),
        resumes: Default::default(),
        idempotency: Default::default(),
        jobs: Default::default(),
    }
}

fn node(s: &Shared, name: &str) -> Runtime {
    let mut reg = AgentRegistry::new();
    reg.register("tick", |ctx: JobContext, input: Value| async move {
        let n = input["n"].as_u64().unwrap_or(10);
        for i in 0..n {
            ctx.info(format!("tick {i}")).await?;
            tokio::time::sleep(Duration::from_millis(input["every_ms"].as_u64().unwrap_or(10))).await;
        }
        Ok(json!({ "ticks": n }))
    })
    .unwrap();
    let verifier = StaticBearerVerifier::new().with_token(TOKEN, "alice").with_token(ALICE_TOO, "alice");
    let config = arcp_server::RuntimeConfig { node_id: name.into(), ..Default::default() };
    Runtime::builder(verifier)
        .config(config)
        .agents(reg)
        .event_log(s.log.clone())
        .resume_store(s.resumes.clone())
        .idempotency_store(s.idempotency.clone())
        .job_store(s.jobs.clone())
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_resumed_on_another_node_streams_the_running_job_live() {
    let s = shared();
    let (a, b) = (node(&s, "a"), node(&s, "b"));
    let mut client = Client::connect(&a);
    client.hello().await;
    client.submit("tick", json!({ "n": 40, "every_ms": 10 }));
    let Message::JobAccepted(acc) = client.next().await.message else { panic!() };
    for _ in 0..3 {
        client.next().await;
    }
    let (session, token, seen) =
        (client.session_id.clone().unwrap(), client.resume_token.clone().unwrap(), client.last_seq);
    drop(client);

    // Resume on node B: replay, then node A's live events, gap-free, to the result.
    let mut resumed = Client::connect(&b);
    let welcome = resumed.resume(&session, &token, seen).await;
    assert!(matches!(welcome.message, Message::SessionWelcome(_)), "{welcome:?}");
    let events = resumed.until_terminal(acc.job_id.as_str()).await;
    let Message::JobResult(r) = &events.last().unwrap().message else { panic!("{:?}", events.last()) };
    assert_eq!(r.result, Some(json!({ "ticks": 40 })));
    // status running (1) + 40 ticks + result = 42 envelopes.
    assert_eq!(resumed.last_seq, 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_appending_to_one_session_keep_one_gap_free_sequence() {
    let s = shared();
    let (a, b) = (node(&s, "a"), node(&s, "b"));
    let mut client = Client::connect(&a);
    client.hello().await;
    client.submit("tick", json!({ "n": 30, "every_ms": 5 }));
    let Message::JobAccepted(first) = client.next().await.message else { panic!() };
    client.next().await;
    let (session, token, seen) =
        (client.session_id.clone().unwrap(), client.resume_token.clone().unwrap(), client.last_seq);
    drop(client);

    let mut resumed = Client::connect(&b);
    resumed.resume(&session, &token, seen).await;
    // A second job on node B, in the same session, while node A's job still appends.
    resumed.submit("tick", json!({ "n": 30, "every_ms": 5 }));
    let mut done = std::collections::HashSet::new();
    let mut second = None;
    while done.len() < 2 {
        let env = resumed.next().await; // asserts the sequence is gap-free
        match &env.message {
            Message::JobAccepted(acc) => second = Some(acc.job_id.clone()),
            Message::JobResult(_) | Message::JobError(_) => {
                done.insert(env.job_id.clone().unwrap());
            }
            _ => {}
        }
    }
    assert!(done.contains(&first.job_id));
    assert!(done.contains(&second.unwrap()));
    // Both jobs: running + 30 ticks + result = 32 each, plus the 2 seen before the drop.
    assert_eq!(resumed.last_seq, 64);
    let bounds = s.log.bounds(&SessionId::parse(&session).unwrap()).await.unwrap().unwrap();
    assert_eq!(bounds.newest.get(), 64);
}
