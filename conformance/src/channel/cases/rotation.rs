//! Rule 3: rotate only on a committed turn (`finished`, `parked`); `contended`, `aborted`
//! and a runner failure keep the presented token valid. Plus the shape of streamed events.

use channel_core::ChannelEvent;
use serde_json::{Value, json};

use super::{
    ALL, ChannelCase, ChannelCtx, STREAMING, advance_ok, case, ensure, expect_finished, expect_reply, expect_stale,
    fixture_body, ok, start, token_of,
};
use crate::Failure;
use crate::channel::ChannelTransport;
use crate::channel::driver::Answer;

pub(super) fn cases() -> Vec<ChannelCase> {
    vec![
        case!(
            rule3_start_mints_session_and_token,
            "3",
            ALL,
            "START mints a session id and a non-empty token, and its `finished` output is the turn's"
        ),
        case!(rule3_committed_continue_rotates, "3", ALL, "A `finished` continue rotates the token"),
        case!(rule3_parked_rotates, "3", ALL, "A `parked` turn commits: the token rotates and the old one is stale"),
        case!(rule3_contended_keeps_token, "3", ALL, "A `contended` turn keeps the presented token valid"),
        case!(rule3_aborted_keeps_token, "3", ALL, "An `aborted` turn keeps the presented token valid"),
        case!(
            rule3_contended_contended_finished_rotates_once,
            "3",
            ALL,
            "contended, contended, then finished rotates the token exactly once"
        ),
        case!(
            rule3_runner_failure_keeps_token,
            "3",
            ALL,
            "A runner failure (HTTP 500 turn-failed; SSE/WS an `error` event last) keeps the token valid and releases the claim"
        ),
        case!(
            rule3_events_end_with_one_outcome,
            "3",
            STREAMING,
            "Streamed events of a successful turn end with exactly one `outcome`, last, equal to the reply"
        ),
    ]
}

async fn rule3_start_mints_session_and_token(ctx: ChannelCtx) -> Result<(), Failure> {
    let value = json!({ "hello": ["world", 1] });
    let (reply, token) = expect_finished(ctx.driver.start(ok(value.clone())).await?, &value, "start")?;
    ensure(!reply.session_id.as_str().is_empty(), "start: empty sessionId")?;
    ensure(!token.is_empty(), "start: empty continuationToken")
}

async fn rule3_committed_continue_rotates(ctx: ChannelCtx) -> Result<(), Failure> {
    let (s, t0) = start(&ctx).await?;
    advance_ok(&ctx, &s, &t0, "a finished continue").await.map(|_| ())
}

/// Continues with `force`; expects that status and returns the reply's token.
async fn forced(ctx: &ChannelCtx, s: &str, t: &str, force: &str, status: &str) -> Result<String, Failure> {
    let what = format!("a `{force}` continue");
    let (reply, _) = expect_reply(ctx.driver.advance(s, Some(t), fixture_body(force, Value::Null)).await?, &what)?;
    ensure(reply.outcome.status() == status, format!("{what}: expected `{status}`, got `{}`", reply.outcome.status()))?;
    ensure(reply.session_id.as_str() == s, format!("{what}: the reply names session {}", reply.session_id))?;
    token_of(&reply, &what)
}

async fn rule3_parked_rotates(ctx: ChannelCtx) -> Result<(), Failure> {
    let (s, t0) = start(&ctx).await?;
    let t1 = forced(&ctx, &s, &t0, "park", "parked").await?;
    ensure(t1 != t0, "a parked turn commits and must rotate the token")?;
    expect_stale(&ctx, &s, &t0, "the token a parked turn consumed").await?;
    advance_ok(&ctx, &s, &t1, "the token a parked turn issued").await.map(|_| ())
}

async fn keeps(ctx: ChannelCtx, force: &str, status: &str) -> Result<(), Failure> {
    let (s, t0) = start(&ctx).await?;
    let t = forced(&ctx, &s, &t0, force, status).await?;
    ensure(t == t0, format!("a `{status}` turn must answer with the presented token"))?;
    advance_ok(&ctx, &s, &t0, &format!("the token after a `{status}` turn")).await.map(|_| ())
}

