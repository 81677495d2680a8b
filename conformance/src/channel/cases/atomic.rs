//! Rule 2: single use is atomic — of N concurrent continues presenting the same valid token
//! exactly one runs.

use futures_util::future::join_all;
use serde_json::json;

use super::{
    ALL, ChannelCase, ChannelCtx, advance_ok, case, ensure, expect_stale, fixture_body_with_delay, token_of, turns,
};
use crate::Failure;
use crate::channel::driver::Answer;

pub(super) fn cases() -> Vec<ChannelCase> {
    vec![
        case!(
            rule2_single_use_is_atomic_2,
            "2",
            ALL,
            "Two concurrent continues with the same token: exactly one runs, the other is in-flight or stale-token"
        ),
        case!(
            rule2_single_use_is_atomic_4,
            "2",
            ALL,
            "Four concurrent continues with the same token: exactly one commits, the others are in-flight or stale-token"
        ),
    ]
}

/// Fires `n` overlapping continues with one token; checks exactly one ran and rotated.
pub(super) async fn race(ctx: &ChannelCtx, n: usize) -> Result<(), Failure> {
    let (s, t0) = super::start(ctx).await?;
    let before = turns(ctx, &s).await?;
    let answers = join_all((0..n).map(|i| {
        let body = fixture_body_with_delay("ok", json!(i), ctx.options.overlap_ms);
        let (d, s, t0) = (&ctx.driver, &s, &t0);
        async move { d.advance(s, Some(t0), body).await }
    }))
    .await;
    let mut winners = Vec::new();
    for (i, a) in answers.into_iter().enumerate() {
        match a? {
            Answer::Reply { reply, .. } => winners.push(reply),
            Answer::Refused(r) if r == "in-flight" || r == "stale-token" => {}
            other => {
                return Err(format!(
                    "continue #{i}: expected a reply, in-flight or stale-token, got {}",
                    other.describe()
                ));
            }
        }
    }
    ensure(winners.len() == 1, format!("{} of {n} same-token continues ran; exactly one must", winners.len()))?;
    let t1 = winners.first().map(|r| token_of(r, "the winner")).transpose()?.unwrap_or_default();
    ensure(t1 != t0, "the winning turn committed and must rotate the token")?;
    let after = turns(ctx, &s).await?;
    ensure(
        after == before + 1,
        format!("info counts {} new turns; exactly one must have run", after - before.min(after)),
    )?;
    expect_stale(ctx, &s, &t0, "the raced token after the race").await?;
    advance_ok(ctx, &s, &t1, "the winner's token").await.map(|_| ())
}

async fn rule2_single_use_is_atomic_2(ctx: ChannelCtx) -> Result<(), Failure> {
    race(&ctx, 2).await
}

async fn rule2_single_use_is_atomic_4(ctx: ChannelCtx) -> Result<(), Failure> {
    race(&ctx, 4).await
}
