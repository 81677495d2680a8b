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
        case!(
            s5_version_1_is_answered_in_1,
            "5",
            "decision 1: a session opened with arcp \"1\" is answered in \"1\" on every envelope, one opened with \"1.1\" in \"1.1\""
        ),
        case!(
            s6_1_a_scheme_other_than_bearer_is_invalid_request,
            "6.1",
            "auth.scheme other than \"bearer\" gets session.error INVALID_REQUEST and the transport closes"
        ),
        case!(
            s6_1_client_principal_is_informational_only,
            "6.1",
            "hello.client.principal grants nothing: the job of a session claiming another principal belongs to the token's principal (listed by its other sessions)"
        ),
        case!(
            s6_2_encodings_must_include_json,
            "6.2",
            "capabilities.encodings without \"json\" is INVALID_REQUEST; with it, the welcome lists [\"json\"]"
        ),
        case!(
            s6_7_close_is_answered_with_closed_and_leaves_jobs_running,
            "6.7",
            "decision 3: session.close is answered with session.closed (no event_seq) and the transport closes; the session's jobs keep running and stay resumable"
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

async fn s5_version_1_is_answered_in_1(ctx: Ctx) -> Result<(), Failure> {
    for version in ["1", "1.1"] {
        let mut peer = ctx.connect().await?;
        let hello = json!({"arcp": version, "id": "msg_00000000000000000000000001", "type": "session.hello",
                           "payload": hello_payload(ctx.token(), None)});
        peer.send_raw(hello.to_string())?;
        let welcome = peer.recv().await?;
        ensure(welcome["type"] == "session.welcome", format!("arcp {version:?}: expected a welcome, got {welcome}"))?;
        ensure(welcome["arcp"] == version, format!("a hello in {version:?} is answered in {version:?}: {welcome}"))?;
        let session = welcome["session_id"].clone();
        let ping = json!({"arcp": version, "id": "msg_00000000000000000000000002", "type": "session.ping",
                          "session_id": session, "payload": {"nonce": "v", "sent_at": "2026-11-23T08:00:00Z"}});
        peer.send_raw(ping.to_string())?;
        let pong = peer.recv_type("session.pong").await?;
        ensure(pong["arcp"] == version, format!("the session keeps the hello's version {version:?}: {pong}"))?;
        if welcome["payload"]["capabilities"]["agents"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "echo" || x["name"] == "echo"))
        {
            let submit = json!({"arcp": version, "id": "msg_00000000000000000000000003", "type": "job.submit",
                                "session_id": session, "payload": {"agent": "echo", "input": version}});
            peer.send_raw(submit.to_string())?;
            loop {
                let v = peer.recv().await?;
                ensure(v["arcp"] == version, format!("every envelope of the session is in {version:?}: {v}"))?;
                if v["type"] == "job.result" || v["type"] == "job.error" {
                    break;
                }
            }
        }
    }
    Ok(())
}

async fn s6_1_a_scheme_other_than_bearer_is_invalid_request(ctx: Ctx) -> Result<(), Failure> {
    let mut peer = ctx.connect().await?;
    let mut hello = hello_payload(ctx.token(), None);
    hello["auth"]["scheme"] = json!("basic");
    peer.send("session.hello", hello, json!({}))?;
    expect_session_error(&mut peer, "INVALID_REQUEST").await
}

async fn s6_2_encodings_must_include_json(ctx: Ctx) -> Result<(), Failure> {
    let (_, welcome) = open(&ctx).await?;
    let encodings = &welcome["payload"]["capabilities"]["encodings"];
    ensure(
        encodings.is_null() || encodings == &json!(["json"]),
        format!("offered [\"json\"], the welcome lists [\"json\"]: {welcome}"),
    )?;
    let mut peer = ctx.connect().await?;
    let mut hello = hello_payload(ctx.token(), None);
    hello["capabilities"]["encodings"] = json!(["cbor"]);
    peer.send("session.hello", hello, json!({}))?;
    expect_session_error(&mut peer, "INVALID_REQUEST").await
}

async fn s6_7_close_is_answered_with_closed_and_leaves_jobs_running(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "count")?;
    let (_, accepted) = submit(&mut peer, json!({"agent": "count", "input": {"n": 5, "delay_ms": 50}})).await?;
    let job = super::job_id(&accepted)?;
    let (session, token) = (peer.session_id.clone().unwrap_or_default(), peer.resume_token.clone().unwrap_or_default());
    peer.send("session.close", json!({"reason": "conformance"}), json!({}))?;
    let closed = peer.recv_type("session.closed").await?;
    ensure(closed.get("event_seq").is_none(), format!("session.closed carries no event_seq: {closed}"))?;
    ensure(closed["session_id"] == session.as_str(), format!("session.closed names the session: {closed}"))?;
    ensure(peer.closes_within(Duration::from_secs(5)).await, "session.closed is followed by the transport closing")?;
    let mut again = ctx.connect().await?;
    let resume = json!({"session_id": session, "resume_token": token, "last_event_seq": 0});
    again.send("session.hello", hello_payload(ctx.token(), Some(resume)), json!({}))?;
    let w = again.recv().await?;
    ensure(w["type"] == "session.welcome", format!("resume after close must work, got {w}"))?;
    let frames = super::until_terminal(&mut again, &job).await?;
    let last = frames.last().cloned().unwrap_or_default();
    ensure(
        last["type"] == "job.result" && last["payload"]["result"]["count"] == 5,
        format!("the job must run to its result after the close, got {last}"),
    )
}

async fn s6_1_client_principal_is_informational_only(ctx: Ctx) -> Result<(), Failure> {
    let mut peer = ctx.connect().await?;
    let mut hello = hello_payload(ctx.token(), None);
    hello["client"]["principal"] = json!("conformance-someone-else");
    peer.send("session.hello", hello, json!({}))?;
    let welcome = peer.recv().await?;
    ensure(welcome["type"] == "session.welcome", format!("expected a welcome, got {welcome}"))?;
    super::adopt_welcome(&mut peer, &welcome)?;
    super::leases::require_feature(&welcome, "list_jobs")?;
    require_agent(&welcome, "echo")?;
    let (_, accepted) = submit(&mut peer, json!({"agent": "echo", "input": "claimed"})).await?;
    let job = super::job_id(&accepted)?;
    super::until_terminal(&mut peer, &job).await?;
    let (mut plain, _) = super::open_with(&ctx, ctx.same_principal_token()).await?;
    let jobs = super::listing::list_all(&mut plain, json!({"agent": "echo"}), 1000).await?;
    ensure(
        jobs.iter().any(|j| j["job_id"] == job.as_str()),
        "the job belongs to the token's principal, whatever client.principal claimed",
    )
}
