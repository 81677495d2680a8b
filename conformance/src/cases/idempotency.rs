//! §7.2 idempotency (decision 5).

use serde_json::{Value, json};

use super::{Case, case, ensure, job_id, open, open_with, require_agent, until_terminal};
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
