//! Automatic resume (§6.3) against the in-process runtime: connections cut mid-stream, a lost
//! `job.accepted`, refused resumes, exhausted reconnects, and cancel authority after resume.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use arcp_client::{Backoff, Client, ClientError, SubmitRequest};
use arcp_core::ErrorCode;
use arcp_core::message::ErrorStatus;
use futures_util::StreamExt as _;
use serde_json::json;
use support::*;

/// Waits until the client has resumed `n` times.
async fn resumed(client: &Client, n: u64) {
    within(async {
        while client.resumes() < n {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
}

/// Checks one `count` job's stream: status running, then progress 1..=n, each exactly once
/// and in order, with contiguous seqs (the only job in the session).
fn assert_count_stream(events: &[arcp_client::ReceivedEvent], n: u64) {
    assert_eq!(events[0].kind(), "status");
    let counts: Vec<u64> = events.iter().filter_map(progress_current).collect();
    assert_eq!(counts, (1..=n).collect::<Vec<_>>(), "every progress event exactly once, in order");
    let seqs: Vec<u64> = events.iter().map(|e| e.event_seq.get()).collect();
    assert_eq!(seqs, (1..=n + 1).collect::<Vec<_>>(), "no seq lost or repeated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_mid_stream_is_resumed_and_every_event_arrives_once() {
    let rt = runtime();
    let (client, connector) = connect(&rt).await;
    let mut job = within(client.submit(SubmitRequest::new("count", json!({"n": 40, "delay_ms": 3})))).await.unwrap();
    let mut stream = job.events();
    let mut events = Vec::new();
    while let Some(item) = within(stream.next()).await {
        events.push(item.unwrap());
        if events.len() == 5 {
            connector.cut();
        }
    }
    assert_count_stream(&events, 40);
    assert_eq!(within(job.result()).await.unwrap().result, Some(json!({"count": 40})));
    assert_eq!(client.resumes(), 1);
    assert_eq!(connector.connects(), 2);
    assert_eq!(client.last_event_seq().get(), 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_cuts_at_any_moment_lose_and_repeat_nothing() {
    let rt = runtime();
    let (client, connector) = connect(&rt).await;
    let mut job = within(client.submit(SubmitRequest::new("count", json!({"n": 80, "delay_ms": 1})))).await.unwrap();
    let cutter = {
        let connector = connector.clone();
        tokio::spawn(async move {
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_millis(12)).await;
                connector.cut();
            }
        })
    };
    let events = drain(&mut job.events()).await;
    assert_count_stream(&events, 80);
    assert_eq!(within(job.result()).await.unwrap().result, Some(json!({"count": 80})));
    within(cutter).await.unwrap();
    assert!(client.resumes() >= 1, "at least one cut hit a live connection");
    assert_eq!(client.resumes() as usize + 1, connector.connects());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_jobs_survive_a_cut_each_on_its_own_handle() {
    let rt = runtime();
    let (client, connector) = connect(&rt).await;
    let mut jobs = Vec::new();
    for n in [15u64, 25, 35] {
        jobs.push((
            n,
            within(client.submit(SubmitRequest::new("count", json!({"n": n, "delay_ms": 2})))).await.unwrap(),
        ));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    connector.cut();
    for (n, mut job) in jobs {
        let events = drain(&mut job.events()).await;
        let counts: Vec<u64> = events.iter().filter_map(progress_current).collect();
        assert_eq!(counts, (1..=n).collect::<Vec<_>>());
        assert!(events.windows(2).all(|w| w[0].event_seq < w[1].event_seq));
        assert_eq!(within(job.result()).await.unwrap().result, Some(json!({"count": n})));
    }
    assert_eq!(client.resumes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_job_accepted_is_recovered_by_the_idempotent_resend() {
    let rt = runtime();
    let (client, connector) = connect(&rt).await;
    // The connection dies instead of delivering job.accepted: the job runs on the runtime,
    // its events are replayed on resume before the resent submit is answered.
    connector.faults.cut_on_accepted.store(true, Ordering::SeqCst);
    let mut job = within(client.submit(SubmitRequest::new("count", json!({"n": 12, "delay_ms": 5})))).await.unwrap();
    let events = drain(&mut job.events()).await;
    assert_count_stream(&events, 12);
    assert_eq!(within(job.result()).await.unwrap().result, Some(json!({"count": 12})));
    assert_eq!(client.resumes(), 1);
}

#[tokio::test]
async fn a_lost_job_accepted_without_a_key_is_interrupted() {
    let rt = runtime();
    let connector = MemConnector::new(&rt);
    let client =
        within(Client::connect_with(connector.clone(), options().with_auto_idempotency_keys(false))).await.unwrap();
    connector.faults.cut_on_accepted.store(true, Ordering::SeqCst);
    let err = within(client.submit(SubmitRequest::new("echo", json!(1)))).await.unwrap_err();
    assert_eq!(err, ClientError::Interrupted);
    // The session itself was resumed and works.
    let job = within(client.submit(SubmitRequest::new("echo", json!(2)))).await.unwrap();
    assert_eq!(within(job.result()).await.unwrap().result, Some(json!(2)));
}

#[tokio::test]
async fn cancel_authority_survives_a_resume() {
    let rt = runtime();
    let (client, connector) = connect(&rt).await;
    let job = within(client.submit(SubmitRequest::new("sleep", json!({})))).await.unwrap();
    connector.cut();
    resumed(&client, 1).await;
    within(job.cancel(Some("after resume".into()))).await.unwrap();
    let err = within(job.result()).await.unwrap_err();
    assert!(matches!(err, ClientError::Job { final_status: ErrorStatus::Cancelled, .. }), "{err:?}");
}

#[tokio::test]
async fn submits_and_pings_during_an_outage_go_through_after_the_resume() {
    let rt = runtime();
    let (client, connector) = connect(&rt).await;
    connector.cut();
    let (job, rtt) =
        within(async { tokio::join!(client.submit(SubmitRequest::new("echo", json!(7))), client.ping()) }).await;
    assert!(rtt.is_ok());
    assert_eq!(within(job.unwrap().result()).await.unwrap().result, Some(json!(7)));
    assert_eq!(client.resumes(), 1);
}

#[tokio::test]
async fn a_refused_resume_fails_every_pending_handle() {
    let rt = runtime();
    let (client, connector) = connect(&rt).await;
    let mut job = within(client.submit(SubmitRequest::new("sleep", json!({})))).await.unwrap();
    let mut stream = job.events();
    assert_eq!(within(stream.next()).await.unwrap().unwrap().kind(), "status");
    // The next connection reaches a runtime that never heard of the session.
    connector.redirect(&runtime());
    connector.cut();
    let err = within(job.result()).await.unwrap_err();
    assert!(matches!(err, ClientError::Session { .. }), "{err:?}");
    assert_eq!(err.code(), Some(ErrorCode::RESUME_WINDOW_EXPIRED));
    assert_eq!(within(stream.next()).await.unwrap().unwrap_err(), err, "the stream ends with the error");
    assert!(within(stream.next()).await.is_none());
    assert_eq!(within(client.submit(SubmitRequest::new("echo", json!(1)))).await.unwrap_err(), err);
    assert_eq!(within(client.ping()).await.unwrap_err(), err);
    assert!(client.is_closed());
}

#[tokio::test]
async fn reconnecting_gives_up_after_the_configured_attempts() {
    let rt = runtime();
    let connector = MemConnector::new(&rt);
    let backoff =
        Backoff { max_attempts: 3, initial_delay: Duration::from_millis(1), max_delay: Duration::from_millis(4) };
    let client = within(Client::connect_with(connector.clone(), options().with_backoff(backoff))).await.unwrap();
    let job = within(client.submit(SubmitRequest::new("sleep", json!({})))).await.unwrap();
    connector.faults.refuse_connections.store(true, Ordering::SeqCst);
    connector.cut();
    let err = within(job.result()).await.unwrap_err();
    let ClientError::ReconnectFailed { attempts, last } = &err else { panic!("{err:?}") };
    assert_eq!(*attempts, 3);
    assert!(last.contains("connection refused"), "{last}");
    assert_eq!(connector.attempts(), 4, "the first connection and three attempts");
    assert!(client.is_closed());
}

#[tokio::test]
async fn without_auto_resume_a_cut_ends_the_session() {
    let rt = runtime();
    let connector = MemConnector::new(&rt);
    let client = within(Client::connect_with(connector.clone(), options().with_auto_resume(false))).await.unwrap();
    let job = within(client.submit(SubmitRequest::new("sleep", json!({})))).await.unwrap();
    connector.cut();
    let err = within(job.result()).await.unwrap_err();
    assert!(matches!(err, ClientError::Disconnected { .. }), "{err:?}");
    assert_eq!(connector.connects(), 1);
}
