//! §6.6 job listing: keyset pages with `request_id` correlation, filters, visibility across a
//! principal's sessions and never across principals, malformed cursors.

use serde_json::{Value, json};

use super::{
    Case, SKIP, case, ensure, expect_session_error, job_id, open, open_with, require_agent, submit, until_terminal,
};
use crate::{Ctx, Failure, Peer};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            s6_6_list_jobs_pages_every_job_once,
            "6.6",
            "session.jobs echoes request_id; keyset pages (limit, next_cursor) list every job once, null cursor at the end; entries carry agent, status, created_at, last_event_seq"
        ),
        case!(
            s6_6_list_jobs_filters_by_status_and_agent,
            "6.6",
            "filter.status and filter.agent (bare name) restrict the listing; a running job is listed as running"
        ),
        case!(
            s6_6_list_jobs_spans_sessions_of_the_principal,
            "6.6",
            "a job submitted in one session is listed in another session of the same principal"
        ),
        case!(
            s6_6_list_jobs_never_shows_other_principals_jobs,
            "6.6",
            "decision 22: a listing never shows another principal's jobs (needs a second principal's token)"
        ),
        case!(s6_6_malformed_cursor_is_invalid_request, "6.6", "a cursor the runtime did not mint is INVALID_REQUEST"),
    ]
}

/// Lists every page (with `filter`, `limit`); returns the entries, checking `request_id`.
pub(super) async fn list_all(peer: &mut Peer, filter: Value, limit: u64) -> Result<Vec<Value>, Failure> {
    let mut out = Vec::new();
    let mut cursor = Value::Null;
    for _ in 0..10_000 {
        let id =
            peer.send("session.list_jobs", json!({ "filter": filter, "limit": limit, "cursor": cursor }), json!({}))?;
        let page = peer.recv_type("session.jobs").await?;
        ensure(
            page["payload"]["request_id"] == id.as_str(),
            format!("session.jobs must echo request_id {id}: {page}"),
        )?;
        ensure(page.get("event_seq").is_none(), "session.jobs carries no event_seq")?;
        let jobs = page["payload"]["jobs"].as_array().ok_or_else(|| format!("session.jobs without jobs: {page}"))?;
        ensure(jobs.len() as u64 <= limit, format!("a page larger than limit {limit}: {page}"))?;
        out.extend(jobs.iter().cloned());
        match &page["payload"]["next_cursor"] {
            Value::Null => return Ok(out),
            Value::String(c) => cursor = json!(c),
            other => return Err(format!("next_cursor must be a string or null, got {other}")),
        }
    }
    Err("the listing did not end within 10 000 pages".into())
}

fn count(jobs: &[Value], job: &str) -> usize {
    jobs.iter().filter(|j| j["job_id"] == job).count()
}

async fn s6_6_list_jobs_pages_every_job_once(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "echo")?;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (_, accepted) = submit(&mut peer, json!({"agent": "echo", "input": {"i": i}})).await?;
        let job = job_id(&accepted)?;
        until_terminal(&mut peer, &job).await?;
        ids.push(job);
    }
    let jobs = list_all(&mut peer, json!({}), 2).await?;
    let mut seen = std::collections::HashSet::new();
    for j in &jobs {
        let id = j["job_id"].as_str().ok_or_else(|| format!("entry without job_id: {j}"))?;
        ensure(seen.insert(id.to_owned()), format!("job {id} listed twice"))?;
    }
    for job in &ids {
        ensure(count(&jobs, job) == 1, format!("job {job} must be listed exactly once"))?;
        let entry = jobs.iter().find(|j| j["job_id"] == job.as_str()).ok_or("unreachable")?;
        ensure(entry["agent"] == "echo", format!("agent must be the resolved name: {entry}"))?;
        ensure(entry["status"] == "success", format!("a finished job stays listed with its status: {entry}"))?;
        ensure(entry["created_at"].is_string(), format!("created_at: {entry}"))?;
        ensure(entry["last_event_seq"].as_u64().is_some_and(|s| s > 0), format!("last_event_seq: {entry}"))?;
        ensure(entry.get("parent_job_id").is_some_and(Value::is_null), format!("parent_job_id null: {entry}"))?;
    }
    Ok(())
}

async fn s6_6_list_jobs_filters_by_status_and_agent(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "sleep")?;
    require_agent(&welcome, "echo")?;
    let (_, done) = submit(&mut peer, json!({"agent": "echo", "input": {}})).await?;
    let done = job_id(&done)?;
    until_terminal(&mut peer, &done).await?;
    let (_, running) = submit(&mut peer, json!({"agent": "sleep", "input": {}})).await?;
    let running = job_id(&running)?;
    let live = list_all(&mut peer, json!({"status": ["running", "pending"]}), 100).await?;
    ensure(count(&live, &running) == 1, "the running job is listed under status running/pending")?;
    ensure(count(&live, &done) == 0, "a finished job is not listed under status running")?;
    ensure(live.iter().all(|j| j["status"] == "running" || j["status"] == "pending"), "status filter honoured")?;
    let echo = list_all(&mut peer, json!({"agent": "echo"}), 100).await?;
    ensure(count(&echo, &done) == 1 && count(&echo, &running) == 0, "agent filter honoured")?;
    ensure(
        echo.iter().all(|j| j["agent"].as_str().is_some_and(|a| a == "echo" || a.starts_with("echo@"))),
        "a bare agent filter matches that agent only",
    )?;
    peer.send("job.cancel", json!({}), json!({"job_id": running}))?;
    until_terminal(&mut peer, &running).await?;
    Ok(())
}

async fn s6_6_list_jobs_spans_sessions_of_the_principal(ctx: Ctx) -> Result<(), Failure> {
    let (mut a, welcome) = open(&ctx).await?;
    require_agent(&welcome, "echo")?;
    let (_, accepted) = submit(&mut a, json!({"agent": "echo", "input": {}})).await?;
    let job = job_id(&accepted)?;
    until_terminal(&mut a, &job).await?;
    let (mut b, _) = open_with(&ctx, ctx.same_principal_token()).await?;
    let jobs = list_all(&mut b, json!({"agent": "echo"}), 1000).await?;
    ensure(count(&jobs, &job) == 1, "another session of the principal lists the job")
}

async fn s6_6_list_jobs_never_shows_other_principals_jobs(ctx: Ctx) -> Result<(), Failure> {
    let Some(other) = ctx.other_principal_token().map(str::to_owned) else {
        return Err(format!("{SKIP} the target provides no second principal's token"));
    };
    let (mut a, welcome) = open(&ctx).await?;
    require_agent(&welcome, "echo")?;
    let (_, accepted) = submit(&mut a, json!({"agent": "echo", "input": {}})).await?;
    let job = job_id(&accepted)?;
    until_terminal(&mut a, &job).await?;
    let (mut b, _) = open_with(&ctx, &other).await?;
    let jobs = list_all(&mut b, json!({}), 1000).await?;
    ensure(count(&jobs, &job) == 0, "another principal must never see the job")
}

async fn s6_6_malformed_cursor_is_invalid_request(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, _) = open(&ctx).await?;
    peer.send("session.list_jobs", json!({"cursor": "not-a-cursor-we-minted"}), json!({}))?;
    expect_session_error(&mut peer, "INVALID_REQUEST").await
}
