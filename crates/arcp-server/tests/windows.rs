//! Windows measured on the runtime's clock (a manual one here): a detached session resumes
//! within `resume_window` and not after (§6.3), and an idempotency key is free again once its
//! record's window has passed (§7.2, decision 5). Both defaults are the documented ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use arcp_core::message::Message;
use arcp_core::{Clock, ErrorCode, ManualClock};
use arcp_server::{Runtime, RuntimeConfig, StaticBearerVerifier};
use serde_json::json;
use support::*;

/// A manual clock the test keeps a handle on.
struct Shared(Arc<ManualClock>);

impl Clock for Shared {
    fn now_millis(&self) -> u64 {
        self.0.now_millis()
    }
}

fn runtime_at(clock: &Arc<ManualClock>) -> Runtime {
    let verifier = StaticBearerVerifier::new().with_token(TOKEN, "alice").with_token(ALICE_TOO, "alice");
    Runtime::builder(verifier).agents(registry()).clock(Shared(clock.clone())).build()
}

/// Lets the runtime notice a dropped connection (it refreshes the resume record's expiry
/// from the clock, which does not move meanwhile).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn s6_3_a_session_resumes_within_its_window_and_not_after() {
    let window = RuntimeConfig::default().resume_window;
    assert_eq!(window, Duration::from_secs(600), "the documented default");
    let window = u64::try_from(window.as_millis()).unwrap();
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let rt = runtime_at(&clock);
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.submit("echo", json!(1));
    let accepted = c.next().await;
    c.until_terminal(&job_id_of(&accepted)).await;
    let (session, token, seen) = (c.session_id.clone().unwrap(), c.resume_token.clone().unwrap(), c.last_seq);
    drop(c);
    settle().await;

    // One second before the window ends (and after a sweep): still resumable.
    clock.advance(window - 1_000);
    rt.sweep().await;
    let mut again = Client::connect(&rt);
    let welcome = again.resume(&session, &token, seen).await;
    let Message::SessionWelcome(w) = &welcome.message else { panic!("within the window: {welcome:?}") };
    let token = w.resume_token.expose().to_owned();
    drop(again);
    settle().await;

    // The window counts from the last message: one second past it, the session is gone.
    clock.advance(window + 1_000);
    rt.sweep().await;
    let mut late = Client::connect(&rt);
    let refused = late.resume(&session, &token, seen).await;
    let Message::SessionError(e) = &refused.message else { panic!("past the window: {refused:?}") };
    assert_eq!(e.code, ErrorCode::RESUME_WINDOW_EXPIRED);
    assert!(late.closed().await);
}

#[tokio::test]
async fn s7_2_an_idempotency_key_is_free_again_after_its_window() {
    let ttl = RuntimeConfig::default().idempotency_ttl;
    assert_eq!(ttl, Duration::from_secs(24 * 3600), "the documented default");
    let ttl = u64::try_from(ttl.as_millis()).unwrap();
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let rt = runtime_at(&clock);
    let mut c = Client::connect(&rt);
    c.hello().await;
    let submit = json!({"agent": "echo", "input": {"k": 1}, "idempotency_key": "k-window"});
    c.send("job.submit", submit.clone(), json!({}));
    let Message::JobAccepted(first) = c.next().await.message else { panic!() };
    c.until_terminal(first.job_id.as_str()).await;

    // Within the window (from another session of the principal): the same job, which does
    // not run again; its terminal envelope is sent again.
    clock.advance(ttl - 1_000);
    let mut other = Client::connect(&rt);
    other.hello_with(ALICE_TOO, Some(ALL_FEATURES)).await;
    other.send("job.submit", submit.clone(), json!({}));
    let Message::JobAccepted(again) = other.next().await.message else { panic!() };
    assert_eq!(again, first);
    let replayed = other.until_terminal(first.job_id.as_str()).await;
    assert_eq!(replayed.len(), 1, "only the terminal envelope again: {replayed:?}");

    // Past it: the key names nothing, and the submit starts a new job.
    clock.advance(2_000);
    rt.sweep().await;
    c.send("job.submit", submit, json!({}));
    let Message::JobAccepted(fresh) = c.next().await.message else { panic!() };
    assert_ne!(fresh.job_id, first.job_id);
    let events = c.until_terminal(fresh.job_id.as_str()).await;
    assert!(matches!(events.last().unwrap().message, Message::JobResult(_)));
    assert!(events.len() > 1, "the new job really runs: {events:?}");
}
