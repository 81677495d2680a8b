//! §7.6 subscription: history replayed into the subscriber's own `event_seq` space before
//! `job.subscribed`, live delivery, no cancel authority, unsubscribe, unknown and other
//! principals' jobs.

use serde_json::{Value, json};

use super::{
    Case, SKIP, adopt_welcome, case, ensure, expect_session_error, hello_payload, job_id, open, open_with,
    require_agent, submit, until_terminal,
};
use crate::{Ctx, Failure, Peer};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            s7_6_history_is_replayed_in_the_subscribers_sequence,
            "7.6",
            "job.subscribe {history:true}: the job's envelopes are replayed re-stamped with the subscriber's session_id and gap-free event_seq, then job.subscribed {replayed:true, subscribed_from}"
        ),
        case!(
            s7_6_live_events_reach_the_subscriber,
            "7.6",
            "a subscription to a running job gets job.subscribed {current_status, lease, parent_job_id} and then the job's live envelopes to its terminal"
        ),
        case!(
            s7_6_a_subscriber_cannot_cancel,
            "7.6",
            "a subscription grants no authority: job.cancel from the subscriber is PERMISSION_DENIED and the job runs on"
        ),
        case!(
            s7_6_unsubscribe_stops_delivery,
            "7.6",
            "after job.unsubscribe nothing more of the job reaches the subscriber"
        ),
        case!(
            s7_6_subscribe_to_an_unknown_job_is_job_not_found,
            "7.6",
            "job.subscribe to an unknown job is JOB_NOT_FOUND"
        ),
        case!(
            s7_6_other_principals_cannot_subscribe_by_default,
            "7.6",
            "default policy same principal only: another principal's subscribe is refused (JOB_NOT_FOUND, decision 22) (needs a second principal's token)"
        ),
        case!(
            s7_6_subscribe_needs_its_feature,
            "7.6",
            "job.subscribe without the subscribe feature is session.error INVALID_REQUEST"
        ),
        case!(
            s7_6_history_starts_after_from_event_seq,
            "7.6",
            "history with from_event_seq N replays only the job's envelopes whose seq in the submitting session is above N, payloads unchanged"
        ),
    ]
}

/// Sends `job.subscribe`; returns the frames received before `job.subscribed`, and it.
async fn subscribe(peer: &mut Peer, payload: Value) -> Result<(Vec<Value>, Value), Failure> {
    peer.send("job.subscribe", payload, json!({}))?;
    let mut before = Vec::new();
    for _ in 0..100_000 {
        let v = peer.recv().await?;
        if v["type"] == "job.subscribed" {
            return Ok((before, v));
        }
        ensure(
            v["type"] != "job.error" || v["payload"]["details"]["request_id"].is_null(),
            format!("subscribe refused: {v}"),
        )?;
        before.push(v);
    }
    Err("no job.subscribed".into())
}

async fn s7_6_history_is_replayed_in_the_subscribers_sequence(ctx: Ctx) -> Result<(), Failure> {
    let (mut owner, welcome) = open(&ctx).await?;
    require_agent(&welcome, "count")?;
    let (_, accepted) = submit(&mut owner, json!({"agent": "count", "input": {"n": 3}})).await?;
    let job = job_id(&accepted)?;
    let owned = until_terminal(&mut owner, &job).await?;
    let (mut sub, _) = open_with(&ctx, ctx.same_principal_token()).await?;
    let (replayed, subscribed) = subscribe(&mut sub, json!({"job_id": job, "history": true})).await?;
    let replayed: Vec<&Value> = replayed.iter().filter(|v| v["job_id"] == job.as_str()).collect();
    ensure(
        replayed.len() == owned.len(),
        format!("expected {} replayed envelopes, got {}", owned.len(), replayed.len()),
    )?;
    for (r, o) in replayed.iter().zip(&owned) {
        ensure(
            r["type"] == o["type"] && r["payload"] == o["payload"],
            format!("payload must be unchanged: {r} vs {o}"),
        )?;
        ensure(r["session_id"].as_str() == sub.session_id.as_deref(), "re-stamped with the subscriber's session_id")?;
        ensure(r["id"] != o["id"], "re-stamped with a new id")?;
    }
    // Peer::recv has already checked that the subscriber's event_seq is gap-free from 1.
    ensure(replayed.first().is_some_and(|r| r["event_seq"] == 1), "the subscriber's sequence starts at 1")?;
    let p = &subscribed["payload"];
    ensure(
        p["job_id"] == job.as_str() && subscribed["job_id"] == job.as_str(),
        format!("job.subscribed names the job: {subscribed}"),
    )?;
    ensure(p["replayed"] == true, "replayed: true")?;
    ensure(
        p["subscribed_from"] == sub.last_seq,
        format!("subscribed_from = the subscriber's latest seq ({}): {subscribed}", sub.last_seq),
    )?;
    ensure(p["current_status"] == "success", format!("current_status: {subscribed}"))?;
    ensure(subscribed.get("event_seq").is_none(), "job.subscribed carries no event_seq")
}

