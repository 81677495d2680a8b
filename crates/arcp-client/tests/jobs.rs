//! The client against the in-process runtime over `memory::pair()`: handshake, submit,
//! concurrent submits, event streams, cancel, refusals, idempotency, ping and close.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;

use arcp_client::{Client, ClientError, ClientOptions, SubmitRequest};
use arcp_core::ErrorCode;
use arcp_core::event::EventBody;
use arcp_core::message::ErrorStatus;
use arcp_core::negotiate::Feature;
use serde_json::json;
use support::*;

#[tokio::test]
async fn handshake_negotiates_features_and_reports_the_session() {
    let rt = runtime();
    let (client, connector) = connect(&rt).await;
    assert!(client.session_id().as_str().starts_with("sess_"));
    // We ask for everything, so the effective set is what the runtime offers.
    let features: HashSet<String> = client.features().iter().map(|f| f.to_string()).collect();
    let offered: HashSet<String> = rt.config().features.iter().map(|f| f.to_string()).collect();
    assert_eq!(features, offered);
    assert!(client.has_feature(&Feature::PROGRESS) && client.has_feature(&Feature::HEARTBEAT));
    assert!(client.has_feature(&Feature::ACK) && client.has_feature(&Feature::SUBSCRIBE));
    assert!(client.has_feature(&Feature::LIST_JOBS));
    let agents = client.agents().expect("inventory").normalize();
    assert!(agents.iter().any(|a| a.name == "echo"));
    assert_eq!(client.runtime_info().name, "arcp-rs");
    assert_eq!(connector.connects(), 1);
    assert_eq!(client.last_event_seq().get(), 0);
}

#[tokio::test]
async fn bad_token_is_a_session_error() {
    let rt = runtime();
    let err = within(Client::connect_with(MemConnector::new(&rt), ClientOptions::default().with_token("wrong")))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Session { .. }), "{err:?}");
    assert_eq!(err.code(), Some(ErrorCode::UNAUTHENTICATED));
}

#[tokio::test]
async fn submit_echo_returns_the_input() {
    let rt = runtime();
    let (client, _c) = connect(&rt).await;
    let mut job = within(client.submit(SubmitRequest::new("echo", json!({"text": "hi"})))).await.unwrap();
    assert!(job.job_id().as_str().starts_with("job_"));
    assert_eq!(job.accepted().agent.as_deref(), Some("echo"));
    let outcome = within(job.result()).await.unwrap();
    assert_eq!(outcome.result, Some(json!({"text": "hi"})));
    // The stream carries status running and the echo log line, then ends.
    let kinds: Vec<String> = drain(&mut job.events()).await.iter().map(|e| e.kind().to_owned()).collect();
    assert_eq!(kinds, ["status", "log"]);
    // The result can be read again.
    assert!(within(job.result()).await.is_ok());
    assert!(job.is_finished());
}

#[tokio::test]
async fn submit_carries_the_trace_id_and_mints_one_otherwise() {
    let rt = runtime();
    let (client, _c) = connect(&rt).await;
    let trace = arcp_core::TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
    let job = within(client.submit(SubmitRequest::new("echo", json!(1)).with_trace_id(trace.clone()))).await.unwrap();
    assert_eq!(job.accepted().trace_id.as_ref(), Some(&trace));
    let job2 = within(client.submit(SubmitRequest::new("echo", json!(2)))).await.unwrap();
    assert!(job2.accepted().trace_id.is_some());
    assert_ne!(job2.accepted().trace_id.as_ref(), Some(&trace));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_submits_route_to_their_own_handles() {
    let rt = runtime();
    let (client, _c) = connect(&rt).await;
    let mut tasks = Vec::new();
    for i in 0..32u64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let request = if i % 2 == 0 {
                SubmitRequest::new("echo", json!({"i": i}))
            } else {
                SubmitRequest::new("count", json!({"n": i % 5 + 1, "delay_ms": 1}))
            };
            let mut job = within(client.submit(request)).await.unwrap();
            let events = drain(&mut job.events()).await;
            let outcome = within(job.result()).await.unwrap();
            (i, job.job_id().clone(), events, outcome)
        }));
    }
    let mut ids = HashSet::new();
    for task in tasks {
        let (i, id, events, outcome) = within(task).await.unwrap();
        assert!(ids.insert(id), "job ids are distinct");
        if i % 2 == 0 {
            assert_eq!(outcome.result, Some(json!({"i": i})));
        } else {
            let n = i % 5 + 1;
            assert_eq!(outcome.result, Some(json!({"count": n})));
            let counts: Vec<u64> = events.iter().filter_map(progress_current).collect();
            assert_eq!(counts, (1..=n).collect::<Vec<_>>(), "job {i} got its own progress, in order");
        }
        // Session-scoped seqs, strictly increasing within a job.
        assert!(events.windows(2).all(|w| w[0].event_seq < w[1].event_seq));
    }
}

