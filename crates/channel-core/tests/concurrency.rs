//! Single use under contention (channel rule 2): many concurrent continues presenting the
//! same valid token, on a multi-threaded runtime; exactly one runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use channel_core::{Error, Refusal};
use common::{OWNER, Scripted, fixture};
use serde_json::json;

async fn race(n: usize, delay: Option<Duration>) {
    let f = fixture();
    let runner = Arc::new(Scripted { delay, ..Scripted::default() });
    let start = f.channel.start(OWNER, json!(0), runner.as_ref(), &mut Vec::new()).await.unwrap();
    let runs_before = runner.runs();
    let token = start.continuation_token.unwrap();
    let session = start.session_id;
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (channel, runner, session, token, barrier) =
            (f.channel.clone(), runner.clone(), session.clone(), token.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            channel
                .continue_turn(&session, OWNER, Some(token.expose()), json!(i), runner.as_ref(), &mut Vec::new())
                .await
        }));
    }
    let (mut ok, mut in_flight, mut stale) = (Vec::new(), 0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(reply) => ok.push(reply),
            Err(Error::Refused(Refusal::InFlight)) => in_flight += 1,
            Err(Error::Refused(Refusal::StaleToken)) => stale += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok.len(), 1, "exactly one continue runs");
    assert_eq!(in_flight + stale, n - 1);
    assert_eq!(runner.runs() - runs_before, 1);
    let next = ok.pop().unwrap().continuation_token.unwrap();
    assert_ne!(next, token);
    // The new token works afterwards; the old one is dead.
    let old = f
        .channel
        .continue_turn(&session, OWNER, Some(token.expose()), json!(1), runner.as_ref(), &mut Vec::new())
        .await;
    assert_eq!(old.unwrap_err().refusal(), Some(Refusal::StaleToken));
    f.channel
        .continue_turn(&session, OWNER, Some(next.expose()), json!(1), runner.as_ref(), &mut Vec::new())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn thousand_same_token_continues_one_runs_slow_turn() {
    race(1000, Some(Duration::from_millis(20))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn thousand_same_token_continues_one_runs_instant_turn() {
    race(1000, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_and_four_same_token_continues() {
    race(2, Some(Duration::from_millis(5))).await;
    race(4, None).await;
}
