//! The JSON routes over real TCP: start, continue, every refusal and error status, recover and
//! info.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use channel_core::{ChannelConfig, ContinuationToken, SessionId};
use channel_rest::RestConfig;
use common::*;
use http::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn small_body() -> RestConfig {
    RestConfig { max_body_bytes: 1024, ..RestConfig::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_continue_rotates_and_outcomes_keep_or_rotate() {
    let server = Server::start(RestConfig::default()).await;
    let addr = server.addr;
    let r = post(addr, "/v1/session", &json!({"input": {"a": 1}, "extra": true}), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type().starts_with("application/json"));
    let v = r.json();
    assert_eq!(v["status"], "finished");
    assert_eq!(v["output"], json!({"a": 1}));
    let (session, t1) = (r.session(), r.token());
    assert!(session.starts_with("chs_") && t1.starts_with("ct_"));

    // Token in the body; a committed turn rotates.
    let r = post(addr, &message_path(&session), &json!({"input": {}, "continuationToken": t1}), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.session(), session);
    let t2 = r.token();
    assert_ne!(t1, t2);
    // The consumed token is dead.
    post(addr, &message_path(&session), &json!({"continuationToken": t1}), &[]).await.assert_error(409, "stale-token");

    // Token in the header; the header wins over a (wrong) body token.
    let r = post(
        addr,
        &message_path(&session),
        &json!({"input": {"force": "contend"}, "continuationToken": "ct_wrong"}),
        &[("x-continuation-token", &t2)],
    )
    .await;
    assert_eq!(r.json()["status"], "contended");
    assert_eq!(r.json()["current"], "elsewhere");
    assert_eq!(r.token(), t2, "contended keeps the token");
    let r =
        post(addr, &message_path(&session), &json!({"input": {"force": "abort"}}), &[("x-continuation-token", &t2)])
            .await;
    assert_eq!(r.json(), json!({"sessionId": session, "status": "aborted", "continuationToken": t2}));
    let r = post(addr, &message_path(&session), &json!({"input": {"force": "park"}}), &[("x-continuation-token", &t2)])
        .await;
    assert_eq!(r.json()["status"], "parked");
    assert_ne!(r.token(), t2, "parked rotates");

    // Content-type parameters are fine.
    let r = request(
        addr,
        Method::POST,
        "/v1/session",
        &[("content-type", "Application/JSON; charset=utf-8")],
        Some(Bytes::from("{}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_and_error_has_its_status_and_reason() {
    let server = Server::start(small_body()).await;
    let addr = server.addr;
    let (session, token) = start_session(addr, &[]).await;
    let path = message_path(&session);

    // Refusals.
    post(addr, &message_path("chs_nope"), &json!({"continuationToken": token}), &[])
        .await
        .assert_error(404, "unknown-session");
    post(addr, "/v1/session/..%2F..%2Fweird%3A%3Aid%0A/message", &json!({"continuationToken": token}), &[])
        .await
        .assert_error(404, "unknown-session");
    post(addr, &path, &json!({"input": {}}), &[]).await.assert_error(400, "missing-token");
    post(addr, &path, &json!({"continuationToken": ""}), &[]).await.assert_error(400, "missing-token");
    post(addr, &path, &json!({"continuationToken": "ct_stale"}), &[]).await.assert_error(409, "stale-token");

    // In flight: hold the session with a slow turn, then present the same (still current) token.
    let slow = {
        let (path, token) = (path.clone(), token.clone());
        tokio::spawn(async move {
            post(addr, &path, &json!({"input": {"delay_ms": 400}, "continuationToken": token}), &[]).await
        })
    };
    wait_in_flight(addr, &session, true).await;
    post(addr, &path, &json!({"continuationToken": token}), &[]).await.assert_error(409, "in-flight");
    let token = slow.await.unwrap().token();

    // Bodies.
    post(addr, "/v1/session", &json!([1, 2]), &[]).await.assert_error(400, "invalid-body");
    post(addr, &path, &json!("text"), &[("x-continuation-token", &token)]).await.assert_error(400, "invalid-body");
    let malformed =
        request(addr, Method::POST, "/v1/session", &[("content-type", "application/json")], Some("{no".into()));
    malformed.await.assert_error(400, "malformed-json");
    let empty = request(addr, Method::POST, "/v1/session", &[("content-type", "application/json")], None);
    empty.await.assert_error(400, "malformed-json");
    let plain = request(addr, Method::POST, "/v1/session", &[("content-type", "text/plain")], Some("{}".into()));
    plain.await.assert_error(415, "unsupported-media-type");
    request(addr, Method::POST, "/v1/session", &[], Some("{}".into()))
        .await
        .assert_error(415, "unsupported-media-type");
    let big = json!({"input": "x".repeat(2000)});
    post(addr, "/v1/session", &big, &[]).await.assert_error(413, "body-too-large");

    // Routes and methods.
    let r = get(addr, "/v1/session", &[]).await;
    r.assert_error(405, "method-not-allowed");
    assert_eq!(r.headers["allow"], "POST");
    let r = post(addr, &format!("/v1/session/{session}"), &json!({}), &[]).await;
    r.assert_error(405, "method-not-allowed");
    assert_eq!(r.headers["allow"], "GET");
    get(addr, &path, &[]).await.assert_error(405, "method-not-allowed");
    post(addr, "/v1/ws", &json!({}), &[]).await.assert_error(405, "method-not-allowed");
    post(addr, &format!("/v1/session/{session}/other"), &json!({}), &[]).await.assert_error(404, "not-found");
    get(addr, "/v1/elsewhere", &[]).await.assert_error(404, "not-found");
    let r = get(addr, "/v1/ws", &[]).await;
    r.assert_error(426, "upgrade-required");
    assert_eq!(r.headers["upgrade"], "websocket");

    // A runner failure is 500 with the runner's message; the token stays valid.
    let r = post(addr, &path, &json!({"input": {"force": "fail"}}), &[("x-continuation-token", &token)]).await;
    r.assert_error(500, "turn-failed");
    assert_eq!(r.json()["error"], "the fixture failed on purpose");
    let r = post(addr, &path, &json!({"input": {}}), &[("x-continuation-token", &token)]).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_over_the_limit_is_413() {
    let server = Server::start(small_body()).await;
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let chunk = "x".repeat(800);
    let req = format!(
        "POST /v1/session HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len(),
        chunk.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains(r#""reason":"body-too-large""#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_is_required_and_sessions_belong_to_their_owner() {
    let server = Server::start_with(RestConfig::default(), true).await;
    let addr = server.addr;
    let r = post(addr, "/v1/session", &json!({}), &[]).await;
    r.assert_error(401, "unauthorized");
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    post(addr, "/v1/session", &json!({}), &[("authorization", "Bearer mallory")])
        .await
        .assert_error(401, "unauthorized");
    get(addr, "/v1/nope", &[]).await.assert_error(401, "unauthorized");

    let alice = [("authorization", "Bearer alice")];
    let bob = [("authorization", "Bearer bob")];
    let (session, token) = start_session(addr, &alice).await;
    let info = format!("/v1/session/{session}");
    assert_eq!(get(addr, &info, &alice).await.status, StatusCode::OK);
    get(addr, &info, &bob).await.assert_error(404, "unknown-session");
    let body = json!({"continuationToken": token});
    post(addr, &message_path(&session), &body, &bob).await.assert_error(404, "unknown-session");
    assert_eq!(post(addr, &message_path(&session), &body, &alice).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_never_shows_a_token() {
    let server = Server::start(RestConfig::default()).await;
    let addr = server.addr;
    let (session, token) = start_session(addr, &[]).await;
    post(addr, &message_path(&session), &json!({"continuationToken": token}), &[]).await;
    let r = get(addr, &format!("/v1/session/{session}"), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.text.contains("ct_"), "{}", r.text);
    let v = r.json();
    assert_eq!(v["sessionId"], session);
    assert_eq!(v["inFlight"], false);
    assert_eq!(v["turns"], 2);
    assert_eq!(v["lastStatus"], "finished");
    get(addr, "/v1/session/chs_unknown", &[]).await.assert_error(404, "unknown-session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_buffered_and_streamed() {
    let server = Server::start(RestConfig::default()).await;
    let addr = server.addr;
    let (session, t1) = start_session(addr, &[]).await;
    let r = post(addr, &message_path(&session), &json!({"input": {"n": 2}, "continuationToken": t1}), &[]).await;
    let reply = r.json();
    let t2 = r.token();
    let recover = format!("/v1/session/{session}/recover");

    // With the current token: the same reply, same token. No body needed (token in a header).
    let r = request(addr, Method::POST, &recover, &[("x-continuation-token", &t2)], None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json(), reply);
    assert!(r.headers.get("x-recording-truncated").is_none());

    // SSE: the recorded events, the outcome last.
    let r = post(addr, &recover, &json!({"continuationToken": t2}), &[SSE]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.content_type().starts_with("text/event-stream"));
    let events = sse_events(&r.text);
    let kinds: Vec<_> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["delta", "record", "outcome"]);
    assert_eq!(events[2].1["continuationToken"], t2);
    assert_eq!(events[2].1["output"], json!({"n": 2}));

    // With the consumed token: a fresh token is reissued and the lost one is dead.
    let r = post(addr, &recover, &json!({"continuationToken": t1}), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let t3 = r.token();
    assert_ne!(t3, t2);
    post(addr, &message_path(&session), &json!({"continuationToken": t2}), &[]).await.assert_error(409, "stale-token");
    let r = post(addr, &message_path(&session), &json!({"continuationToken": t3}), &[]).await;
    assert_eq!(r.status, StatusCode::OK);

    // Refusals and bodies as for a continue.
    post(addr, &recover, &json!({"continuationToken": "ct_no"}), &[]).await.assert_error(409, "stale-token");
    request(addr, Method::POST, &recover, &[], None).await.assert_error(400, "missing-token");
    post(addr, "/v1/session/chs_x/recover", &json!({"continuationToken": t3}), &[])
        .await
        .assert_error(404, "unknown-session");
    request(addr, Method::POST, &recover, &[("content-type", "text/plain")], Some("x".into()))
        .await
        .assert_error(415, "unsupported-media-type");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_reports_truncation_and_nothing_to_recover() {
    let cfg = ChannelConfig { max_recorded_bytes: 10, ..ChannelConfig::default() };
    let server = Server::start_full(RestConfig::default(), false, cfg).await;
    let addr = server.addr;
    let (session, token) = start_session(addr, &[]).await;
    let recover = format!("/v1/session/{session}/recover");
    let r = post(addr, &recover, &json!({"continuationToken": token}), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-recording-truncated"], "true");
    let r = post(addr, &recover, &json!({"continuationToken": token}), &[SSE]).await;
    assert_eq!(r.headers["x-recording-truncated"], "true");
    assert_eq!(sse_events(&r.text).len(), 1, "only the outcome was kept");

    // A session with no completed turn (created directly in the store).
    let id = SessionId::presented("chs_empty");
    let known = ContinuationToken::presented(Some("ct_known")).unwrap();
    let store = server.channel.store();
    let now = 1_000_000_000_000_000;
    let claim = store.create(&id, "", &known, 0, now).await.unwrap();
    store.release(claim, now, None).await.unwrap();
    post(addr, "/v1/session/chs_empty/recover", &json!({"continuationToken": "ct_known"}), &[])
        .await
        .assert_error(404, "nothing-to-recover");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_still_being_sent_gets_its_413() {
    // The server drains the rest of a body it refuses for size, so a client still writing it
    // reads the 413 instead of a connection reset.
    let server = Server::start(RestConfig::default()).await;
    let limit = RestConfig::default().max_body_bytes;
    let body = format!("{{\"input\":\"{}\"}}", "x".repeat(limit + 1 - 12));
    assert_eq!(body.len(), limit + 1);
    for _ in 0..5 {
        let r = request(
            server.addr,
            Method::POST,
            "/v1/session",
            &[("content-type", "application/json")],
            Some(Bytes::from(body.clone())),
        )
        .await;
        r.assert_error(413, "body-too-large");
    }
    // A client that writes the whole body (slowly, in pieces) before reading the answer.
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "POST /v1/session HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        for piece in body.as_bytes().chunks(64 * 1024) {
            s.write_all(piece).await.expect("the server reset the connection mid-body");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    }
    assert_eq!(server.runs(), 0);
}
