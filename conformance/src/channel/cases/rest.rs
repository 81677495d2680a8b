//! The HTTP wire: client errors (invalid body, malformed JSON, content type, size), the body
//! token field, SSE refusals as statuses, the bearer key.

use bytes::Bytes;
use futures_util::future::join_all;
use serde_json::{Value, json};

use super::{
    ALL, ChannelCase, ChannelCtx, FORGED, HTTP, NETWORK, UNKNOWN_SESSION, advance_ok, case, ensure, expect_reply,
    fixture_body, ok, skip, slow, start, token_of, turns, wait_in_flight,
};
use crate::Failure;
use crate::channel::ChannelTransport::{Sse, Ws};
use crate::channel::FIXTURE_AGENT;
use crate::channel::client::{HttpClient, Req, Resp, RespBody, encode_segment};
use crate::channel::driver::Answer;
use crate::channel::ws::{Upgrade, WsConn};

pub(super) fn cases() -> Vec<ChannelCase> {
    vec![
        case!(
            body_invalid_turn_body_is_refused_before_running,
            "body",
            ALL,
            "A turn body that is not a JSON object is invalid-body (HTTP 400) on start and continue; the token stays valid and no turn is counted"
        ),
        case!(
            rest_body_too_large_is_413,
            "rest",
            HTTP,
            "A request body over the cap (default 1 MiB; the case sends cap + 1 bytes with Expect: 100-continue) is HTTP 413 body-too-large"
        ),
        case!(
            rest_malformed_json_is_400,
            "rest",
            HTTP,
            "A body that is not JSON is HTTP 400 malformed-json, on start and on continue (where the token stays valid)"
        ),
        case!(
            rest_wrong_content_type_is_415,
            "rest",
            HTTP,
            "A body that is not application/json is HTTP 415 unsupported-media-type"
        ),
        case!(
            rest_token_in_body_field_is_accepted,
            "rest",
            HTTP,
            "The token may travel in the body field `continuationToken` instead of the header"
        ),
        case!(
            rest_sse_refusals_are_statuses_not_streams,
            "rest",
            &[Sse],
            "With Accept: text/event-stream every refusal (unknown-session, missing-token, stale-token, in-flight, and the losers of racing same-token continues, 10 rounds of 8) is a JSON status, never a stream"
        ),
        case!(
            rest_requests_without_the_bearer_key_are_401,
            "rest",
            NETWORK,
            "When the server has a bearer key, a request (or WebSocket upgrade) without it is HTTP 401 unauthorized"
        ),
    ]
}

fn http(ctx: &ChannelCtx) -> Result<&HttpClient, Failure> {
    ctx.http.as_ref().ok_or_else(|| "this case needs an HTTP target".to_owned())
}

/// Expects an error status with `reason` and a JSON (not a stream) body.
fn expect_error(resp: &Resp, status: u16, reason: &str, what: &str) -> Result<(), Failure> {
    ensure(!resp.is_stream(), format!("{what}: an SSE stream instead of an HTTP {status} status"))?;
    ensure(
        resp.status == status,
        format!("{what}: expected HTTP {status}, got HTTP {}: {:?}", resp.status, resp.json()),
    )?;
    let (got, _) = resp.error_body().map_err(|e| format!("{what}: {e}"))?;
    ensure(got == reason, format!("{what}: expected reason `{reason}`, got `{got}`"))
}

async fn body_invalid_turn_body_is_refused_before_running(ctx: ChannelCtx) -> Result<(), Failure> {
    // Not a JSON object: every turn host refuses it (the fixture runner also refuses an
    // unknown `force`; a server may instead fail such a turn).
    let bad = json!(["not", "a", "turn", "body"]);
    let check = |a: Answer, what: &str| -> Result<(), Failure> {
        match (&a, ctx.target.transport()) {
            (Answer::Failed { reason: Some(r), .. }, _) if r == "invalid-body" => Ok(()),
            // A WebSocket `error` frame need not name the reason of a client error.
            (Answer::Failed { reason: None, events, .. }, Ws) if events.len() == 1 => Ok(()),
            _ => Err(format!("{what}: expected invalid-body, got {}", a.describe())),
        }
    };
    check(ctx.driver.start(bad.clone()).await?, "an invalid start body")?;
    let (s, t0) = start(&ctx).await?;
    let before = turns(&ctx, &s).await?;
    check(ctx.driver.advance(&s, Some(&t0), bad).await?, "an invalid continue body")?;
    ensure(turns(&ctx, &s).await? == before, "an invalid body must not run a turn")?;
    advance_ok(&ctx, &s, &t0, "the token after an invalid body").await.map(|_| ())
}

