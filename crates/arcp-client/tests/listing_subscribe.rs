//! `Client::list_jobs` (§6.6) and `Client::subscribe` / `Subscription::unsubscribe` (§7.6)
//! against the in-process runtime.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use arcp_client::{Client, ClientError, SubmitRequest};
use arcp_core::ErrorCode;
use arcp_core::message::{JobStatus, SessionListJobs};
use arcp_core::negotiate::Feature;
use serde_json::json;
use support::*;

#[tokio::test]
async fn list_jobs_pages_through_this_principals_jobs() {
    let rt = runtime();
    let (client, _c) = connect(&rt).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let job = within(client.submit(SubmitRequest::new("echo", json!({ "i": i })))).await.unwrap();
        within(job.result()).await.unwrap();
        ids.push(job.job_id().clone());
    }
    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let request =
            SessionListJobs { limit: std::num::NonZeroU32::new(2), cursor: cursor.take(), ..Default::default() };
        let page = within(client.list_jobs(request)).await.unwrap();
        listed.extend(page.jobs.iter().map(|j| (j.job_id.clone(), j.status)));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(listed.len(), 3);
    assert!(ids.iter().all(|id| listed.contains(&(id.clone(), JobStatus::Success))));
}

#[tokio::test]
async fn subscribe_with_history_then_live_and_unsubscribe() {
    let rt = runtime();
    // The owner acks (the client's default): acknowledged events stay in the log until a cap
    // needs the room (spec §14.1), so a subscriber can still replay the history (§7.6.1).
    let owner = within(Client::connect_with(MemConnector::new(&rt), options())).await.unwrap();
    assert!(owner.has_feature(&Feature::ACK));
    let (watcher, _c2) = connect(&rt).await;
    // A finished job, with history: the whole stream and its result.
    let done = within(owner.submit(SubmitRequest::new("count", json!({ "n": 3 })))).await.unwrap();
    within(done.result()).await.unwrap();
    // Let the owner's coalesced ack (every 250 ms) reach the runtime before subscribing.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let mut sub = within(watcher.subscribe(done.job_id().clone(), true, None)).await.unwrap();
    assert!(sub.subscribed().replayed);
    let events = drain(&mut sub.events()).await;
    assert_eq!(events.len(), 4, "status running and three progress events");
    assert_eq!(within(sub.result()).await.unwrap().result, Some(json!({ "count": 3 })));

    // A running job, live; no cancel authority is implied; unsubscribe ends the stream.
    let running = within(owner.submit(SubmitRequest::new("sleep", json!({})))).await.unwrap();
    let sub = within(watcher.subscribe(running.job_id().clone(), false, None)).await.unwrap();
    assert_eq!(sub.subscribed().current_status, JobStatus::Running);
    sub.unsubscribe().unwrap();
    assert!(matches!(within(sub.result()).await, Err(ClientError::Closed)));
    running.cancel(None).await.unwrap();
}

#[tokio::test]
async fn subscribing_to_an_unknown_job_is_refused() {
    let rt = runtime();
    let (client, _c) = connect(&rt).await;
    let err = within(client.subscribe(arcp_core::JobId::parse("job_missing").unwrap(), true, None)).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::JOB_NOT_FOUND));
    // The session goes on.
    within(client.ping()).await.unwrap();
    let _: &Client = &client;
}