async fn rule3_contended_keeps_token(ctx: ChannelCtx) -> Result<(), Failure> {
    keeps(ctx, "contend", "contended").await
}

async fn rule3_aborted_keeps_token(ctx: ChannelCtx) -> Result<(), Failure> {
    keeps(ctx, "abort", "aborted").await
}

async fn rule3_contended_contended_finished_rotates_once(ctx: ChannelCtx) -> Result<(), Failure> {
    let (s, t0) = start(&ctx).await?;
    for i in 1..=2 {
        let t = forced(&ctx, &s, &t0, "contend", "contended").await?;
        ensure(t == t0, format!("contended turn #{i} must keep the token"))?;
    }
    let t1 = advance_ok(&ctx, &s, &t0, "the finishing turn").await?;
    expect_stale(&ctx, &s, &t0, "the token after the one rotation").await?;
    advance_ok(&ctx, &s, &t1, "the rotated token").await.map(|_| ())
}

async fn rule3_runner_failure_keeps_token(ctx: ChannelCtx) -> Result<(), Failure> {
    let (s, t0) = start(&ctx).await?;
    let a = ctx.driver.advance(&s, Some(&t0), fixture_body("fail", Value::Null)).await?;
    let Answer::Failed { reason, events, .. } = a else {
        return Err(format!("a failing turn: expected a failure, got {}", a.describe()));
    };
    match ctx.target.transport() {
        ChannelTransport::Http => ensure(
            reason.as_deref() == Some("turn-failed"),
            format!("a failing turn: expected HTTP 500 `turn-failed`, got reason {reason:?}"),
        )?,
        ChannelTransport::Port | ChannelTransport::Sse | ChannelTransport::Ws => ensure(
            matches!(events.last(), Some(ChannelEvent::Error { .. })),
            format!("a failing turn must end its stream with an `error` event: {events:?}"),
        )?,
    }
    advance_ok(&ctx, &s, &t0, "the token after a runner failure").await.map(|_| ())
}

fn check_events(events: &[ChannelEvent], reply: &channel_core::TurnReply, what: &str) -> Result<(), Failure> {
    let outcomes = events.iter().filter(|e| matches!(e, ChannelEvent::Outcome(_))).count();
    ensure(outcomes == 1, format!("{what}: {outcomes} `outcome` events, expected exactly one: {events:?}"))?;
    ensure(
        matches!(events.last(), Some(ChannelEvent::Outcome(r)) if r == reply),
        format!("{what}: the `outcome` must be the last event and equal the reply: {events:?}"),
    )?;
    ensure(
        !events.iter().any(|e| matches!(e, ChannelEvent::Error { .. })),
        format!("{what}: an `error` event in a successful turn"),
    )?;
    ensure(
        events.iter().any(|e| matches!(e, ChannelEvent::Delta { .. } | ChannelEvent::Record { .. })),
        format!("{what}: the fixture's `delta`/`record` events were not streamed: {events:?}"),
    )
}

async fn rule3_events_end_with_one_outcome(ctx: ChannelCtx) -> Result<(), Failure> {
    let (reply, events) = expect_reply(ctx.driver.start(ok(json!(1))).await?, "start")?;
    check_events(&events, &reply, "start")?;
    let s = reply.session_id.as_str().to_owned();
    let t0 = token_of(&reply, "start")?;
    let (reply, events) = expect_reply(ctx.driver.advance(&s, Some(&t0), ok(json!(2))).await?, "continue")?;
    check_events(&events, &reply, "continue")?;
    let t1 = token_of(&reply, "continue")?;
    let (reply, events) =
        expect_reply(ctx.driver.advance(&s, Some(&t1), fixture_body("contend", Value::Null)).await?, "contended")?;
    check_events(&events, &reply, "a contended continue")
}
