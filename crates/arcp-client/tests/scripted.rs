//! The client against a scripted runtime (raw JSON over `memory::pair()`), for behaviour our
//! runtime never shows: an `event_seq` gap, a repeated seq, runtime pings, negotiated
//! heartbeat and ack, refusals without `request_id`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arcp_client::{Client, ClientError, Connector, SubmitRequest};
use arcp_core::ErrorCode;
use arcp_server::transport::TransportError;
use arcp_server::transport::memory::{MemoryTransport, pair};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use support::{drain, options, within};

/// `n` prepared connections: the client gets them in order; the test drives the other ends.
fn scripted(n: usize) -> (impl Connector, Vec<Peer>) {
    let mut clients = VecDeque::new();
    let mut peers = Vec::new();
    for _ in 0..n {
        let (client, server) = pair();
        clients.push_back(client);
        peers.push(Peer { t: server, n: 0 });
    }
    let queue = Arc::new(Mutex::new(clients));
    let connector = move || {
        let next = queue.lock().unwrap().pop_front();
        async move { next.ok_or(TransportError::Io("no more scripted connections".into())) }
    };
    (connector, peers)
}

/// The runtime's end of one scripted connection.
struct Peer {
    t: MemoryTransport,
    n: u64,
}

const SESSION: &str = "sess_scripted";
const TS: &str = "2026-01-01T00:00:00.000Z";

impl Peer {
    async fn recv(&mut self) -> Value {
        let frame = within(self.t.recv()).await.expect("the client is connected");
        serde_json::from_str(&frame).unwrap()
    }

    /// The next frame of type `ty`, skipping others.
    async fn recv_type(&mut self, ty: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["type"] == ty {
                return v;
            }
        }
    }

    fn send(&mut self, ty: &str, extra: Value, payload: Value) {
        self.n += 1;
        let id = format!("msg_peer_{}", self.n);
        let mut env = json!({"arcp": "1.1", "id": id, "type": ty, "session_id": SESSION, "payload": payload});
        for (k, v) in extra.as_object().unwrap() {
            env[k] = v.clone();
        }
        self.t.send(env.to_string()).unwrap();
    }

    fn welcome(&mut self, token: &str, features: &[&str], heartbeat: Option<u64>) {
        let mut payload = json!({
            "runtime": {"name": "scripted", "version": "0"},
            "resume_token": token,
            "resume_window_sec": 600,
            "capabilities": {"features": features, "agents": ["echo"]},
        });
        if let Some(h) = heartbeat {
            payload["heartbeat_interval_sec"] = json!(h);
        }
        self.send("session.welcome", json!({}), payload);
    }

    /// Reads a hello and answers with a welcome.
    async fn open(&mut self, features: &[&str]) -> Value {
        let hello = self.recv_type("session.hello").await;
        self.welcome("rt_first", features, None);
        hello
    }

    /// Reads a submit and accepts it as `job_id`.
    async fn accept(&mut self, job_id: &str) -> Value {
        let submit = self.recv_type("job.submit").await;
        let trace = submit["trace_id"].clone();
        self.send(
            "job.accepted",
            json!({"job_id": job_id, "trace_id": trace}),
            json!({"job_id": job_id, "lease": {}, "accepted_at": TS, "trace_id": trace}),
        );
        submit
    }

    fn log(&mut self, job_id: &str, seq: u64, message: &str) {
        self.send(
            "job.event",
            json!({"job_id": job_id, "event_seq": seq}),
            json!({"kind": "log", "ts": TS, "body": {"level": "info", "message": message}}),
        );
    }

    fn result(&mut self, job_id: &str, seq: u64, result: Value) {
        self.send(
            "job.result",
            json!({"job_id": job_id, "event_seq": seq}),
            json!({"final_status": "success", "result": result}),
        );
    }
}

fn messages(events: &[arcp_client::ReceivedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match &e.event.body {
            arcp_core::event::EventBody::Log(l) => l.message.clone(),
            other => other.kind().to_owned(),
        })
        .collect()
}

