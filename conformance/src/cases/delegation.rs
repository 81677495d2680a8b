//! §10 and §9.4 (decision 12): delegation through the contract agent `delegate` — a child in
//! the same session with `parent_job_id`, `delegate_id` and the parent's `trace_id`;
//! `agent.delegate` checked first; a child lease wider than the parent's (patterns or
//! remaining budget) is `LEASE_SUBSET_VIOLATION`, reported on the parent; children end with
//! their parent.

use serde_json::{Value, json};

use super::leases::{all_until_terminal, delegate_ids, ends_with_error, expires_in, require_feature, tool_errors};
use super::{Case, case, ensure, job_id, open, require_agent, submit};
use crate::{Ctx, Failure};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            s10_delegate_starts_a_child_in_the_same_session,
            "10",
            "A delegate event is followed by the child's job.accepted (parent_job_id, delegate_id, parent's trace_id); the parent gets the child's result"
        ),
        case!(
            s10_delegation_needs_agent_delegate,
            "10",
            "Without agent.delegate covering the child agent, delegation is tool_result PERMISSION_DENIED (call_id = delegate_id) and no child starts"
        ),
        case!(
            s9_4_a_wider_child_lease_is_a_subset_violation,
            "9.4",
            "A child pattern the parent's patterns do not cover is LEASE_SUBSET_VIOLATION, reported as a tool_result on the parent"
        ),
        case!(
            s9_4_a_child_budget_is_bounded_by_the_parents,
            "9.4",
            "A child cost.budget above the parent's remaining amount is LEASE_SUBSET_VIOLATION; within it, the child's budget is echoed"
        ),
        case!(
            s9_4_a_child_inherits_the_parents_expiry,
            "9.4",
            "A child that names no expires_at runs under its parent's (job.accepted.lease_constraints)"
        ),
        case!(
            s10_cancelling_the_parent_ends_the_child,
            "10",
            "Cancelling a parent ends its running child with job.error CANCELLED"
        ),
        case!(
            s11_the_trace_id_reaches_every_envelope_of_the_job_tree,
            "11",
            "A submitted trace_id is carried by every job-scoped envelope of the job and of its delegated child (job.accepted envelope and payload, events, results)"
        ),
    ]
}

/// The `job.accepted` frames of children among `frames`.
fn children(frames: &[Value]) -> Vec<&Value> {
    frames.iter().filter(|f| f["type"] == "job.accepted").collect()
}

async fn s10_delegate_starts_a_child_in_the_same_session(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "delegate")?;
    require_agent(&welcome, "echo")?;
    let input = json!({"conformance": "delegated"});
    let payload = json!({"agent": "delegate", "input": {"agent": "echo", "input": input},
                         "lease_request": {"agent.delegate": ["echo"]}});
    let (_, accepted) = submit(&mut peer, payload).await?;
    let parent = job_id(&accepted)?;
    let trace = accepted["payload"]["trace_id"].clone();
    let frames = all_until_terminal(&mut peer, &parent).await?;
    let ids = delegate_ids(&frames);
    ensure(ids.len() == 1, format!("expected one delegate event on the parent, got {ids:?}"))?;
    let kids = children(&frames);
    ensure(kids.len() == 1, format!("expected one child job.accepted, got {}", kids.len()))?;
    let child = kids[0];
    ensure(
        child["payload"]["parent_job_id"] == parent.as_str(),
        format!("parent_job_id must name the parent: {child}"),
    )?;
    ensure(child["payload"]["delegate_id"] == ids[0].as_str(), format!("delegate_id must match the event: {child}"))?;
    ensure(child["payload"]["trace_id"] == trace, format!("the child inherits the parent's trace_id: {child}"))?;
    let child_id = child["payload"]["job_id"].as_str().unwrap_or_default();
    let delegate_pos = frames.iter().position(|f| f["payload"]["kind"] == "delegate");
    let accepted_pos = frames.iter().position(|f| f["type"] == "job.accepted");
    ensure(delegate_pos < accepted_pos, "the delegate event precedes the child's job.accepted")?;
    let child_result = frames.iter().find(|f| f["job_id"] == child_id && f["type"] == "job.result");
    ensure(child_result.is_some(), "the child runs to its own job.result in the same session")?;
    let last = frames.last().cloned().unwrap_or_default();
    ensure(
        last["type"] == "job.result" && last["payload"]["result"] == input,
        format!("the parent's result is the child's, got {last}"),
    )
}

