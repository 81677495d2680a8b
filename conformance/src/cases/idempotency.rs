//! §7.2 idempotency (decision 5).

use serde_json::{Value, json};

use super::{Case, SKIP, case, ensure, job_id, open, open_with, require_agent, until_terminal};
use crate::{Ctx, Failure};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            s7_2_identical_resubmit_returns_the_same_accepted,
            "7.2",
            "An identical resubmit (same principal and key) gets the same job.accepted and then the terminal envelope; the agent does not run again"
        ),
        case!(
            s7_2_conflicting_resubmit_is_duplicate_key,
            "7.2",
            "The same key with a different payload is DUPLICATE_KEY naming the existing job"
        ),
        case!(
            s7_2_concurrent_submits_with_one_key_start_one_job,
            "7.2",
            "Concurrent submits with one key from two sessions start one job; both get the same job.accepted"
        ),
        case!(
            s7_2_identical_resubmit_of_a_running_job_streams_its_live_events,
            "7.2",
            "decision 5: an identical resubmit of a running job (another session) gets the same job.accepted, then the job's live events in its own event_seq and its terminal envelope; the agent does not run twice"
        ),
        case!(
            s7_2_keys_are_scoped_to_the_principal,
            "7.2",
            "decision 5: another principal reusing a key starts its own job, neither DUPLICATE_KEY nor the first job (needs a second principal's token)"
        ),
    ]
}

fn unique_key(tag: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("conformance-{tag}-{nanos}")
}

async fn s7_2_identical_resubmit_returns_the_same_accepted(ctx: Ctx) -> Result<(), Failure> {
    let (mut a, welcome) = open(&ctx).await?;
    require_agent(&welcome, "echo")?;
    let key = unique_key("same");
    let body = json!({"agent": "echo", "input": {"k": 1}, "idempotency_key": key});
    let (_, first) = super::submit(&mut a, body.clone()).await?;
    let job = job_id(&first)?;
    until_terminal(&mut a, &job).await?;
    let (mut b, _) = open_with(&ctx, ctx.same_principal_token()).await?;
    let (_, second) = super::submit(&mut b, body).await?;
    ensure(
        second["payload"] == first["payload"],
        format!("the same job.accepted payload is required:\n{}\n{}", first["payload"], second["payload"]),
    )?;
    let end = b.recv().await?;
    ensure(
        end["type"] == "job.result" && end["job_id"] == job.as_str(),
        format!("the resubmitter gets the terminal envelope, got {end}"),
    )
}

async fn s7_2_conflicting_resubmit_is_duplicate_key(ctx: Ctx) -> Result<(), Failure> {
    let (mut a, welcome) = open(&ctx).await?;
    require_agent(&welcome, "echo")?;
    let key = unique_key("conflict");
    let (_, first) = super::submit(&mut a, json!({"agent": "echo", "input": 1, "idempotency_key": key})).await?;
    let job = job_id(&first)?;
    until_terminal(&mut a, &job).await?;
    a.send("job.submit", json!({"agent": "echo", "input": 2, "idempotency_key": key}), json!({}))?;
    let v = a.recv().await?;
    ensure(v["payload"]["code"] == "DUPLICATE_KEY", format!("expected DUPLICATE_KEY, got {v}"))?;
    ensure(
        v["payload"]["details"]["existing_job_id"] == job.as_str(),
        format!("details.existing_job_id must name {job}, got {v}"),
    )
}

async fn s7_2_concurrent_submits_with_one_key_start_one_job(ctx: Ctx) -> Result<(), Failure> {
    let (mut a, welcome) = open(&ctx).await?;
    require_agent(&welcome, "count")?;
    let (mut b, _) = open_with(&ctx, ctx.same_principal_token()).await?;
    let key = unique_key("race");
    let body = json!({"agent": "count", "input": {"n": 3, "delay_ms": 50}, "idempotency_key": key});
    a.send("job.submit", body.clone(), json!({}))?;
    b.send("job.submit", body, json!({}))?;
    let (ra, rb): (Value, Value) = (a.recv_type("job.accepted").await?, b.recv_type("job.accepted").await?);
    ensure(ra["payload"] == rb["payload"], format!("both submitters must get the same job.accepted:\n{ra}\n{rb}"))?;
    let job = job_id(&ra)?;
    let end_a = until_terminal(&mut a, &job).await?;
    let end_b = until_terminal(&mut b, &job).await?;
    let ok = |frames: &[Value]| frames.last().is_some_and(|f| f["type"] == "job.result");
    ensure(ok(&end_a) && ok(&end_b), "both sessions see the one job's result")
}