#[tokio::test]
async fn a_seq_gap_triggers_a_resume_from_the_cursor() {
    let (connector, mut peers) = scripted(3);
    let mut third = peers.pop().unwrap();
    let mut second = peers.pop().unwrap();
    let mut first = peers.pop().unwrap();
    let script = tokio::spawn(async move {
        let hello = first.open(&["progress"]).await;
        assert!(hello["payload"].get("resume").is_none());
        first.accept("job_1").await;
        first.log("job_1", 1, "one");
        first.log("job_1", 3, "three"); // seq 2 went missing
        // The client gives up on this connection and resumes from seq 1 on the next one.
        let hello = second.recv_type("session.hello").await;
        assert_eq!(
            hello["payload"]["resume"],
            json!({"session_id": SESSION, "resume_token": "rt_first", "last_event_seq": 1})
        );
        second.welcome("rt_second", &["progress"], None);
        second.log("job_1", 2, "two");
        second.log("job_1", 3, "three");
        second.log("job_1", 2, "two again"); // a repeat at or below the cursor is ignored
        second.result("job_1", 4, json!("done"));
        second
    });
    let client = within(Client::connect_with(connector, options())).await.unwrap();
    let mut job = within(client.submit(SubmitRequest::new("echo", json!(1)))).await.unwrap();
    let events = drain(&mut job.events()).await;
    assert_eq!(messages(&events), ["one", "two", "three"]);
    assert_eq!(events.iter().map(|e| e.event_seq.get()).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(within(job.result()).await.unwrap().result, Some(json!("done")));
    assert_eq!(client.resumes(), 1);
    let mut second = within(script).await.unwrap();

    // The runtime leaves; the next resume presents the rotated token and the new cursor, and
    // is refused: the session is over.
    second.send("session.bye", json!({}), json!({"reason": "restart"}));
    let hello = third.recv_type("session.hello").await;
    assert_eq!(
        hello["payload"]["resume"],
        json!({"session_id": SESSION, "resume_token": "rt_second", "last_event_seq": 4})
    );
    third.send(
        "session.error",
        json!({}),
        json!({"code": "RESUME_WINDOW_EXPIRED", "message": "too late", "retryable": false}),
    );
    let err = within(client.ping()).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RESUME_WINDOW_EXPIRED), "{err:?}");
    assert!(client.is_closed());
}

#[tokio::test]
async fn runtime_pings_are_answered_and_client_pings_matched() {
    let (connector, mut peers) = scripted(1);
    let mut peer = peers.pop().unwrap();
    let script = tokio::spawn(async move {
        peer.open(&[]).await;
        peer.send("session.ping", json!({}), json!({"nonce": "n-1", "sent_at": TS}));
        let pong = peer.recv_type("session.pong").await;
        assert_eq!(pong["payload"]["ping_nonce"], "n-1");
        assert_eq!(pong["session_id"], SESSION);
        let ping = peer.recv_type("session.ping").await;
        // A pong for someone else's nonce first: ignored.
        peer.send("session.pong", json!({}), json!({"ping_nonce": "other", "received_at": TS}));
        peer.send("session.pong", json!({}), json!({"ping_nonce": ping["payload"]["nonce"], "received_at": TS}));
        peer
    });
    let client = within(Client::connect_with(connector, options())).await.unwrap();
    assert!(client.features().is_empty());
    // Give the runtime's ping time to be answered before ours goes out.
    tokio::time::sleep(Duration::from_millis(20)).await;
    within(client.ping()).await.unwrap();
    let _peer = within(script).await.unwrap();
}

