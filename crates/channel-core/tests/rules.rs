//! One test per numbered rule of the channel (brief `channel.md`) and the conformance cases of
//! the in-process port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use channel_core::{ChannelEvent, ContinuationToken, Error, Refusal, SessionId, TurnLog, TurnOutcome, TurnSummary};
use common::{Force, OWNER, Scripted, TTL_MS, fixture, fixture_with};
use serde_json::json;

fn refusal<T: std::fmt::Debug>(r: Result<T, Error>) -> Refusal {
    r.unwrap_err().refusal().expect("a refusal")
}

#[tokio::test]
async fn start_mints_session_and_token_and_emits_outcome_last() {
    let f = fixture();
    let runner = Scripted::default();
    let mut events = Vec::new();
    let reply = f.channel.start(OWNER, json!({"hi": 1}), &runner, &mut events).await.unwrap();
    assert!(reply.session_id.as_str().starts_with("chs_"));
    let token = reply.continuation_token.clone().unwrap();
    assert!(token.is_canonical());
    assert_eq!(reply.outcome, TurnOutcome::Finished { output: Some(json!({"hi": 1})) });
    assert_eq!(events.last(), Some(&ChannelEvent::Outcome(reply.clone())));
    assert_eq!(events.len(), 2);
    assert!(!f.channel.in_flight(&reply.session_id).await.unwrap());
    assert_eq!(f.channel.current_token(&reply.session_id).await.unwrap(), Some(token));
}

