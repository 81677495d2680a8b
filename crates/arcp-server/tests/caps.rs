//! §14 resource caps: buffered events and bytes per session (freed by acks first, then the
//! session is terminated), concurrent jobs per session, and open sessions per principal. Each
//! is a typed `INTERNAL_ERROR` (`retryable: true`), never a silent drop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use arcp_core::ErrorCode;
use arcp_core::message::Message;
use arcp_server::RuntimeConfig;
use serde_json::json;
use support::{ALICE_TOO, Client, OTHER_TOKEN, TOKEN, runtime_with};

fn assert_cap_error(env: &arcp_core::Envelope) -> serde_json::Value {
    let Message::SessionError(e) = &env.message else { panic!("expected session.error, got {env:?}") };
    assert_eq!((e.code.clone(), e.retryable), (ErrorCode::INTERNAL_ERROR, true));
    e.details.clone().unwrap_or_default()
}

#[tokio::test]
async fn s14_the_event_buffer_cap_terminates_the_session_and_cancels_its_jobs() {
    let rt = runtime_with(RuntimeConfig { max_buffered_events: 20, ..RuntimeConfig::default() });
    let mut owner = Client::connect(&rt);
    owner.hello().await;
    let (session, token) = (owner.session_id.clone().unwrap(), owner.resume_token.clone().unwrap());
    let submit = json!({"agent": "sleep", "input": {}, "idempotency_key": "cap-sleeper"});
    owner.send("job.submit", submit.clone(), json!({}));
    let Message::JobAccepted(sleeper) = owner.next().await.message else { panic!() };
    owner.next().await; // status running
    // Another session of the principal observes the sleeper through an identical resubmit.
    let mut observer = Client::connect(&rt);
    observer.hello_with(ALICE_TOO, None).await;
    observer.send("job.submit", submit, json!({}));
    assert!(matches!(observer.next().await.message, Message::JobAccepted(_)));

    owner.submit("stream", json!({"n": 100}));
    assert!(matches!(owner.next().await.message, Message::JobAccepted(_)));
    let end = loop {
        let env = owner.next().await;
        if !matches!(env.message, Message::JobEvent(_)) {
            break env;
        }
    };
    let details = assert_cap_error(&end);
    assert_eq!(details["failed_event_seq"], 21, "the 21st event did not fit: {details}");
    assert_eq!(owner.last_seq, 20, "everything before it was delivered");
    assert!(owner.closed().await);
    drop(owner);

    let terminal = observer.until_terminal(sleeper.job_id.as_str()).await;
    let Message::JobError(e) = &terminal.last().unwrap().message else { panic!() };
    assert_eq!(e.code, ErrorCode::CANCELLED, "the terminated session's jobs are cancelled");

    let mut again = Client::connect(&rt);
    let refused = again.resume(&session, &token, 20).await;
    let Message::SessionError(e) = &refused.message else { panic!("{refused:?}") };
    assert_eq!(e.code, ErrorCode::RESUME_WINDOW_EXPIRED, "a terminated session cannot be resumed");
}

#[tokio::test(start_paused = true)]
async fn s14_acknowledged_events_make_room_under_the_event_cap() {
    let rt = runtime_with(RuntimeConfig { max_buffered_events: 20, ..RuntimeConfig::default() });
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.submit("count", json!({"n": 60, "delay_ms": 5}));
    let Message::JobAccepted(a) = c.next().await.message else { panic!() };
    loop {
        let env = c.next().await;
        let seq = env.event_seq.unwrap().get();
        c.send("session.ack", json!({"last_processed_seq": seq}), json!({}));
        if let Message::JobResult(r) = &env.message {
            assert_eq!(env.job_id.unwrap(), a.job_id);
            assert_eq!(r.result.as_ref().unwrap()["count"], 60);
            break;
        }
    }
    assert_eq!(c.last_seq, 62, "three times the cap went through");
}