async fn rest_body_too_large_is_413(ctx: ChannelCtx) -> Result<(), Failure> {
    let c = http(&ctx)?;
    let size = ctx.options.body_limit.saturating_add(1);
    let head = format!("{{\"agent\":\"{FIXTURE_AGENT}\",\"input\":{{\"force\":\"ok\",\"value\":\"");
    let tail = "\"}}";
    let pad = size.saturating_sub(head.len() + tail.len());
    let body = format!("{head}{}{tail}", "x".repeat(pad));
    ensure(body.len() == size, format!("cannot build a body of {size} bytes"))?;
    let req = Req::post_raw("/v1/session", Some("application/json"), Bytes::from(body)).expect_continue();
    let resp = c.send(req).await.map_err(|e| {
        format!("{e} (the client sent Content-Length: {size} with Expect: 100-continue and held the body back; a server refusing from the headers answers before any body byte)")
    })?;
    expect_error(&resp, 413, "body-too-large", "an oversized start body")
}

async fn rest_malformed_json_is_400(ctx: ChannelCtx) -> Result<(), Failure> {
    let c = http(&ctx)?;
    let broken = Bytes::from_static(b"{\"agent\": \"conformance.channel\", \"input\": ");
    let resp = c.send(Req::post_raw("/v1/session", Some("application/json"), broken.clone())).await?;
    expect_error(&resp, 400, "malformed-json", "a malformed start body")?;
    let (s, t0) = start(&ctx).await?;
    let path = format!("/v1/session/{}/message", encode_segment(&s));
    let resp = c
        .send(Req::post_raw(path, Some("application/json"), broken).header("x-continuation-token", t0.clone()))
        .await?;
    expect_error(&resp, 400, "malformed-json", "a malformed continue body")?;
    advance_ok(&ctx, &s, &t0, "the token after a malformed body").await.map(|_| ())
}

async fn rest_wrong_content_type_is_415(ctx: ChannelCtx) -> Result<(), Failure> {
    let c = http(&ctx)?;
    let body = Bytes::from(ok(json!(1)).to_string());
    let resp = c.send(Req::post_raw("/v1/session", Some("text/plain"), body)).await?;
    expect_error(&resp, 415, "unsupported-media-type", "a text/plain start body")
}

async fn rest_token_in_body_field_is_accepted(ctx: ChannelCtx) -> Result<(), Failure> {
    let c = http(&ctx)?;
    let (s, t0) = start(&ctx).await?;
    let mut body = ok(json!("by body field"));
    body["continuationToken"] = json!(t0);
    let path = format!("/v1/session/{}/message", encode_segment(&s));
    let resp = c.send(Req::post_json(path, &body)).await?;
    ensure(
        resp.status == 200,
        format!("a continue with the token in the body: HTTP {}: {:?}", resp.status, resp.json()),
    )?;
    let v = resp.json()?;
    ensure(v["status"] == "finished", format!("a continue with the token in the body: {v}"))?;
    let t1 = v["continuationToken"].as_str().unwrap_or_default().to_owned();
    ensure(!t1.is_empty() && t1 != t0, "a committed continue must rotate the token")?;
    advance_ok(&ctx, &s, &t1, "the token issued to a body-field continue").await.map(|_| ())
}

