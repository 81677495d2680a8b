//! Recovery of a lost reply, and the token-free session info.

use channel_core::ChannelEvent;
use serde_json::{Value, json};

use super::{
    ALL, ChannelCase, ChannelCtx, FORGED, UNKNOWN_SESSION, advance_ok, case, ensure, expect_finished, expect_refused,
    expect_stale, fixture_body, ok, start,
};
use crate::Failure;

pub(super) fn cases() -> Vec<ChannelCase> {
    vec![
        case!(
            recover_lost_reply_reissues_the_token,
            "recover",
            ALL,
            "Presenting the token a committed turn consumed recovers that turn's outcome with a fresh token; the lost token is stale, the fresh one works"
        ),
        case!(
            recover_with_current_token_replays_the_last_turn,
            "recover",
            ALL,
            "Presenting the current token recovers the last turn's outcome with that same token, which still works"
        ),
        case!(
            recover_refusals,
            "recover",
            ALL,
            "Recovery refuses an unknown session, a missing token and a forged token like a continue"
        ),
        case!(
            info_is_token_free_and_counts_turns,
            "info",
            ALL,
            "Session info shows sessionId, inFlight, turns and lastStatus, never a token; an unknown session has none"
        ),
    ]
}

/// Recovery on streaming transports must end with the `outcome`.
fn check_replay(events: &[ChannelEvent], what: &str) -> Result<(), Failure> {
    ensure(
        events.is_empty() || matches!(events.last(), Some(ChannelEvent::Outcome(_))),
        format!("{what}: a replay must end with its `outcome`: {events:?}"),
    )
}

async fn recover_lost_reply_reissues_the_token(ctx: ChannelCtx) -> Result<(), Failure> {
    let (s, t0) = start(&ctx).await?;
    let value = json!({ "lost": "reply" });
    let (_, lost) =
        expect_finished(ctx.driver.advance(&s, Some(&t0), ok(value.clone())).await?, &value, "the lost turn")?;
    let answer = ctx.driver.recover(&s, Some(&t0)).await?;
    let events = match &answer {
        super::Answer::Reply { events, .. } => events.clone(),
        _ => Vec::new(),
    };
    let (reply, fresh) = expect_finished(answer, &value, "recovering with the consumed token")?;
    check_replay(&events, "recovery")?;
    ensure(reply.session_id.as_str() == s, "the recovered reply names another session")?;
    ensure(fresh != lost && fresh != t0, "recovery with the consumed token must issue a fresh token")?;
    expect_stale(&ctx, &s, &lost, "the lost token after a recovery").await?;
    expect_stale(&ctx, &s, &t0, "the consumed token after a recovery").await?;
    advance_ok(&ctx, &s, &fresh, "the recovered token").await.map(|_| ())
}

async fn recover_with_current_token_replays_the_last_turn(ctx: ChannelCtx) -> Result<(), Failure> {
    let (s, t0) = start(&ctx).await?;
    let value = json!(["last", "turn"]);
    let (_, t1) = expect_finished(ctx.driver.advance(&s, Some(&t0), ok(value.clone())).await?, &value, "a turn")?;
    let (reply, again) =
        expect_finished(ctx.driver.recover(&s, Some(&t1)).await?, &value, "recovering with the current token")?;
    ensure(reply.session_id.as_str() == s, "the recovered reply names another session")?;
    ensure(again == t1, "recovery with the current token must answer that token")?;
    advance_ok(&ctx, &s, &t1, "the current token after a recovery").await.map(|_| ())
}

async fn recover_refusals(ctx: ChannelCtx) -> Result<(), Failure> {
    let (s, t0) = start(&ctx).await?;
    expect_refused(
        &ctx.driver.recover(UNKNOWN_SESSION, Some(&t0)).await?,
        "unknown-session",
        "recovering an unknown session",
    )?;
    expect_refused(&ctx.driver.recover(&s, None).await?, "missing-token", "recovering without a token")?;
    expect_refused(&ctx.driver.recover(&s, Some(FORGED)).await?, "stale-token", "recovering with a forged token")?;
    advance_ok(&ctx, &s, &t0, "the token after refused recoveries").await.map(|_| ())
}

/// Whether any object key at any depth mentions a token.
fn has_token_key(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| k.to_ascii_lowercase().contains("token") || has_token_key(v)),
        Value::Array(a) => a.iter().any(has_token_key),
        _ => false,
    }
}

async fn info_is_token_free_and_counts_turns(ctx: ChannelCtx) -> Result<(), Failure> {
    let (s, t0) = start(&ctx).await?;
    let t1 = advance_ok(&ctx, &s, &t0, "a finished turn").await?;
    let (reply, _) = super::expect_reply(
        ctx.driver.advance(&s, Some(&t1), fixture_body("contend", Value::Null)).await?,
        "a contended turn",
    )?;
    ensure(reply.outcome.status() == "contended", "the contended turn must be `contended`")?;
    let info = ctx.driver.info(&s).await?.ok_or("info: the live session is unknown")?;
    let text = info.to_string();
    ensure(!text.contains(&t0) && !text.contains(&t1), format!("info shows a token: {text}"))?;
    ensure(!has_token_key(&info), format!("info has a token field: {text}"))?;
    ensure(info["sessionId"] == s.as_str(), format!("info names another session: {text}"))?;
    ensure(info["inFlight"] == false, format!("info of an idle session must say inFlight: false: {text}"))?;
    ensure(info["turns"] == 3, format!("info must count the 3 completed turns: {text}"))?;
    ensure(info["lastStatus"] == "contended", format!("info's lastStatus must be the last turn's: {text}"))?;
    let (created, expires) = (info["createdAtMs"].as_u64(), info["expiresAtMs"].as_u64());
    ensure(
        matches!((created, expires), (Some(c), Some(e)) if e >= c),
        format!("info needs createdAtMs <= expiresAtMs: {text}"),
    )?;
    ensure(ctx.driver.info(UNKNOWN_SESSION).await?.is_none(), "info of an unknown session must be absent (404)")
}
