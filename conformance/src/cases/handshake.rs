//! §6.1, §6.2, §6.4, §6.6, §6.7: authentication, the handshake, negotiation, phase rules,
//! heartbeats and closing.

use std::time::Duration;

use serde_json::json;

use super::{Case, case, ensure, expect_session_error, hello_payload, open, require_agent, submit};
use crate::{Ctx, Failure};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            s6_1_bad_token_is_unauthenticated_and_closes,
            "6.1",
            "An unknown bearer token gets session.error UNAUTHENTICATED and the transport closes"
        ),
        case!(
            s6_1_missing_token_is_unauthenticated,
            "6.1",
            "A hello without a token gets session.error UNAUTHENTICATED"
        ),
        case!(
            s6_2_hello_gets_a_welcome,
            "6.2",
            "session.hello is answered by session.welcome with session_id, resume_token and a positive resume_window_sec"
        ),
        case!(
            s6_2_features_are_the_intersection,
            "6.2",
            "welcome.capabilities.features is the intersection of what both peers offered"
        ),
        case!(s6_2_v1_0_hello_negotiates_nothing, "6.2", "A hello without features (v1.0) negotiates no features"),
        case!(s6_2_frames_before_hello_are_dropped, "6.2", "Anything but session.hello before the welcome is dropped"),
        case!(s6_2_second_hello_is_invalid, "6.2", "session.hello after the welcome is INVALID_REQUEST and closes"),
        case!(
            s6_4_ping_is_answered_with_pong,
            "6.4",
            "session.ping is always answered with session.pong carrying its nonce"
        ),
        case!(
            s6_6_list_jobs_needs_its_feature,
            "6.6",
            "session.list_jobs without the list_jobs feature is INVALID_REQUEST"
        ),
        case!(
            s6_7_bye_leaves_jobs_running,
            "6.7",
            "session.bye closes the session without cancelling its jobs; they stay resumable"
        ),
    ]
}

async fn s6_1_bad_token_is_unauthenticated_and_closes(ctx: Ctx) -> Result<(), Failure> {
    let mut peer = ctx.connect().await?;
    peer.send("session.hello", hello_payload("definitely-not-a-valid-token", None), json!({}))?;
    expect_session_error(&mut peer, "UNAUTHENTICATED").await
}

async fn s6_1_missing_token_is_unauthenticated(ctx: Ctx) -> Result<(), Failure> {
    let mut peer = ctx.connect().await?;
    peer.send(
        "session.hello",
        json!({"client": {"name": "c", "version": "0"}, "auth": {"scheme": "bearer"}}),
        json!({}),
    )?;
    expect_session_error(&mut peer, "UNAUTHENTICATED").await
}

async fn s6_2_hello_gets_a_welcome(ctx: Ctx) -> Result<(), Failure> {
    let (_, welcome) = open(&ctx).await?;
    let p = &welcome["payload"];
    ensure(welcome["session_id"].as_str().is_some_and(|s| !s.is_empty()), "welcome.session_id")?;
    ensure(p["resume_token"].as_str().is_some_and(|s| !s.is_empty()), "welcome.resume_token")?;
    ensure(p["resume_window_sec"].as_u64().is_some_and(|n| n > 0), "resume_window_sec must be a positive integer")?;
    ensure(p["runtime"]["name"].is_string() && p["runtime"]["version"].is_string(), "welcome.runtime {name, version}")?;
    ensure(welcome.get("event_seq").is_none(), "session.welcome carries no event_seq")
}

async fn s6_2_features_are_the_intersection(ctx: Ctx) -> Result<(), Failure> {
    let mut peer = ctx.connect().await?;
    let mut hello = hello_payload(ctx.token(), None);
    hello["capabilities"]["features"] = json!(["progress", "x-conformance-unknown"]);
    peer.send("session.hello", hello, json!({}))?;
    let welcome = peer.recv().await?;
    let features = welcome["payload"]["capabilities"]["features"].as_array().cloned().unwrap_or_default();
    ensure(
        features.iter().all(|f| f == "progress"),
        format!("features must be a subset of the offer, got {features:?}"),
    )
}

