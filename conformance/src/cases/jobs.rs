//! §7.1, §7.3, §7.4, §8.3: submit to result, refusals, timeouts, cancel, event ordering.

use serde_json::json;

use super::{Case, case, ensure, expect_session_error, job_id, open, open_with, require_agent, submit, until_terminal};
use crate::{Ctx, Failure};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            s7_1_submit_echo_runs_to_a_result,
            "7.1",
            "submit → job.accepted (job_id, trace_id) → status running → job.result with the agent's result"
        ),
        case!(
            s7_1_trace_id_is_kept_or_minted,
            "7.1",
            "A submitted trace_id is echoed; a missing one is minted (32 lowercase hex)"
        ),
        case!(
            s7_1_unknown_agent_is_agent_not_available,
            "7.1",
            "An unknown agent is refused with AGENT_NOT_AVAILABLE; the session stays open"
        ),
        case!(
            s7_3_max_runtime_sec_times_out,
            "7.3",
            "A job exceeding max_runtime_sec ends with job.error timed_out / TIMEOUT"
        ),
        case!(
            s7_4_cancel_acks_then_ends_cancelled,
            "7.4",
            "job.cancel is acknowledged with job.cancelled, then job.error cancelled / CANCELLED"
        ),
        case!(
            s7_4_only_the_submitting_session_may_cancel,
            "7.4",
            "A cancel from another session is refused (PERMISSION_DENIED or JOB_NOT_FOUND) and the job is unharmed"
        ),
        case!(s7_4_cancel_of_an_unknown_job_is_job_not_found, "7.4", "Cancelling an unknown job is JOB_NOT_FOUND"),
        case!(
            s7_4_cancel_without_job_id_is_invalid_request,
            "7.4",
            "job.cancel without an envelope job_id is session.error INVALID_REQUEST and closes"
        ),
        case!(
            s7_4_cancel_of_a_finished_job_is_ignored,
            "7.4",
            "Cancelling a job that already ended gets no answer (no job.cancelled, no second terminal); the session goes on"
        ),
        case!(
            s8_3_event_seq_is_gap_free_across_jobs,
            "8.3",
            "event_seq is session-scoped, strictly increasing by one, across concurrent jobs"
        ),
    ]
}

async fn s7_1_submit_echo_runs_to_a_result(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "echo")?;
    let input = json!({"conformance": [1, "two", {"three": null}]});
    let (_, accepted) = submit(&mut peer, json!({"agent": "echo", "input": input})).await?;
    let job = job_id(&accepted)?;
    ensure(accepted.get("event_seq").is_none(), "job.accepted carries no event_seq")?;
    let frames = until_terminal(&mut peer, &job).await?;
    let first = &frames[0];
    ensure(
        first["type"] == "job.event"
            && first["payload"]["kind"] == "status"
            && first["payload"]["body"]["phase"] == "running",
        format!("the first job event must be status running, got {first}"),
    )?;
    let last = frames.last().cloned().unwrap_or_default();
    ensure(last["type"] == "job.result", format!("expected job.result, got {last}"))?;
    let result = &last["payload"]["result"];
    ensure(result == &input || result == &json!({"echoed": input}), format!("echo must return its input, got {result}"))
}

async fn s7_1_trace_id_is_kept_or_minted(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "echo")?;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    peer.send("job.submit", json!({"agent": "echo", "input": 1}), json!({"trace_id": trace}))?;
    let accepted = peer.recv_type("job.accepted").await?;
    let echoed = accepted["payload"]["trace_id"].as_str().or(accepted["trace_id"].as_str());
    ensure(echoed == Some(trace), format!("the submitted trace_id must be echoed, got {accepted}"))?;
    until_terminal(&mut peer, &job_id(&accepted)?).await?;
    let (_, accepted) = submit(&mut peer, json!({"agent": "echo", "input": 2})).await?;
    let minted = accepted["payload"]["trace_id"].as_str().or(accepted["trace_id"].as_str()).unwrap_or("");
    ensure(
        minted.len() == 32 && minted.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        format!("a trace_id must be minted, got {accepted}"),
    )
}

async fn s7_1_unknown_agent_is_agent_not_available(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, _) = open(&ctx).await?;
    peer.send("job.submit", json!({"agent": "no-such-agent-conformance", "input": null}), json!({}))?;
    let v = peer.recv().await?;
    let code = &v["payload"]["code"];
    ensure(
        (v["type"] == "job.error" || v["type"] == "session.error") && code == "AGENT_NOT_AVAILABLE",
        format!("expected AGENT_NOT_AVAILABLE, got {v}"),
    )?;
    ensure(v["type"] == "job.error", "arcp-rs: a refused submit is a job.error, the session stays open")?;
    peer.send("session.ping", json!({"nonce": "still-open", "sent_at": "2026-11-23T08:00:00Z"}), json!({}))?;
    let pong = peer.recv_type("session.pong").await?;
    ensure(pong["payload"]["ping_nonce"] == "still-open", "the session must stay open")
}

