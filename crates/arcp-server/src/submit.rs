//! `job.submit` (§7.1, §7.2): validation, agent resolution, lease, idempotency (decision 5),
//! `job.accepted`, and starting the runner. Refused submits are answered with a `job.error`
//! under a freshly minted `job_id` (the session stays open).

use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arcp_core::agent::AgentRef;
use arcp_core::lease::{ExpiresAt, Lease};
use arcp_core::message::{ErrorStatus, JobAccepted, JobError, JobSubmit, Message};
use arcp_core::{ErrorCode, ErrorPayload, JobId, MessageId, TraceId};

use crate::connection::Conn;
use crate::job::{self, Job};
use crate::session::Session;
use crate::store::{Claim, IdempotencyRecord};

/// Answers a refused request with `job.error` (seq-bearing, persisted) carrying
/// `details.request_id`. `job_id` names the job the request was about, or a fresh id.
pub(crate) async fn refuse(
    conn: &Conn,
    session: &Session,
    request_id: Option<&MessageId>,
    job_id: Option<JobId>,
    error: ErrorPayload,
) {
    let rt = &conn.rt;
    rt.observer.refused(crate::observe::RefusalScope::Request, &error.code);
    let job_id = match job_id {
        Some(j) => j,
        None => match JobId::mint(&*rt.clock, &*rt.entropy) {
            Ok(j) => j,
            Err(e) => {
                conn.fatal(crate::Error::from(e).to_payload()).await;
                return;
            }
        },
    };
    let mut details = match error.details.clone() {
        Some(serde_json::Value::Object(map)) => map,
        Some(other) => serde_json::Map::from_iter([("detail".to_owned(), other)]),
        None => serde_json::Map::new(),
    };
    if let Some(id) = request_id {
        details.insert("request_id".into(), serde_json::Value::String(id.to_string()));
    }
    let error = ErrorPayload { details: Some(serde_json::Value::Object(details)), ..error };
    let message = Message::JobError(JobError::new(ErrorStatus::Error, error).completed_at(rt.now_timestamp()));
    if let Err(e) = session.emit(rt, &job_id, None, message).await {
        conn.fatal(e.to_payload()).await;
    }
}

/// The canonical digest of a submit payload: SHA-256 of its JSON encoding (struct fields in
/// declaration order, object keys sorted), so any change anywhere in it is a conflict.
fn digest(submit: &JobSubmit) -> [u8; 32] {
    crate::digest::sha256(&serde_json::to_vec(submit).unwrap_or_default())
}

pub(crate) async fn submit(
    conn: &Conn,
    session: &Arc<Session>,
    request_id: &MessageId,
    trace_id: Option<TraceId>,
    submit: JobSubmit,
) {
    // Per-principal rate limit (`limit.rs`): refused before anything is validated or bound.
    if conn.limited
        && let Err(wait) = conn.rt.limiter.check(&session.principal)
    {
        refuse(conn, session, Some(request_id), None, crate::limit::rate_limited(wait)).await;
        return;
    }
    match prepare(conn, session, trace_id, &submit).await {
        Ok(prepared) => start(conn, session, request_id, submit, prepared).await,
        Err(e) => refuse(conn, session, Some(request_id), None, e).await,
    }
}

struct Prepared {
    job_id: JobId,
    agent: crate::agent::Resolved,
    lease: Lease,
    expires_at: Option<ExpiresAt>,
    trace_id: TraceId,
    accepted: JobAccepted,
}

