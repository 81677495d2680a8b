//! Rules 4–6: tokens are unguessable and matched exactly; two ports over one store share the
//! conversations and single use; idle sessions expire.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::future::join_all;
use serde_json::json;

use super::{
    ALL, ChannelCase, ChannelCtx, advance_ok, case, ensure, expect_refused, expect_stale, ok, skip, start, token_of,
};
use crate::Failure;
use crate::channel::ChannelTarget;
use crate::channel::ChannelTransport::Port;
use crate::channel::driver::{Answer, ChannelDriver};
use crate::channel::port::PortDriver;

pub(super) fn cases() -> Vec<ChannelCase> {
    vec![
        case!(
            rule4_tokens_are_long_distinct_and_exact,
            "4",
            ALL,
            "Tokens have room for 128 bits (≥ 22 characters), never repeat, and only an exact match counts (a changed character, a prefix, an extension are stale). CSPRNG and constant-time comparison cannot be observed from outside"
        ),
        case!(
            rule5_two_ports_on_one_store_share_sessions,
            "5",
            &[Port],
            "Two ports (nodes) over one token store: a session started on one continues on the other, a token consumed on one is stale on the other, and same-token continues on both run exactly once"
        ),
        case!(
            rule6_idle_sessions_expire,
            "6",
            &[Port],
            "A session idle longer than the idle time is unknown-session (and has no info); a turn extends the idle time"
        ),
    ]
}

async fn rule4_tokens_are_long_distinct_and_exact(ctx: ChannelCtx) -> Result<(), Failure> {
    let mut seen = BTreeSet::new();
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let (s, t0) = start(&ctx).await?;
        let t1 = advance_ok(&ctx, &s, &t0, "first rotation").await?;
        let t2 = advance_ok(&ctx, &s, &t1, "second rotation").await?;
        for t in [&t0, &t1, &t2] {
            ensure(t.chars().count() >= 22, format!("a token of {} characters has no room for 128 bits", t.len()))?;
            ensure(!t.contains(s.as_str()), "a token must not contain its session id")?;
            ensure(seen.insert(t.clone()), "a token was issued twice")?;
        }
        sessions.push((s, t2));
    }
    let (s, t) = sessions.pop().ok_or("no session")?;
    let mut changed: Vec<char> = t.chars().collect();
    if let Some(c) = changed.last_mut() {
        *c = if *c == 'a' { 'b' } else { 'a' };
    }
    let changed: String = changed.into_iter().collect();
    let prefix: String = t.chars().take(t.chars().count() - 1).collect();
    for (what, bad) in [
        ("the token with its last character changed", changed),
        ("the token without its last character", prefix),
        ("the token with a character appended", format!("{t}0")),
    ] {
        expect_stale(&ctx, &s, &bad, what).await?;
    }
    advance_ok(&ctx, &s, &t, "the exact token").await.map(|_| ())
}

async fn rule5_two_ports_on_one_store_share_sessions(ctx: ChannelCtx) -> Result<(), Failure> {
    let ChannelTarget::Port { second: Some(second), runner, owner, .. } = &ctx.target else {
        return Err(skip("needs a second port over the same store (ChannelTarget::with_second_port)"));
    };
    let b: Arc<dyn ChannelDriver> =
        Arc::new(PortDriver { channel: second.clone(), runner: runner.clone(), owner: owner.clone() });
    let (s, t0) = start(&ctx).await?;
    let value = json!("on node b");
    let (reply, _) = super::expect_reply(b.advance(&s, Some(&t0), ok(value)).await?, "continue on the second port")?;
    let t1 = token_of(&reply, "continue on the second port")?;
    ensure(t1 != t0, "the second port's committed turn must rotate the token")?;
    expect_stale(&ctx, &s, &t0, "the token consumed on the second port, presented to the first").await?;
    let t2 = advance_ok(&ctx, &s, &t1, "the second port's token on the first port").await?;
    let drivers = [ctx.driver.clone(), b.clone(), ctx.driver.clone(), b];
    let answers = join_all(drivers.iter().enumerate().map(|(i, d)| {
        let body = super::slow(&ctx, "ok", json!(i));
        let (s, t2) = (&s, &t2);
        async move { d.advance(s, Some(t2), body).await }
    }))
    .await;
    let mut ran = 0;
    for a in answers {
        match a? {
            Answer::Reply { .. } => ran += 1,
            Answer::Refused(r) if r == "in-flight" || r == "stale-token" => {}
            other => return Err(format!("a raced continue across ports: got {}", other.describe())),
        }
    }
    ensure(ran == 1, format!("{ran} same-token continues across two ports ran; exactly one must"))
}

async fn rule6_idle_sessions_expire(ctx: ChannelCtx) -> Result<(), Failure> {
    let ChannelTarget::Port { clock: Some(clock), channel, .. } = &ctx.target else {
        return Err(skip("needs the port's manual clock (ChannelTarget::with_clock)"));
    };
    let ttl = u64::try_from(channel.config().idle_ttl.as_millis()).unwrap_or(u64::MAX);
    ensure(ttl >= 4, "the idle time is too short to test")?;
    let (s, t0) = start(&ctx).await?;
    clock.advance(ttl / 2);
    let t1 = advance_ok(&ctx, &s, &t0, "a continue within the idle time").await?;
    clock.advance(ttl / 2 + ttl / 4);
    ensure(ctx.driver.info(&s).await?.is_some(), "a turn must extend the idle time")?;
    clock.advance(ttl / 4 + 1);
    ensure(ctx.driver.info(&s).await?.is_none(), "an expired session must have no info")?;
    let a = ctx.driver.advance(&s, Some(&t1), ok(json!(1))).await?;
    expect_refused(&a, "unknown-session", "an expired session")
}
