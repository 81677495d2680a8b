//! Graceful shutdown (§6.7, issue 8): every attached session is told `session.bye {reason:
//! "shutdown"}` and its transport closed (the session stays resumable, exactly as after a
//! drop), new sessions are refused, and running jobs get until a deadline to finish. Their
//! events keep being persisted meanwhile; a job still running at the deadline is left to the
//! next start's [`Runtime::recover`](crate::Runtime::recover) (a durable store keeps
//! everything it wrote).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arcp_core::message::{Message, SessionBye};

use crate::runtime::Inner;
use crate::session::Session;

/// What [`Runtime::shutdown`](crate::Runtime::shutdown) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Sessions told `session.bye`.
    pub sessions_closed: usize,
    /// Jobs still running at the deadline (the next start ends them).
    pub jobs_left_running: usize,
}

/// How often the job count is checked while waiting.
const POLL: Duration = Duration::from_millis(20);

pub(crate) async fn shutdown(rt: &Arc<Inner>, deadline: Duration) -> ShutdownReport {
    rt.stopping.store(true, Ordering::SeqCst);
    let sessions: Vec<Arc<Session>> = rt.sessions.lock().values().cloned().collect();
    let mut sessions_closed = 0;
    for session in sessions {
        let bye = session.envelope(rt, Message::SessionBye(SessionBye { reason: Some("shutdown".into()) }));
        match bye {
            Ok(bye) => {
                if session.close_link(rt, bye).await {
                    sessions_closed += 1;
                    crate::connection::refresh_resume_expiry(rt, &session).await;
                }
            }
            Err(e) => tracing::warn!(session = %session.id, error = %e, "could not build session.bye"),
        }
    }
    let until = tokio::time::Instant::now() + deadline;
    let mut running = running_jobs(rt).await;
    while running > 0 && tokio::time::Instant::now() < until {
        tokio::time::sleep(POLL.min(until.saturating_duration_since(tokio::time::Instant::now()))).await;
        running = running_jobs(rt).await;
    }
    if running > 0 {
        tracing::warn!(running, "jobs still running at the shutdown deadline: the next start ends them");
    }
    ShutdownReport { sessions_closed, jobs_left_running: running }
}

async fn running_jobs(rt: &Inner) -> usize {
    let jobs: Vec<_> = rt.jobs.lock().values().cloned().collect();
    let mut n = 0;
    for job in jobs {
        if !job.state.lock().await.status.is_terminal() {
            n += 1;
        }
    }
    n
}

/// New sessions and resumes are refused once shutdown began: `INTERNAL_ERROR`, retryable
/// (another node, or this one after its restart, will take them).
pub(crate) fn refuse_if_stopping(rt: &Inner) -> Result<(), crate::Error> {
    if rt.stopping.load(Ordering::SeqCst) {
        return Err(crate::Error::Refused(
            arcp_core::ErrorPayload::new(arcp_core::ErrorCode::INTERNAL_ERROR, "the runtime is shutting down")
                .with_details(serde_json::json!({ "reason": "shutting_down" })),
        ));
    }
    Ok(())
}
