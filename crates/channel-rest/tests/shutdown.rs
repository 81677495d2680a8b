//! Graceful shutdown: `serve` stops accepting, lets in-flight requests finish, then returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use channel_rest::RestConfig;
use common::*;
use futures_util::StreamExt;
use http::StatusCode;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_finish_and_serve_returns() {
    let mut server = Server::start(RestConfig::default()).await;
    let addr = server.addr;
    let (session, token) = start_session(addr, &[]).await;
    let (session2, token2) = start_session(addr, &[]).await;
    let mut ws = ws_connect(addr, &[]).await.unwrap();
    let slow = {
        let path = message_path(&session);
        tokio::spawn(async move {
            post(addr, &path, &json!({"input": {"delay_ms": 400}, "continuationToken": token}), &[]).await
        })
    };
    let slow_sse = {
        let path = message_path(&session2);
        tokio::spawn(async move {
            post(addr, &path, &json!({"input": {"delay_ms": 400}, "continuationToken": token2}), &[SSE]).await
        })
    };
    wait_in_flight(addr, &session, true).await;
    wait_in_flight(addr, &session2, true).await;
    server.shutdown();

    // The in-flight requests complete.
    let r = slow.await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json()["status"], "finished");
    let r = slow_sse.await.unwrap();
    assert_eq!(sse_events(&r.text).last().unwrap().0, "outcome");

    // serve returns.
    let task = server.task.take().unwrap();
    let res = tokio::time::timeout(Duration::from_secs(5), task).await.expect("serve did not return");
    res.unwrap().unwrap();

    // The WebSocket was closed with 1001, and nothing is accepted any more.
    let closed = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap();
    match closed {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