async fn s6_2_v1_0_hello_negotiates_nothing(ctx: Ctx) -> Result<(), Failure> {
    let mut peer = ctx.connect().await?;
    peer.send(
        "session.hello",
        json!({"client": {"name": "c", "version": "0"}, "auth": {"scheme": "bearer", "token": ctx.token()}}),
        json!({}),
    )?;
    let welcome = peer.recv().await?;
    ensure(welcome["type"] == "session.welcome", format!("expected a welcome, got {welcome}"))?;
    let features = &welcome["payload"]["capabilities"]["features"];
    ensure(
        features.is_null() || features.as_array().is_some_and(Vec::is_empty),
        format!("no features expected, got {features}"),
    )
}

async fn s6_2_frames_before_hello_are_dropped(ctx: Ctx) -> Result<(), Failure> {
    let mut peer = ctx.connect().await?;
    peer.send("job.submit", json!({"agent": "echo", "input": 1}), json!({}))?;
    peer.send("session.ping", json!({"nonce": "early", "sent_at": "2026-11-23T08:00:00Z"}), json!({}))?;
    ensure(peer.silent_for(Duration::from_millis(300)).await, "frames before the hello must get no answer")?;
    peer.send("session.hello", hello_payload(ctx.token(), None), json!({}))?;
    let welcome = peer.recv().await?;
    ensure(welcome["type"] == "session.welcome", format!("expected the welcome, got {welcome}"))
}

async fn s6_2_second_hello_is_invalid(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, _) = open(&ctx).await?;
    peer.send("session.hello", hello_payload(ctx.token(), None), json!({}))?;
    expect_session_error(&mut peer, "INVALID_REQUEST").await
}

async fn s6_4_ping_is_answered_with_pong(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, _) = open(&ctx).await?;
    peer.send("session.ping", json!({"nonce": "nonce-1", "sent_at": "2026-11-23T08:00:00Z"}), json!({}))?;
    let v = peer.recv().await?;
    ensure(
        v["type"] == "session.pong" && v["payload"]["ping_nonce"] == "nonce-1",
        format!("expected the pong, got {v}"),
    )?;
    ensure(v["payload"]["received_at"].is_string(), "pong.received_at")
}

async fn s6_6_list_jobs_needs_its_feature(ctx: Ctx) -> Result<(), Failure> {
    let mut peer = ctx.connect().await?;
    let mut hello = hello_payload(ctx.token(), None);
    hello["capabilities"]["features"] = json!([]);
    peer.send("session.hello", hello, json!({}))?;
    let welcome = peer.recv().await?;
    super::adopt_welcome(&mut peer, &welcome)?;
    peer.send("session.list_jobs", json!({}), json!({}))?;
    expect_session_error(&mut peer, "INVALID_REQUEST").await
}

async fn s6_7_bye_leaves_jobs_running(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "count")?;
    let (_, accepted) = submit(&mut peer, json!({"agent": "count", "input": {"n": 5, "delay_ms": 20}})).await?;
    let job = super::job_id(&accepted)?;
    let (session, token) = (peer.session_id.clone().unwrap_or_default(), peer.resume_token.clone().unwrap_or_default());
    peer.send("session.bye", json!({"reason": "conformance"}), json!({}))?;
    ensure(peer.closes_within(Duration::from_secs(5)).await, "session.bye must end the connection")?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = ctx.connect().await?;
    let resume = json!({"session_id": session, "resume_token": token, "last_event_seq": 0});
    again.send("session.hello", hello_payload(ctx.token(), Some(resume)), json!({}))?;
    let w = again.recv().await?;
    ensure(w["type"] == "session.welcome", format!("resume after bye must work, got {w}"))?;
    let frames = super::until_terminal(&mut again, &job).await?;
    let last = frames.last().cloned().unwrap_or_default();
    ensure(last["type"] == "job.result", format!("the job must finish normally, got {last}"))
}
