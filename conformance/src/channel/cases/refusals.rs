//! Rule 1: refusals and their order (`unknown-session`, `missing-token`, `stale-token`,
//! `in-flight`), never a silent success.

use serde_json::json;

use super::{
    ALL, ChannelCase, ChannelCtx, FORGED, UNKNOWN_SESSION, advance_ok, case, ensure, expect_refused, expect_reply,
    expect_stale, ok, slow, start, wait_in_flight,
};
use crate::Failure;
use crate::channel::driver::{Answer, is_refusal};

pub(super) fn cases() -> Vec<ChannelCase> {
    vec![
        case!(
            rule1_refusal_order,
            "1",
            ALL,
            "Refusals come in order: an unknown session beats a missing token; while a turn runs, no token is missing-token, a wrong token stale-token, the current token in-flight"
        ),
        case!(
            rule1_missing_token_is_refused,
            "1",
            ALL,
            "A continue without a token is refused missing-token; the token still works"
        ),
        case!(
            rule1_empty_token_is_missing_token,
            "1",
            ALL,
            "An empty-string token is missing-token (not a crash); the token still works"
        ),
        case!(
            rule1_unknown_session_is_refused,
            "1",
            ALL,
            "A continue of a session that never existed is unknown-session"
        ),
        case!(
            rule1_garbage_session_id_is_unknown_session,
            "1",
            ALL,
            "A garbage session id (\"../../weird::id\\n\", percent-encoded on HTTP) is unknown-session"
        ),
        case!(
            rule1_stale_token_refused_current_still_works,
            "1",
            ALL,
            "A forged token is refused stale-token and the current token still works afterwards"
        ),
        case!(
            rule1_consumed_token_is_dead,
            "1",
            ALL,
            "The token a committed turn consumed is stale-token from then on"
        ),
        case!(
            rule1_other_sessions_token_is_stale,
            "1",
            ALL,
            "A valid token of a different session is stale-token; both sessions' tokens still work"
        ),
        case!(
            rule1_every_refusal_is_one_of_four,
            "1",
            ALL,
            "Every refused continue carries one of the four reasons (on HTTP with its status: 404, 400, 409, 409)"
        ),
    ]
}

async fn rule1_refusal_order(ctx: ChannelCtx) -> Result<(), Failure> {
    let d = &ctx.driver;
    let (s, t0) = start(&ctx).await?;
    let a = d.advance(UNKNOWN_SESSION, None, ok(json!(1))).await?;
    expect_refused(&a, "unknown-session", "unknown session without a token")?;
    let a = d.advance(UNKNOWN_SESSION, Some(&t0), ok(json!(1))).await?;
    expect_refused(&a, "unknown-session", "unknown session with another session's token")?;
    let (held, probes) = tokio::join!(d.advance(&s, Some(&t0), slow(&ctx, "ok", json!("held"))), async {
        wait_in_flight(&ctx, &s).await?;
        let none = d.advance(&s, None, ok(json!(1))).await?;
        let forged = d.advance(&s, Some(FORGED), ok(json!(1))).await?;
        let current = d.advance(&s, Some(&t0), ok(json!(1))).await?;
        Ok::<_, Failure>((none, forged, current))
    });
    let (none, forged, current) = probes?;
    expect_refused(&none, "missing-token", "no token while a turn runs")?;
    expect_refused(&forged, "stale-token", "a forged token while a turn runs")?;
    expect_refused(&current, "in-flight", "the current token while a turn runs")?;
    let (reply, _) = expect_reply(held?, "the held turn")?;
    ensure(reply.outcome.status() == "finished", "the held turn must finish")?;
    Ok(())
}

async fn rule1_missing_token_is_refused(ctx: ChannelCtx) -> Result<(), Failure> {
    let (s, t0) = start(&ctx).await?;
    let a = ctx.driver.advance(&s, None, ok(json!(1))).await?;
    expect_refused(&a, "missing-token", "no token")?;
    advance_ok(&ctx, &s, &t0, "the token after a missing-token refusal").await.map(|_| ())
}

async fn rule1_empty_token_is_missing_token(ctx: ChannelCtx) -> Result<(), Failure> {
    let (s, t0) = start(&ctx).await?;
    let a = ctx.driver.advance(&s, Some(""), ok(json!(1))).await?;
    expect_refused(&a, "missing-token", "an empty token")?;
    advance_ok(&ctx, &s, &t0, "the token after an empty-token refusal").await.map(|_| ())
}

