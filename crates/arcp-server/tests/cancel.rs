//! §7.4 cancel (decision 11): owner only, `job.cancelled` then `job.error CANCELLED`, grace
//! timer, refusals for other sessions and unknown jobs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use arcp_core::ErrorCode;
use arcp_core::message::{ErrorStatus, Message};
use arcp_server::RuntimeConfig;
use serde_json::json;
use support::*;

async fn start_sleep(c: &mut Client, agent: &str) -> String {
    c.submit(agent, json!({}));
    let Message::JobAccepted(a) = c.next().await.message else { panic!() };
    c.next().await; // status running
    a.job_id.to_string()
}

#[tokio::test]
async fn s7_4_cancel_acks_then_ends_cancelled() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let job = start_sleep(&mut c, "sleep").await;
    c.send("job.cancel", json!({"reason": "user"}), json!({"job_id": job}));
    let ack = c.next().await;
    let Message::JobCancelled(ack_payload) = &ack.message else { panic!("{ack:?}") };
    assert_eq!(ack_payload.reason.as_deref(), Some("user"));
    assert_eq!(ack.event_seq, None);
    let end = c.next().await;
    let Message::JobError(e) = &end.message else { panic!("{end:?}") };
    assert_eq!((e.final_status, e.code.clone(), e.retryable), (ErrorStatus::Cancelled, ErrorCode::CANCELLED, false));
    // A second cancel of a finished job is ignored; the session stays usable.
    c.send("job.cancel", json!({}), json!({"job_id": job}));
    c.submit("echo", json!(1));
    assert!(matches!(c.next().await.message, Message::JobAccepted(_)));
}

#[tokio::test(start_paused = true)]
async fn s7_4_an_agent_ignoring_cancel_is_dropped_after_the_grace_period() {
    let config = RuntimeConfig { cancel_grace: Duration::from_secs(3), ..RuntimeConfig::default() };
    let rt = runtime_with(config);
    let mut c = Client::connect(&rt);
    c.hello().await;
    let job = start_sleep(&mut c, "stubborn").await;
    c.send("job.cancel", json!({}), json!({"job_id": job}));
    assert!(matches!(c.next().await.message, Message::JobCancelled(_)));
    let end = c.next().await;
    let Message::JobError(e) = &end.message else { panic!("{end:?}") };
    assert_eq!(e.code, ErrorCode::CANCELLED);
}

#[tokio::test]
async fn s7_4_only_the_owner_may_cancel() {
    let rt = runtime();
    let mut owner = Client::connect(&rt);
    owner.hello().await;
    let job = start_sleep(&mut owner, "sleep").await;

    let mut same_principal = Client::connect(&rt);
    same_principal.hello_with(ALICE_TOO, None).await;
    let req = same_principal.send("job.cancel", json!({}), json!({"job_id": job}));
    let env = same_principal.next().await;
    let Message::JobError(e) = &env.message else { panic!("{env:?}") };
    assert_eq!(e.code, ErrorCode::PERMISSION_DENIED);
    assert_eq!(e.details.as_ref().unwrap()["request_id"], req);

    let mut stranger = Client::connect(&rt);
    stranger.hello_with(OTHER_TOKEN, None).await;
    stranger.send("job.cancel", json!({}), json!({"job_id": job}));
    let Message::JobError(e) = stranger.next().await.message else { panic!() };
    assert_eq!(e.code, ErrorCode::JOB_NOT_FOUND, "other principals do not learn the job exists");

    stranger.send("job.cancel", json!({}), json!({"job_id": "job_nosuch"}));
    let Message::JobError(e) = stranger.next().await.message else { panic!() };
    assert_eq!(e.code, ErrorCode::JOB_NOT_FOUND);

    // The job is unharmed.
    owner.send("job.cancel", json!({}), json!({"job_id": job}));
    assert!(matches!(owner.next().await.message, Message::JobCancelled(_)));
}

#[tokio::test]
async fn s7_4_cancel_without_job_id_is_invalid() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.send("job.cancel", json!({}), json!({}));
    let Message::SessionError(e) = c.next().await.message else { panic!() };
    assert_eq!(e.code, ErrorCode::INVALID_REQUEST);
}
