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
        case!(
            s6_6_list_jobs_filters_by_creation_time,
            "6.6",
            "filter.created_after and filter.created_before are strict bounds on created_at, alone and together"
        ),
        case!(
            s6_6_a_pinned_agent_filter_matches_exactly,
            "6.6",
            "filter.agent name@version lists only jobs resolved to exactly that version (an unversioned job is not listed under any version)"
        ),
        case!(
            s6_6_the_cursor_neither_skips_nor_repeats_while_jobs_change,
            "6.6",
            "paging with a small limit while jobs are created and finish between pages lists every job that existed at the start exactly once, and no job twice"
        ),
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

/// The listing entry of `job` (the principal's whole listing is read).
async fn entry_of(peer: &mut Peer, job: &str) -> Result<Value, Failure> {
    let jobs = list_all(peer, json!({}), 1000).await?;
    jobs.into_iter().find(|j| j["job_id"] == job).ok_or_else(|| format!("job {job} is not listed"))
}

/// `created_at` of an entry, parsed.
fn created_at(entry: &Value) -> Result<i64, Failure> {
    let at = entry["created_at"].as_str().ok_or_else(|| format!("entry without created_at: {entry}"))?;
    arcp_core::Timestamp::parse(at).map(|t| t.unix_millis()).map_err(|e| format!("created_at {at:?}: {e}"))
}

/// Runs an echo job to its end; returns its id.
async fn finished_echo(peer: &mut Peer, input: Value) -> Result<String, Failure> {
    let (_, accepted) = submit(peer, json!({"agent": "echo", "input": input})).await?;
    let job = job_id(&accepted)?;
    until_terminal(peer, &job).await?;
    Ok(job)
}

async fn s6_6_list_jobs_filters_by_creation_time(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "echo")?;
    let mut ids = Vec::new();
    for i in 0..3 {
        if i > 0 {
            // created_at has millisecond precision: keep the three instants apart.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        ids.push(finished_echo(&mut peer, json!({"t": i})).await?);
    }
    let mut entries = Vec::new();
    for id in &ids {
        entries.push(entry_of(&mut peer, id).await?);
    }
    let (a, b, c) = (created_at(&entries[0])?, created_at(&entries[1])?, created_at(&entries[2])?);
    ensure(a < b && b < c, format!("jobs submitted 20 ms apart have increasing created_at: {entries:?}"))?;
    let listed = |jobs: &[Value]| -> Vec<bool> { ids.iter().map(|id| count(jobs, id) == 1).collect() };
    let after = list_all(&mut peer, json!({"created_after": entries[0]["created_at"]}), 1000).await?;
    ensure(
        listed(&after) == [false, true, true],
        format!("created_after = the first job's created_at lists the two later ones only: {:?}", listed(&after)),
    )?;
    let before = list_all(&mut peer, json!({"created_before": entries[1]["created_at"]}), 1000).await?;
    ensure(
        listed(&before) == [true, false, false],
        format!("created_before = the second job's created_at lists the first only: {:?}", listed(&before)),
    )?;
    ensure(
        before.iter().chain(&after).all(|j| created_at(j).is_ok()),
        "every listed entry carries a parseable created_at",
    )?;
    let between = list_all(
        &mut peer,
        json!({"created_after": entries[0]["created_at"], "created_before": entries[2]["created_at"]}),
        1000,
    )
    .await?;
    ensure(
        listed(&between) == [false, true, false],
        format!("both bounds together list the middle job only: {:?}", listed(&between)),
    )?;
    ensure(
        between.iter().all(|j| created_at(j).is_ok_and(|t| a < t && t < c)),
        "every entry listed between the bounds lies strictly between them",
    )
}

async fn s6_6_a_pinned_agent_filter_matches_exactly(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "echo")?;
    let (_, accepted) = submit(&mut peer, json!({"agent": "echo", "input": "pinned"})).await?;
    let job = job_id(&accepted)?;
    until_terminal(&mut peer, &job).await?;
    let label = accepted["payload"]["agent"].as_str().unwrap_or("echo").to_owned();
    let missing = list_all(&mut peer, json!({"agent": "echo@0.0.0-conformance-missing"}), 1000).await?;
    ensure(
        missing.is_empty(),
        format!("no job ran echo@0.0.0-conformance-missing, yet the listing shows {missing:?}"),
    )?;
    if label.contains('@') {
        let exact = list_all(&mut peer, json!({"agent": label}), 1000).await?;
        ensure(count(&exact, &job) == 1, format!("filter.agent {label} lists the job resolved to it"))?;
        ensure(exact.iter().all(|j| j["agent"] == label.as_str()), format!("filter.agent {label} matches exactly"))?;
    }
    Ok(())
}

async fn s6_6_the_cursor_neither_skips_nor_repeats_while_jobs_change(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "echo")?;
    require_agent(&welcome, "sleep")?;
    // Everything listed after the marker (strictly) is this case's or a later one's.
    let marker = finished_echo(&mut peer, json!("marker")).await?;
    let since = entry_of(&mut peer, &marker).await?["created_at"].clone();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut existing = Vec::new();
    for i in 0..4 {
        existing.push(finished_echo(&mut peer, json!({"i": i})).await?);
    }
    let mut running = Vec::new();
    for _ in 0..3 {
        let (_, accepted) = submit(&mut peer, json!({"agent": "sleep", "input": {}})).await?;
        let job = job_id(&accepted)?;
        // `sleep` emits status running, then nothing until it is cancelled.
        let running_event = peer.recv().await?;
        ensure(running_event["job_id"] == job.as_str(), format!("the sleep job's status event, got {running_event}"))?;
        running.push(job);
    }
    existing.extend(running.iter().cloned());
    let mut seen: Vec<String> = Vec::new();
    let mut cursor = Value::Null;
    let mut changes = running.clone().into_iter();
    for page_no in 0.. {
        ensure(page_no < 1_000, "the listing did not end")?;
        let id = peer.send(
            "session.list_jobs",
            json!({"filter": {"created_after": since}, "limit": 2, "cursor": cursor}),
            json!({}),
        )?;
        let page = peer.recv_type("session.jobs").await?;
        ensure(page["payload"]["request_id"] == id.as_str(), format!("request_id: {page}"))?;
        let jobs = page["payload"]["jobs"].as_array().ok_or_else(|| format!("session.jobs without jobs: {page}"))?;
        ensure(jobs.len() <= 2, format!("a page larger than its limit: {page}"))?;
        for j in jobs {
            let id = j["job_id"].as_str().ok_or_else(|| format!("entry without job_id: {j}"))?.to_owned();
            ensure(!seen.contains(&id), format!("job {id} listed twice in one pass"))?;
            seen.push(id);
        }
        match &page["payload"]["next_cursor"] {
            Value::Null => break,
            Value::String(c) => cursor = json!(c),
            other => return Err(format!("next_cursor must be a string or null, got {other}")),
        }
        // Between pages: a new job is created and runs to its end, and a running one ends.
        finished_echo(&mut peer, json!({"between": page_no})).await?;
        if let Some(job) = changes.next() {
            peer.send("job.cancel", json!({}), json!({"job_id": job}))?;
            until_terminal(&mut peer, &job).await?;
        }
    }
    for job in &existing {
        ensure(seen.contains(job), format!("job {job} existed when the pass began but was skipped"))?;
    }
    for job in changes {
        peer.send("job.cancel", json!({}), json!({"job_id": job}))?;
        until_terminal(&mut peer, &job).await?;
    }
    Ok(())
}
