//! §6.3 resume: replay after a mid-stream drop with the job still running, nothing new to
//! replay, refused tokens.

use std::time::Duration;

use serde_json::json;

use super::{Case, case, ensure, expect_session_error, hello_payload, job_id, open, require_agent, submit};
use crate::{Ctx, Failure};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            s6_3_resume_replays_missed_events_of_a_running_job,
            "6.3",
            "After a transport drop mid-stream, resume replays every missed event exactly once and the still-running job streams live to the new transport"
        ),
        case!(
            s6_3_resume_rotates_the_token,
            "6.3",
            "The welcome of a resume keeps the session_id and carries a new resume_token; the old one is dead"
        ),
        case!(s6_3_resume_with_nothing_new_succeeds, "6.3", "Resuming with last_event_seq = the newest event succeeds"),
        case!(
            s6_3_wrong_resume_token_is_refused,
            "6.3",
            "A wrong resume_token gets session.error RESUME_WINDOW_EXPIRED and the transport closes"
        ),
        case!(
            s6_3_cursor_beyond_the_newest_event_is_invalid_request,
            "6.3",
            "A resume whose last_event_seq is above the newest issued event_seq is session.error INVALID_REQUEST; the refusal does not burn the token"
        ),
        case!(s7_4_resumed_session_can_cancel, "7.4", "A resumed session keeps cancel authority over its running jobs"),
        case!(
            s6_3_session_resume_message_resumes,
            "6.3",
            "decision 2: a session.resume message (hello's payload with resume) resumes like session.hello+resume: same session_id, new token, every missed event once"
        ),
        case!(
            s6_3_resume_closes_a_half_open_transport,
            "6.3",
            "A resume while the old transport is still attached succeeds, and the old transport is closed"
        ),
    ]
}

async fn s6_3_resume_replays_missed_events_of_a_running_job(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "count")?;
    let (_, accepted) = submit(&mut peer, json!({"agent": "count", "input": {"n": 40, "delay_ms": 10}})).await?;
    let job = job_id(&accepted)?;
    for _ in 0..4 {
        peer.recv().await?;
    }
    let (session, token, seen) =
        (peer.session_id.clone().unwrap_or_default(), peer.resume_token.clone().unwrap_or_default(), peer.last_seq);
    peer.drop_connection();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut again, w) = super::resume(&ctx, &session, &token, seen).await?;
    ensure(w["type"] == "session.welcome", format!("resume must be accepted, got {w}"))?;
    ensure(w["session_id"] == session.as_str(), "a resume keeps the session_id")?;
    let frames = super::until_terminal(&mut again, &job).await?;
    let last = frames.last().cloned().unwrap_or_default();
    ensure(
        last["type"] == "job.result" && last["payload"]["result"]["count"] == 40,
        format!("expected the result, got {last}"),
    )?;
    ensure(again.last_seq == 42, format!("status + 40 progress + result = 42 events, saw up to {}", again.last_seq))
}

async fn s6_3_resume_rotates_the_token(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, _) = open(&ctx).await?;
    let (session, token) = (peer.session_id.clone().unwrap_or_default(), peer.resume_token.clone().unwrap_or_default());
    peer.drop_connection();
    let (mut p2, w) = super::resume(&ctx, &session, &token, 0).await?;
    ensure(w["type"] == "session.welcome", format!("resume must be accepted, got {w}"))?;
    ensure(w["payload"]["resume_token"] != token.as_str(), "the resume token must rotate")?;
    p2.drop_connection();
    let (mut p3, w) = super::resume(&ctx, &session, &token, 0).await?;
    ensure(
        w["type"] == "session.error" && w["payload"]["code"] == "RESUME_WINDOW_EXPIRED",
        format!("the old token must be dead, got {w}"),
    )?;
    ensure(p3.closes_within(Duration::from_secs(5)).await, "session.error closes")
}

/// A session whose one `echo` job finished, dropped: `(session_id, resume_token, last seq)`.
async fn finished_then_dropped(ctx: &Ctx) -> Result<(String, String, u64), Failure> {
    let (mut peer, welcome) = open(ctx).await?;
    require_agent(&welcome, "echo")?;
    let (_, accepted) = submit(&mut peer, json!({"agent": "echo", "input": "x"})).await?;
    super::until_terminal(&mut peer, &job_id(&accepted)?).await?;
    let state =
        (peer.session_id.clone().unwrap_or_default(), peer.resume_token.clone().unwrap_or_default(), peer.last_seq);
    peer.drop_connection();
    Ok(state)
}

async fn s6_3_resume_with_nothing_new_succeeds(ctx: Ctx) -> Result<(), Failure> {
    let (session, token, seen) = finished_then_dropped(&ctx).await?;
    let (_, w) = super::resume(&ctx, &session, &token, seen).await?;
    ensure(w["type"] == "session.welcome", format!("a resume with nothing to replay must succeed, got {w}"))
}

