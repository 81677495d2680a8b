//! Property test: the port against a simple reference model, under random sequences of
//! starts, continues (current, stale, missing, empty, other-session, unknown-session tokens),
//! forced outcomes (finished, parked, contended, aborted, fail) and idle time passing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use arcp_core::Clock;
use async_trait::async_trait;
use channel_core::{
    ContinuationToken, Error, EventSink, Refusal, RunnerError, SessionId, Turn, TurnOutcome, TurnReply, TurnRunner,
};
use common::{Force, OWNER, TTL_MS, fixture};
use proptest::prelude::*;
use serde_json::{Value, json};

/// A runner whose outcome is named by the body (`"finished"`, `"parked"`, …).
#[derive(Default)]
struct BodyRunner {
    runs: AtomicUsize,
}

#[async_trait]
impl TurnRunner for BodyRunner {
    async fn run(&self, _: &Turn, body: Value, _: &mut dyn EventSink) -> Result<TurnOutcome, RunnerError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        match body.as_str() {
            Some("parked") => Ok(TurnOutcome::Parked { wait: json!("w") }),
            Some("contended") => Ok(TurnOutcome::Contended { current: json!("c") }),
            Some("aborted") => Ok(TurnOutcome::Aborted),
            Some("fail") => Err(RunnerError::new("forced")),
            _ => Ok(TurnOutcome::Finished { output: Some(body) }),
        }
    }
}

fn body(force: Force) -> Value {
    json!(match force {
        Force::Finished => "finished",
        Force::Parked => "parked",
        Force::Contended => "contended",
        Force::Aborted => "aborted",
        Force::Fail => "fail",
    })
}

#[derive(Debug, Clone, Copy)]
enum Tok {
    Current,
    Stale,
    Missing,
    Empty,
    OtherSession,
}

#[derive(Debug, Clone)]
enum Op {
    Start(Force),
    Continue { session: usize, tok: Tok, force: Force },
    ContinueUnknown(Force),
    Advance(u64),
}

fn force() -> impl Strategy<Value = Force> {
    prop_oneof![
        Just(Force::Finished),
        Just(Force::Parked),
        Just(Force::Contended),
        Just(Force::Aborted),
        Just(Force::Fail)
    ]
}

fn tok() -> impl Strategy<Value = Tok> {
    prop_oneof![4 => Just(Tok::Current), 1 => Just(Tok::Stale), 1 => Just(Tok::Missing), 1 => Just(Tok::Empty), 1 => Just(Tok::OtherSession)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => force().prop_map(Op::Start),
        6 => (0usize..8, tok(), force()).prop_map(|(session, tok, force)| Op::Continue { session, tok, force }),
        1 => force().prop_map(Op::ContinueUnknown),
        1 => (0u64..TTL_MS * 2).prop_map(Op::Advance),
    ]
}

struct ModelSession {
    id: SessionId,
    current: ContinuationToken,
    old: Vec<ContinuationToken>,
    expires_at: u64,
}

/// What the model expects of one call.
#[derive(Debug, PartialEq)]
enum Expect {
    Refused(Refusal),
    Failed,
    Kept,
    Rotated,
}

fn check(result: &Result<TurnReply, Error>, expect: &Expect, presented: Option<&ContinuationToken>) {
    match (expect, result) {
        (Expect::Refused(r), Err(e)) => assert_eq!(e.refusal(), Some(*r)),
        (Expect::Failed, Err(Error::Runner(_))) => {}
        (Expect::Kept, Ok(reply)) => assert_eq!(reply.continuation_token.as_ref(), presented),
        (Expect::Rotated, Ok(reply)) => {
            let t = reply.continuation_token.as_ref().unwrap();
            assert!(t.is_canonical());
            assert_ne!(Some(t), presented);
        }
        (e, r) => panic!("expected {e:?}, got {r:?}"),
    }
}