async fn s7_6_live_events_reach_the_subscriber(ctx: Ctx) -> Result<(), Failure> {
    let (mut owner, welcome) = open(&ctx).await?;
    require_agent(&welcome, "sleep")?;
    let (_, accepted) = submit(&mut owner, json!({"agent": "sleep", "input": {}})).await?;
    let job = job_id(&accepted)?;
    let (mut sub, _) = open_with(&ctx, ctx.same_principal_token()).await?;
    let (_, subscribed) = subscribe(&mut sub, json!({"job_id": job})).await?;
    let p = &subscribed["payload"];
    ensure(
        matches!(p["current_status"].as_str(), Some("running" | "pending")),
        format!("current_status: {subscribed}"),
    )?;
    ensure(p["replayed"] == false && p["lease"].is_object(), format!("descriptor: {subscribed}"))?;
    ensure(p.get("parent_job_id").is_some_and(Value::is_null), format!("parent_job_id null: {subscribed}"))?;
    owner.send("job.cancel", json!({}), json!({"job_id": job}))?;
    until_terminal(&mut owner, &job).await?;
    let frames = until_terminal(&mut sub, &job).await?;
    let end = frames.last().ok_or("no terminal")?;
    ensure(end["payload"]["code"] == "CANCELLED", format!("the subscriber sees the terminal live: {end}"))
}

async fn s7_6_a_subscriber_cannot_cancel(ctx: Ctx) -> Result<(), Failure> {
    let (mut owner, welcome) = open(&ctx).await?;
    require_agent(&welcome, "sleep")?;
    let (_, accepted) = submit(&mut owner, json!({"agent": "sleep", "input": {}})).await?;
    let job = job_id(&accepted)?;
    let (mut sub, _) = open_with(&ctx, ctx.same_principal_token()).await?;
    subscribe(&mut sub, json!({"job_id": job})).await?;
    let id = sub.send("job.cancel", json!({}), json!({"job_id": job}))?;
    let v = sub.recv_type("job.error").await?;
    ensure(v["payload"]["code"] == "PERMISSION_DENIED", format!("expected PERMISSION_DENIED, got {v}"))?;
    ensure(v["payload"]["details"]["request_id"] == id.as_str(), format!("a request error names the cancel: {v}"))?;
    owner.send("job.cancel", json!({}), json!({"job_id": job}))?;
    let ack = owner.recv_type("job.cancelled").await?;
    ensure(ack["job_id"] == job.as_str(), "the job was unharmed and the owner can cancel it")
}

async fn s7_6_unsubscribe_stops_delivery(ctx: Ctx) -> Result<(), Failure> {
    let (mut owner, welcome) = open(&ctx).await?;
    require_agent(&welcome, "sleep")?;
    let (_, accepted) = submit(&mut owner, json!({"agent": "sleep", "input": {}})).await?;
    let job = job_id(&accepted)?;
    let (mut sub, _) = open_with(&ctx, ctx.same_principal_token()).await?;
    subscribe(&mut sub, json!({"job_id": job})).await?;
    sub.send("job.unsubscribe", json!({"job_id": job}), json!({}))?;
    // A session handles its messages in order: once the pong is back, the unsubscribe is done.
    sub.send("session.ping", json!({"nonce": "u1", "sent_at": "2026-11-23T08:00:00Z"}), json!({}))?;
    sub.recv_type("session.pong").await?;
    owner.send("job.cancel", json!({}), json!({"job_id": job}))?;
    until_terminal(&mut owner, &job).await?;
    sub.send("session.ping", json!({"nonce": "u2", "sent_at": "2026-11-23T08:00:00Z"}), json!({}))?;
    let next = sub.recv().await?;
    ensure(next["type"] == "session.pong", format!("nothing of the job after job.unsubscribe, got {next}"))
}