async fn prepare(
    conn: &Conn,
    session: &Session,
    trace_id: Option<TraceId>,
    submit: &JobSubmit,
) -> Result<Prepared, ErrorPayload> {
    let rt = &conn.rt;
    if session.running_jobs.load(Ordering::SeqCst) >= rt.config.max_concurrent_jobs {
        return Err(ErrorPayload::new(
            ErrorCode::INTERNAL_ERROR,
            format!("too many running jobs in this session (cap {})", rt.config.max_concurrent_jobs),
        )
        .with_details(serde_json::json!({ "cap": "max_concurrent_jobs", "limit": rt.config.max_concurrent_jobs })));
    }
    if submit.idempotency_key.as_deref().is_some_and(|k| k.is_empty() || k.len() > arcp_core::ids::MAX_ID_LEN) {
        return Err(ErrorPayload::new(ErrorCode::INVALID_REQUEST, "idempotency_key must be 1..=256 bytes"));
    }
    let agent_ref = AgentRef::parse(&submit.agent).map_err(|e| e.to_payload())?;
    let agent = rt.registry.resolve(&agent_ref)?;
    let lease = Lease::from_wire(&submit.lease_request.clone().unwrap_or_default()).map_err(|e| e.to_payload())?;
    let expires_at = match &submit.lease_constraints {
        Some(c) => ExpiresAt::from_constraints(c).map_err(|e| e.to_payload())?,
        None => None,
    };
    if let Some(at) = &expires_at {
        at.validate_future(rt.now_millis()).map_err(|e| e.to_payload())?;
    }
    let trace_id = match trace_id {
        Some(t) => t,
        None => TraceId::mint(&*rt.entropy).map_err(|e| e.to_payload())?,
    };
    let job_id = JobId::mint(&*rt.clock, &*rt.entropy).map_err(|e| e.to_payload())?;
    let budget = lease.budget();
    let accepted = JobAccepted {
        job_id: job_id.clone(),
        agent: Some(agent.label.clone()),
        lease: lease.to_wire(),
        lease_constraints: submit.lease_constraints.clone(),
        budget: (!budget.is_empty()).then(|| budget.to_wire_numbers()),
        accepted_at: rt.now_timestamp(),
        parent_job_id: None,
        delegate_id: None,
        trace_id: Some(trace_id.clone()),
        credentials: None,
    };
    Ok(Prepared { job_id, agent, lease, expires_at, trace_id, accepted })
}

fn accepted_envelope(conn: &Conn, session: &Session, accepted: &JobAccepted) -> Option<arcp_core::Envelope> {
    let mut env =
        session.envelope(&conn.rt, Message::JobAccepted(accepted.clone())).ok()?.with_job(accepted.job_id.clone());
    env.trace_id = accepted.trace_id.clone();
    Some(env)
}

