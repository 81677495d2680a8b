//! §6.3 resume (decisions 2, 4, 8, 15, 16): replay, token rotation, re-attached running jobs
//! with cancel authority, refusal when not covered, nothing lost at any cut point.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use arcp_core::ErrorCode;
use arcp_core::message::{ErrorStatus, Message};
use arcp_server::RuntimeConfig;
use arcp_server::store::memory::MemoryEventLog;
use proptest::prelude::*;
use serde_json::json;
use support::*;

#[tokio::test]
async fn s6_3_resume_replays_missed_events_and_reattaches_a_running_job() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let session = c.session_id.clone().unwrap();
    let token = c.resume_token.clone().unwrap();
    c.submit("count", json!({"n": 30, "delay_ms": 5}));
    let Message::JobAccepted(a) = c.next().await.message else { panic!() };
    let job = a.job_id.to_string();
    // Read a few events, then drop the transport mid-stream.
    for _ in 0..3 {
        c.next().await;
    }
    let seen = c.last_seq;
    drop(c);
    tokio::time::sleep(std::time::Duration::from_millis(40)).await;

    let mut c2 = Client::connect(&rt);
    let welcome = c2.resume(&session, &token, seen).await;
    let Message::SessionWelcome(w) = &welcome.message else { panic!("{welcome:?}") };
    assert_eq!(welcome.session_id.as_ref().unwrap().as_str(), session, "same session");
    assert_ne!(w.resume_token.expose(), token, "the token rotates on every welcome");
    // Every event after `seen` arrives exactly once (Client::next checks seq continuity),
    // replayed then live, ending with the result.
    let events = c2.until_terminal(&job).await;
    let Message::JobResult(r) = &events.last().unwrap().message else { panic!() };
    assert_eq!(r.result, Some(json!({"count": 30})));
    assert_eq!(c2.last_seq, 32, "status + 30 progress + result");
}

#[tokio::test]
async fn s6_3_resume_with_nothing_new_is_accepted() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.submit("echo", json!(1));
    let Message::JobAccepted(a) = c.next().await.message else { panic!() };
    c.until_terminal(a.job_id.as_str()).await;
    let (session, token, seen) = (c.session_id.clone().unwrap(), c.resume_token.clone().unwrap(), c.last_seq);
    drop(c);
    let mut c2 = Client::connect(&rt);
    let welcome = c2.resume(&session, &token, seen).await;
    assert!(matches!(welcome.message, Message::SessionWelcome(_)), "{welcome:?}");
    // And the session is live: a new job gets the next seq.
    c2.submit("echo", json!(2));
    let Message::JobAccepted(a) = c2.next().await.message else { panic!() };
    c2.until_terminal(a.job_id.as_str()).await;
    assert_eq!(c2.last_seq, seen + 3);
}

#[tokio::test]
async fn s6_3_session_resume_message_works_like_hello_resume() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let (session, token) = (c.session_id.clone().unwrap(), c.resume_token.clone().unwrap());
    drop(c);
    let mut c2 = Client::connect(&rt);
    c2.send(
        "session.resume",
        json!({
            "client": {"name": "t", "version": "0"}, "auth": {"scheme": "bearer", "token": TOKEN},
            "resume": {"session_id": session, "resume_token": token, "last_event_seq": 0}
        }),
        json!({}),
    );
    assert!(matches!(c2.next().await.message, Message::SessionWelcome(_)));
}

#[tokio::test]
async fn s6_3_wrong_token_old_token_and_other_principal_are_refused() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let (session, token) = (c.session_id.clone().unwrap(), c.resume_token.clone().unwrap());
    drop(c);
    let mut bad = Client::connect(&rt);
    let env = bad.resume(&session, "rt_bad", 0).await;
    let Message::SessionError(e) = &env.message else { panic!("{env:?}") };
    assert_eq!(e.code, ErrorCode::RESUME_WINDOW_EXPIRED);
    assert!(bad.closed().await);

    let mut ok = Client::connect(&rt);
    assert!(matches!(ok.resume(&session, &token, 0).await.message, Message::SessionWelcome(_)));
    drop(ok);
    let mut replay = Client::connect(&rt);
    let env = replay.resume(&session, &token, 0).await;
    assert!(
        matches!(&env.message, Message::SessionError(e) if e.code == ErrorCode::RESUME_WINDOW_EXPIRED),
        "a used token is dead: {env:?}"
    );

    let mut bob = Client::connect(&rt);
    bob.send(
        "session.hello",
        json!({
            "client": {"name": "t", "version": "0"}, "auth": {"scheme": "bearer", "token": OTHER_TOKEN},
            "resume": {"session_id": session, "resume_token": token, "last_event_seq": 0}
        }),
        json!({}),
    );
    assert!(matches!(bob.next().await.message, Message::SessionError(e) if e.code == ErrorCode::RESUME_WINDOW_EXPIRED));
}