async fn rule1_unknown_session_is_refused(ctx: ChannelCtx) -> Result<(), Failure> {
    let (_, t0) = start(&ctx).await?;
    let a = ctx.driver.advance(UNKNOWN_SESSION, Some(&t0), ok(json!(1))).await?;
    expect_refused(&a, "unknown-session", "an unknown session")
}

async fn rule1_garbage_session_id_is_unknown_session(ctx: ChannelCtx) -> Result<(), Failure> {
    let (_, t0) = start(&ctx).await?;
    let garbage = "../../weird::id\n";
    let a = ctx.driver.advance(garbage, Some(&t0), ok(json!(1))).await?;
    expect_refused(&a, "unknown-session", "a garbage session id with a token")?;
    let a = ctx.driver.advance(garbage, None, ok(json!(1))).await?;
    expect_refused(&a, "unknown-session", "a garbage session id without a token")
}

async fn rule1_stale_token_refused_current_still_works(ctx: ChannelCtx) -> Result<(), Failure> {
    let (s, t0) = start(&ctx).await?;
    expect_stale(&ctx, &s, FORGED, "a forged token").await?;
    advance_ok(&ctx, &s, &t0, "the current token after a stale-token refusal").await.map(|_| ())
}

async fn rule1_consumed_token_is_dead(ctx: ChannelCtx) -> Result<(), Failure> {
    let (s, t0) = start(&ctx).await?;
    let t1 = advance_ok(&ctx, &s, &t0, "first continue").await?;
    expect_stale(&ctx, &s, &t0, "the consumed token").await?;
    let t2 = advance_ok(&ctx, &s, &t1, "the current token").await?;
    expect_stale(&ctx, &s, &t0, "the consumed token, two turns later").await?;
    expect_stale(&ctx, &s, &t1, "the token consumed by the second continue").await?;
    advance_ok(&ctx, &s, &t2, "the newest token").await.map(|_| ())
}

async fn rule1_other_sessions_token_is_stale(ctx: ChannelCtx) -> Result<(), Failure> {
    let (a, ta) = start(&ctx).await?;
    let (b, tb) = start(&ctx).await?;
    ensure(a != b, "two starts must mint two session ids")?;
    ensure(ta != tb, "two starts must mint two tokens")?;
    expect_stale(&ctx, &a, &tb, "session A with B's token").await?;
    expect_stale(&ctx, &b, &ta, "session B with A's token").await?;
    advance_ok(&ctx, &a, &ta, "A's own token").await?;
    advance_ok(&ctx, &b, &tb, "B's own token").await.map(|_| ())
}

async fn rule1_every_refusal_is_one_of_four(ctx: ChannelCtx) -> Result<(), Failure> {
    let d = &ctx.driver;
    let (s, t0) = start(&ctx).await?;
    let (other, t_other) = start(&ctx).await?;
    let t1 = advance_ok(&ctx, &s, &t0, "rotate").await?;
    let mut answers: Vec<(&str, Answer)> = vec![
        ("unknown session", d.advance(UNKNOWN_SESSION, Some(&t1), ok(json!(1))).await?),
        ("garbage session", d.advance("../../weird::id\n", None, ok(json!(1))).await?),
        ("no token", d.advance(&s, None, ok(json!(1))).await?),
        ("empty token", d.advance(&s, Some(""), ok(json!(1))).await?),
        ("forged token", d.advance(&s, Some(FORGED), ok(json!(1))).await?),
        ("consumed token", d.advance(&s, Some(&t0), ok(json!(1))).await?),
        ("another session's token", d.advance(&s, Some(&t_other), ok(json!(1))).await?),
    ];
    let (held, busy) = tokio::join!(d.advance(&other, Some(&t_other), slow(&ctx, "ok", json!("held"))), async {
        wait_in_flight(&ctx, &other).await?;
        d.advance(&other, Some(&t_other), ok(json!(1))).await
    });
    answers.push(("the current token while a turn runs", busy?));
    expect_reply(held?, "the held turn")?;
    for (what, answer) in &answers {
        match answer {
            Answer::Refused(r) if is_refusal(r) => {}
            other => return Err(format!("{what}: expected one of the four refusals, got {}", other.describe())),
        }
    }
    Ok(())
}
