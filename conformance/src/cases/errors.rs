//! §12 error taxonomy (decision 10): every error object carries a boolean `retryable`, and
//! the pinned codes carry their pinned value.
//!
//! [`crate::check_error_payloads`] runs on every frame any case receives (in
//! [`crate::Peer::recv`]), so every error of every case is checked; this case provokes one
//! error of each kind a server must be able to produce from the contract agents, on each of
//! the three surfaces (`session.error`, `job.error`, `tool_result.error`). `INTERNAL_ERROR`
//! (pinned `true`) is provoked by the §14 cap cases, `LEASE_EXPIRED` and `BUDGET_EXHAUSTED`
//! (pinned `false`) by the §9.5 and §9.6 cases.

use serde_json::{Value, json};

use super::leases::{all_until_terminal, tool_errors};
use super::{Case, case, ensure, hello_payload, job_id, open, require_agent, submit, until_terminal};
use crate::{Ctx, Failure, check_error_payloads};

pub(super) fn cases() -> Vec<Case> {
    vec![case!(
        s12_every_error_carries_retryable_and_pinned_values_hold,
        "12",
        "decision 10: every session.error, job.error and tool_result error carries a boolean retryable (checked on every frame of every case); AGENT_VERSION_NOT_AVAILABLE is false, TIMEOUT defaults to true"
    )]
}

/// Checks `error` (a frame) and returns its `(code, retryable)`.
fn code_of(frame: &Value, error: &Value) -> Result<(String, bool), Failure> {
    check_error_payloads(frame)?;
    let code = error["code"].as_str().ok_or_else(|| format!("no code: {frame}"))?.to_owned();
    let retryable = error["retryable"].as_bool().ok_or_else(|| format!("no boolean retryable: {frame}"))?;
    Ok((code, retryable))
}

async fn s12_every_error_carries_retryable_and_pinned_values_hold(ctx: Ctx) -> Result<(), Failure> {
    let mut seen: Vec<(String, bool)> = Vec::new();
    // session.error: UNAUTHENTICATED.
    let mut peer = ctx.connect().await?;
    peer.send("session.hello", hello_payload("not-a-token-conformance", None), json!({}))?;
    let v = peer.recv_type("session.error").await?;
    seen.push(code_of(&v, &v["payload"])?);
    // job.error request errors: INVALID_REQUEST, AGENT_NOT_AVAILABLE,
    // AGENT_VERSION_NOT_AVAILABLE, JOB_NOT_FOUND.
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "echo")?;
    require_agent(&welcome, "sleep")?;
    require_agent(&welcome, "delegate")?;
    for agent in ["Not-An-Agent", "no-such-agent-conformance", "echo@0.0.0-conformance-missing"] {
        peer.send("job.submit", json!({"agent": agent, "input": null}), json!({}))?;
        let v = peer.recv().await?;
        ensure(
            v["type"] == "job.error" || v["type"] == "session.error",
            format!("{agent}: expected a refusal, got {v}"),
        )?;
        seen.push(code_of(&v, &v["payload"])?);
        if v["type"] == "session.error" {
            let (p, _) = open(&ctx).await?;
            peer = p;
        }
    }
    peer.send("job.cancel", json!({}), json!({"job_id": "job_01M8ZZZZZZZZZZZZZZZZZZZZZZ"}))?;
    let v = peer.recv().await?;
    seen.push(code_of(&v, &v["payload"])?);
    // Terminal job.error: TIMEOUT.
    let (_, accepted) = submit(&mut peer, json!({"agent": "sleep", "input": {}, "max_runtime_sec": 1})).await?;
    let frames = until_terminal(&mut peer, &job_id(&accepted)?).await?;
    let last = frames.last().cloned().unwrap_or_default();
    seen.push(code_of(&last, &last["payload"])?);
    // tool_result.error: PERMISSION_DENIED (delegation without agent.delegate).
    let payload = json!({"agent": "delegate", "input": {"agent": "echo", "input": 1}, "lease_request": {}});
    let (_, accepted) = submit(&mut peer, payload).await?;
    let frames = all_until_terminal(&mut peer, &job_id(&accepted)?).await?;
    for f in &frames {
        check_error_payloads(f)?;
    }
    for (_, error) in tool_errors(&frames) {
        let (code, retryable) = (error["code"].as_str().unwrap_or_default().to_owned(), error["retryable"].clone());
        ensure(retryable.is_boolean(), format!("tool_result error {code} without a boolean retryable"))?;
        seen.push((code, retryable == true));
    }
    let has = |code: &str| seen.iter().find(|(c, _)| c == code).map(|(_, r)| *r);
    for code in ["UNAUTHENTICATED", "INVALID_REQUEST", "AGENT_NOT_AVAILABLE", "JOB_NOT_FOUND", "PERMISSION_DENIED"] {
        ensure(has(code).is_some(), format!("expected a {code} error, saw {seen:?}"))?;
    }
    ensure(
        has("AGENT_VERSION_NOT_AVAILABLE") == Some(false),
        format!("AGENT_VERSION_NOT_AVAILABLE is pinned false: {seen:?}"),
    )?;
    ensure(has("TIMEOUT") == Some(true), format!("TIMEOUT is retryable by default: {seen:?}"))
}