#[tokio::test]
async fn s6_3_cursor_beyond_the_newest_event_is_refused() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.submit("stream", json!({"n": 5}));
    let Message::JobAccepted(a) = c.next().await.message else { panic!() };
    c.until_terminal(a.job_id.as_str()).await;
    let (session, token) = (c.session_id.clone().unwrap(), c.resume_token.clone().unwrap());
    drop(c);
    let mut c2 = Client::connect(&rt);
    let env = c2.resume(&session, &token, 999).await;
    let Message::SessionError(e) = &env.message else { panic!("{env:?}") };
    assert_eq!(e.code, ErrorCode::INVALID_REQUEST);
    assert_eq!(e.details.as_ref().unwrap()["newest_event_seq"], 7);
    // The refusal did not burn the token: a correct cursor still resumes.
    let mut c3 = Client::connect(&rt);
    assert!(matches!(c3.resume(&session, &token, 7).await.message, Message::SessionWelcome(_)));
}

#[tokio::test]
async fn s6_3_purged_events_make_an_old_cursor_expire() {
    use std::sync::Arc;

    use arcp_server::store::{EventLog, LogBounds, StoreError, StoredEvent};
    use async_trait::async_trait;

    /// Wraps the memory log so the test can purge through a shared handle.
    struct Shared(Arc<MemoryEventLog>);
    #[async_trait]
    impl EventLog for Shared {
        async fn append(&self, s: &arcp_core::SessionId, e: StoredEvent) -> Result<(), StoreError> {
            self.0.append(s, e).await
        }
        async fn read_since(
            &self,
            s: &arcp_core::SessionId,
            a: arcp_core::EventSeq,
            l: usize,
        ) -> Result<Vec<StoredEvent>, StoreError> {
            self.0.read_since(s, a, l).await
        }
        async fn bounds(&self, s: &arcp_core::SessionId) -> Result<Option<LogBounds>, StoreError> {
            self.0.bounds(s).await
        }
        async fn purge(&self, s: &arcp_core::SessionId, u: Option<arcp_core::EventSeq>) -> Result<(), StoreError> {
            self.0.purge(s, u).await
        }
    }
    let log = Arc::new(MemoryEventLog::default());
    let verifier = arcp_server::StaticBearerVerifier::new().with_token(TOKEN, "alice");
    let rt = arcp_server::Runtime::builder(verifier).agents(registry()).event_log(Shared(log.clone())).build();
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.submit("stream", json!({"n": 5}));
    let Message::JobAccepted(a) = c.next().await.message else { panic!() };
    c.until_terminal(a.job_id.as_str()).await;
    let (session, token) = (c.session_id.clone().unwrap(), c.resume_token.clone().unwrap());
    drop(c);
    let sid = arcp_core::SessionId::parse(&session).unwrap();
    log.purge(&sid, arcp_core::EventSeq::new(4)).await.unwrap();
    let mut c2 = Client::connect(&rt);
    let env = c2.resume(&session, &token, 2).await;
    let Message::SessionError(e) = &env.message else { panic!("{env:?}") };
    assert_eq!(e.code, ErrorCode::RESUME_WINDOW_EXPIRED);
    assert_eq!(e.details.as_ref().unwrap()["oldest_event_seq"], 5, "never a silent truncation");
    // A cursor the log still covers works.
    let mut c3 = Client::connect(&rt);
    let welcome = c3.resume(&session, &token, 4).await;
    assert!(matches!(welcome.message, Message::SessionWelcome(_)), "{welcome:?}");
    let mut kinds = Vec::new();
    for _ in 5..=7 {
        kinds.push(kind(&c3.next().await));
    }
    assert_eq!(kinds, vec!["event:log", "event:log", "job.result"]);
}

#[tokio::test]
async fn s7_4_resumed_session_keeps_cancel_authority() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let (session, token) = (c.session_id.clone().unwrap(), c.resume_token.clone().unwrap());
    c.submit("sleep", json!({}));
    let Message::JobAccepted(a) = c.next().await.message else { panic!() };
    c.next().await; // status running
    let seen = c.last_seq;
    drop(c);
    let mut c2 = Client::connect(&rt);
    c2.resume(&session, &token, seen).await;
    c2.send("job.cancel", json!({"reason": "user"}), json!({"job_id": a.job_id.as_str()}));
    let cancelled = c2.next().await;
    assert!(matches!(cancelled.message, Message::JobCancelled(_)), "{cancelled:?}");
    let end = c2.next().await;
    let Message::JobError(e) = &end.message else { panic!("{end:?}") };
    assert_eq!((e.final_status, e.code.clone()), (ErrorStatus::Cancelled, ErrorCode::CANCELLED));
}