async fn s7_6_subscribe_to_an_unknown_job_is_job_not_found(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, _) = open(&ctx).await?;
    let id =
        peer.send("job.subscribe", json!({"job_id": "job_01M8ZZZZZZZZZZZZZZZZZZZZZZ", "history": true}), json!({}))?;
    let v = peer.recv_type("job.error").await?;
    ensure(v["payload"]["code"] == "JOB_NOT_FOUND", format!("expected JOB_NOT_FOUND, got {v}"))?;
    ensure(v["payload"]["details"]["request_id"] == id.as_str(), format!("a request error names the subscribe: {v}"))
}

async fn s7_6_other_principals_cannot_subscribe_by_default(ctx: Ctx) -> Result<(), Failure> {
    let Some(other) = ctx.other_principal_token().map(str::to_owned) else {
        return Err(format!("{SKIP} the target provides no second principal's token"));
    };
    let (mut owner, welcome) = open(&ctx).await?;
    require_agent(&welcome, "sleep")?;
    let (_, accepted) = submit(&mut owner, json!({"agent": "sleep", "input": {}})).await?;
    let job = job_id(&accepted)?;
    let (mut bob, _) = open_with(&ctx, &other).await?;
    bob.send("job.subscribe", json!({"job_id": job, "history": true}), json!({}))?;
    let v = bob.recv().await?;
    let code = v["payload"]["code"].as_str().unwrap_or("");
    ensure(matches!(code, "JOB_NOT_FOUND" | "PERMISSION_DENIED"), format!("expected a refusal, got {v}"))?;
    owner.send("job.cancel", json!({}), json!({"job_id": job}))?;
    until_terminal(&mut owner, &job).await?;
    Ok(())
}

async fn s7_6_subscribe_needs_its_feature(ctx: Ctx) -> Result<(), Failure> {
    let (mut owner, welcome) = open(&ctx).await?;
    require_agent(&welcome, "echo")?;
    let (_, accepted) = submit(&mut owner, json!({"agent": "echo", "input": 1})).await?;
    let job = job_id(&accepted)?;
    until_terminal(&mut owner, &job).await?;
    let mut peer = ctx.connect().await?;
    let mut hello = hello_payload(ctx.same_principal_token(), None);
    hello["capabilities"]["features"] = json!(["list_jobs"]);
    peer.send("session.hello", hello, json!({}))?;
    let w = peer.recv().await?;
    ensure(w["type"] == "session.welcome", format!("expected a welcome, got {w}"))?;
    adopt_welcome(&mut peer, &w)?;
    peer.send("job.subscribe", json!({"job_id": job, "history": true}), json!({}))?;
    expect_session_error(&mut peer, "INVALID_REQUEST").await
}

async fn s7_6_history_starts_after_from_event_seq(ctx: Ctx) -> Result<(), Failure> {
    let (mut owner, welcome) = open(&ctx).await?;
    require_agent(&welcome, "count")?;
    let (_, accepted) = submit(&mut owner, json!({"agent": "count", "input": {"n": 4}})).await?;
    let job = job_id(&accepted)?;
    let owned = until_terminal(&mut owner, &job).await?;
    ensure(owned.len() >= 4, format!("count n=4 emits at least 4 envelopes, got {}", owned.len()))?;
    let from = owned[1]["event_seq"].as_u64().ok_or("the owner's envelopes carry event_seq")?;
    let expected: Vec<&Value> = owned.iter().filter(|o| o["event_seq"].as_u64().is_some_and(|s| s > from)).collect();
    let (mut sub, _) = open_with(&ctx, ctx.same_principal_token()).await?;
    let (replayed, subscribed) =
        subscribe(&mut sub, json!({"job_id": job, "history": true, "from_event_seq": from})).await?;
    let replayed: Vec<&Value> = replayed.iter().filter(|v| v["job_id"] == job.as_str()).collect();
    ensure(
        replayed.len() == expected.len(),
        format!("from_event_seq {from}: expected {} replayed envelopes, got {}", expected.len(), replayed.len()),
    )?;
    for (r, o) in replayed.iter().zip(&expected) {
        ensure(
            r["type"] == o["type"] && r["payload"] == o["payload"],
            format!("the replay starts after seq {from}, payloads unchanged: {r} vs {o}"),
        )?;
    }
    ensure(subscribed["payload"]["replayed"] == true, format!("replayed: true: {subscribed}"))
}