async fn s7_2_identical_resubmit_of_a_running_job_streams_its_live_events(ctx: Ctx) -> Result<(), Failure> {
    let (mut a, welcome) = open(&ctx).await?;
    require_agent(&welcome, "count")?;
    let key = unique_key("running");
    // 30 progress events 50 ms apart: still running when the resubmit arrives.
    let body = json!({"agent": "count", "input": {"n": 30, "delay_ms": 50}, "idempotency_key": key});
    let (_, first) = super::submit(&mut a, body.clone()).await?;
    let job = job_id(&first)?;
    // Wait until it is running and has progressed.
    for _ in 0..3 {
        let v = a.recv().await?;
        ensure(v["job_id"] == job.as_str(), format!("only the job's events expected, got {v}"))?;
    }
    let (mut b, _) = open_with(&ctx, ctx.same_principal_token()).await?;
    let (_, second) = super::submit(&mut b, body).await?;
    ensure(
        second["payload"] == first["payload"],
        format!("the same job.accepted payload is required:\n{}\n{}", first["payload"], second["payload"]),
    )?;
    // Live events reach the resubmitting session, numbered in its own sequence from 1
    // (Peer::recv checks continuity), then the job's one result.
    let frames = until_terminal(&mut b, &job).await?;
    ensure(b.seqs.first() == Some(&1), format!("in the resubmitter's own sequence from 1, got {:?}", b.seqs))?;
    let currents: Vec<u64> = frames
        .iter()
        .filter(|f| f["payload"]["kind"] == "progress")
        .map(|f| f["payload"]["body"]["current"].as_u64().unwrap_or(0))
        .collect();
    ensure(
        currents.len() >= 2 && currents[0] >= 3 && currents.windows(2).all(|w| w[0] + 1 == w[1]),
        format!("live events, in order, none repeated, not a replay from the start: {currents:?}"),
    )?;
    ensure(currents.last() == Some(&30), format!("the live stream runs to the last event: {currents:?}"))?;
    let last = frames.last().cloned().unwrap_or_default();
    ensure(
        last["type"] == "job.result" && last["payload"]["result"]["count"] == 30,
        format!("the resubmitter receives the job's one result, got {last}"),
    )?;
    let rest = until_terminal(&mut a, &job).await?;
    ensure(
        !rest.iter().any(|f| f["payload"]["kind"] == "status" && f["payload"]["body"]["phase"] == "running"),
        "the agent never runs a second time (no second status running on the submitter's stream)",
    )
}

async fn s7_2_keys_are_scoped_to_the_principal(ctx: Ctx) -> Result<(), Failure> {
    let Some(other) = ctx.other_principal_token().map(str::to_owned) else {
        return Err(format!("{SKIP} the target provides no second principal's token"));
    };
    let (mut a, welcome) = open(&ctx).await?;
    require_agent(&welcome, "echo")?;
    let key = unique_key("scoped");
    let (_, first) = super::submit(&mut a, json!({"agent": "echo", "input": "a", "idempotency_key": key})).await?;
    let job = job_id(&first)?;
    until_terminal(&mut a, &job).await?;
    let (mut b, _) = open_with(&ctx, &other).await?;
    // The identical payload: within one principal this would be the first job again.
    let (_, theirs) = super::submit(&mut b, json!({"agent": "echo", "input": "a", "idempotency_key": key})).await?;
    let their_job = job_id(&theirs)?;
    ensure(their_job != job, format!("another principal's key {key} must not reach job {job}: {theirs}"))?;
    let frames = until_terminal(&mut b, &their_job).await?;
    let last = frames.last().cloned().unwrap_or_default();
    ensure(last["type"] == "job.result", format!("the second principal's job runs to its own result, got {last}"))?;
    ensure(
        frames.iter().any(|f| f["payload"]["kind"] == "status"),
        "the second principal's job really ran (status running), it is not a replayed terminal",
    )
}