#[tokio::test]
async fn start_issues_a_token_even_for_no_progress_outcomes() {
    let f = fixture();
    let runner = Scripted::default();
    for force in [Force::Contended, Force::Aborted, Force::Parked] {
        runner.force(force);
        let r = f.channel.start(OWNER, json!(null), &runner, &mut Vec::new()).await.unwrap();
        let t = r.continuation_token.unwrap();
        f.channel
            .continue_turn(&r.session_id, OWNER, Some(t.expose()), json!(1), &runner, &mut Vec::new())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn rule1_refusal_order() {
    let f = fixture();
    let runner = Scripted::default();
    let a = f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap();
    let tok = a.continuation_token.clone().unwrap();
    let unknown = SessionId::presented("chs_nope");
    // Unknown beats missing, stale.
    assert_eq!(refusal(f.channel.validate(&unknown, OWNER, None).await), Refusal::UnknownSession);
    assert_eq!(refusal(f.channel.validate(&unknown, OWNER, Some("x")).await), Refusal::UnknownSession);
    assert_eq!(refusal(f.channel.validate(&unknown, OWNER, Some(tok.expose())).await), Refusal::UnknownSession);
    // Missing beats stale.
    assert_eq!(refusal(f.channel.validate(&a.session_id, OWNER, None).await), Refusal::MissingToken);
    assert_eq!(refusal(f.channel.validate(&a.session_id, OWNER, Some("")).await), Refusal::MissingToken);
    assert_eq!(refusal(f.channel.validate(&a.session_id, OWNER, Some("ct_forged")).await), Refusal::StaleToken);
    f.channel.validate(&a.session_id, OWNER, Some(tok.expose())).await.unwrap();

    // In flight: hold a claim directly through the store, then check order again.
    let presented = ContinuationToken::presented(Some(tok.expose()));
    let claim = f.store_dyn().claim(&a.session_id, OWNER, presented.as_ref(), f.now(), f.now() + TTL_MS).await.unwrap();
    assert_eq!(refusal(f.channel.validate(&a.session_id, OWNER, Some(tok.expose())).await), Refusal::InFlight);
    assert_eq!(refusal(f.channel.validate(&a.session_id, OWNER, Some("ct_forged")).await), Refusal::StaleToken);
    assert_eq!(refusal(f.channel.validate(&a.session_id, OWNER, None).await), Refusal::MissingToken);
    assert!(f.channel.in_flight(&a.session_id).await.unwrap());
    let r = f.channel.continue_turn(&a.session_id, OWNER, Some(tok.expose()), json!(1), &runner, &mut Vec::new()).await;
    assert_eq!(refusal(r), Refusal::InFlight);
    f.store_dyn().release(claim, f.now() + TTL_MS, None).await.unwrap();
    // Refusals ran nothing.
    assert_eq!(runner.runs(), 1);
}

#[tokio::test]
async fn refusals_run_nothing_and_emit_nothing() {
    let f = fixture();
    let runner = Scripted::default();
    let a = f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap();
    let mut events = Vec::new();
    for (id, tok) in [
        (SessionId::presented("../../weird::id\n"), Some("ct_x")),
        (a.session_id.clone(), None),
        (a.session_id.clone(), Some("")),
        (a.session_id.clone(), Some("ct_stale")),
    ] {
        let err = f.channel.continue_turn(&id, OWNER, tok, json!(1), &runner, &mut events).await.unwrap_err();
        assert!(Refusal::ALL.contains(&err.refusal().unwrap()));
    }
    assert!(events.is_empty());
    assert_eq!(runner.runs(), 1);
}

#[tokio::test]
async fn garbage_session_id_is_unknown_and_empty_token_is_missing() {
    let f = fixture();
    let runner = Scripted::default();
    let weird = SessionId::presented("../../weird::id\n");
    let r = f.channel.continue_turn(&weird, OWNER, Some("ct_x"), json!(1), &runner, &mut Vec::new()).await;
    assert_eq!(refusal(r), Refusal::UnknownSession);
    let a = f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap();
    let r = f.channel.continue_turn(&a.session_id, OWNER, Some(""), json!(1), &runner, &mut Vec::new()).await;
    assert_eq!(refusal(r), Refusal::MissingToken);
}

#[tokio::test]
async fn token_of_another_session_is_stale() {
    let f = fixture();
    let runner = Scripted::default();
    let a = f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap();
    let b = f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap();
    let tb = b.continuation_token.unwrap();
    let r = f.channel.continue_turn(&a.session_id, OWNER, Some(tb.expose()), json!(1), &runner, &mut Vec::new()).await;
    assert_eq!(refusal(r), Refusal::StaleToken);
    // Both tokens still work for their own sessions.
    let ta = a.continuation_token.unwrap();
    f.channel.continue_turn(&a.session_id, OWNER, Some(ta.expose()), json!(1), &runner, &mut Vec::new()).await.unwrap();
    f.channel.continue_turn(&b.session_id, OWNER, Some(tb.expose()), json!(1), &runner, &mut Vec::new()).await.unwrap();
}

#[tokio::test]
async fn rule2_single_use_consumed_token_is_dead() {
    let f = fixture();
    let runner = Scripted::default();
    let a = f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap();
    let t1 = a.continuation_token.unwrap();
    let r2 = f
        .channel
        .continue_turn(&a.session_id, OWNER, Some(t1.expose()), json!(2), &runner, &mut Vec::new())
        .await
        .unwrap();
    let t2 = r2.continuation_token.unwrap();
    assert_ne!(t1, t2);
    let again =
        f.channel.continue_turn(&a.session_id, OWNER, Some(t1.expose()), json!(3), &runner, &mut Vec::new()).await;
    assert_eq!(refusal(again), Refusal::StaleToken);
    // The current token still works after a stale attempt.
    f.channel.continue_turn(&a.session_id, OWNER, Some(t2.expose()), json!(4), &runner, &mut Vec::new()).await.unwrap();
}

#[tokio::test]
async fn rule3_rotate_only_on_commit() {
    let f = fixture();
    let runner = Scripted::default();
    let a = f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap();
    let mut tok = a.continuation_token.unwrap();
    for (force, rotates) in [
        (Force::Contended, false),
        (Force::Aborted, false),
        (Force::Finished, true),
        (Force::Parked, true),
        (Force::Contended, false),
        (Force::Contended, false),
        (Force::Finished, true),
    ] {
        runner.force(force);
        let mut events = Vec::new();
        let r = f
            .channel
            .continue_turn(&a.session_id, OWNER, Some(tok.expose()), json!(1), &runner, &mut events)
            .await
            .unwrap();
        assert_eq!(events.last(), Some(&ChannelEvent::Outcome(r.clone())));
        let next = r.continuation_token.unwrap();
        assert_eq!(next == tok, !rotates, "{force:?}");
        if rotates {
            let old = f.channel.validate(&a.session_id, OWNER, Some(tok.expose())).await;
            assert_eq!(refusal(old), Refusal::StaleToken);
        }
        tok = next;
        assert!(!f.channel.in_flight(&a.session_id).await.unwrap());
    }
}

#[tokio::test]
async fn rule3_runner_failure_keeps_token_and_releases() {
    let f = fixture();
    let runner = Scripted::default();
    let a = f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap();
    let tok = a.continuation_token.unwrap();
    runner.force(Force::Fail);
    let mut events = Vec::new();
    let err = f
        .channel
        .continue_turn(&a.session_id, OWNER, Some(tok.expose()), json!(1), &runner, &mut events)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Runner(_)));
    assert_eq!(err.code(), "turn-failed");
    assert_eq!(events.last(), Some(&ChannelEvent::failure("boom")));
    assert!(!f.channel.in_flight(&a.session_id).await.unwrap());
    let r = f
        .channel
        .continue_turn(&a.session_id, OWNER, Some(tok.expose()), json!(1), &runner, &mut Vec::new())
        .await
        .unwrap();
    assert_ne!(r.continuation_token.unwrap(), tok);
}