#[tokio::test]
async fn s6_7_bye_never_cancels_jobs() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let (session, token) = (c.session_id.clone().unwrap(), c.resume_token.clone().unwrap());
    c.submit("count", json!({"n": 5, "delay_ms": 10}));
    let Message::JobAccepted(a) = c.next().await.message else { panic!() };
    c.send("session.bye", json!({"reason": "later"}), json!({}));
    assert!(c.closed().await);
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let mut c2 = Client::connect(&rt);
    c2.resume(&session, &token, 0).await;
    let events = c2.until_terminal(a.job_id.as_str()).await;
    assert!(matches!(events.last().unwrap().message, Message::JobResult(_)), "the job finished while detached");
}

/// A job streaming 10 000 events, its transport cut at an arbitrary point and resumed with
/// the last seq the client saw: every event arrives exactly once, in order.
fn cut_and_resume(cut: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        const N: u64 = 10_000;
        // The client negotiates `ack` but never acks: without this, one back-pressure
        // `status` event would join the stream after 1000 events (tests/ack.rs covers it).
        let config = RuntimeConfig { back_pressure_threshold: 0, ..RuntimeConfig::default() };
        let verifier = arcp_server::StaticBearerVerifier::new().with_token(TOKEN, "alice");
        let rt = arcp_server::Runtime::builder(verifier)
            .config(config)
            .agents(registry())
            .event_log(MemoryEventLog::with_capacity(20_000))
            .build();
        let mut c = Client::connect(&rt);
        c.hello().await;
        let (session, token) = (c.session_id.clone().unwrap(), c.resume_token.clone().unwrap());
        c.submit("stream", json!({"n": N, "yield_every": 97}));
        let Message::JobAccepted(a) = c.next().await.message else { panic!() };
        let job = a.job_id.to_string();
        let mut seqs = BTreeSet::new();
        let mut lines = Vec::new();
        let mut finished = false;
        for _ in 0..cut {
            let env = c.next().await;
            seqs.insert(env.event_seq.unwrap().get());
            if let Message::JobEvent(e) = &env.message
                && let arcp_core::event::EventBody::Log(l) = &e.body
            {
                lines.push(l.message.clone());
            }
            if matches!(env.message, Message::JobResult(_)) {
                finished = true;
                break;
            }
        }
        let seen = c.last_seq;
        drop(c);
        if !finished {
            let mut c2 = Client::connect(&rt);
            c2.resume(&session, &token, seen).await;
            loop {
                let env = c2.next().await;
                assert!(seqs.insert(env.event_seq.unwrap().get()), "duplicate event_seq");
                if let Message::JobEvent(e) = &env.message
                    && let arcp_core::event::EventBody::Log(l) = &e.body
                {
                    lines.push(l.message.clone());
                }
                if env.job_id.as_ref().is_some_and(|j| j.as_str() == job)
                    && matches!(env.message, Message::JobResult(_))
                {
                    break;
                }
            }
        }
        assert_eq!(seqs.len() as u64, N + 2, "status + N lines + result, each exactly once");
        let expected: Vec<String> = (1..=N).map(|i| format!("line {i}")).collect();
        assert_eq!(lines, expected, "in order");
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn s8_3_a_cut_at_any_point_then_resume_loses_and_duplicates_nothing(cut in 0usize..10_003) {
        cut_and_resume(cut);
    }
}

/// Decision 8 under a race: the old connection's detach (which refreshes the record's expiry)
/// runs while a resume on a new connection rotates the token; the old token must stay dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s6_3_a_detach_racing_a_resume_never_restores_the_old_token() {
    let rt = runtime();
    for round in 0..40 {
        let mut a = Client::connect(&rt);
        a.hello().await;
        let (session, old) = (a.session_id.clone().unwrap(), a.resume_token.clone().unwrap());
        // `a` drops just as `b` resumes: a's detach (which refreshes the record's expiry)
        // runs concurrently with the rotation.
        let mut b = Client::connect(&rt);
        drop(a);
        let w = b.resume(&session, &old, 0).await;
        let Message::SessionWelcome(w) = &w.message else { panic!("round {round}: {w:?}") };
        let new = w.resume_token.expose().to_owned();
        drop(b);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let mut c = Client::connect(&rt);
        let refused = c.resume(&session, &old, 0).await;
        assert!(matches!(refused.message, Message::SessionError(_)), "round {round}: the old token came back");
        let mut d = Client::connect(&rt);
        let ok = d.resume(&session, &new, 0).await;
        assert!(matches!(ok.message, Message::SessionWelcome(_)), "round {round}: the new token died: {ok:?}");
    }
}
