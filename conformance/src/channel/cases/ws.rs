//! The held WebSocket connection: the first frame starts, later frames continue the bound
//! session, concurrent frames meet `in-flight`, refusals are in-band, a REST session
//! continues over WebSocket.

use serde_json::json;

use super::{
    ChannelCase, ChannelCtx, advance_ok, case, ensure, expect_finished, expect_refused, expect_reply, expect_stale, ok,
    slow, start, token_of,
};
use crate::Failure;
use crate::channel::ChannelTransport::Ws;
use crate::channel::client::HttpClient;
use crate::channel::driver::{Answer, ChannelDriver};
use crate::channel::fixture::fixture_body;
use crate::channel::http::HttpDriver;
use crate::channel::ws::WsConn;

pub(super) fn cases() -> Vec<ChannelCase> {
    vec![
        case!(
            ws_first_frame_without_token_starts,
            "ws",
            &[Ws],
            "Held connection: the first frame without a token or session id is a START (session id and token in its outcome)"
        ),
        case!(
            ws_held_connection_advance_rotates,
            "ws",
            &[Ws],
            "Held connection: a frame without a token continues the bound session and each committed turn rotates the token"
        ),
        case!(
            ws_held_connection_keeps_the_token_through_uncommitted_turns,
            "ws",
            &[Ws],
            "Held connection: after a contended and an aborted turn (which carry no token), a frame without a token still continues with the unrotated token"
        ),
        case!(
            ws_two_concurrent_advances_one_in_flight,
            "ws",
            &[Ws],
            "Held connection: two concurrent advances on one connection: one runs, the other is an in-band in-flight error"
        ),
        case!(
            ws_refusal_keeps_the_connection_open,
            "ws",
            &[Ws],
            "A refusal is an in-band `error` frame with its reason (and the request id) and the connection stays usable"
        ),
        case!(
            ws_token_continues_a_rest_session,
            "ws",
            &[Ws],
            "A frame presenting sessionId + continuationToken continues a session started over REST, and REST continues it after"
        ),
    ]
}

fn client(ctx: &ChannelCtx) -> Result<&HttpClient, Failure> {
    ctx.http.as_ref().ok_or_else(|| "this case needs a WebSocket target".to_owned())
}

/// Opens a fresh connection for a case to hold.
async fn held(ctx: &ChannelCtx) -> Result<WsConn, Failure> {
    WsConn::connect(client(ctx)?).await
}

async fn ws_first_frame_without_token_starts(ctx: ChannelCtx) -> Result<(), Failure> {
    let mut conn = held(&ctx).await?;
    let value = json!({ "over": "ws" });
    let result = async {
        let (reply, _) = expect_finished(conn.turn(ok(value.clone()), None, None).await?, &value, "the first frame")?;
        ensure(!reply.session_id.as_str().is_empty(), "the first frame's outcome has no sessionId")
    }
    .await;
    conn.close().await;
    result
}

async fn ws_held_connection_keeps_the_token_through_uncommitted_turns(ctx: ChannelCtx) -> Result<(), Failure> {
    let mut conn = held(&ctx).await?;
    let result = async {
        let (reply, t0) = expect_finished(conn.turn(ok(json!(0)), None, None).await?, &json!(0), "the first frame")?;
        let s = reply.session_id.as_str().to_owned();
        for force in ["contend", "abort"] {
            let what = format!("a tokenless `{force}` frame on the bound connection");
            let (reply, _) = expect_reply(conn.turn(fixture_body(force, json!(null)), None, None).await?, &what)?;
            ensure(reply.session_id.as_str() == s, format!("{what}: continued another session"))?;
        }
        let what = "a tokenless frame after the uncommitted turns";
        let (reply, t1) = expect_finished(conn.turn(ok(json!(1)), None, None).await?, &json!(1), what)?;
        ensure(reply.session_id.as_str() == s, format!("{what}: continued another session"))?;
        ensure(t1 != t0, format!("{what}: the committed turn must rotate the token"))?;
        expect_stale(&ctx, &s, &t0, "the token the last committed turn consumed").await?;
        advance_ok(&ctx, &s, &t1, "the newest token on another connection").await.map(|_| ())
    }
    .await;
    conn.close().await;
    result
}

