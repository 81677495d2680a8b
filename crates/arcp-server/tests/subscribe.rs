//! §7.6 subscription: history replay renumbered into the subscriber's sequence, the
//! authority descriptor, live fan-out, unsubscribe, the policy, no cancel authority, and a
//! subscriber that stops reading never slowing the job's owner.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use arcp_core::ErrorCode;
use arcp_core::message::{JobStatus, Message};
use arcp_server::transport::{FrameSink, FrameSource, Transport, TransportError};
use arcp_server::{
    JobContext, Runtime, RuntimeConfig, StaticBearerVerifier, SubscribeDecision, SubscribeRequest, SubscriptionPolicy,
};
use serde_json::{Value, json};
use support::*;

async fn accepted(c: &mut Client) -> String {
    loop {
        if let Message::JobAccepted(a) = c.next().await.message {
            return a.job_id.to_string();
        }
    }
}

async fn request_error(c: &mut Client) -> arcp_core::message::JobError {
    loop {
        if let Message::JobError(e) = c.next().await.message {
            assert!(e.details.as_ref().is_some_and(|d| d.get("request_id").is_some()), "a request error");
            return e;
        }
    }
}

#[tokio::test]
async fn s7_6_history_is_replayed_renumbered_then_subscribed() {
    let rt = runtime();
    let mut owner = Client::connect(&rt);
    owner.hello().await;
    owner.submit("count", json!({ "n": 3 }));
    let job = accepted(&mut owner).await;
    let owned = owner.until_terminal(&job).await;

    let mut sub = Client::connect(&rt);
    sub.hello_with(ALICE_TOO, Some(ALL_FEATURES)).await;
    // Something of its own first, so its sequence differs from the owner's.
    sub.submit("echo", json!({}));
    let own = accepted(&mut sub).await;
    sub.until_terminal(&own).await;
    let before = sub.last_seq;
    sub.send("job.subscribe", json!({ "job_id": job, "history": true }), json!({}));
    let mut replayed = Vec::new();
    let subscribed = loop {
        let env = sub.next().await;
        match env.message {
            Message::JobSubscribed(s) => break s,
            _ => replayed.push(env),
        }
    };
    assert_eq!(replayed.len(), owned.len());
    for (i, (r, o)) in replayed.iter().zip(&owned).enumerate() {
        assert_eq!(r.event_seq.unwrap().get(), before + 1 + i as u64, "renumbered into the subscriber's space");
        assert_eq!(r.session_id.as_ref().unwrap().as_str(), sub.session_id.as_deref().unwrap());
        assert_ne!(r.id, o.id);
        assert_eq!(kind(r), kind(o));
        assert_eq!(r.message, o.message, "payload unchanged");
    }
    assert!(subscribed.replayed);
    assert_eq!(subscribed.subscribed_from.get(), sub.last_seq);
    assert_eq!(subscribed.current_status, JobStatus::Success);
    assert_eq!(subscribed.agent, "count");
    assert!(subscribed.parent_job_id.is_none());
    assert!(subscribed.credentials.is_none());

    // from_event_seq skips what the subscriber already has (owner sequence).
    let from = owned[1].event_seq.unwrap().get();
    sub.send("job.subscribe", json!({ "job_id": job, "history": true, "from_event_seq": from }), json!({}));
    let mut n = 0;
    loop {
        match sub.next().await.message {
            Message::JobSubscribed(_) => break,
            _ => n += 1,
        }
    }
    assert_eq!(n, owned.len() - 2);
}

