//! §7: submit → accepted → running → events → result | error; versions; timeouts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use arcp_core::ErrorCode;
use arcp_core::event::EventBody;
use arcp_core::message::{ErrorStatus, Message};
use serde_json::json;
use support::*;

#[tokio::test]
async fn s7_1_submit_runs_to_a_result() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.submit("echo", json!({"hi": [1, 2]}));
    let accepted = c.next().await;
    let Message::JobAccepted(a) = &accepted.message else { panic!("{accepted:?}") };
    assert_eq!(a.agent.as_deref(), Some("echo"));
    assert!(a.trace_id.is_some(), "a trace_id is minted when absent");
    assert_eq!(accepted.trace_id, a.trace_id);
    assert_eq!(accepted.event_seq, None);
    let job = a.job_id.to_string();
    let events = c.until_terminal(&job).await;
    let kinds: Vec<String> = events.iter().map(kind).collect();
    assert_eq!(kinds, vec!["event:status", "event:log", "job.result"]);
    let Message::JobResult(r) = &events[2].message else { panic!() };
    assert_eq!(r.result, Some(json!({"hi": [1, 2]})));
    assert!(events.iter().all(|e| e.trace_id == a.trace_id));
}

#[tokio::test]
async fn s7_1_client_trace_id_is_kept() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.send("job.submit", json!({"agent": "echo", "input": 1}), json!({"trace_id": "c4abe905140b6d065d7399007ac7bdc3"}));
    let Message::JobAccepted(a) = c.next().await.message else { panic!() };
    assert_eq!(a.trace_id.unwrap().as_str(), "c4abe905140b6d065d7399007ac7bdc3");
}

#[tokio::test]
async fn s7_5_versions_resolve_and_unknown_ones_are_refused() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.submit("summarizer", json!({}));
    let Message::JobAccepted(a) = c.next().await.message else { panic!() };
    assert_eq!(a.agent.as_deref(), Some("summarizer@2.0.0"));
    let ev = c.until_terminal(a.job_id.as_str()).await;
    let Message::JobResult(r) = &ev.last().unwrap().message else { panic!() };
    assert_eq!(r.result, Some(json!({"v": "2.0.0"})));
    c.submit("summarizer@1.0.0", json!({}));
    let Message::JobAccepted(a) = c.next().await.message else { panic!() };
    assert_eq!(a.agent.as_deref(), Some("summarizer@1.0.0"));
    c.until_terminal(a.job_id.as_str()).await;
    let req = c.submit("summarizer@9.9.9", json!({}));
    let env = c.next().await;
    let Message::JobError(e) = &env.message else { panic!("{env:?}") };
    assert_eq!(e.code, ErrorCode::AGENT_VERSION_NOT_AVAILABLE);
    assert!(!e.retryable);
    assert_eq!(e.details.as_ref().unwrap()["request_id"], req);
    c.submit("nosuch", json!({}));
    let Message::JobError(e) = c.next().await.message else { panic!() };
    assert_eq!(e.code, ErrorCode::AGENT_NOT_AVAILABLE);
    c.submit("Bad Name", json!({}));
    let Message::JobError(e) = c.next().await.message else { panic!() };
    assert_eq!(e.code, ErrorCode::INVALID_REQUEST);
    // The session is still usable after refusals.
    c.submit("echo", json!(1));
    assert!(matches!(c.next().await.message, Message::JobAccepted(_)));
}

#[tokio::test]
async fn s7_1_malformed_submit_is_a_job_error_not_a_session_error() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.send("job.submit", json!({"input": 1}), json!({}));
    let Message::JobError(e) = c.next().await.message else { panic!() };
    assert_eq!(e.code, ErrorCode::INVALID_REQUEST);
    c.submit("echo", json!(1));
    assert!(matches!(c.next().await.message, Message::JobAccepted(_)));
}

#[tokio::test]
async fn s7_3_agent_errors_keep_their_code() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.submit("fail", json!(null));
    let Message::JobAccepted(a) = c.next().await.message else { panic!() };
    let ev = c.until_terminal(a.job_id.as_str()).await;
    let Message::JobError(e) = &ev.last().unwrap().message else { panic!() };
    assert_eq!((e.final_status, e.code.clone()), (ErrorStatus::Error, ErrorCode::PERMISSION_DENIED));
    assert_eq!(e.details.as_ref().unwrap()["why"], "test");
}

#[tokio::test(start_paused = true)]
async fn s7_3_max_runtime_sec_times_out() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.send("job.submit", json!({"agent": "stubborn", "input": null, "max_runtime_sec": 2}), json!({}));
    let Message::JobAccepted(a) = c.next().await.message else { panic!() };
    let ev = c.until_terminal(a.job_id.as_str()).await;
    let Message::JobError(e) = &ev.last().unwrap().message else { panic!() };
    assert_eq!((e.final_status, e.code.clone(), e.retryable), (ErrorStatus::TimedOut, ErrorCode::TIMEOUT, true));
}

#[tokio::test]
async fn s8_2_progress_is_only_sent_to_sessions_that_negotiated_it() {
    let rt = runtime();
    let mut with = Client::connect(&rt);
    with.hello().await;
    with.submit("count", json!({"n": 3}));
    let Message::JobAccepted(a) = with.next().await.message else { panic!() };
    let ev = with.until_terminal(a.job_id.as_str()).await;
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(&e.message, Message::JobEvent(j) if matches!(j.body, EventBody::Progress(_))))
            .count(),
        3
    );
    let mut without = Client::connect(&rt);
    without.hello_with(TOKEN, Some(&["agent_versions"])).await;
    without.submit("count", json!({"n": 3}));
    let Message::JobAccepted(a) = without.next().await.message else { panic!() };
    let ev = without.until_terminal(a.job_id.as_str()).await;
    let kinds: Vec<String> = ev.iter().map(kind).collect();
    assert_eq!(kinds, vec!["event:status", "job.result"], "no progress, and the job still succeeds");
}

#[tokio::test]
async fn s8_3_event_seq_is_session_scoped_and_gap_free_across_jobs() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    for _ in 0..3 {
        c.submit("stream", json!({"n": 20}));
    }
    let mut done = 0;
    while done < 3 {
        // Client::next asserts that every event_seq is the previous one plus one.
        if matches!(c.next().await.message, Message::JobResult(_)) {
            done += 1;
        }
    }
    assert_eq!(c.last_seq, 3 * 22);
}

#[tokio::test]
async fn s14_a_full_event_log_is_a_session_error_never_a_silent_drop() {
    let verifier = arcp_server::StaticBearerVerifier::new().with_token(TOKEN, "alice");
    let rt = arcp_server::Runtime::builder(verifier)
        .agents(registry())
        .event_log(arcp_server::store::memory::MemoryEventLog::with_capacity(10))
        .build();
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.submit("stream", json!({"n": 50}));
    let Message::JobAccepted(_) = c.next().await.message else { panic!() };
    let mut last = None;
    while let Ok(Some(frame)) = tokio::time::timeout(std::time::Duration::from_secs(5), c.t.recv()).await {
        last = Some(frame);
    }
    let last = last.expect("frames");
    assert!(last.contains("session.error") && last.contains("INTERNAL_ERROR"), "{last}");
    assert!(last.contains("\"failed_event_seq\":11"), "{last}");
}