async fn s6_3_cursor_beyond_the_newest_event_is_invalid_request(ctx: Ctx) -> Result<(), Failure> {
    let (session, token, seen) = finished_then_dropped(&ctx).await?;
    let (_, refused) = super::resume(&ctx, &session, &token, seen + 1000).await?;
    ensure(
        refused["type"] == "session.error" && refused["payload"]["code"] == "INVALID_REQUEST",
        format!("a cursor beyond the newest event must be session.error INVALID_REQUEST, got {refused}"),
    )?;
    let (_, w) = super::resume(&ctx, &session, &token, seen).await?;
    ensure(w["type"] == "session.welcome", format!("the refused resume must not burn the token, got {w}"))
}

async fn s6_3_wrong_resume_token_is_refused(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, _) = open(&ctx).await?;
    let session = peer.session_id.clone().unwrap_or_default();
    peer.drop_connection();
    let mut p = ctx.connect().await?;
    let r = json!({"session_id": session, "resume_token": "rt_wrong", "last_event_seq": 0});
    p.send("session.hello", hello_payload(ctx.token(), Some(r)), json!({}))?;
    expect_session_error(&mut p, "RESUME_WINDOW_EXPIRED").await
}

async fn s7_4_resumed_session_can_cancel(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "sleep")?;
    let (_, accepted) = submit(&mut peer, json!({"agent": "sleep", "input": {}})).await?;
    let job = job_id(&accepted)?;
    peer.recv_type("job.event").await?;
    let (session, token, seen) =
        (peer.session_id.clone().unwrap_or_default(), peer.resume_token.clone().unwrap_or_default(), peer.last_seq);
    peer.drop_connection();
    let (mut again, w) = super::resume(&ctx, &session, &token, seen).await?;
    ensure(w["type"] == "session.welcome", format!("resume must be accepted, got {w}"))?;
    again.send("job.cancel", json!({"reason": "after resume"}), json!({"job_id": job}))?;
    let ack = again.recv().await?;
    ensure(ack["type"] == "job.cancelled", format!("the resumed session must be able to cancel, got {ack}"))?;
    let end = again.recv().await?;
    ensure(end["payload"]["code"] == "CANCELLED", format!("expected CANCELLED, got {end}"))
}

async fn s6_3_session_resume_message_resumes(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "count")?;
    let (_, accepted) = submit(&mut peer, json!({"agent": "count", "input": {"n": 10, "delay_ms": 20}})).await?;
    let job = job_id(&accepted)?;
    for _ in 0..3 {
        peer.recv().await?;
    }
    let (session, token, seen) =
        (peer.session_id.clone().unwrap_or_default(), peer.resume_token.clone().unwrap_or_default(), peer.last_seq);
    peer.drop_connection();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = ctx.connect().await?;
    again.last_seq = seen;
    let r = json!({"session_id": session, "resume_token": token, "last_event_seq": seen});
    again.send("session.resume", hello_payload(ctx.token(), Some(r)), json!({"session_id": session}))?;
    let w = again.recv().await?;
    ensure(w["type"] == "session.welcome", format!("session.resume must be answered with a welcome, got {w}"))?;
    ensure(w["session_id"] == session.as_str(), format!("a resume keeps the session_id: {w}"))?;
    ensure(w["payload"]["resume_token"] != token.as_str(), format!("the token rotates: {w}"))?;
    super::adopt_welcome(&mut again, &w)?;
    let frames = super::until_terminal(&mut again, &job).await?;
    let last = frames.last().cloned().unwrap_or_default();
    ensure(last["type"] == "job.result", format!("expected the result, got {last}"))?;
    // Peer::recv checked continuity from the cursor: status + 10 progress + result.
    ensure(again.last_seq == 12, format!("every event after the cursor arrives once, saw up to {}", again.last_seq))
}

async fn s6_3_resume_closes_a_half_open_transport(ctx: Ctx) -> Result<(), Failure> {
    let (mut old, welcome) = open(&ctx).await?;
    require_agent(&welcome, "sleep")?;
    let (_, accepted) = submit(&mut old, json!({"agent": "sleep", "input": {}})).await?;
    let job = job_id(&accepted)?;
    old.recv_type("job.event").await?;
    let (session, token, seen) =
        (old.session_id.clone().unwrap_or_default(), old.resume_token.clone().unwrap_or_default(), old.last_seq);
    // The old connection stays open: to the server it is attached until it notices otherwise.
    let (mut again, w) = super::resume(&ctx, &session, &token, seen).await?;
    ensure(w["type"] == "session.welcome", format!("a resume over a half-open transport must succeed, got {w}"))?;
    ensure(old.closes_within(Duration::from_secs(5)).await, "the old transport must be closed by the resume")?;
    again.send("job.cancel", json!({}), json!({"job_id": job}))?;
    again.recv_type("job.cancelled").await?;
    let frames = super::until_terminal(&mut again, &job).await?;
    let last = frames.last().cloned().unwrap_or_default();
    ensure(last["payload"]["code"] == "CANCELLED", format!("the job's events flow to the new transport, got {last}"))
}