async fn ws_held_connection_advance_rotates(ctx: ChannelCtx) -> Result<(), Failure> {
    let mut conn = held(&ctx).await?;
    let result = async {
        let (reply, t0) = expect_finished(conn.turn(ok(json!(0)), None, None).await?, &json!(0), "the first frame")?;
        let s = reply.session_id.as_str().to_owned();
        let mut tokens = vec![t0];
        for i in 1..=2 {
            let what = format!("tokenless frame #{i} on the bound connection");
            let (reply, t) = expect_finished(conn.turn(ok(json!(i)), None, None).await?, &json!(i), &what)?;
            ensure(reply.session_id.as_str() == s, format!("{what}: continued another session"))?;
            ensure(!tokens.contains(&t), format!("{what}: a committed turn must rotate the token"))?;
            tokens.push(t);
        }
        for t in &tokens[..tokens.len() - 1] {
            expect_stale(&ctx, &s, t, "a token the bound connection consumed").await?;
        }
        let last = tokens.last().cloned().unwrap_or_default();
        advance_ok(&ctx, &s, &last, "the bound session's newest token on another connection").await.map(|_| ())
    }
    .await;
    conn.close().await;
    result
}

async fn ws_two_concurrent_advances_one_in_flight(ctx: ChannelCtx) -> Result<(), Failure> {
    let mut conn = held(&ctx).await?;
    let result = async {
        expect_reply(conn.turn(ok(json!(0)), None, None).await?, "the first frame")?;
        let a = conn.send_turn(slow(&ctx, "ok", json!("a")), None, None).await?;
        let b = conn.send_turn(slow(&ctx, "ok", json!("b")), None, None).await?;
        let answers = conn.collect(&[a, b]).await?;
        let mut ran = 0;
        let mut in_flight = 0;
        for answer in answers.values() {
            match answer {
                Answer::Reply { .. } => ran += 1,
                Answer::Refused(r) if r == "in-flight" => in_flight += 1,
                other => return Err(format!("a concurrent advance: got {}", other.describe())),
            }
        }
        ensure(
            ran == 1 && in_flight == 1,
            format!("two concurrent advances: {ran} ran, {in_flight} in-flight; expected 1 and 1"),
        )?;
        expect_reply(conn.turn(ok(json!(3)), None, None).await?, "a frame after the race").map(|_| ())
    }
    .await;
    conn.close().await;
    result
}

async fn ws_refusal_keeps_the_connection_open(ctx: ChannelCtx) -> Result<(), Failure> {
    let (s, t0) = start(&ctx).await?;
    let mut conn = held(&ctx).await?;
    let result = async {
        let a = conn.turn(ok(json!(1)), Some(super::UNKNOWN_SESSION), Some(&t0)).await?;
        expect_refused(&a, "unknown-session", "an unknown session")?;
        let a = conn.turn(ok(json!(1)), Some(&s), Some(super::FORGED)).await?;
        expect_refused(&a, "stale-token", "a forged token")?;
        let a = conn.turn(ok(json!(1)), Some(&s), None).await?;
        expect_refused(&a, "missing-token", "a session id without a token")?;
        let (reply, t1) =
            expect_finished(conn.turn(ok(json!(2)), Some(&s), Some(&t0)).await?, &json!(2), "the valid frame")?;
        ensure(reply.session_id.as_str() == s && t1 != t0, "the valid frame must continue and rotate")
    }
    .await;
    conn.close().await;
    result
}

async fn ws_token_continues_a_rest_session(ctx: ChannelCtx) -> Result<(), Failure> {
    let rest = HttpDriver { client: client(&ctx)?.clone(), sse: false };
    let (reply, _) = expect_reply(rest.start(ok(json!("rest"))).await?, "a start over REST")?;
    let s = reply.session_id.as_str().to_owned();
    let t0 = token_of(&reply, "a start over REST")?;
    let mut conn = held(&ctx).await?;
    let answer = conn.turn(ok(json!("ws")), Some(&s), Some(&t0)).await;
    conn.close().await;
    let (reply, t1) = expect_finished(answer?, &json!("ws"), "a WebSocket frame continuing a REST session")?;
    ensure(reply.session_id.as_str() == s && t1 != t0, "the frame must continue the REST session and rotate")?;
    let value = json!("rest again");
    let (_, t2) =
        expect_finished(rest.advance(&s, Some(&t1), ok(value.clone())).await?, &value, "REST after WebSocket")?;
    ensure(t2 != t1, "REST after WebSocket must rotate")
}