fn run_ops(ops: Vec<Op>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let f = fixture();
        let runner = BodyRunner::default();
        let mut model: Vec<ModelSession> = Vec::new();
        let mut expected_runs = 0usize;
        for op in ops {
            let now = f.clock.now_millis();
            match op {
                Op::Advance(ms) => f.clock.advance(ms),
                Op::Start(force) => {
                    expected_runs += 1;
                    let r = f.channel.start(OWNER, body(force), &runner, &mut Vec::new()).await;
                    if force == Force::Fail {
                        check(&r, &Expect::Failed, None);
                    } else {
                        let reply = r.unwrap();
                        assert_eq!(reply.outcome.status(), body(force).as_str().unwrap());
                        model.push(ModelSession {
                            id: reply.session_id,
                            current: reply.continuation_token.unwrap(),
                            old: Vec::new(),
                            expires_at: now + TTL_MS,
                        });
                    }
                }
                Op::ContinueUnknown(force) => {
                    let r = f
                        .channel
                        .continue_turn(
                            &SessionId::presented("chs_unknown"),
                            OWNER,
                            Some("ct_x"),
                            body(force),
                            &runner,
                            &mut Vec::new(),
                        )
                        .await;
                    check(&r, &Expect::Refused(Refusal::UnknownSession), None);
                }
                Op::Continue { session, tok, force } => {
                    if model.is_empty() {
                        continue;
                    }
                    let i = session % model.len();
                    let forged = ContinuationToken::presented(Some("ct_forged"));
                    let presented: Option<ContinuationToken> = match tok {
                        Tok::Current => Some(model[i].current.clone()),
                        Tok::Stale => model[i].old.last().cloned().or(forged),
                        Tok::Missing | Tok::Empty => None,
                        Tok::OtherSession => {
                            model.iter().enumerate().find(|(j, _)| *j != i).map(|(_, s)| s.current.clone()).or(forged)
                        }
                    };
                    let raw = match tok {
                        Tok::Empty => Some(""),
                        _ => presented.as_ref().map(ContinuationToken::expose),
                    };
                    let expect = if model[i].expires_at <= now {
                        Expect::Refused(Refusal::UnknownSession)
                    } else if presented.is_none() {
                        Expect::Refused(Refusal::MissingToken)
                    } else if !matches!(tok, Tok::Current) {
                        Expect::Refused(Refusal::StaleToken)
                    } else {
                        match force {
                            Force::Fail => Expect::Failed,
                            Force::Contended | Force::Aborted => Expect::Kept,
                            Force::Finished | Force::Parked => Expect::Rotated,
                        }
                    };
                    let id = model[i].id.clone();
                    // The pre-flight validation agrees with the model.
                    let v = f.channel.validate(&id, OWNER, raw).await;
                    match &expect {
                        Expect::Refused(r) => assert_eq!(v.unwrap_err().refusal(), Some(*r)),
                        _ => v.unwrap(),
                    }
                    let r = f.channel.continue_turn(&id, OWNER, raw, body(force), &runner, &mut Vec::new()).await;
                    check(&r, &expect, presented.as_ref());
                    match expect {
                        Expect::Refused(_) => {}
                        Expect::Failed | Expect::Kept => {
                            expected_runs += 1;
                            model[i].expires_at = now + TTL_MS;
                        }
                        Expect::Rotated => {
                            expected_runs += 1;
                            let next = r.unwrap().continuation_token.unwrap();
                            let s = &mut model[i];
                            s.old.push(std::mem::replace(&mut s.current, next));
                            s.expires_at = now + TTL_MS;
                        }
                    }
                }
            }
            // Invariants after every step.
            assert_eq!(runner.runs.load(Ordering::SeqCst), expected_runs);
            let now = f.clock.now_millis();
            for s in &model {
                assert!(!f.channel.in_flight(&s.id).await.unwrap());
                let current = f.channel.current_token(&s.id).await.unwrap();
                if s.expires_at > now {
                    assert_eq!(current.as_ref(), Some(&s.current));
                } else {
                    assert_eq!(current, None);
                }
            }
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn port_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        run_ops(ops);
    }
}
