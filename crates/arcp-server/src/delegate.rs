//! Delegation (§10, decision 12): a running job starts a child job in the same session.
//!
//! [`delegate`] first emits the `delegate` event on the parent (with a minted `del_` + ULID
//! `delegate_id`), then checks, in order, stopping at the first failure:
//!
//! 1. the parent's lease has not expired and its budget is not exhausted (`LEASE_EXPIRED`,
//!    `BUDGET_EXHAUSTED`);
//! 2. `agent.delegate` holds a pattern matching the child agent (`PERMISSION_DENIED`): a
//!    pattern without `@` is matched against the bare name, one with `@` against the resolved
//!    `name@version`;
//! 3. the child agent resolves (`INVALID_REQUEST`, `AGENT_NOT_AVAILABLE`,
//!    `AGENT_VERSION_NOT_AVAILABLE`); the child lease and constraints are well-formed
//!    (`INVALID_REQUEST`);
//! 4. the child lease is a subset of the parent's: patterns, **remaining** budget, expiry,
//!    models ([`arcp_core::lease::check_subset`]; `LEASE_SUBSET_VIOLATION`);
//! 5. caps: delegation depth and the session's running jobs (`INTERNAL_ERROR`).
//!
//! A failure creates no job; it is reported on the parent as `tool_result {call_id:
//! delegate_id, error}` and returned to the parent agent (not fatal, except that using an
//! expired lease ends the parent, §9.5). On success the child gets `job.accepted` in the
//! parent's session (with `parent_job_id`, `delegate_id`, the parent's `trace_id`, the
//! effective lease, constraints and budget), runs, and its outcome is returned to the parent
//! agent. The child's costs also decrement the parent's counters (decision 20); when the
//! parent ends, a still-running child is cancelled.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arcp_core::agent::AgentRef;
use arcp_core::event::{Delegate, JobEvent};
use arcp_core::lease::{Capability, ChildBounds, ExpiresAt, Lease, check_subset};
use arcp_core::message::{JobAccepted, LeaseConstraints, LeaseMap, Message};
use arcp_core::{ErrorCode, ErrorPayload, JobId, MessageId};
use serde_json::{Value, json};

use crate::Error;
use crate::agent::Resolved;
use crate::job::{self, Job};
use crate::lease_guard::{deny, payload};
use crate::runtime::Inner;

/// A fresh `<prefix>` + ULID id (`del_`, `res_`, `call_`).
pub(crate) fn mint_id(rt: &Inner, prefix: &str) -> Result<String, Error> {
    let id = MessageId::mint(&*rt.clock, &*rt.entropy)?;
    let ulid = id.as_str().strip_prefix(MessageId::PREFIX).unwrap_or(id.as_str());
    Ok(format!("{prefix}{ulid}"))
}

/// What a delegation asks for.
pub(crate) struct Request {
    pub(crate) agent: String,
    pub(crate) input: Value,
    pub(crate) lease_request: Option<LeaseMap>,
    pub(crate) lease_constraints: Option<LeaseConstraints>,
}

/// Delegates from `parent` (see the module docs) and waits for the child's outcome: its
/// inline result, `{"result_id", "result_size"}` for a streamed result, or its error.
pub(crate) async fn delegate(rt: &Arc<Inner>, parent: &Arc<Job>, request: Request) -> Result<Value, Error> {
    let delegate_id = mint_id(rt, "del_")?;
    let event = Delegate {
        delegate_id: delegate_id.clone(),
        agent: request.agent.clone(),
        input: request.input.clone(),
        lease_request: request.lease_request.clone(),
        lease_constraints: request.lease_constraints.clone(),
    };
    parent.emit(rt, Message::JobEvent(JobEvent { ts: rt.now_timestamp(), body: event.into() })).await?;
    let (resolved, bounds) = match check(rt, parent, &request) {
        Ok(checked) => checked,
        Err(e) => return Err(deny(rt, parent, &delegate_id, e).await),
    };
    let child = match start(rt, parent, &delegate_id, resolved, bounds, request.input).await {
        Ok(child) => child,
        Err(e) => return Err(deny(rt, parent, &delegate_id, e.to_payload()).await),
    };
    wait(parent, &child).await
}