#[tokio::test]
async fn events_of_a_counting_agent_stream_in_order() {
    let rt = runtime();
    let (client, _c) = connect(&rt).await;
    let mut job = within(client.submit(SubmitRequest::new("count", json!({"n": 20, "delay_ms": 2})))).await.unwrap();
    let events = drain(&mut job.events()).await;
    assert!(matches!(&events[0].event.body, EventBody::Status(s) if s.phase == "running"));
    let counts: Vec<u64> = events.iter().filter_map(progress_current).collect();
    assert_eq!(counts, (1..=20).collect::<Vec<_>>());
    let seqs: Vec<u64> = events.iter().map(|e| e.event_seq.get()).collect();
    assert_eq!(seqs, (1..=21).collect::<Vec<_>>(), "one job in the session: seqs are contiguous");
    assert_eq!(within(job.result()).await.unwrap().result, Some(json!({"count": 20})));
    assert_eq!(client.last_event_seq().get(), 22, "21 events and the result");
}

#[tokio::test]
async fn cancel_a_sleeping_job() {
    let rt = runtime();
    let (client, _c) = connect(&rt).await;
    let job = within(client.submit(SubmitRequest::new("sleep", json!({})))).await.unwrap();
    within(job.cancel(Some("user".into()))).await.unwrap();
    let err = within(job.result()).await.unwrap_err();
    let ClientError::Job { final_status, payload } = &err else { panic!("{err:?}") };
    assert_eq!(*final_status, ErrorStatus::Cancelled);
    assert_eq!(err.code(), Some(ErrorCode::CANCELLED));
    assert!(!payload.retryable);
    // Cancelling again after the end is a no-op.
    within(job.cancel(None)).await.unwrap();
}

#[tokio::test]
async fn a_failing_agent_is_a_job_error() {
    let rt = runtime();
    let (client, _c) = connect(&rt).await;
    let job = within(client.submit(SubmitRequest::new("fail", json!(null)))).await.unwrap();
    let err = within(job.result()).await.unwrap_err();
    assert!(matches!(err, ClientError::Job { final_status: ErrorStatus::Error, .. }), "{err:?}");
    assert_eq!(err.code(), Some(ErrorCode::PERMISSION_DENIED));
    assert_eq!(err.payload().unwrap().details.as_ref().unwrap()["why"], "test");
}

#[tokio::test]
async fn unknown_agent_is_refused_and_the_session_goes_on() {
    let rt = runtime();
    let (client, _c) = connect(&rt).await;
    let err = within(client.submit(SubmitRequest::new("nope", json!(1)))).await.unwrap_err();
    assert!(matches!(err, ClientError::Refused { .. }), "{err:?}");
    assert_eq!(err.code(), Some(ErrorCode::AGENT_NOT_AVAILABLE));
    let err = within(client.submit(SubmitRequest::new("Bad Name", json!(1)))).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::INVALID_REQUEST));
    let job = within(client.submit(SubmitRequest::new("echo", json!(2)))).await.unwrap();
    assert_eq!(within(job.result()).await.unwrap().result, Some(json!(2)));
}

#[tokio::test]
async fn duplicate_key_refusal_does_not_end_the_existing_job() {
    let rt = runtime();
    let (client, _c) = connect(&rt).await;
    let first = within(client.submit(SubmitRequest::new("sleep", json!({"ms": 200})).with_idempotency_key("k-dup")))
        .await
        .unwrap();
    // Same key, different payload: DUPLICATE_KEY, reported under the existing job's id.
    let err = within(client.submit(SubmitRequest::new("sleep", json!({"ms": 999})).with_idempotency_key("k-dup")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::DUPLICATE_KEY));
    let existing = &err.payload().unwrap().details.as_ref().unwrap()["existing_job_id"];
    assert_eq!(existing, first.job_id().as_str());
    assert_eq!(within(first.result()).await.unwrap().result, Some(json!({"slept_ms": 200})));
}