async fn rest_sse_refusals_are_statuses_not_streams(ctx: ChannelCtx) -> Result<(), Failure> {
    let c = http(&ctx)?;
    let (s, t0) = start(&ctx).await?;
    let turn = |session: &str, token: Option<&str>, body: Value| {
        let req = Req::post_json(format!("/v1/session/{}/message", encode_segment(session)), &body).sse();
        match token {
            Some(t) => req.header("x-continuation-token", t),
            None => req,
        }
    };
    let one = ok(json!(1));
    let resp = c.send(turn(UNKNOWN_SESSION, Some(&t0), one.clone())).await?;
    expect_error(&resp, 404, "unknown-session", "SSE, unknown session")?;
    expect_error(&c.send(turn(&s, None, one.clone())).await?, 400, "missing-token", "SSE, no token")?;
    expect_error(&c.send(turn(&s, Some(FORGED), one.clone())).await?, 409, "stale-token", "SSE, forged token")?;
    let (held, busy) = tokio::join!(ctx.driver.advance(&s, Some(&t0), slow(&ctx, "ok", Value::Null)), async {
        wait_in_flight(&ctx, &s).await?;
        c.send(turn(&s, Some(&t0), one.clone())).await
    });
    expect_error(&busy?, 409, "in-flight", "SSE, the current token while a turn runs")?;
    let (reply, _) = expect_reply(held?, "the held turn")?;
    // Concurrent same-token continues, round after round: the losers' refusals must be
    // statuses too, however their checks interleave with the winner's claim.
    let mut token = token_of(&reply, "the held turn")?;
    for round in 0..ROUNDS {
        let answers = join_all((0..RACERS).map(|i| c.send(turn(&s, Some(&token), ok(json!(i)))))).await;
        let mut winners = Vec::new();
        for (i, resp) in answers.into_iter().enumerate() {
            let resp = resp?;
            let what = format!("SSE, round {round}, same-token continue #{i} of {RACERS}");
            if resp.status != 200 {
                ensure(!resp.is_stream(), format!("{what}: an SSE stream with HTTP {}", resp.status))?;
                let (reason, _) = resp.error_body().map_err(|e| format!("{what}: {e}"))?;
                ensure(reason == "in-flight" || reason == "stale-token", format!("{what}: reason `{reason}`"))?;
                continue;
            }
            let RespBody::Events(events) = &resp.body else {
                return Err(format!("{what}: HTTP 200 without an SSE stream"));
            };
            let last = events.last().and_then(|(_, data)| serde_json::from_str::<Value>(data).ok()).unwrap_or_default();
            if let Some(reason) = last["reason"].as_str() {
                return Err(format!(
                    "{what}: the `{reason}` refusal came as an HTTP 200 SSE stream ending in an `error` event, not as a status"
                ));
            }
            ensure(last["type"] == "outcome", format!("{what}: the stream ended with {last}"))?;
            winners.push(last["continuationToken"].as_str().unwrap_or_default().to_owned());
        }
        ensure(winners.len() == 1, format!("round {round}: {} of {RACERS} racing SSE continues ran", winners.len()))?;
        token = winners.pop().unwrap_or_default();
    }
    Ok(())
}

/// How many rounds of racing same-token SSE continues `rest_sse_refusals_are_statuses_not_streams` runs.
const ROUNDS: usize = 10;

/// How many same-token SSE continues race in `rest_sse_refusals_are_statuses_not_streams`.
const RACERS: usize = 8;

async fn rest_requests_without_the_bearer_key_are_401(ctx: ChannelCtx) -> Result<(), Failure> {
    let c = http(&ctx)?;
    if c.bearer().is_none() {
        return Err(skip("the target has no bearer key"));
    }
    if ctx.target.transport() == Ws {
        return match WsConn::upgrade(c, false).await? {
            Upgrade::Refused(401) => Ok(()),
            Upgrade::Refused(s) => Err(format!("an upgrade without the bearer key: expected HTTP 401, got {s}")),
            Upgrade::Open(conn) => {
                conn.close().await;
                Err("an upgrade without the bearer key was accepted".into())
            }
        };
    }
    let resp = c.send(Req::post_json("/v1/session", &fixture_body("ok", json!(1))).without_auth()).await?;
    expect_error(&resp, 401, "unauthorized", "a start without the bearer key")?;
    let (s, t0) = start(&ctx).await?;
    let path = format!("/v1/session/{}/message", encode_segment(&s));
    let resp =
        c.send(Req::post_json(path, &ok(json!(1))).header("x-continuation-token", t0.clone()).without_auth()).await?;
    expect_error(&resp, 401, "unauthorized", "a continue without the bearer key")?;
    let resp = c.send(Req::get(format!("/v1/session/{}", encode_segment(&s))).without_auth()).await?;
    expect_error(&resp, 401, "unauthorized", "session info without the bearer key")?;
    advance_ok(&ctx, &s, &t0, "the token after unauthorised requests").await.map(|_| ())
}
