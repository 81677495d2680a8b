//! §6: handshake, bearer auth, feature negotiation, phase rules, session.error closes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use arcp_core::agent::AgentInventory;
use arcp_core::message::Message;
use arcp_core::{ErrorCode, ProtocolVersion};
use serde_json::json;
use support::*;

#[tokio::test]
async fn s6_2_hello_gets_a_welcome_with_negotiated_features() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    let welcome = c.hello_with(TOKEN, Some(&["agent_versions", "progress", "x-unknown"])).await;
    let Message::SessionWelcome(w) = &welcome.message else { panic!("{welcome:?}") };
    assert!(welcome.session_id.as_ref().unwrap().is_canonical());
    assert!(w.resume_token.is_canonical());
    let features: Vec<&str> = w.capabilities.features.as_ref().unwrap().iter().map(|f| f.as_str()).collect();
    assert_eq!(features, vec!["agent_versions", "progress"]);
    assert!(matches!(w.capabilities.agents, Some(AgentInventory::Rich(_))));
    assert_eq!(welcome.arcp, ProtocolVersion::V1_1);
}

#[tokio::test]
async fn s6_2_v1_0_client_gets_no_features_and_a_flat_inventory_in_its_own_version() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.send_raw(r#"{"arcp":"1","id":"msg_a","type":"session.hello","payload":{"client":{"name":"old","version":"0"},"auth":{"scheme":"bearer","token":"tok-alice"}}}"#);
    let welcome = c.next().await;
    let Message::SessionWelcome(w) = &welcome.message else { panic!("{welcome:?}") };
    assert_eq!(welcome.arcp, ProtocolVersion::V1);
    assert_eq!(w.capabilities.features, None);
    assert!(
        matches!(w.capabilities.agents, Some(AgentInventory::Flat(ref names)) if names.contains(&"echo".to_owned()))
    );
}

#[tokio::test]
async fn s6_1_bad_token_is_unauthenticated_and_closes() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    let env = c.hello_with("nope", None).await;
    let Message::SessionError(e) = &env.message else { panic!("{env:?}") };
    assert_eq!(e.code, ErrorCode::UNAUTHENTICATED);
    assert!(c.closed().await, "session.error closes the transport");
}

#[tokio::test]
async fn s6_1_missing_token_and_other_schemes_are_refused() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.send("session.hello", json!({"client":{"name":"c","version":"0"},"auth":{"scheme":"bearer"}}), json!({}));
    let Message::SessionError(e) = c.next().await.message else { panic!() };
    assert_eq!(e.code, ErrorCode::UNAUTHENTICATED);
    let mut c = Client::connect(&rt);
    c.send(
        "session.hello",
        json!({"client":{"name":"c","version":"0"},"auth":{"scheme":"basic","token":"x"}}),
        json!({}),
    );
    let Message::SessionError(e) = c.next().await.message else { panic!() };
    assert_eq!(e.code, ErrorCode::INVALID_REQUEST);
    assert!(c.closed().await);
}

#[tokio::test]
async fn s6_2_anything_before_hello_is_dropped() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.submit("echo", json!(1));
    c.send_raw("garbage");
    let welcome = c.hello().await;
    assert!(matches!(welcome.message, Message::SessionWelcome(_)), "{welcome:?}");
}

#[tokio::test]
async fn s6_2_a_second_hello_is_invalid_and_closes() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let env = c.hello().await;
    let Message::SessionError(e) = &env.message else { panic!("{env:?}") };
    assert_eq!(e.code, ErrorCode::INVALID_REQUEST);
    assert!(c.closed().await);
}

#[tokio::test]
async fn s5_bad_version_in_hello_is_invalid_request() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.send_raw(r#"{"arcp":"2","id":"msg_a","type":"session.hello","payload":{}}"#);
    let Message::SessionError(e) = c.next().await.message else { panic!() };
    assert_eq!(e.code, ErrorCode::INVALID_REQUEST);
    assert!(c.closed().await);
}

#[tokio::test]
async fn s5_malformed_frames_after_welcome_are_session_errors() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.send_raw("{not json");
    let Message::SessionError(e) = c.next().await.message else { panic!() };
    assert_eq!(e.code, ErrorCode::INVALID_REQUEST);
    assert!(c.closed().await);
}

#[tokio::test]
async fn s6_4_ping_is_always_answered() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello_with(TOKEN, None).await;
    c.send("session.ping", json!({"nonce": "p1", "sent_at": "2026-11-23T08:00:00Z"}), json!({}));
    let Message::SessionPong(p) = c.next().await.message else { panic!() };
    assert_eq!(p.ping_nonce, "p1");
}

#[tokio::test]
async fn s6_6_unnegotiated_list_jobs_is_refused() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    // Every feature but list_jobs (which the runtime now advertises).
    c.hello_with(TOKEN, Some(&["ack", "subscribe"])).await;
    c.send("session.list_jobs", json!({}), json!({}));
    let Message::SessionError(e) = c.next().await.message else { panic!() };
    assert_eq!(e.code, ErrorCode::INVALID_REQUEST);
    assert!(e.message.contains("list_jobs"));
}

#[tokio::test]
async fn s6_7_session_close_answers_closed_and_closes() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.send("session.close", json!({"reason": "done"}), json!({}));
    let Message::SessionClosed(closed) = c.next().await.message else { panic!() };
    assert_eq!(closed.reason.as_deref(), Some("done"));
    assert!(c.closed().await);
}