#[tokio::test]
async fn idempotent_resubmit_from_a_second_client_returns_the_same_job() {
    let rt = runtime();
    let (a, _ca) = connect(&rt).await;
    let (b, _cb) = connect(&rt).await;
    assert_ne!(a.session_id(), b.session_id());
    let request = SubmitRequest::new("count", json!({"n": 10, "delay_ms": 10})).with_idempotency_key("order-42");
    let job_a = within(a.submit(request.clone())).await.unwrap();
    let mut job_b = within(b.submit(request.clone())).await.unwrap();
    assert_eq!(job_a.job_id(), job_b.job_id(), "same key, same payload: same job");
    assert_eq!(job_a.accepted(), job_b.accepted(), "the very same job.accepted");
    // The second session follows the running job live and gets its result.
    let outcome_b = within(job_b.result()).await.unwrap();
    assert_eq!(outcome_b.result, Some(json!({"count": 10})));
    assert_eq!(within(job_a.result()).await.unwrap(), outcome_b);
    assert!(drain(&mut job_b.events()).await.iter().all(|e| matches!(e.kind(), "progress" | "status")));
    // After the end, a third client gets the same job and its terminal result.
    let (c, _cc) = connect(&rt).await;
    let job_c = within(c.submit(request)).await.unwrap();
    assert_eq!(job_c.job_id(), job_a.job_id());
    assert_eq!(within(job_c.result()).await.unwrap().result, Some(json!({"count": 10})));
}

#[tokio::test]
async fn ping_measures_a_round_trip() {
    let rt = runtime();
    let (client, _c) = connect(&rt).await;
    let rtt = within(client.ping()).await.unwrap();
    assert!(rtt < std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn close_says_bye_and_fails_later_calls_but_jobs_keep_running() {
    let rt = runtime();
    let (client, _c) = connect(&rt).await;
    let job =
        within(client.submit(SubmitRequest::new("sleep", json!({"ms": 100})).with_idempotency_key("after-close")))
            .await
            .unwrap();
    within(client.close()).await.unwrap();
    assert!(client.is_closed());
    assert_eq!(within(job.result()).await.unwrap_err(), ClientError::Closed);
    let err = within(client.submit(SubmitRequest::new("echo", json!(1)))).await.unwrap_err();
    assert_eq!(err, ClientError::Closed);
    within(client.close()).await.unwrap();
    // The job ran on: a new client resubmitting with the key gets its result.
    let (again, _c2) = connect(&rt).await;
    let job2 =
        within(again.submit(SubmitRequest::new("sleep", json!({"ms": 100})).with_idempotency_key("after-close")))
            .await
            .unwrap();
    assert_eq!(job2.job_id(), job.job_id());
    assert_eq!(within(job2.result()).await.unwrap().result, Some(json!({"slept_ms": 100})));
}

#[tokio::test]
async fn a_slow_reader_overflows_its_own_stream_only() {
    let rt = runtime();
    let connector = MemConnector::new(&rt);
    let client = within(Client::connect_with(connector, options().with_event_buffer(4))).await.unwrap();
    let mut job = within(client.submit(SubmitRequest::new("count", json!({"n": 10})))).await.unwrap();
    assert_eq!(within(job.result()).await.unwrap().result, Some(json!({"count": 10})));
    let mut events = job.events();
    let mut got = Vec::new();
    let mut lagged = false;
    while let Some(item) = within(futures_util::StreamExt::next(&mut events)).await {
        match item {
            Ok(e) => got.push(e),
            Err(ClientError::Lagged { capacity }) => {
                assert_eq!(capacity, 4);
                lagged = true;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(lagged && got.len() == 4, "{} events, lagged {lagged}", got.len());
    // The session itself is fine.
    let job2 = within(client.submit(SubmitRequest::new("echo", json!(3)))).await.unwrap();
    assert_eq!(within(job2.result()).await.unwrap().result, Some(json!(3)));
}