#[test]
fn rule4_tokens_are_long_random_and_constant_time_compared() {
    let e = arcp_core::SeededEntropy::new(9);
    let a = ContinuationToken::mint(&e).unwrap();
    let b = ContinuationToken::mint(&e).unwrap();
    // 32 random bytes = 256 bits ≥ 128.
    assert_eq!(a.expose().len(), "ct_".len() + 64);
    assert!(!a.ct_eq(&b));
    assert!(a.ct_eq(&a.clone()));
    assert!(!format!("{a:?}").contains(a.expose()));
}

#[tokio::test]
async fn rule6_idle_sessions_expire() {
    let f = fixture();
    let runner = Scripted::default();
    let a = f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap();
    let tok = a.continuation_token.unwrap();
    f.clock.advance(TTL_MS - 1);
    // A turn resets the idle timer (contended keeps the token).
    runner.force(Force::Contended);
    f.channel
        .continue_turn(&a.session_id, OWNER, Some(tok.expose()), json!(1), &runner, &mut Vec::new())
        .await
        .unwrap();
    f.clock.advance(TTL_MS - 1);
    f.channel.validate(&a.session_id, OWNER, Some(tok.expose())).await.unwrap();
    assert!(f.channel.touch(&a.session_id).await.unwrap());
    f.clock.advance(TTL_MS);
    let r = f.channel.continue_turn(&a.session_id, OWNER, Some(tok.expose()), json!(1), &runner, &mut Vec::new()).await;
    assert_eq!(refusal(r), Refusal::UnknownSession);
    assert_eq!(f.channel.current_token(&a.session_id).await.unwrap(), None);
    assert!(!f.channel.touch(&a.session_id).await.unwrap());
}

#[tokio::test]
async fn purge_and_capacity() {
    let f = fixture_with(2);
    let runner = Scripted::default();
    f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap();
    f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap();
    let err = f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap_err();
    assert!(matches!(err, Error::Store(channel_core::StoreError::Full { max: 2 })));
    assert_eq!(err.code(), "store-failure");
    assert_eq!(runner.runs(), 2);
    f.clock.advance(TTL_MS);
    // A full store purges expired sessions before giving up.
    f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap();
    assert_eq!(f.store.len(), 1);
    f.clock.advance(TTL_MS);
    assert_eq!(f.channel.purge_expired().await.unwrap(), 1);
    assert!(f.store.is_empty());
}

#[tokio::test]
async fn stale_claims_are_fenced() {
    let f = fixture();
    let runner = Scripted::default();
    let a = f.channel.start(OWNER, json!(1), &runner, &mut Vec::new()).await.unwrap();
    let tok = a.continuation_token.unwrap();
    let store = f.store_dyn();
    let claim = store.claim(&a.session_id, OWNER, Some(&tok), f.now(), f.now() + TTL_MS).await.unwrap();
    store.release(claim.clone(), f.now() + TTL_MS, None).await.unwrap();
    let again = store.release(claim.clone(), f.now() + TTL_MS, None).await;
    assert_eq!(again, Err(channel_core::StoreError::ClaimLost));
    let fresh = ContinuationToken::mint(&arcp_core::SeededEntropy::new(3)).unwrap();
    let summary = TurnSummary::new(&TurnOutcome::Aborted, TurnLog::new(&[], false));
    assert_eq!(store.commit(claim, &fresh, 0, &summary).await, Err(channel_core::StoreError::ClaimLost));
    f.channel.validate(&a.session_id, OWNER, Some(tok.expose())).await.unwrap();
}