async fn start(conn: &Conn, session: &Arc<Session>, request_id: &MessageId, submit: JobSubmit, p: Prepared) {
    let rt = &conn.rt;
    // The job is registered before the key is claimed, so a racing identical resubmit that
    // loses the claim always finds the job to attach to.
    let job = Arc::new(
        Job::new(p.job_id.clone(), session.clone(), p.trace_id, p.lease, p.expires_at, rt.now_millis())
            .described(p.agent.label.clone(), submit.lease_constraints.clone()),
    );
    // The job record (§6.6) is written first: a store without room refuses the submit
    // instead of running a job no listing would show.
    let insert = rt.job_store.insert(job.record(&rt.config.node_id));
    if let Err(e) = crate::observe::timed(&*rt.observer, crate::observe::StoreOp::JobInsert, insert).await {
        refuse(conn, session, Some(request_id), None, crate::Error::from(e).to_payload()).await;
        return;
    }
    rt.jobs.lock().insert(p.job_id.clone(), job.clone());
    if let Some(key) = &submit.idempotency_key {
        let ttl = u64::try_from(rt.config.idempotency_ttl.as_millis()).unwrap_or(u64::MAX);
        let record = IdempotencyRecord {
            digest: digest(&submit),
            job_id: p.job_id.clone(),
            accepted: p.accepted.clone(),
            expires_at_millis: rt.now_millis().saturating_add(ttl),
        };
        let digest = record.digest;
        let claim = rt.idempotency.claim(&session.principal, key, record, rt.now_millis());
        let claim = crate::observe::timed(&*rt.observer, crate::observe::StoreOp::IdempotencyClaim, claim).await;
        if !matches!(claim, Ok(Claim::Claimed)) {
            rt.jobs.lock().remove(&p.job_id);
            if let Err(e) = rt.job_store.remove(&p.job_id).await {
                tracing::warn!(job = %p.job_id, error = %e, "could not remove the record of an unstarted job");
            }
        }
        match claim {
            Ok(Claim::Claimed) => {}
            Ok(Claim::Existing(existing)) => {
                if crate::digest::digest_eq(&existing.digest, &digest) {
                    rt.observer.idempotent_replay();
                    replay_existing(conn, session, &existing.accepted).await;
                } else {
                    let e = ErrorPayload::new(
                        ErrorCode::DUPLICATE_KEY,
                        format!("idempotency_key {key:?} reused with conflicting params"),
                    )
                    .with_details(serde_json::json!({ "existing_job_id": existing.job_id }));
                    refuse(conn, session, Some(request_id), Some(existing.job_id), e).await;
                }
                return;
            }
            Err(e) => {
                refuse(conn, session, Some(request_id), None, crate::Error::from(e).to_payload()).await;
                return;
            }
        }
    }
    session.running_jobs.fetch_add(1, Ordering::SeqCst);
    if let Some(env) = accepted_envelope(conn, session, &p.accepted) {
        session.send_direct(rt, env).await;
    }
    rt.lifecycle.accepted(&job, &p.accepted, rt.now_millis());
    let max_runtime = submit.max_runtime_sec.map(NonZeroU64::get);
    tokio::spawn(job::run(rt.clone(), job, p.agent.agent, submit.input, max_runtime));
}

/// An identical resubmit: the same `job.accepted`, then the live stream (job running) or the
/// terminal envelope (job finished). The agent never runs again.
async fn replay_existing(conn: &Conn, session: &Arc<Session>, accepted: &JobAccepted) {
    let rt = &conn.rt;
    if let Some(env) = accepted_envelope(conn, session, accepted) {
        session.send_direct(rt, env).await;
    }
    let Some(job) = rt.job(&accepted.job_id) else {
        replay_from_store(conn, session, &accepted.job_id).await;
        return;
    };
    let mut st = job.state.lock().await;
    match &st.terminal {
        Some(terminal) => {
            let terminal = terminal.clone();
            if let Err(e) = session.emit(rt, &job.id, Some(&job.trace_id), terminal).await {
                tracing::warn!(job = %job.id, error = %e, "could not replay the terminal envelope");
            }
        }
        // The owner already receives every live event of its job.
        None if job.owner.id == session.id => {}
        None => {
            if !st.observers.iter().any(|o| o.id == session.id) {
                st.observers.push(session.clone());
            }
        }
    }
}

/// An identical resubmit of a job this runtime does not hold (it ran before a restart, or on
/// another node sharing the store): a finished job's terminal envelope is read from its
/// session's log and sent again to the resubmitting session (decision 5, the submitting
/// session included). A job still running elsewhere is left to `job.subscribe`.
async fn replay_from_store(conn: &Conn, session: &Arc<Session>, job_id: &JobId) {
    let rt = &conn.rt;
    let record = match rt.job_store.get(job_id).await {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(job = %job_id, error = %e, "could not read the job record of a resubmit");
            return;
        }
    };
    if !record.status.is_terminal() {
        return;
    }
    match crate::recovery::terminal_of(rt, &record).await {
        Ok(Some((_, terminal))) => {
            if let Err(e) = session.emit(rt, job_id, record.trace_id.as_ref(), terminal).await {
                tracing::warn!(job = %job_id, error = %e, "could not replay the terminal envelope");
            }
        }
        Ok(None) => tracing::warn!(job = %job_id, "the terminal envelope of a finished job is no longer logged"),
        Err(e) => tracing::warn!(job = %job_id, error = %e, "could not read the terminal envelope"),
    }
}