async fn s7_3_max_runtime_sec_times_out(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "sleep")?;
    let (_, accepted) = submit(&mut peer, json!({"agent": "sleep", "input": {}, "max_runtime_sec": 1})).await?;
    let frames = until_terminal(&mut peer, &job_id(&accepted)?).await?;
    let last = frames.last().cloned().unwrap_or_default();
    ensure(
        last["type"] == "job.error"
            && last["payload"]["final_status"] == "timed_out"
            && last["payload"]["code"] == "TIMEOUT",
        format!("expected job.error timed_out/TIMEOUT, got {last}"),
    )
}

async fn s7_4_cancel_acks_then_ends_cancelled(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "sleep")?;
    let (_, accepted) = submit(&mut peer, json!({"agent": "sleep", "input": {}})).await?;
    let job = job_id(&accepted)?;
    peer.recv_type("job.event").await?;
    peer.send("job.cancel", json!({"reason": "conformance"}), json!({"job_id": job}))?;
    let ack = peer.recv().await?;
    ensure(
        ack["type"] == "job.cancelled" && ack["job_id"] == job.as_str(),
        format!("expected job.cancelled first, got {ack}"),
    )?;
    let end = peer.recv().await?;
    ensure(
        end["type"] == "job.error"
            && end["payload"]["final_status"] == "cancelled"
            && end["payload"]["code"] == "CANCELLED",
        format!("expected job.error cancelled/CANCELLED, got {end}"),
    )
}

async fn s7_4_only_the_submitting_session_may_cancel(ctx: Ctx) -> Result<(), Failure> {
    let (mut owner, welcome) = open(&ctx).await?;
    require_agent(&welcome, "sleep")?;
    let (_, accepted) = submit(&mut owner, json!({"agent": "sleep", "input": {}})).await?;
    let job = job_id(&accepted)?;
    let (mut other, _) = open_with(&ctx, ctx.same_principal_token()).await?;
    other.send("job.cancel", json!({}), json!({"job_id": job}))?;
    let v = other.recv().await?;
    let code = v["payload"]["code"].as_str().unwrap_or("");
    ensure(
        matches!(code, "PERMISSION_DENIED" | "JOB_NOT_FOUND"),
        format!("a non-owner cancel must be refused, got {v}"),
    )?;
    owner.send("job.cancel", json!({}), json!({"job_id": job}))?;
    let ack = owner.recv_type("job.cancelled").await?;
    ensure(ack["job_id"] == job.as_str(), "the owner can still cancel: the job was unharmed")
}

async fn s7_4_cancel_of_an_unknown_job_is_job_not_found(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, _) = open(&ctx).await?;
    peer.send("job.cancel", json!({}), json!({"job_id": "job_01M8ZZZZZZZZZZZZZZZZZZZZZZ"}))?;
    let v = peer.recv().await?;
    ensure(v["payload"]["code"] == "JOB_NOT_FOUND", format!("expected JOB_NOT_FOUND, got {v}"))
}

async fn s8_3_event_seq_is_gap_free_across_jobs(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "count")?;
    let mut jobs = Vec::new();
    for _ in 0..3 {
        peer.send("job.submit", json!({"agent": "count", "input": {"n": 10}}), json!({}))?;
    }
    let mut ended = 0;
    // Peer::recv fails on any gap or duplicate.
    while ended < 3 {
        let v = peer.recv().await?;
        if v["type"] == "job.accepted" {
            jobs.push(v["payload"]["job_id"].clone());
        }
        if v["type"] == "job.result" || v["type"] == "job.error" {
            ended += 1;
        }
    }
    ensure(jobs.len() == 3, "three jobs accepted")?;
    ensure(peer.seqs.first() == Some(&1), format!("event_seq starts at 1, got {:?}", peer.seqs.first()))
}

async fn s7_4_cancel_of_a_finished_job_is_ignored(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "echo")?;
    let (_, accepted) = submit(&mut peer, json!({"agent": "echo", "input": 1})).await?;
    let job = job_id(&accepted)?;
    until_terminal(&mut peer, &job).await?;
    peer.send("job.cancel", json!({"reason": "too late"}), json!({"job_id": job}))?;
    // Messages are handled in order: once the pong is back, the cancel was handled.
    peer.send("session.ping", json!({"nonce": "after-cancel", "sent_at": "2026-11-23T08:00:00Z"}), json!({}))?;
    let next = peer.recv().await?;
    ensure(
        next["type"] == "session.pong" && next["payload"]["ping_nonce"] == "after-cancel",
        format!("a cancel of a finished job is ignored, got {next}"),
    )
}

async fn s7_4_cancel_without_job_id_is_invalid_request(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, _) = open(&ctx).await?;
    peer.send("job.cancel", json!({"reason": "which job?"}), json!({}))?;
    expect_session_error(&mut peer, "INVALID_REQUEST").await
}
