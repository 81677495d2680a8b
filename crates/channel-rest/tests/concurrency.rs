//! Single use over HTTP: of 1 000 concurrent continues presenting the same valid token,
//! exactly one runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use channel_rest::RestConfig;
use common::*;
use http::StatusCode;
use serde_json::json;

const N: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_same_token_continues_exactly_one_runs() {
    let server = Server::start(RestConfig::default()).await;
    let addr = server.addr;
    let (session, token) = start_session(addr, &[]).await;
    let path = message_path(&session);
    // The winning turn is slow so most requests meet it in flight; whichever reason a loser
    // gets (in-flight, or stale-token once the winner rotated), exactly one request runs.
    let body = json!({"input": {"delay_ms": 200}, "continuationToken": token});
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let (path, body, barrier) = (path.clone(), body.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                post(addr, &path, &body, &[]).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    let (mut in_flight, mut stale) = (0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        if r.status == StatusCode::OK {
            winners.push(r.token());
            continue;
        }
        assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        match r.json()["reason"].as_str().unwrap() {
            "in-flight" => in_flight += 1,
            "stale-token" => stale += 1,
            other => panic!("unexpected reason {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one 200 ({in_flight} in-flight, {stale} stale-token)");
    assert_eq!(in_flight + stale, N - 1);
    assert_eq!(server.runs(), 2, "the start and one continue ran");

    // The winner's token works; the presented one is dead.
    let r = post(addr, &path, &json!({"continuationToken": winners[0]}), &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    post(addr, &path, &json!({"continuationToken": token}), &[]).await.assert_error(409, "stale-token");
}