#[tokio::test]
async fn s7_6_live_fan_out_budget_and_no_cancel_authority() {
    let rt = runtime();
    let mut owner = Client::connect(&rt);
    owner.hello().await;
    owner.send(
        "job.submit",
        json!({ "agent": "sleep", "input": {}, "lease_request": { "cost.budget": ["USD:5"] } }),
        json!({}),
    );
    let job = accepted(&mut owner).await;
    assert_eq!(kind(&owner.next().await), "event:status");

    let mut sub = Client::connect(&rt);
    sub.hello_with(ALICE_TOO, Some(ALL_FEATURES)).await;
    sub.send("job.subscribe", json!({ "job_id": job }), json!({}));
    let Message::JobSubscribed(s) = sub.next().await.message else { panic!() };
    assert_eq!(s.current_status, JobStatus::Running);
    assert!(!s.replayed);
    assert_eq!(s.subscribed_from.get(), 0);
    assert_eq!(s.budget.as_ref().and_then(|b| b.get("USD")).map(ToString::to_string).as_deref(), Some("5"));

    // A subscriber cannot cancel.
    sub.send("job.cancel", json!({}), json!({ "job_id": job }));
    let e = request_error(&mut sub).await;
    assert_eq!(e.code, ErrorCode::PERMISSION_DENIED);

    // The owner cancels; the subscriber sees the terminal live, in its own sequence.
    owner.send("job.cancel", json!({}), json!({ "job_id": job }));
    owner.until_terminal(&job).await;
    let terminal = sub.until_terminal(&job).await;
    let Message::JobError(e) = &terminal.last().unwrap().message else { panic!() };
    assert_eq!(e.code, ErrorCode::CANCELLED);
}

#[tokio::test]
async fn s7_6_unsubscribe_stops_delivery() {
    let rt = runtime();
    let mut owner = Client::connect(&rt);
    owner.hello().await;
    owner.submit("sleep", json!({}));
    let job = accepted(&mut owner).await;
    let mut sub = Client::connect(&rt);
    sub.hello_with(ALICE_TOO, Some(ALL_FEATURES)).await;
    sub.send("job.subscribe", json!({ "job_id": job }), json!({}));
    let Message::JobSubscribed(_) = sub.next().await.message else { panic!() };
    sub.send("job.unsubscribe", json!({ "job_id": job }), json!({}));
    // Unsubscribing twice (or from nothing) is ignored.
    sub.send("job.unsubscribe", json!({ "job_id": job }), json!({}));
    sub.send("session.ping", json!({ "nonce": "a", "sent_at": "2026-11-23T08:00:00Z" }), json!({}));
    assert!(matches!(sub.next().await.message, Message::SessionPong(_)));
    owner.send("job.cancel", json!({}), json!({ "job_id": job }));
    owner.until_terminal(&job).await;
    sub.send("session.ping", json!({ "nonce": "b", "sent_at": "2026-11-23T08:00:00Z" }), json!({}));
    assert!(matches!(sub.next().await.message, Message::SessionPong(_)), "nothing of the job after unsubscribe");
}

struct DenyAll;
impl SubscriptionPolicy for DenyAll {
    fn decide(&self, _r: &SubscribeRequest<'_>) -> SubscribeDecision {
        SubscribeDecision::Deny
    }
}

async fn other_principal_subscribes(rt: &Runtime) -> ErrorCode {
    let mut owner = Client::connect(rt);
    owner.hello().await;
    owner.submit("sleep", json!({}));
    let job = accepted(&mut owner).await;
    let mut bob = Client::connect(rt);
    bob.hello_with(OTHER_TOKEN, Some(ALL_FEATURES)).await;
    bob.send("job.subscribe", json!({ "job_id": job, "history": true }), json!({}));
    request_error(&mut bob).await.code
}

#[tokio::test]
async fn s7_6_policy_decides_other_principals() {
    // Default: same principal only, and other principals' jobs are invisible (decision 22).
    assert_eq!(other_principal_subscribes(&runtime()).await, ErrorCode::JOB_NOT_FOUND);
    // A policy that makes the job visible but refuses: PERMISSION_DENIED.
    let verifier = StaticBearerVerifier::new().with_token(TOKEN, "alice").with_token(OTHER_TOKEN, "bob");
    let rt = Runtime::builder(verifier).agents(registry()).subscription_policy(DenyAll).build();
    assert_eq!(other_principal_subscribes(&rt).await, ErrorCode::PERMISSION_DENIED);
    // Unknown job.
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.send("job.subscribe", json!({ "job_id": "job_nope" }), json!({}));
    assert_eq!(request_error(&mut c).await.code, ErrorCode::JOB_NOT_FOUND);
}

