//! `GET /v1/ws`: starts, rotations, concurrent advances, REST-started sessions, malformed
//! frames, and the upgrade's gates (426, 401).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use channel_rest::RestConfig;
use common::*;
use futures_util::SinkExt;
use http::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn kinds(frames: &[Value]) -> Vec<&str> {
    frames.iter().map(|f| f["type"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_frame_starts_and_committed_advances_rotate() {
    let server = Server::start(RestConfig::default()).await;
    let mut ws = ws_connect(server.addr, &[]).await.unwrap();
    ws_send(&mut ws, &json!({"body": {"input": {"n": 1}}, "requestId": "r1"})).await;
    let frames = ws_turn(&mut ws).await;
    assert_eq!(kinds(&frames), ["delta", "record", "outcome"]);
    assert!(frames.iter().all(|f| f["requestId"] == "r1"), "{frames:?}");
    let outcome = frames.last().unwrap();
    assert_eq!(outcome["status"], "finished");
    assert_eq!(outcome["output"], json!({"n": 1}));
    let session = outcome["sessionId"].as_str().unwrap().to_owned();
    let t1 = outcome["continuationToken"].as_str().unwrap().to_owned();
    assert!(t1.starts_with("ct_"));

    // A bare frame continues the bound session with the connection's token, and rotates it.
    ws_send(&mut ws, &json!({"body": {"input": {"n": 2}}})).await;
    let outcome = ws_turn(&mut ws).await.pop().unwrap();
    assert!(outcome.get("requestId").is_none());
    assert_eq!(outcome["sessionId"], session);
    let t2 = outcome["continuationToken"].as_str().unwrap().to_owned();
    assert_ne!(t1, t2);

    // A contended turn keeps the token; the next bare frame still works.
    ws_send(&mut ws, &json!({"body": {"input": {"force": "contend"}}})).await;
    let outcome = ws_turn(&mut ws).await.pop().unwrap();
    assert_eq!(outcome["status"], "contended");
    assert_eq!(outcome["continuationToken"], t2);

    // A presented stale token (without sessionId) is refused in band; the connection stays open.
    ws_send(&mut ws, &json!({"body": {}, "continuationToken": t1, "requestId": 7})).await;
    let err = ws_recv(&mut ws).await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["reason"], "stale-token");
    assert_eq!(err["requestId"], 7);
    ws_send(&mut ws, &json!({"body": {}, "continuationToken": t2})).await;
    assert_eq!(ws_turn(&mut ws).await.pop().unwrap()["status"], "finished");

    // The REST view agrees.
    let info = get(server.addr, &format!("/v1/session/{session}"), &[]).await.json();
    assert_eq!(info["turns"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_advances_on_one_connection_one_is_in_flight() {
    let server = Server::start(RestConfig::default()).await;
    let mut ws = ws_connect(server.addr, &[]).await.unwrap();
    // Two concurrent starts on an unbound connection.
    let slow = json!({"input": {"delay_ms": 300}});
    ws_send(&mut ws, &json!({"body": slow, "requestId": "a"})).await;
    ws_send(&mut ws, &json!({"body": slow, "requestId": "b"})).await;
    let (outcomes, errors) = collect_two(&mut ws).await;
    assert_eq!(outcomes, ["a"]);
    assert_eq!(errors, [("b".to_owned(), "in-flight".to_owned())]);

    // Two concurrent continues on the bound connection.
    ws_send(&mut ws, &json!({"body": slow, "requestId": "c"})).await;
    ws_send(&mut ws, &json!({"body": slow, "requestId": "d"})).await;
    let (outcomes, errors) = collect_two(&mut ws).await;
    assert_eq!(outcomes, ["c"]);
    assert_eq!(errors, [("d".to_owned(), "in-flight".to_owned())]);

    // Still usable.
    ws_send(&mut ws, &json!({"body": {}})).await;
    assert_eq!(ws_turn(&mut ws).await.pop().unwrap()["type"], "outcome");
    assert_eq!(server.runs(), 3);
}

/// Reads frames until one `outcome` and one `error` arrived; their request ids (and reasons).
async fn collect_two(ws: &mut Ws) -> (Vec<String>, Vec<(String, String)>) {
    let (mut outcomes, mut errors) = (Vec::new(), Vec::new());
    while outcomes.len() + errors.len() < 2 {
        let f = ws_recv(ws).await;
        let rid = f["requestId"].as_str().unwrap().to_owned();
        match f["type"].as_str().unwrap() {
            "outcome" => outcomes.push(rid),
            "error" => errors.push((rid, f["reason"].as_str().unwrap().to_owned())),
            _ => {}
        }
    }
    (outcomes, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_with_session_and_token_continues_a_rest_session() {
    let server = Server::start(RestConfig::default()).await;
    let (session, token) = start_session(server.addr, &[]).await;
    let mut ws = ws_connect(server.addr, &[]).await.unwrap();
    ws_send(&mut ws, &json!({"body": {"input": {"via": "ws"}}, "sessionId": session, "continuationToken": token}))
        .await;
    let outcome = ws_turn(&mut ws).await.pop().unwrap();
    assert_eq!(outcome["type"], "outcome");
    assert_eq!(outcome["sessionId"], session);
    assert_eq!(outcome["output"], json!({"via": "ws"}));
    let next = outcome["continuationToken"].as_str().unwrap().to_owned();
    assert_ne!(next, token);
    // The connection is now bound to it.
    ws_send(&mut ws, &json!({"body": {}})).await;
    let outcome = ws_turn(&mut ws).await.pop().unwrap();
    assert_eq!(outcome["sessionId"], session);
    // And the REST side continues with the token the socket last received.
    let last = outcome["continuationToken"].as_str().unwrap();
    let r = post(server.addr, &message_path(&session), &json!({"continuationToken": last}), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    // Unknown session and missing token are in-band refusals.
    ws_send(&mut ws, &json!({"body": {}, "sessionId": "chs_nope", "continuationToken": last})).await;
    assert_eq!(ws_recv(&mut ws).await["reason"], "unknown-session");
    ws_send(&mut ws, &json!({"body": {}, "sessionId": "chs_other"})).await;
    assert_eq!(ws_recv(&mut ws).await["reason"], "unknown-session");
    ws_send(&mut ws, &json!({"body": {}, "sessionId": session, "continuationToken": ""})).await;
    assert_eq!(ws_recv(&mut ws).await["reason"], "missing-token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_are_error_frames_and_the_connection_stays_open() {
    let server = Server::start(RestConfig::default()).await;
    let mut ws = ws_connect(server.addr, &[]).await.unwrap();
    ws.send(Message::text("{not json")).await.unwrap();
    let f = ws_recv(&mut ws).await;
    assert_eq!((f["type"].as_str(), f["reason"].as_str()), (Some("error"), Some("malformed-json")));
    for bad in [json!([1]), json!({"nobody": 1}), json!({"body": {}, "sessionId": 5, "requestId": "x"})] {
        ws_send(&mut ws, &bad).await;
        let f = ws_recv(&mut ws).await;
        assert_eq!(f["reason"], "invalid-frame", "{bad}");
        assert!(f["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(ws_recv(&mut ws).await["reason"], "invalid-frame");
    // A token without a session on an unbound connection names nothing.
    ws_send(&mut ws, &json!({"body": {}, "continuationToken": "ct_x"})).await;
    assert_eq!(ws_recv(&mut ws).await["reason"], "invalid-frame");
    // An invalid body and a runner failure are error events too.
    ws_send(&mut ws, &json!({"body": [1]})).await;
    let f = ws_recv(&mut ws).await;
    assert_eq!(f["type"], "error");
    assert!(f["message"].as_str().unwrap().contains("JSON object"), "{f}");
    ws_send(&mut ws, &json!({"body": {"input": {"force": "fail"}}})).await;
    let frames = ws_turn(&mut ws).await;
    assert_eq!(frames.last().unwrap(), &json!({"type": "error", "message": "the fixture failed on purpose"}));
    // Still open: a start works.
    ws.send(Message::Ping(vec![1].into())).await.unwrap();
    ws_send(&mut ws, &json!({"body": {}})).await;
    assert_eq!(ws_turn(&mut ws).await.pop().unwrap()["type"], "outcome");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_end_the_connection() {
    let config = RestConfig { max_ws_frame_bytes: 1024, ..RestConfig::default() };
    let server = Server::start(config).await;
    let mut ws = ws_connect(server.addr, &[]).await.unwrap();
    let big = json!({"body": {"input": "x".repeat(4096)}});
    let _ = ws.send(Message::text(big.to_string())).await;
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        use futures_util::StreamExt;
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok());
    assert_eq!(server.runs(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_is_gated_by_the_capability_and_by_auth() {
    let off = Server::start(RestConfig { websocket: false, ..RestConfig::default() }).await;
    assert_eq!(ws_connect(off.addr, &[]).await.err(), Some(StatusCode::UPGRADE_REQUIRED));
    let r = get(off.addr, "/v1/ws", &[]).await;
    r.assert_error(426, "upgrade-required");

    let authed = Server::start_with(RestConfig::default(), true).await;
    assert_eq!(ws_connect(authed.addr, &[]).await.err(), Some(StatusCode::UNAUTHORIZED));
    let mut ws = ws_connect(authed.addr, &[("authorization", "Bearer alice")]).await.unwrap();
    ws_send(&mut ws, &json!({"body": {}})).await;
    let outcome = ws_turn(&mut ws).await.pop().unwrap();
    // The session belongs to alice.
    let session = outcome["sessionId"].as_str().unwrap();
    let path = format!("/v1/session/{session}");
    assert_eq!(get(authed.addr, &path, &[("authorization", "Bearer alice")]).await.status, StatusCode::OK);
    get(authed.addr, &path, &[("authorization", "Bearer bob")]).await.assert_error(404, "unknown-session");
}
