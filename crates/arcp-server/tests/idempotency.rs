//! §7.2 idempotency (decision 5): one job per `(principal, key)`, the same `job.accepted`,
//! never re-run, live stream or terminal replay for resubmitters, `DUPLICATE_KEY` otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arcp_core::ErrorCode;
use arcp_core::message::Message;
use arcp_server::{AgentRegistry, JobContext, Runtime, StaticBearerVerifier};
use serde_json::{Value, json};
use support::*;

fn submit_with_key(c: &mut Client, agent: &str, input: Value, key: &str) -> String {
    c.send("job.submit", json!({"agent": agent, "input": input, "idempotency_key": key}), json!({}))
}

#[tokio::test]
async fn s7_2_identical_resubmit_gets_the_same_accepted_and_the_terminal_envelope() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let mut reg = AgentRegistry::new();
    reg.register("once", move |_ctx: JobContext, input: Value| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(input)
        }
    })
    .unwrap();
    let verifier = StaticBearerVerifier::new()
        .with_token(TOKEN, "alice")
        .with_token(ALICE_TOO, "alice")
        .with_token(OTHER_TOKEN, "bob");
    let rt = Runtime::builder(verifier).agents(reg).build();

    let mut a = Client::connect(&rt);
    a.hello().await;
    submit_with_key(&mut a, "once", json!({"x": 1}), "k-1");
    let first = a.next().await;
    let Message::JobAccepted(acc1) = &first.message else { panic!() };
    a.until_terminal(acc1.job_id.as_str()).await;

    // Same principal, another session: same accepted payload, then the terminal envelope.
    let mut b = Client::connect(&rt);
    b.hello_with(ALICE_TOO, None).await;
    submit_with_key(&mut b, "once", json!({"x": 1}), "k-1");
    let Message::JobAccepted(acc2) = b.next().await.message else { panic!() };
    assert_eq!(&acc2, acc1, "the very same job.accepted payload");
    let end = b.next().await;
    let Message::JobResult(r) = &end.message else { panic!("{end:?}") };
    assert_eq!(r.result, Some(json!({"x": 1})));
    assert_eq!(end.job_id.as_ref().unwrap(), &acc1.job_id);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "never executed twice");

    // A conflicting payload under the same key.
    submit_with_key(&mut b, "once", json!({"x": 2}), "k-1");
    let env = b.next().await;
    let Message::JobError(e) = &env.message else { panic!("{env:?}") };
    assert_eq!(e.code, ErrorCode::DUPLICATE_KEY);
    assert_eq!(e.details.as_ref().unwrap()["existing_job_id"], acc1.job_id.as_str());

    // Another principal's key space is separate.
    let mut c = Client::connect(&rt);
    c.hello_with(OTHER_TOKEN, None).await;
    submit_with_key(&mut c, "once", json!({"x": 1}), "k-1");
    let Message::JobAccepted(acc3) = c.next().await.message else { panic!() };
    assert_ne!(acc3.job_id, acc1.job_id);
}

#[tokio::test]
async fn s7_2_resubmitting_a_running_job_attaches_to_its_live_stream() {
    let rt = runtime();
    let mut a = Client::connect(&rt);
    a.hello().await;
    submit_with_key(&mut a, "count", json!({"n": 20, "delay_ms": 10}), "k-live");
    let Message::JobAccepted(acc) = a.next().await.message else { panic!() };
    let mut b = Client::connect(&rt);
    b.hello_with(ALICE_TOO, Some(ALL_FEATURES)).await;
    submit_with_key(&mut b, "count", json!({"n": 20, "delay_ms": 10}), "k-live");
    let Message::JobAccepted(acc_b) = b.next().await.message else { panic!() };
    assert_eq!(acc_b, acc);
    let events = b.until_terminal(acc.job_id.as_str()).await;
    assert!(events.len() >= 2, "live events then the result");
    assert!(matches!(events.last().unwrap().message, Message::JobResult(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s7_2_one_hundred_concurrent_submits_with_one_key_start_one_job() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let mut reg = AgentRegistry::new();
    reg.register("once", move |_ctx: JobContext, _input: Value| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            Ok(json!("done"))
        }
    })
    .unwrap();
    let verifier = StaticBearerVerifier::new().with_token(TOKEN, "alice");
    let rt = Runtime::builder(verifier).agents(reg).build();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&rt);
            c.hello_with(TOKEN, None).await;
            submit_with_key(&mut c, "once", json!({"same": true}), "k-race");
            let env = c.next().await;
            let Message::JobAccepted(a) = env.message else { panic!("{env:?}") };
            a
        }));
    }
    let mut accepted = Vec::new();
    for t in tasks {
        accepted.push(t.await.unwrap());
    }
    assert!(accepted.windows(2).all(|w| w[0] == w[1]), "every submitter gets the same job.accepted");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "exactly one job ran");
}

#[tokio::test]
async fn s7_2_the_submitting_session_resubmitting_a_finished_job_gets_the_terminal_again() {
    let rt = runtime();
    let mut a = Client::connect(&rt);
    a.hello().await;
    submit_with_key(&mut a, "echo", json!({"x": 1}), "k-own");
    let Message::JobAccepted(acc) = a.next().await.message else { panic!() };
    let first = a.until_terminal(acc.job_id.as_str()).await;
    let first_end = first.last().unwrap().clone();
    submit_with_key(&mut a, "echo", json!({"x": 1}), "k-own");
    let Message::JobAccepted(again) = a.next().await.message else { panic!() };
    assert_eq!(again, acc);
    let end = a.next().await;
    assert_eq!(end.job_id.as_ref(), Some(&acc.job_id));
    assert_eq!(end.message, first_end.message, "the same terminal payload");
    assert!(end.event_seq > first_end.event_seq, "a new envelope in the session's own sequence");
    assert_ne!(end.id, first_end.id);
}

#[tokio::test]
async fn s7_2_the_resubmitting_session_may_cancel_the_running_job() {
    let rt = runtime();
    let mut a = Client::connect(&rt);
    a.hello().await;
    submit_with_key(&mut a, "sleep", json!({}), "k-cancel");
    let Message::JobAccepted(acc) = a.next().await.message else { panic!() };
    let mut b = Client::connect(&rt);
    b.hello_with(ALICE_TOO, Some(ALL_FEATURES)).await;
    submit_with_key(&mut b, "sleep", json!({}), "k-cancel");
    let Message::JobAccepted(acc_b) = b.next().await.message else { panic!() };
    assert_eq!(acc_b, acc);
    b.send("job.cancel", json!({"reason": "from b"}), json!({"job_id": acc.job_id.as_str()}));
    let mut saw_ack = false;
    loop {
        let env = b.next().await;
        match &env.message {
            Message::JobCancelled(_) => saw_ack = true,
            Message::JobError(e) => {
                assert_eq!(e.code, ErrorCode::CANCELLED, "{env:?}");
                break;
            }
            _ => {}
        }
    }
    assert!(saw_ack, "job.cancelled before the terminal");
    let end = a.until_terminal(acc.job_id.as_str()).await;
    let Message::JobError(e) = &end.last().unwrap().message else { panic!() };
    assert_eq!(e.code, ErrorCode::CANCELLED);
}