/// A transport whose outbound side holds one frame and is never read: the peer "stops
/// reading".
struct Stalled {
    out: tokio::sync::mpsc::Sender<String>,
    inbound: tokio::sync::mpsc::UnboundedReceiver<String>,
}
struct StalledSink(tokio::sync::mpsc::Sender<String>);
struct StalledSource(tokio::sync::mpsc::UnboundedReceiver<String>);
impl FrameSink for StalledSink {
    async fn send(&mut self, frame: String) -> Result<(), TransportError> {
        self.0.send(frame).await.map_err(|_| TransportError::Closed)
    }
    async fn close(&mut self) {}
}
impl FrameSource for StalledSource {
    async fn recv(&mut self) -> Option<Result<String, TransportError>> {
        self.0.recv().await.map(Ok)
    }
}
impl Transport for Stalled {
    type Sink = StalledSink;
    type Source = StalledSource;
    fn split(self) -> (StalledSink, StalledSource) {
        (StalledSink(self.out), StalledSource(self.inbound))
    }
}

#[tokio::test]
async fn s7_6_a_subscriber_that_stops_reading_does_not_slow_the_owner() {
    const N: u64 = 2000;
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut reg = registry();
    let g = gate.clone();
    reg.register("gated", move |ctx: JobContext, _input: Value| {
        let g = g.clone();
        async move {
            g.notified().await;
            for i in 0..N {
                ctx.info(format!("line {i}")).await?;
            }
            Ok(json!({ "lines": N }))
        }
    })
    .unwrap();
    let config = RuntimeConfig {
        // A stalled link would block a sender for an hour: only isolation lets the owner finish.
        send_timeout: Duration::from_secs(3600),
        outbound_queue: 4,
        subscriber_queue: 16,
        ..Default::default()
    };
    let verifier = StaticBearerVerifier::new().with_token(TOKEN, "alice").with_token(ALICE_TOO, "alice");
    let rt = Runtime::builder(verifier).config(config).agents(reg).build();

    let mut owner = Client::connect(&rt);
    owner.hello().await;
    owner.submit("gated", json!({}));
    let job = accepted(&mut owner).await;

    // The subscriber: hello and subscribe, read the two answers, then never read again.
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel(1);
    let (in_tx, in_rx) = tokio::sync::mpsc::unbounded_channel();
    rt.spawn(Stalled { out: out_tx, inbound: in_rx });
    let hello = json!({ "arcp": "1.1", "id": "msg_s1", "type": "session.hello", "payload": {
        "client": { "name": "slow", "version": "0" }, "auth": { "scheme": "bearer", "token": ALICE_TOO },
        "capabilities": { "features": ALL_FEATURES } } });
    in_tx.send(hello.to_string()).unwrap();
    assert!(out_rx.recv().await.unwrap().contains("session.welcome"));
    let subscribe = json!({ "arcp": "1.1", "id": "msg_s2", "type": "job.subscribe", "payload": { "job_id": job } });
    in_tx.send(subscribe.to_string()).unwrap();
    assert!(out_rx.recv().await.unwrap().contains("job.subscribed"));

    gate.notify_one();
    // The owner gets every event and the result; the timeout is only a failure guard.
    let all =
        tokio::time::timeout(Duration::from_secs(120), owner.until_terminal(&job)).await.expect("owner not stalled");
    assert!(all.len() as u64 > N);
    assert!(matches!(all.last().unwrap().message, Message::JobResult(_)));

    // Now read the subscriber: some events, then the typed lag error (a request error).
    let mut lag = None;
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(30), out_rx.recv()).await {
        let v: Value = serde_json::from_str(&frame).unwrap();
        if v["type"] == "job.error" {
            lag = Some(v);
            break;
        }
    }
    let lag = lag.expect("a lag error");
    assert_eq!(lag["payload"]["code"], "INTERNAL_ERROR");
    assert_eq!(lag["payload"]["details"]["cap"], "subscriber_queue");
    assert_eq!(lag["payload"]["details"]["request_id"], "msg_s2");
    drop(in_tx);
}