#[tokio::test]
async fn s14_the_byte_cap_is_a_typed_error_too() {
    let rt = runtime_with(RuntimeConfig { max_buffered_bytes: 4096, ..RuntimeConfig::default() });
    let mut c = Client::connect(&rt);
    c.hello().await;
    let big = "x".repeat(1500);
    let mut end = None;
    for _ in 0..4 {
        c.submit("echo", json!(big));
        let env = c.next().await;
        if !matches!(env.message, Message::JobAccepted(_)) {
            end = Some(env);
            break;
        }
        let a = env.job_id.unwrap();
        let mut frames = Vec::new();
        loop {
            let env = c.next().await;
            let done = env.job_id.as_ref() == Some(&a) && matches!(env.message, Message::JobResult(_))
                || matches!(env.message, Message::SessionError(_));
            frames.push(env);
            if done {
                break;
            }
        }
        if let Some(e) = frames.into_iter().find(|e| matches!(e.message, Message::SessionError(_))) {
            end = Some(e);
            break;
        }
    }
    let end = end.expect("16 KiB of results cannot fit in 4 KiB");
    let details = assert_cap_error(&end);
    assert_eq!(details["cap"], "session_buffer");
    assert!(c.closed().await);
}

#[tokio::test]
async fn s14_concurrent_jobs_per_session_are_capped_with_a_request_error() {
    let rt = runtime_with(RuntimeConfig { max_concurrent_jobs: 2, ..RuntimeConfig::default() });
    let mut c = Client::connect(&rt);
    c.hello().await;
    let mut jobs = Vec::new();
    for _ in 0..2 {
        c.submit("sleep", json!({}));
        let Message::JobAccepted(a) = c.next().await.message else { panic!() };
        c.next().await; // status running
        jobs.push(a.job_id);
    }
    let request = c.submit("sleep", json!({}));
    let refused = c.next().await;
    let Message::JobError(e) = &refused.message else { panic!("{refused:?}") };
    assert_eq!((e.code.clone(), e.retryable), (ErrorCode::INTERNAL_ERROR, true));
    assert_eq!(e.details.as_ref().unwrap()["request_id"], request);
    assert!(!jobs.contains(refused.job_id.as_ref().unwrap()), "a fresh job_id names no job");
    // Room again once one ends.
    c.send("job.cancel", json!({}), json!({"job_id": jobs[0]}));
    c.until_terminal(jobs[0].as_str()).await;
    c.submit("echo", json!(1));
    assert!(matches!(c.next().await.message, Message::JobAccepted(_)));
}

/// Opens a session for `token`; `Ok` with the client, or `Err` with the refusal.
async fn try_open(rt: &arcp_server::Runtime, token: &str) -> Result<Client, arcp_core::Envelope> {
    let mut c = Client::connect(rt);
    let w = c.hello_with(token, Some(&["progress"])).await;
    if matches!(w.message, Message::SessionWelcome(_)) { Ok(c) } else { Err(w) }
}

#[tokio::test(start_paused = true)]
async fn s14_open_sessions_per_principal_are_capped_but_resume_is_not() {
    let rt = runtime_with(RuntimeConfig { max_sessions_per_principal: 2, ..RuntimeConfig::default() });
    let a1 = try_open(&rt, TOKEN).await.unwrap();
    let _a2 = try_open(&rt, ALICE_TOO).await.unwrap();
    let refused = try_open(&rt, TOKEN).await.err().expect("a third open session is refused");
    let details = assert_cap_error(&refused);
    assert_eq!((details["cap"].as_str(), details["limit"].as_u64()), (Some("max_sessions_per_principal"), Some(2)));
    let _b = try_open(&rt, OTHER_TOKEN).await.expect("other principals are not affected");

    // A dropped session no longer counts (once the runtime has noticed the drop)...
    let (s1, t1) = (a1.session_id.clone().unwrap(), a1.resume_token.clone().unwrap());
    drop(a1);
    let mut a3 = None;
    for _ in 0..100 {
        if let Ok(c) = try_open(&rt, TOKEN).await {
            a3 = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _a3 = a3.expect("room after a disconnect");
    // ...and resuming it is always allowed, even at the cap.
    let mut back = Client::connect(&rt);
    let w = back.resume(&s1, &t1, 0).await;
    assert!(matches!(w.message, Message::SessionWelcome(_)), "{w:?}");
    assert!(try_open(&rt, TOKEN).await.is_err());
}
