//! SSE: event order, keep-alive comments, refusals as plain statuses, in-band failures, and
//! clients that go away mid-turn.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use channel_rest::RestConfig;
use common::*;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_and_continue_stream_events_then_the_outcome() {
    let server = Server::start(RestConfig::default()).await;
    let addr = server.addr;
    let r = post(addr, "/v1/session", &json!({"input": {"q": 1}}), &[SSE]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type().starts_with("text/event-stream"));
    assert_eq!(r.headers["cache-control"], "no-cache");
    let events = sse_events(&r.text);
    let kinds: Vec<_> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["delta", "record", "outcome"], "{}", r.text);
    for (kind, data) in &events {
        assert_eq!(data["type"], kind.as_str(), "data is the ChannelEvent JSON");
    }
    assert_eq!(events[0].1, json!({"type": "delta", "text": "thinking"}));
    let outcome = &events[2].1;
    assert_eq!(outcome["status"], "finished");
    assert_eq!(outcome["output"], json!({"q": 1}));
    let session = outcome["sessionId"].as_str().unwrap().to_owned();
    let token = outcome["continuationToken"].as_str().unwrap().to_owned();

    let r = post(
        addr,
        &message_path(&session),
        &json!({"input": {"force": "park"}}),
        &[SSE, ("x-continuation-token", &token)],
    )
    .await;
    let events = sse_events(&r.text);
    assert_eq!(events.last().unwrap().1["status"], "parked");
    let next = events.last().unwrap().1["continuationToken"].as_str().unwrap().to_owned();
    assert_ne!(next, token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_comments_arrive_during_a_slow_turn() {
    let config = RestConfig { keep_alive: Duration::from_millis(50), ..RestConfig::default() };
    let server = Server::start(config).await;
    let r = post(server.addr, "/v1/session", &json!({"input": {"delay_ms": 300}}), &[SSE]).await;
    assert_eq!(r.status, StatusCode::OK);
    let blocks = parse_sse(&r.text);
    assert!(blocks.contains(&Block::Comment), "no keep-alive comment in {:?}", r.text);
    assert!(matches!(blocks.last(), Some(Block::Event { event, .. }) if event == "outcome"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_on_sse_requests_are_plain_statuses() {
    let server = Server::start(RestConfig::default()).await;
    let addr = server.addr;
    let (session, token) = start_session(addr, &[]).await;
    let path = message_path(&session);
    let cases = [
        (message_path("chs_nope"), json!({"continuationToken": token}), 404, "unknown-session"),
        (path.clone(), json!({}), 400, "missing-token"),
        (path.clone(), json!({"continuationToken": "ct_old"}), 409, "stale-token"),
        (path.clone(), json!([]), 400, "invalid-body"),
        ("/v1/session".to_owned(), json!(7), 400, "invalid-body"),
    ];
    for (p, body, status, reason) in cases {
        let r = post(addr, &p, &body, &[SSE]).await;
        r.assert_error(status, reason);
        assert!(!r.content_type().contains("event-stream"));
    }
    let r =
        request(addr, Method::POST, &path, &[SSE, ("content-type", "application/json")], Some(Bytes::from("{"))).await;
    r.assert_error(400, "malformed-json");

    // In flight, checked before the stream opens.
    let slow = {
        let (path, token) = (path.clone(), token.clone());
        tokio::spawn(async move {
            post(addr, &path, &json!({"input": {"delay_ms": 300}, "continuationToken": token}), &[SSE]).await
        })
    };
    wait_in_flight(addr, &session, true).await;
    post(addr, &path, &json!({"continuationToken": token}), &[SSE]).await.assert_error(409, "in-flight");
    let events = sse_events(&slow.await.unwrap().text);
    assert_eq!(events.last().unwrap().0, "outcome");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_failure_mid_stream_is_an_in_band_error_event() {
    let server = Server::start(RestConfig::default()).await;
    let addr = server.addr;
    let (session, token) = start_session(addr, &[]).await;
    let r =
        post(addr, &message_path(&session), &json!({"input": {"force": "fail"}, "continuationToken": token}), &[SSE])
            .await;
    assert_eq!(r.status, StatusCode::OK);
    let events = sse_events(&r.text);
    let kinds: Vec<_> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["delta", "record", "error"]);
    assert_eq!(events[2].1, json!({"type": "error", "message": "the fixture failed on purpose"}));
    // The token stays valid.
    let r = post(addr, &message_path(&session), &json!({"continuationToken": token}), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
}

/// Recovers with the token the lost turn consumed and continues with the reissued one.
async fn assert_turn_completed_and_session_usable(server: &Server, session: &str, consumed: &str) {
    let addr = server.addr;
    wait_in_flight(addr, session, false).await;
    let info = get(addr, &format!("/v1/session/{session}"), &[]).await.json();
    assert_eq!(info["turns"], 2, "the abandoned turn ran to completion: {info}");
    let r = post(addr, &format!("/v1/session/{session}/recover"), &json!({"continuationToken": consumed}), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json()["output"], json!({"delay_ms": 300}));
    let r = post(addr, &message_path(session), &json!({"continuationToken": r.token()}), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffered_client_that_disconnects_mid_turn_leaves_no_claim() {
    let server = Server::start(RestConfig::default()).await;
    let (session, token) = start_session(server.addr, &[]).await;
    let body = json!({"input": {"delay_ms": 300}, "continuationToken": token}).to_string();
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let req = format!(
        "POST {} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        message_path(&session),
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    wait_in_flight(server.addr, &session, true).await;
    drop(s);
    assert_turn_completed_and_session_usable(&server, &session, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_client_that_disconnects_mid_turn_leaves_no_claim() {
    let server = Server::start(RestConfig::default()).await;
    let (session, token) = start_session(server.addr, &[]).await;
    let body = json!({"input": {"delay_ms": 300}, "continuationToken": token});
    let resp = send(
        server.addr,
        Method::POST,
        &message_path(&session),
        &[SSE, ("content-type", "application/json")],
        Some(Bytes::from(body.to_string())),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    // Read the first event, then go away.
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: delta"));
    drop(body);
    assert_turn_completed_and_session_usable(&server, &session, &token).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_before_the_response_head_does_not_break_the_server() {
    let server = Server::start(RestConfig::default()).await;
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    s.write_all(
        b"POST /v1/session HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    drop(s);
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GARBAGE\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
    let r = get(server.addr, "/v1/session/chs_x", &[]).await;
    r.assert_error(404, "unknown-session");
}