/// Checks 1–5 of the module docs.
fn check(rt: &Inner, parent: &Job, request: &Request) -> Result<(Resolved, ChildBounds), ErrorPayload> {
    let now = parent.now_millis();
    if let Some(at) = &parent.expires_at {
        at.check(now).map_err(|e| payload(&e))?;
    }
    parent.budget.lock().remaining().check().map_err(|e| payload(&e))?;

    let parsed = AgentRef::parse(&request.agent);
    let resolved = parsed.as_ref().ok().map(|r| rt.registry.resolve(r));
    let bare = parsed.as_ref().map(AgentRef::name).unwrap_or(&request.agent);
    let label = match &resolved {
        Some(Ok(r)) => r.label.as_str(),
        _ => request.agent.as_str(),
    };
    let allowed = parent
        .lease
        .globs(&Capability::AGENT_DELEGATE)
        .iter()
        .any(|g| g.matches(if g.as_str().contains('@') { label } else { bare }));
    if !allowed {
        return Err(payload(&arcp_core::Error::PermissionDenied {
            capability: Capability::AGENT_DELEGATE.to_string(),
            target: request.agent.chars().take(256).collect(),
        }));
    }

    parsed.map_err(|e| e.to_payload())?;
    let resolved = resolved.ok_or_else(|| ErrorPayload::new(ErrorCode::INVALID_REQUEST, "unparsable agent"))??;
    let child_lease =
        Lease::from_wire(&request.lease_request.clone().unwrap_or_default()).map_err(|e| e.to_payload())?;
    let child_expires = match &request.lease_constraints {
        Some(c) => ExpiresAt::from_constraints(c).map_err(|e| e.to_payload())?,
        None => None,
    };
    if let Some(at) = &child_expires {
        at.validate_future(now).map_err(|e| e.to_payload())?;
    }
    let remaining = parent.budget.lock().remaining().clone();
    let bounds =
        check_subset(&parent.lease, parent.expires_at.as_ref(), &remaining, &child_lease, child_expires.as_ref())
            .map_err(|e| payload(&e))?;

    let max_depth = rt.config.max_delegation_depth;
    if parent.depth.saturating_add(1) > max_depth {
        return Err(ErrorPayload::new(ErrorCode::INTERNAL_ERROR, format!("delegation deeper than {max_depth}"))
            .with_details(json!({ "cap": "max_delegation_depth", "limit": max_depth })));
    }
    let max_jobs = rt.config.max_concurrent_jobs;
    if parent.owner.running_jobs.load(Ordering::SeqCst) >= max_jobs {
        return Err(ErrorPayload::new(
            ErrorCode::INTERNAL_ERROR,
            format!("too many running jobs in this session (cap {max_jobs})"),
        )
        .with_details(json!({ "cap": "max_concurrent_jobs", "limit": max_jobs })));
    }
    Ok((resolved, bounds))
}

/// Creates, announces and starts the child.
async fn start(
    rt: &Arc<Inner>,
    parent: &Arc<Job>,
    delegate_id: &str,
    resolved: Resolved,
    bounds: ChildBounds,
    input: Value,
) -> Result<Arc<Job>, Error> {
    let session = parent.owner.clone();
    let child_id = JobId::mint(&*rt.clock, &*rt.entropy)?;
    let budget = bounds.budget.clone();
    let child = Job::new(
        child_id.clone(),
        session.clone(),
        parent.trace_id.clone(),
        bounds.lease.clone(),
        bounds.expires_at,
        rt.now_millis(),
    )
    .delegated(parent.clone(), delegate_id.to_owned(), budget.clone())
    .described(
        resolved.label.clone(),
        bounds
            .expires_at
            .map(|at| LeaseConstraints { expires_at: Some(at.to_string()), ..LeaseConstraints::default() }),
    );
    let child = Arc::new(child);
    rt.job_store.insert(child.record(&rt.config.node_id)).await?;
    rt.jobs.lock().insert(child_id.clone(), child.clone());
    {
        let mut children = parent.children.lock();
        children.retain(|c| c.upgrade().is_some_and(|c| !c.finished.is_cancelled()));
        children.push(Arc::downgrade(&child));
    }
    session.running_jobs.fetch_add(1, Ordering::SeqCst);
    let accepted = JobAccepted {
        job_id: child_id.clone(),
        agent: Some(resolved.label.clone()),
        lease: bounds.lease.to_wire(),
        lease_constraints: bounds
            .expires_at
            .map(|at| LeaseConstraints { expires_at: Some(at.to_string()), ..LeaseConstraints::default() }),
        budget: (!budget.is_empty()).then(|| budget.to_wire_numbers()),
        accepted_at: rt.now_timestamp(),
        parent_job_id: Some(parent.id.clone()),
        delegate_id: Some(delegate_id.to_owned()),
        trace_id: Some(parent.trace_id.clone()),
        credentials: None,
    };
    let mut env = session.envelope(rt, Message::JobAccepted(accepted))?.with_job(child_id);
    env.trace_id = Some(parent.trace_id.clone());
    session.send_direct(rt, env).await;
    tokio::spawn(job::run(rt.clone(), child.clone(), resolved.agent, input, None));
    if parent.finished.is_cancelled() {
        child.cancel_from_parent("the parent job ended").await;
    }
    Ok(child)
}

/// Waits for the child's terminal envelope (or the parent's cancellation, which cancels the
/// child) and turns it into the parent agent's answer.
async fn wait(parent: &Job, child: &Job) -> Result<Value, Error> {
    tokio::select! {
        () = child.finished.cancelled() => {}
        () = parent.cancel.cancelled() => {
            child.cancel_from_parent("the parent job was cancelled").await;
            return Err(Error::refused(ErrorCode::CANCELLED, "cancelled while a delegated job ran"));
        }
    }
    let terminal = child.state.lock().await.terminal.clone();
    match terminal {
        Some(Message::JobResult(r)) => Ok(match r.result_id {
            Some(id) => json!({ "result_id": id, "result_size": r.result_size }),
            None => r.result.unwrap_or(Value::Null),
        }),
        Some(Message::JobError(e)) => Err(Error::Refused(ErrorPayload {
            code: e.code,
            message: e.message,
            retryable: e.retryable,
            details: e.details,
        })),
        _ => Err(Error::refused(ErrorCode::INTERNAL_ERROR, "the delegated job ended without a terminal envelope")),
    }
}