#[tokio::test]
async fn refusals_without_request_id_are_matched_by_trace_id_and_session_errors_by_order() {
    let (connector, mut peers) = scripted(1);
    let mut peer = peers.pop().unwrap();
    let script = tokio::spawn(async move {
        peer.open(&["agent_versions"]).await;
        // A TS-style refusal: job.error under a fresh job id, with the submit's trace id.
        let submit = peer.recv_type("job.submit").await;
        peer.send(
            "job.error",
            json!({"job_id": "job_fresh", "event_seq": 1, "trace_id": submit["trace_id"]}),
            json!({"final_status": "error", "code": "AGENT_NOT_AVAILABLE", "message": "no such agent"}),
        );
        // A TS-style version refusal as session.error (no request_id, connection kept).
        peer.recv_type("job.submit").await;
        peer.send(
            "session.error",
            json!({}),
            json!({"code": "AGENT_VERSION_NOT_AVAILABLE", "message": "no such version", "retryable": false}),
        );
        peer.accept("job_ok").await;
        peer.result("job_ok", 2, json!(42));
        peer
    });
    let client = within(Client::connect_with(connector, options())).await.unwrap();
    let err = within(client.submit(SubmitRequest::new("ghost", json!(1)))).await.unwrap_err();
    assert_eq!((matches!(err, ClientError::Refused { .. }), err.code()), (true, Some(ErrorCode::AGENT_NOT_AVAILABLE)));
    let err = within(client.submit(SubmitRequest::new("echo@9", json!(1)))).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::AGENT_VERSION_NOT_AVAILABLE));
    let job = within(client.submit(SubmitRequest::new("echo", json!(1)))).await.unwrap();
    assert_eq!(within(job.result()).await.unwrap().result, Some(json!(42)));
    let _peer = within(script).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn negotiated_ack_and_heartbeat_are_honoured() {
    let (connector, mut peers) = scripted(2);
    let mut second = peers.pop().unwrap();
    let mut first = peers.pop().unwrap();
    let script = tokio::spawn(async move {
        first.recv_type("session.hello").await;
        first.welcome("rt_hb", &["ack", "heartbeat"], Some(1));
        first.accept("job_hb").await;
        first.log("job_hb", 1, "one");
        first.log("job_hb", 2, "two");
        let ack = first.recv_type("session.ack").await;
        assert_eq!(ack["payload"]["last_processed_seq"], 2);
        // Idle for an interval: the client pings.
        let ping = first.recv_type("session.ping").await;
        assert!(ping["payload"]["nonce"].is_string());
        // Then the runtime goes silent: after two intervals the client resumes elsewhere.
        let hello = second.recv_type("session.hello").await;
        assert_eq!(hello["payload"]["resume"]["last_event_seq"], 2);
        second.welcome("rt_hb2", &["ack", "heartbeat"], Some(1));
        second.result("job_hb", 3, json!("ok"));
        (first, second)
    });
    let client = within(Client::connect_with(connector, options())).await.unwrap();
    let job = within(client.submit(SubmitRequest::new("echo", json!(1)))).await.unwrap();
    assert_eq!(within(job.result()).await.unwrap().result, Some(json!("ok")));
    assert_eq!(client.resumes(), 1);
    let _peers = within(script).await.unwrap();
}

