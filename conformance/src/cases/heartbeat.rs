//! §6.4 heartbeats: the interval in the welcome only when negotiated, pings answered either
//! way, and heartbeat loss as a disconnect that cancels nothing.
//!
//! To observe loss within a case, the hello asks for a 1 s interval with the arcp-rs vendor
//! capability `x-vendor.arcp-rs.heartbeat_interval_sec`; a runtime that ignores it and keeps
//! an interval above 5 s is reported as skipped for that case.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Case, SKIP, adopt_welcome, case, ensure, hello_payload, job_id, open, require_agent, submit};
use crate::{Ctx, Failure};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            s6_4_welcome_has_the_interval_iff_negotiated,
            "6.4",
            "welcome.heartbeat_interval_sec is a positive integer when heartbeat was negotiated, and absent otherwise"
        ),
        case!(
            s6_4_ping_without_the_feature_is_answered,
            "6.4",
            "A session that did not negotiate heartbeat still gets a pong for its ping; neither carries event_seq"
        ),
        case!(
            s6_4_heartbeat_loss_detaches_and_cancels_nothing,
            "6.4",
            "An idle runtime pings; a peer silent for two intervals gets session.error HEARTBEAT_LOST and the transport closes; the session resumes and its job is still running"
        ),
    ]
}

fn negotiated(welcome: &Value, feature: &str) -> bool {
    welcome["payload"]["capabilities"]["features"].as_array().is_some_and(|f| f.iter().any(|x| x == feature))
}

async fn s6_4_welcome_has_the_interval_iff_negotiated(ctx: Ctx) -> Result<(), Failure> {
    let (_, welcome) = open(&ctx).await?;
    let interval = &welcome["payload"]["heartbeat_interval_sec"];
    if negotiated(&welcome, "heartbeat") {
        ensure(interval.as_u64().is_some_and(|s| s > 0), format!("heartbeat negotiated, interval {interval}"))?;
    } else {
        ensure(interval.is_null(), format!("heartbeat not negotiated, yet an interval: {welcome}"))?;
    }
    let mut peer = ctx.connect().await?;
    let mut hello = hello_payload(ctx.token(), None);
    hello["capabilities"]["features"] = json!(["progress"]);
    peer.send("session.hello", hello, json!({}))?;
    let w = peer.recv().await?;
    ensure(w["type"] == "session.welcome", format!("expected a welcome, got {w}"))?;
    ensure(w["payload"].get("heartbeat_interval_sec").is_none(), format!("no heartbeat, no interval: {w}"))
}

async fn s6_4_ping_without_the_feature_is_answered(ctx: Ctx) -> Result<(), Failure> {
    let mut peer = ctx.connect().await?;
    let mut hello = hello_payload(ctx.token(), None);
    hello["capabilities"]["features"] = json!([]);
    peer.send("session.hello", hello, json!({}))?;
    let w = peer.recv().await?;
    ensure(w["type"] == "session.welcome", format!("expected a welcome, got {w}"))?;
    adopt_welcome(&mut peer, &w)?;
    peer.send("session.ping", json!({"nonce": "n-1", "sent_at": "2026-11-23T08:00:00Z"}), json!({}))?;
    let pong = peer.recv().await?;
    ensure(pong["type"] == "session.pong", format!("expected a pong, got {pong}"))?;
    ensure(pong["payload"]["ping_nonce"] == "n-1", format!("the pong echoes the nonce: {pong}"))?;
    ensure(pong.get("event_seq").is_none(), format!("a pong carries no event_seq: {pong}"))
}

async fn s6_4_heartbeat_loss_detaches_and_cancels_nothing(ctx: Ctx) -> Result<(), Failure> {
    let mut peer = ctx.connect().await?;
    let mut hello = hello_payload(ctx.token(), None);
    hello["capabilities"]["x-vendor.arcp-rs.heartbeat_interval_sec"] = json!(1);
    peer.send("session.hello", hello, json!({}))?;
    let welcome = peer.recv().await?;
    ensure(welcome["type"] == "session.welcome", format!("expected a welcome, got {welcome}"))?;
    adopt_welcome(&mut peer, &welcome)?;
    if !negotiated(&welcome, "heartbeat") {
        return Err(format!("{SKIP} the runtime does not offer heartbeat"));
    }
    let interval = welcome["payload"]["heartbeat_interval_sec"].as_u64().unwrap_or(0);
    if !(1..=5).contains(&interval) {
        return Err(format!("{SKIP} heartbeat interval {interval} s is too long to observe loss in a case"));
    }
    require_agent(&welcome, "sleep")?;
    let (_, accepted) = submit(&mut peer, json!({"agent": "sleep", "input": {}})).await?;
    let job = job_id(&accepted)?;
    // From now on the peer says nothing. The runtime pings when idle...
    let mut pinged = false;
    let error = loop {
        let v = peer.recv().await?;
        match v["type"].as_str() {
            Some("session.ping") => {
                ensure(v.get("event_seq").is_none(), format!("a ping carries no event_seq: {v}"))?;
                ensure(v["payload"]["nonce"].is_string(), format!("ping without a nonce: {v}"))?;
                pinged = true;
            }
            Some("session.error") => break v,
            _ => {}
        }
    };
    ensure(pinged, "the runtime pings an idle session before declaring it lost")?;
    // ...then gives up on it: HEARTBEAT_LOST and a closed transport.
    ensure(error["payload"]["code"] == "HEARTBEAT_LOST", format!("expected HEARTBEAT_LOST, got {error}"))?;
    ensure(peer.closes_within(Duration::from_secs(5)).await, "heartbeat loss closes the transport")?;
    let (session, token, seen) =
        (peer.session_id.clone().unwrap_or_default(), peer.resume_token.clone().unwrap_or_default(), peer.last_seq);
    // The session is only detached: it resumes, and the job was not cancelled.
    let (mut again, w) = super::resume(&ctx, &session, &token, seen).await?;
    ensure(w["type"] == "session.welcome", format!("the session must stay resumable, got {w}"))?;
    again.send("job.cancel", json!({"reason": "cleanup"}), json!({"job_id": job}))?;
    let ack = again.recv_type("job.cancelled").await;
    ensure(ack.is_ok(), format!("the job must still be running after heartbeat loss: {ack:?}"))?;
    let end = super::until_terminal(&mut again, &job).await?;
    let last = end.last().cloned().unwrap_or_default();
    ensure(last["payload"]["code"] == "CANCELLED", format!("ended by our cancel only: {last}"))?;
    again.send("session.bye", json!({}), json!({}))?;
    Ok(())
}