async fn s10_delegation_needs_agent_delegate(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "delegate")?;
    require_agent(&welcome, "echo")?;
    let payload = json!({"agent": "delegate", "input": {"agent": "echo", "input": 1},
                         "lease_request": {"agent.delegate": ["count"], "tool.call": ["*"]}});
    let (_, accepted) = submit(&mut peer, payload).await?;
    let frames = all_until_terminal(&mut peer, &job_id(&accepted)?).await?;
    ensure(children(&frames).is_empty(), "a refused delegation starts no child")?;
    let ids = delegate_ids(&frames);
    let errors = tool_errors(&frames);
    ensure(
        errors.len() == 1 && Some(&errors[0].0) == ids.first() && errors[0].1["code"] == "PERMISSION_DENIED",
        format!("expected tool_result PERMISSION_DENIED for the delegate_id {ids:?}, got {errors:?}"),
    )?;
    ends_with_error(&frames, "PERMISSION_DENIED")
}

async fn s9_4_a_wider_child_lease_is_a_subset_violation(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "delegate")?;
    require_agent(&welcome, "echo")?;
    // `/data/*` does not cover `/data/**` (decision 19: the TS SDK wrongly says it does).
    for child in [json!({"fs.read": ["/data/**"]}), json!({"net.fetch": ["https://example.com/**"]})] {
        let payload = json!({"agent": "delegate",
                             "input": {"agent": "echo", "input": 1, "lease_request": child},
                             "lease_request": {"agent.delegate": ["*"], "fs.read": ["/data/*"]}});
        let (_, accepted) = submit(&mut peer, payload).await?;
        let frames = all_until_terminal(&mut peer, &job_id(&accepted)?).await?;
        ensure(children(&frames).is_empty(), format!("{child}: a violation starts no child"))?;
        let errors = tool_errors(&frames);
        ensure(
            errors.len() == 1 && errors[0].1["code"] == "LEASE_SUBSET_VIOLATION",
            format!("{child}: expected tool_result LEASE_SUBSET_VIOLATION, got {errors:?}"),
        )?;
        ends_with_error(&frames, "LEASE_SUBSET_VIOLATION")?;
    }
    Ok(())
}

async fn s9_4_a_child_budget_is_bounded_by_the_parents(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_feature(&welcome, "cost.budget")?;
    require_agent(&welcome, "delegate")?;
    require_agent(&welcome, "echo")?;
    let parent_lease = json!({"agent.delegate": ["*"], "cost.budget": ["USD:1"]});
    let wide = json!({"agent": "delegate",
                      "input": {"agent": "echo", "input": 1, "lease_request": {"cost.budget": ["USD:2"]}},
                      "lease_request": parent_lease});
    let (_, accepted) = submit(&mut peer, wide).await?;
    let frames = all_until_terminal(&mut peer, &job_id(&accepted)?).await?;
    ensure(children(&frames).is_empty(), "a budget above the parent's starts no child")?;
    ends_with_error(&frames, "LEASE_SUBSET_VIOLATION")?;
    let narrow = json!({"agent": "delegate",
                        "input": {"agent": "echo", "input": 1, "lease_request": {"cost.budget": ["USD:0.5"]}},
                        "lease_request": parent_lease});
    let (_, accepted) = submit(&mut peer, narrow).await?;
    let frames = all_until_terminal(&mut peer, &job_id(&accepted)?).await?;
    let kids = children(&frames);
    ensure(
        kids.len() == 1 && kids[0]["payload"]["budget"]["USD"].as_f64() == Some(0.5),
        format!("expected one child with budget USD 0.5, got {kids:?}"),
    )?;
    let last = frames.last().cloned().unwrap_or_default();
    ensure(last["type"] == "job.result", format!("the delegation succeeds, got {last}"))
}