#[tokio::test]
async fn an_undecodable_terminal_ends_its_job_without_breaking_the_session() {
    let (connector, mut peers) = scripted(1);
    let mut peer = peers.pop().unwrap();
    let script = tokio::spawn(async move {
        peer.open(&[]).await;
        peer.accept("job_bad").await;
        // An event with a reserved kind and a malformed body, then a result that is not one.
        peer.send(
            "job.event",
            json!({"job_id": "job_bad", "event_seq": 1}),
            json!({"kind": "log", "ts": TS, "body": {"level": "loud", "message": "?"}}),
        );
        peer.send("job.result", json!({"job_id": "job_bad", "event_seq": 2}), json!({"final_status": "maybe"}));
        peer.accept("job_good").await;
        peer.result("job_good", 3, json!(1));
        peer
    });
    let client = within(Client::connect_with(connector, options())).await.unwrap();
    let mut bad = within(client.submit(SubmitRequest::new("echo", json!(1)))).await.unwrap();
    let err = within(bad.result()).await.unwrap_err();
    assert!(matches!(err, ClientError::Protocol { .. }), "{err:?}");
    let mut events = bad.events();
    assert!(matches!(within(events.next()).await, Some(Err(ClientError::Protocol { .. }))));
    let good = within(client.submit(SubmitRequest::new("echo", json!(2)))).await.unwrap();
    assert_eq!(within(good.result()).await.unwrap().result, Some(json!(1)));
    assert_eq!(client.resumes(), 0);
    let _peer = within(script).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn acks_are_coalesced_and_repeated_after_a_resume() {
    let (connector, mut peers) = scripted(2);
    let mut second = peers.pop().unwrap();
    let mut first = peers.pop().unwrap();
    let script = tokio::spawn(async move {
        first.recv_type("session.hello").await;
        first.welcome("rt_ack", &["ack"], None);
        first.accept("job_ack").await;
        for seq in 1..=50 {
            first.log("job_ack", seq, "line");
        }
        // Fifty events, one ack.
        let ack = first.recv_type("session.ack").await;
        assert_eq!(ack["payload"]["last_processed_seq"], 50);
        assert!(ack.get("event_seq").is_none(), "acks carry no event_seq");
        // Nothing new: no more acks.
        let quiet = tokio::time::timeout(Duration::from_secs(5), first.t.recv()).await;
        assert!(quiet.is_err(), "an idle client does not re-ack: {quiet:?}");
        drop(first);
        // After a resume the position is acknowledged again on the new connection (an ack in
        // flight on the old one may have been lost), then acks continue.
        let hello = second.recv_type("session.hello").await;
        assert_eq!(hello["payload"]["resume"]["last_event_seq"], 50);
        second.welcome("rt_ack2", &["ack"], None);
        let ack = second.recv_type("session.ack").await;
        assert_eq!(ack["payload"]["last_processed_seq"], 50);
        second.result("job_ack", 51, json!("ok"));
        let ack = second.recv_type("session.ack").await;
        assert_eq!(ack["payload"]["last_processed_seq"], 51);
        second
    });
    let client = within(Client::connect_with(connector, options())).await.unwrap();
    let job = within(client.submit(SubmitRequest::new("echo", json!(1)))).await.unwrap();
    assert_eq!(within(job.result()).await.unwrap().result, Some(json!("ok")));
    let _second = within(script).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn no_acks_without_the_feature() {
    let (connector, mut peers) = scripted(1);
    let mut peer = peers.pop().unwrap();
    let script = tokio::spawn(async move {
        peer.open(&[]).await;
        peer.accept("job_na").await;
        peer.log("job_na", 1, "one");
        peer.result("job_na", 2, json!(1));
        let quiet = tokio::time::timeout(Duration::from_secs(5), peer.t.recv()).await;
        assert!(quiet.is_err(), "nothing (in particular no session.ack): {quiet:?}");
        peer
    });
    let client = within(Client::connect_with(connector, options())).await.unwrap();
    let job = within(client.submit(SubmitRequest::new("echo", json!(1)))).await.unwrap();
    assert_eq!(within(job.result()).await.unwrap().result, Some(json!(1)));
    let _peer = within(script).await.unwrap();
}

#[tokio::test]
async fn listing_pages_with_missing_fields_are_read_and_broken_pages_refused() {
    let (connector, mut peers) = scripted(1);
    let mut peer = peers.pop().unwrap();
    let script = tokio::spawn(async move {
        peer.open(&["list_jobs"]).await;
        // 1. The Python reference runtime's shape (spec/interop.md P-16).
        let list = peer.recv_type("session.list_jobs").await;
        let entry = json!({"job_id": "job_1", "agent": "echo", "status": "success", "submitted_at": TS});
        peer.send("session.jobs", json!({}), json!({"request_id": list["id"], "jobs": [entry], "next_cursor": "1"}));
        // 2. Not a page: `jobs` is not a list.
        let list = peer.recv_type("session.list_jobs").await;
        peer.send("session.jobs", json!({}), json!({"request_id": list["id"], "jobs": {"job_1": {}}}));
        // 3. A status no spec defines, beside the tolerated omissions.
        let list = peer.recv_type("session.list_jobs").await;
        let entry = json!({"job_id": "job_1", "agent": "echo", "status": "finished", "submitted_at": TS});
        peer.send("session.jobs", json!({}), json!({"request_id": list["id"], "jobs": [entry]}));
        // 4. A complete page: nothing tolerated.
        let list = peer.recv_type("session.list_jobs").await;
        let entry = json!({"job_id": "job_2", "agent": "echo@1", "status": "running", "created_at": TS,
                           "lease": {"tool.call": ["*"]}, "parent_job_id": null, "last_event_seq": 4});
        peer.send("session.jobs", json!({}), json!({"request_id": list["id"], "jobs": [entry], "next_cursor": null}));
        peer
    });
    let client = within(Client::connect_with(connector, options())).await.unwrap();
    let page = within(client.list_jobs(Default::default())).await.unwrap();
    let job = &page.jobs[0];
    assert_eq!((job.job_id.as_str(), job.lease.as_ref(), job.last_event_seq), ("job_1", None, None));
    assert_eq!(job.created_at, arcp_core::Timestamp::parse(TS).unwrap());
    assert_eq!(page.next_cursor.as_deref(), Some("1"));
    assert_eq!(
        page.deviations(),
        [
            arcp_client::ListingDeviation::SubmittedAtForCreatedAt,
            arcp_client::ListingDeviation::NoLease,
            arcp_client::ListingDeviation::NoLastEventSeq
        ]
    );
    for what in ["jobs that is not a list", "an unknown status"] {
        let err = within(client.list_jobs(Default::default())).await.unwrap_err();
        assert!(matches!(err, ClientError::Protocol { .. }), "{what}: {err:?}");
    }
    let page = within(client.list_jobs(Default::default())).await.unwrap();
    assert!(page.deviations().is_empty(), "{page:?}");
    assert_eq!(page.jobs[0].last_event_seq.map(|s| s.get()), Some(4));
    assert!(page.jobs[0].lease.is_some());
    assert!(!client.is_closed(), "a bad page fails its request, not the session");
    within(script).await.unwrap();
}
