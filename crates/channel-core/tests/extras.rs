//! Beyond the original: sessions belong to their owner, claims time out, the last turn can be
//! recovered by a client that lost the response, and a session's status is readable without
//! its token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use channel_core::{ChannelEvent, Error, Refusal, TurnOutcome};
use common::{Force, OWNER, Scripted, TTL_MS, fixture};
use serde_json::json;

fn refusal<T: std::fmt::Debug>(r: Result<T, Error>) -> Refusal {
    r.unwrap_err().refusal().expect("a refusal")
}

#[tokio::test]
async fn another_owner_sees_unknown_session() {
    let f = fixture();
    let runner = Scripted::default();
    let a = f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap();
    let tok = a.continuation_token.unwrap();
    let mut sink = Vec::new();
    let r = f.channel.continue_turn(&a.session_id, "mallory", Some(tok.expose()), json!(1), &runner, &mut sink);
    assert_eq!(refusal(r.await), Refusal::UnknownSession);
    assert_eq!(
        refusal(f.channel.validate(&a.session_id, "mallory", Some(tok.expose())).await),
        Refusal::UnknownSession
    );
    assert!(f.channel.info(&a.session_id, "mallory").await.unwrap().is_none());
    assert_eq!(refusal(f.channel.recover(&a.session_id, "mallory", Some(tok.expose())).await), Refusal::UnknownSession);
    // The owner is unaffected.
    f.channel
        .continue_turn(&a.session_id, OWNER, Some(tok.expose()), json!(1), &runner, &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(runner.runs(), 2);
}

#[tokio::test]
async fn a_claim_times_out_and_its_late_commit_is_refused() {
    let f = fixture();
    let runner = Scripted::default();
    let a = f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap();
    let tok = a.continuation_token.unwrap();
    let store = f.store_dyn();
    // A turn claims the session and never finishes (a crashed node).
    let claim_ttl = 1_000;
    let stuck = store.claim(&a.session_id, OWNER, Some(&tok), f.now(), f.now() + claim_ttl).await.unwrap();
    assert_eq!(refusal(f.channel.validate(&a.session_id, OWNER, Some(tok.expose())).await), Refusal::InFlight);
    f.clock.advance(claim_ttl);
    assert!(!f.channel.in_flight(&a.session_id).await.unwrap());
    // The conversation is usable again with the same token; the stuck turn's commit fails.
    let mut sink = Vec::new();
    f.channel.continue_turn(&a.session_id, OWNER, Some(tok.expose()), json!(2), &runner, &mut sink).await.unwrap();
    let summary = channel_core::TurnSummary::new(&TurnOutcome::Aborted, channel_core::TurnLog::new(&[], false));
    let fresh = channel_core::ContinuationToken::mint(&arcp_core::SeededEntropy::new(9)).unwrap();
    assert_eq!(store.commit(stuck, &fresh, f.now() + TTL_MS, &summary).await, Err(channel_core::StoreError::ClaimLost));
}

#[tokio::test]
async fn recover_with_the_consumed_token_reissues_and_kills_the_lost_one() {
    let f = fixture();
    let runner = Scripted::default();
    let a = f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap();
    let t0 = a.continuation_token.unwrap();
    let mut streamed = Vec::new();
    let lost =
        f.channel.continue_turn(&a.session_id, OWNER, Some(t0.expose()), json!({"q": 2}), &runner, &mut streamed);
    let lost = lost.await.unwrap();
    let t1 = lost.continuation_token.clone().unwrap();
    // The client never saw `lost`; it presents t0 again to recover.
    let got = f.channel.recover(&a.session_id, OWNER, Some(t0.expose())).await.unwrap().unwrap();
    assert_eq!(runner.runs(), 2, "recovery runs nothing");
    assert!(!got.truncated);
    let t1b = got.reply.continuation_token.clone().unwrap();
    assert_ne!(t1b, t1);
    assert_eq!(got.reply.outcome, lost.outcome);
    assert_eq!(got.events.len(), streamed.len());
    assert_eq!(got.events[0], streamed[0]);
    assert_eq!(got.events.last(), Some(&ChannelEvent::Outcome(got.reply.clone())));
    // The lost token is dead; the reissued one works; recording never holds a token.
    let r = f.channel.validate(&a.session_id, OWNER, Some(t1.expose())).await;
    assert_eq!(refusal(r), Refusal::StaleToken);
    f.channel.validate(&a.session_id, OWNER, Some(t1b.expose())).await.unwrap();
    // Recovering with the current token answers the same turn with that token, unchanged.
    let again = f.channel.recover(&a.session_id, OWNER, Some(t1b.expose())).await.unwrap().unwrap();
    assert_eq!(again.reply.continuation_token.as_ref(), Some(&t1b));
    // After the next committed turn, t0 recovers nothing.
    f.channel
        .continue_turn(&a.session_id, OWNER, Some(t1b.expose()), json!(3), &runner, &mut Vec::new())
        .await
        .unwrap();
    assert_eq!(refusal(f.channel.recover(&a.session_id, OWNER, Some(t0.expose())).await), Refusal::StaleToken);
    assert_eq!(refusal(f.channel.recover(&a.session_id, OWNER, None).await), Refusal::MissingToken);
}

#[tokio::test]
async fn recover_after_a_no_progress_turn_keeps_the_token() {
    let f = fixture();
    let runner = Scripted::default();
    let a = f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap();
    let t0 = a.continuation_token.unwrap();
    runner.force(Force::Contended);
    f.channel.continue_turn(&a.session_id, OWNER, Some(t0.expose()), json!(2), &runner, &mut Vec::new()).await.unwrap();
    let got = f.channel.recover(&a.session_id, OWNER, Some(t0.expose())).await.unwrap().unwrap();
    assert_eq!(got.reply.outcome.status(), "contended");
    assert_eq!(got.reply.continuation_token.as_ref(), Some(&t0));
    f.channel.validate(&a.session_id, OWNER, Some(t0.expose())).await.unwrap();
}

#[tokio::test]
async fn recordings_are_capped_but_keep_the_outcome() {
    let mut f = fixture();
    f.channel = channel_core::Channel::new(
        f.store.clone(),
        f.clock.clone(),
        std::sync::Arc::new(arcp_core::SeededEntropy::new(5)),
        channel_core::ChannelConfig { max_recorded_bytes: 10, ..channel_core::ChannelConfig::default() },
    );
    let runner = Scripted::default();
    let a = f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap();
    let tok = a.continuation_token.unwrap();
    let got = f.channel.recover(&a.session_id, OWNER, Some(tok.expose())).await.unwrap().unwrap();
    assert!(got.truncated);
    assert_eq!(got.events.len(), 1);
    assert!(matches!(got.events[0], ChannelEvent::Outcome(_)));
}

#[tokio::test]
async fn info_shows_status_never_the_token() {
    let f = fixture();
    let runner = Scripted::default();
    let a = f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap();
    let tok = a.continuation_token.unwrap();
    runner.force(Force::Parked);
    f.channel
        .continue_turn(&a.session_id, OWNER, Some(tok.expose()), json!(2), &runner, &mut Vec::new())
        .await
        .unwrap();
    let info = f.channel.info(&a.session_id, OWNER).await.unwrap().unwrap();
    assert_eq!(info.turns, 2);
    assert_eq!(info.last_status.as_deref(), Some("parked"));
    assert!(!info.in_flight);
    assert_eq!(info.expires_at_ms, f.now() + TTL_MS);
    let text = serde_json::to_string(&info).unwrap();
    assert!(!text.contains("ct_"), "{text}");
    f.clock.advance(TTL_MS);
    assert!(f.channel.info(&a.session_id, OWNER).await.unwrap().is_none());
    let _ = Duration::ZERO;
}

struct Picky;

#[async_trait::async_trait]
impl channel_core::TurnRunner for Picky {
    async fn run(
        &self,
        _: &channel_core::Turn,
        _: serde_json::Value,
        _: &mut dyn channel_core::EventSink,
    ) -> Result<TurnOutcome, channel_core::RunnerError> {
        Ok(TurnOutcome::Finished { output: None })
    }

    fn check(&self, body: &serde_json::Value) -> Result<(), String> {
        if body.is_object() { Ok(()) } else { Err("the body must be an object".into()) }
    }
}

#[tokio::test]
async fn a_body_the_runner_rejects_touches_nothing() {
    let f = fixture();
    let r = f.channel.start(OWNER, json!(1), &Picky, &mut Vec::new()).await;
    assert_eq!(r.unwrap_err().code(), "invalid-body");
    assert!(f.store.is_empty());
    let a = f.channel.start(OWNER, json!({}), &Picky, &mut Vec::new()).await.unwrap();
    let tok = a.continuation_token.unwrap();
    let mut sink = Vec::new();
    let r = f.channel.continue_turn(&a.session_id, OWNER, Some(tok.expose()), json!([]), &Picky, &mut sink).await;
    assert!(matches!(r, Err(Error::InvalidBody(_))));
    assert!(sink.is_empty());
    f.channel.validate(&a.session_id, OWNER, Some(tok.expose())).await.unwrap();
}

struct Panics;

#[async_trait::async_trait]
impl channel_core::TurnRunner for Panics {
    async fn run(
        &self,
        _: &channel_core::Turn,
        _: serde_json::Value,
        _: &mut dyn channel_core::EventSink,
    ) -> Result<TurnOutcome, channel_core::RunnerError> {
        panic!("a buggy runner")
    }
}

#[tokio::test]
async fn a_panicking_runner_is_a_failed_turn_that_keeps_the_token() {
    let f = fixture();
    let a = f.channel.start(OWNER, json!({}), &Scripted::default(), &mut Vec::new()).await.unwrap();
    let tok = a.continuation_token.unwrap();
    let mut sink = Vec::new();
    let r = f.channel.continue_turn(&a.session_id, OWNER, Some(tok.expose()), json!(1), &Panics, &mut sink).await;
    assert_eq!(r.unwrap_err().code(), "turn-failed");
    assert!(matches!(sink.last(), Some(ChannelEvent::Error { .. })));
    assert!(!f.channel.in_flight(&a.session_id).await.unwrap());
    f.channel.validate(&a.session_id, OWNER, Some(tok.expose())).await.unwrap();
}
