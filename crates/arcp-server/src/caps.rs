//! Resource caps that end or refuse a session (§14): the per-principal session cap checked
//! at `session.hello`, and the termination of a session whose event buffer overflowed.
//!
//! The other caps live where they are enforced: buffered events and bytes in the
//! [`EventLog`](crate::store::EventLog) (the in-memory one is built from `RuntimeConfig`),
//! concurrent jobs per session in `submit.rs`. Every cap is reported with a typed error, never
//! a silent drop: runtime resource caps are `INTERNAL_ERROR` (pinned `retryable: true`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arcp_core::message::Message;
use arcp_core::{ErrorCode, ErrorPayload, EventSeq};

use crate::Error;
use crate::runtime::Inner;
use crate::session::{Link, Outbound, Session};

/// Registers a new session unless its principal already has `max_sessions_per_principal`
/// open (attached, not terminated) sessions. Check and insert happen under one lock, so
/// racing hellos cannot overshoot the cap.
pub(crate) fn admit_session(rt: &Inner, session: &Arc<Session>) -> Result<(), Error> {
    let limit = rt.config.max_sessions_per_principal;
    let mut sessions = rt.sessions.lock();
    let open = sessions
        .values()
        .filter(|s| {
            s.principal == session.principal
                && s.detached_at.load(Ordering::SeqCst) == 0
                && !s.terminated.load(Ordering::SeqCst)
        })
        .count();
    if open >= limit {
        return Err(Error::Refused(
            ErrorPayload::new(
                ErrorCode::INTERNAL_ERROR,
                format!("too many open sessions for this principal (cap {limit})"),
            )
            .with_details(serde_json::json!({ "cap": "max_sessions_per_principal", "limit": limit })),
        ));
    }
    sessions.insert(session.id.clone(), session.clone());
    Ok(())
}

/// A buffer cap was hit while appending `failed` (after acknowledged events were freed):
/// tells the client with `session.error INTERNAL_ERROR`, closes the transport, and ends the
/// session for good — it can no longer be resumed, its buffered events and resume record are
/// dropped, and the jobs it owns are cancelled (§14: the one case where a session's end
/// cancels its jobs, so that buffering stays bounded). Called under the session's emit lock
/// (`link` is the attached link it guards).
pub(crate) async fn terminate_locked(
    session: &Session,
    rt: &Inner,
    link: &mut Option<Link>,
    reason: &str,
    failed: EventSeq,
) {
    session.terminated.store(true, Ordering::SeqCst);
    tracing::warn!(session = %session.id, %reason, "buffer cap exceeded; terminating the session");
    // The session stops being resumable before the client hears about it: a client that
    // resumes at once must find no record (a durable store answers after a round trip).
    rt.sessions.lock().remove(&session.id);
    if let Err(e) = rt.resumes.remove(&session.id).await {
        tracing::warn!(session = %session.id, error = %e, "could not remove the resume record");
    }
    if let Some(link) = link.take() {
        let error = ErrorPayload::new(
            ErrorCode::INTERNAL_ERROR,
            format!("session buffer cap exceeded ({reason}); the session is terminated"),
        )
        .with_details(serde_json::json!({
            "cap": "session_buffer",
            "session_id": session.id.as_str(),
            "failed_event_seq": failed.get(),
        }));
        if let Ok(env) = session.envelope(rt, Message::SessionError(error)) {
            let _ = link.push(Arc::from(env.to_json()), rt.config.send_timeout).await;
        }
        let _ = link.tx.try_send(Outbound::Close);
    }
    session.mark_detached(rt);
    if let Err(e) = rt.events.purge(&session.id, None).await {
        tracing::warn!(session = %session.id, error = %e, "could not purge the event log");
    }
    let owned: Vec<_> = rt.jobs.lock().values().filter(|j| j.owner.id == session.id).cloned().collect();
    for job in owned {
        job.cancel.cancel();
    }
}