async fn s9_4_a_child_inherits_the_parents_expiry(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_feature(&welcome, "lease_expires_at")?;
    require_agent(&welcome, "delegate")?;
    require_agent(&welcome, "echo")?;
    let expires_at = expires_in(600_000)?;
    let payload = json!({"agent": "delegate", "input": {"agent": "echo", "input": 1},
                         "lease_request": {"agent.delegate": ["echo"]},
                         "lease_constraints": {"expires_at": expires_at}});
    let (_, accepted) = submit(&mut peer, payload).await?;
    let frames = all_until_terminal(&mut peer, &job_id(&accepted)?).await?;
    let kids = children(&frames);
    ensure(kids.len() == 1, "one child")?;
    let child_expiry = kids[0]["payload"]["lease_constraints"]["expires_at"].as_str().unwrap_or_default();
    let same =
        arcp_core::lease::ExpiresAt::parse(child_expiry).ok() == arcp_core::lease::ExpiresAt::parse(&expires_at).ok();
    ensure(same, format!("the child's expires_at must be the parent's {expires_at}, got {}", kids[0]))
}

async fn s10_cancelling_the_parent_ends_the_child(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "delegate")?;
    require_agent(&welcome, "sleep")?;
    let payload = json!({"agent": "delegate", "input": {"agent": "sleep", "input": {}},
                         "lease_request": {"agent.delegate": ["sleep"]}});
    let (_, accepted) = submit(&mut peer, payload).await?;
    let parent = job_id(&accepted)?;
    let child = peer.recv_type("job.accepted").await?;
    let child = child["payload"]["job_id"].as_str().unwrap_or_default().to_owned();
    peer.send("job.cancel", json!({}), json!({"job_id": parent}))?;
    let mut ended = Vec::new();
    for _ in 0..1_000 {
        if ended.len() == 2 {
            break;
        }
        let v = peer.recv().await?;
        if v["type"] == "job.error" || v["type"] == "job.result" {
            ended.push((v["job_id"].as_str().unwrap_or_default().to_owned(), v["payload"]["code"].clone()));
        }
    }
    for job in [&parent, &child] {
        ensure(
            ended.iter().any(|(j, code)| j == job && code == "CANCELLED"),
            format!("job {job} must end CANCELLED, saw {ended:?}"),
        )?;
    }
    Ok(())
}

async fn s11_the_trace_id_reaches_every_envelope_of_the_job_tree(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "delegate")?;
    require_agent(&welcome, "echo")?;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let payload = json!({"agent": "delegate", "input": {"agent": "echo", "input": 1},
                         "lease_request": {"agent.delegate": ["echo"]}});
    peer.send("job.submit", payload, json!({"trace_id": trace}))?;
    let accepted = peer.recv_type("job.accepted").await?;
    let parent = job_id(&accepted)?;
    let mut frames = vec![accepted];
    frames.extend(all_until_terminal(&mut peer, &parent).await?);
    let kids = children(&frames);
    ensure(kids.len() == 2, format!("the parent's and one child's job.accepted, got {}", kids.len()))?;
    let child = job_id(kids[1])?;
    let tree = [parent.as_str(), child.as_str()];
    let mut checked = 0;
    for f in &frames {
        let Some(job) = f["job_id"].as_str().filter(|j| tree.contains(j)) else { continue };
        ensure(f["trace_id"] == trace, format!("{} of job {job} must carry trace_id {trace}: {f}", f["type"]))?;
        if f["type"] == "job.accepted" {
            ensure(f["payload"]["trace_id"] == trace, format!("job.accepted.payload.trace_id of {job}: {f}"))?;
        }
        checked += 1;
    }
    ensure(checked >= 6, format!("expected the envelopes of both jobs, checked only {checked}"))
}
