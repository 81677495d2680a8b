//! §6.4 heartbeats on a paused clock: the interval in the welcome, pings when idle, loss after
//! two silent intervals (a disconnect: jobs keep running, the session resumes), and nothing
//! of it without the feature.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use arcp_core::ErrorCode;
use arcp_core::message::Message;
use arcp_server::RuntimeConfig;
use serde_json::json;
use support::{Client, TOKEN, runtime_with};
use tokio::time::Instant;

fn config(interval_secs: u64) -> RuntimeConfig {
    RuntimeConfig { heartbeat_interval: Duration::from_secs(interval_secs), ..RuntimeConfig::default() }
}

#[tokio::test(start_paused = true)]
async fn s6_4_welcome_carries_the_interval_only_when_negotiated() {
    let rt = runtime_with(RuntimeConfig::default());
    let mut c = Client::connect(&rt);
    let Message::SessionWelcome(w) = c.hello().await.message else { panic!() };
    assert_eq!(w.heartbeat_interval_sec.map(|s| s.get()), Some(30), "default 30 s");
    assert!(w.capabilities.features.unwrap().iter().any(|f| f.as_str() == "heartbeat"));

    let mut v10 = Client::connect(&rt);
    let Message::SessionWelcome(w) = v10.hello_with(TOKEN, Some(&["progress"])).await.message else { panic!() };
    assert_eq!(w.heartbeat_interval_sec, None);
}

#[tokio::test(start_paused = true)]
async fn s6_4_a_client_may_ask_for_a_shorter_interval_with_the_vendor_capability() {
    let rt = runtime_with(RuntimeConfig::default());
    for (asked, effective) in [(json!(2), 2), (json!(0), 1), (json!(90), 30)] {
        let mut c = Client::connect(&rt);
        c.send(
            "session.hello",
            json!({
                "client": {"name": "t", "version": "0"},
                "auth": {"scheme": "bearer", "token": TOKEN},
                "capabilities": {"features": ["heartbeat"], "x-vendor.arcp-rs.heartbeat_interval_sec": asked},
            }),
            json!({}),
        );
        let Message::SessionWelcome(w) = c.next().await.message else { panic!() };
        assert_eq!(w.heartbeat_interval_sec.map(|s| s.get()), Some(effective));
        assert_eq!(w.capabilities.other["x-vendor.arcp-rs.heartbeat_interval_sec"], json!(effective));
    }
}

#[tokio::test(start_paused = true)]
async fn s6_4_an_idle_runtime_pings_then_drops_a_silent_peer_with_heartbeat_lost() {
    let rt = runtime_with(config(4));
    let mut c = Client::connect(&rt);
    c.hello().await;
    let start = Instant::now();
    let ping = c.next().await;
    let Message::SessionPing(p) = &ping.message else { panic!("{ping:?}") };
    assert!(!p.nonce.is_empty());
    assert_eq!(ping.event_seq, None, "pings carry no event_seq");
    assert_eq!(start.elapsed(), Duration::from_secs(4), "one interval of silence");
    let lost = c.next().await;
    let Message::SessionError(e) = &lost.message else { panic!("{lost:?}") };
    assert_eq!((e.code.clone(), e.retryable), (ErrorCode::HEARTBEAT_LOST, false));
    assert_eq!(start.elapsed(), Duration::from_secs(8), "two intervals without receiving anything");
    assert!(c.closed().await, "heartbeat loss closes the transport");
}

#[tokio::test(start_paused = true)]
async fn s6_4_any_inbound_frame_keeps_the_session_alive() {
    let rt = runtime_with(config(4));
    let mut c = Client::connect(&rt);
    c.hello().await;
    for n in 0..10 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        c.send("session.ping", json!({"nonce": format!("n{n}"), "sent_at": "2026-01-01T00:00:00Z"}), json!({}));
        let env = c.next().await;
        let Message::SessionPong(p) = &env.message else { panic!("{env:?}") };
        assert_eq!(p.ping_nonce, format!("n{n}"), "the pong also counts as traffic: no runtime ping");
    }
    // 30 s later the session is still open.
    c.send("session.ping", json!({"nonce": "last", "sent_at": "2026-01-01T00:00:00Z"}), json!({}));
    assert!(matches!(c.next().await.message, Message::SessionPong(_)));
}

#[tokio::test(start_paused = true)]
async fn s6_4_heartbeat_loss_detaches_without_cancelling_and_a_resume_replays() {
    let rt = runtime_with(config(3));
    let mut c = Client::connect(&rt);
    c.hello().await;
    let (session, token) = (c.session_id.clone().unwrap(), c.resume_token.clone().unwrap());
    c.submit("count", json!({"n": 12, "delay_ms": 1000}));
    let Message::JobAccepted(a) = c.next().await.message else { panic!() };
    // Events keep flowing (so the runtime never pings), but the client never speaks again.
    let lost = loop {
        let env = c.next().await;
        if !matches!(env.message, Message::JobEvent(_)) {
            break env;
        }
    };
    let Message::SessionError(e) = &lost.message else { panic!("{lost:?}") };
    assert_eq!(e.code, ErrorCode::HEARTBEAT_LOST);
    let seen = c.last_seq;
    assert!(seen < 13, "lost mid-job (saw {seen})");
    assert!(c.closed().await);
    drop(c);
    // Later, the job has gone on while detached; a resume replays and continues.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut again = Client::connect(&rt);
    let w = again.resume(&session, &token, seen).await;
    let Message::SessionWelcome(_) = w.message else { panic!("{w:?}") };
    let ev = again.until_terminal(a.job_id.as_str()).await;
    let Message::JobResult(r) = &ev.last().unwrap().message else { panic!("{:?}", ev.last()) };
    assert_eq!(r.result.as_ref().unwrap()["count"], 12, "heartbeat loss never cancels a job");
    assert_eq!(again.last_seq, 14, "status + 12 progress + result, none lost");
}

#[tokio::test(start_paused = true)]
async fn s6_4_without_the_feature_there_are_no_pings_and_no_loss() {
    let rt = runtime_with(config(2));
    let mut c = Client::connect(&rt);
    c.hello_with(TOKEN, Some(&["progress"])).await;
    assert!(tokio::time::timeout(Duration::from_secs(120), c.t.recv()).await.is_err(), "nothing in 120 s");
    c.send("session.ping", json!({"nonce": "still-here", "sent_at": "2026-01-01T00:00:00Z"}), json!({}));
    let Message::SessionPong(p) = c.next().await.message else { panic!() };
    assert_eq!(p.ping_nonce, "still-here", "pings are answered whether or not negotiated");
}
