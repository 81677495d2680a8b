//! §6.5 acknowledgement and back-pressure: acks are silent and never break the session, a
//! resume from the acknowledged point replays the rest, a resume from before it is complete
//! or refused (never a gap), and back-pressure is one `status` event, re-armed by catching up.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Case, SKIP, case, ensure, job_id, open, require_agent, submit};
use crate::{Ctx, Failure, Peer};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            s6_5_acks_are_silent_and_tolerant,
            "6.5",
            "session.ack gets no answer; an ack beyond the newest event or going backwards is ignored and the session goes on"
        ),
        case!(
            s6_5_resume_from_the_acked_point_replays_the_rest,
            "6.5",
            "After acking seq N, a resume with last_event_seq N replays every later event exactly once"
        ),
        case!(
            s6_5_resume_before_the_acked_point_is_complete_or_refused,
            "6.5",
            "A resume from before an acknowledged (possibly freed) event is either replayed completely or refused with RESUME_WINDOW_EXPIRED, never with a gap"
        ),
        case!(
            s6_5_back_pressure_is_sent_once_and_rearmed,
            "6.5",
            "More than 1000 unacknowledged events give one status back_pressure event on a running job; acking re-arms it"
        ),
    ]
}

fn ack(peer: &mut Peer, seq: u64) -> Result<(), Failure> {
    peer.send("session.ack", json!({"last_processed_seq": seq}), json!({})).map(drop)
}

/// A ping round trip: everything sent before it was handled, and answered with nothing else.
async fn sync(peer: &mut Peer, nonce: &str) -> Result<(), Failure> {
    peer.send("session.ping", json!({"nonce": nonce, "sent_at": "2026-11-23T08:00:00Z"}), json!({}))?;
    let v = peer.recv().await?;
    ensure(
        v["type"] == "session.pong" && v["payload"]["ping_nonce"] == nonce,
        format!("an ack is never answered; expected only the pong, got {v}"),
    )
}

/// Opens a session, runs `count n` to its end (n + 2 events); returns the peer.
async fn counted(ctx: &Ctx, n: u64) -> Result<Peer, Failure> {
    let (mut peer, welcome) = open(ctx).await?;
    require_agent(&welcome, "count")?;
    let (_, accepted) = submit(&mut peer, json!({"agent": "count", "input": {"n": n}})).await?;
    super::until_terminal(&mut peer, &job_id(&accepted)?).await?;
    Ok(peer)
}

/// Resumes `peer`'s session from `last` on a new connection.
async fn resume(ctx: &Ctx, peer: &Peer, last: u64) -> Result<(Peer, Value), Failure> {
    let session = peer.session_id.clone().unwrap_or_default();
    let token = peer.resume_token.clone().unwrap_or_default();
    super::resume(ctx, &session, &token, last).await
}

async fn s6_5_acks_are_silent_and_tolerant(ctx: Ctx) -> Result<(), Failure> {
    let mut peer = counted(&ctx, 3).await?;
    let newest = peer.last_seq;
    ack(&mut peer, newest)?;
    ack(&mut peer, newest + 1_000_000)?;
    ack(&mut peer, 1)?;
    ack(&mut peer, 0)?;
    sync(&mut peer, "after-acks").await
}

async fn s6_5_resume_from_the_acked_point_replays_the_rest(ctx: Ctx) -> Result<(), Failure> {
    let mut peer = counted(&ctx, 5).await?; // seqs 1..=7
    ensure(peer.last_seq == 7, format!("status + 5 progress + result = 7 events, saw {}", peer.last_seq))?;
    ack(&mut peer, 4)?;
    sync(&mut peer, "acked").await?;
    peer.drop_connection();
    let (mut again, w) = resume(&ctx, &peer, 4).await?;
    ensure(w["type"] == "session.welcome", format!("a resume from the acked point is accepted, got {w}"))?;
    for expected in 5..=7 {
        let v = again.recv().await?;
        ensure(v["event_seq"] == expected, format!("expected the replay of seq {expected}, got {v}"))?;
    }
    Ok(())
}

async fn s6_5_resume_before_the_acked_point_is_complete_or_refused(ctx: Ctx) -> Result<(), Failure> {
    let mut peer = counted(&ctx, 5).await?; // seqs 1..=7
    ack(&mut peer, 7)?;
    sync(&mut peer, "acked-all").await?;
    peer.drop_connection();
    let (mut again, w) = resume(&ctx, &peer, 2).await?;
    match w["type"].as_str() {
        Some("session.error") => {
            ensure(
                w["payload"]["code"] == "RESUME_WINDOW_EXPIRED",
                format!("expected RESUME_WINDOW_EXPIRED, got {w}"),
            )?;
            ensure(again.closes_within(Duration::from_secs(5)).await, "session.error closes")
        }
        Some("session.welcome") => {
            // The runtime kept the events: the replay must be complete (Peer checks continuity).
            for _ in 3..=7 {
                again.recv().await?;
            }
            ensure(again.last_seq == 7, format!("replay ended at {}", again.last_seq))
        }
        _ => Err(format!("expected a welcome or RESUME_WINDOW_EXPIRED, got {w}")),
    }
}

fn back_pressure(v: &Value) -> bool {
    v["type"] == "job.event" && v["payload"]["kind"] == "status" && v["payload"]["body"]["phase"] == "back_pressure"
}

/// Runs `count n` while `sleeper` runs; returns how many back-pressure events arrived (on
/// any job) before the count ended.
async fn count_and_watch(peer: &mut Peer, n: u64) -> Result<usize, Failure> {
    let (_, accepted) = submit(peer, json!({"agent": "count", "input": {"n": n}})).await?;
    let counter = job_id(&accepted)?;
    let mut signals = 0;
    for _ in 0..n + 100 {
        let v = peer.recv().await?;
        if back_pressure(&v) {
            ensure(v["payload"]["body"]["message"].is_string(), format!("back_pressure carries a message: {v}"))?;
            signals += 1;
        }
        if v["job_id"] == counter.as_str() && (v["type"] == "job.result" || v["type"] == "job.error") {
            return Ok(signals);
        }
    }
    Err(format!("count {n} did not end"))
}

async fn s6_5_back_pressure_is_sent_once_and_rearmed(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    if !welcome["payload"]["capabilities"]["features"].as_array().is_some_and(|f| f.iter().any(|x| x == "ack")) {
        return Err(format!("{SKIP} the runtime does not offer ack"));
    }
    require_agent(&welcome, "count")?;
    require_agent(&welcome, "sleep")?;
    // A job that outlives both rounds, so there is always a running job to carry the signal.
    let (_, accepted) = submit(&mut peer, json!({"agent": "sleep", "input": {}})).await?;
    let sleeper = job_id(&accepted)?;
    peer.recv_type("job.event").await?; // its status running
    for round in 1..=2 {
        let signals = count_and_watch(&mut peer, 1100).await?;
        ensure(signals == 1, format!("round {round}: expected exactly one back_pressure event, saw {signals}"))?;
        let newest = peer.last_seq;
        ack(&mut peer, newest)?;
        sync(&mut peer, &format!("caught-up-{round}")).await?;
    }
    peer.send("job.cancel", json!({}), json!({"job_id": sleeper}))?;
    super::until_terminal(&mut peer, &sleeper).await.map(drop)
}
