//! Lease enforcement at run time (§9.3, §9.5, §9.6): the per-job check every
//! authority-bearing operation of a [`crate::JobContext`] goes through, the monotonic clock it
//! uses, and how a failure is reported.
//!
//! Order of the check (arcp-core's [`arcp_core::lease::Lease::check_operation`]): expiry
//! (`LEASE_EXPIRED`), then budget (`BUDGET_EXHAUSTED`), then the capability's patterns
//! against the canonical target (`PERMISSION_DENIED`).
//!
//! A failure is routine: the context reports it to the stream as a `tool_result` error for the
//! operation's `call_id` and returns it to the agent. The one exception is expiry (§9.5: the
//! runtime MUST end a job whose expired lease is used): the job is then ended with
//! `job.error LEASE_EXPIRED` and its agent stopped (fail closed). Expiry is evaluated on a
//! monotonic clock anchored at acceptance (`Job::now_millis`), so a wall-clock step does not
//! move it, and the runner ends the job proactively at `expires_at` plus
//! [`crate::RuntimeConfig::lease_expiry_grace`].

use std::time::Duration;

use arcp_core::event::{JobEvent, ToolResult};
use arcp_core::lease::{Capability, canonicalize_target};
use arcp_core::message::Message;
use arcp_core::{ErrorCode, ErrorPayload};
use serde_json::json;

use crate::job::Job;
use crate::runtime::Inner;

/// The wire error for a failed lease check, with the `details` keys of §12.1 (`capability`,
/// `target`, `currency`, `expires_at`).
pub(crate) fn payload(e: &arcp_core::Error) -> ErrorPayload {
    let details = match e {
        arcp_core::Error::PermissionDenied { capability, target } => {
            Some(json!({ "capability": capability, "target": target }))
        }
        arcp_core::Error::LeaseExpired { expires_at } => Some(json!({ "expires_at": expires_at })),
        arcp_core::Error::BudgetExhausted { currency } => Some(json!({ "currency": currency })),
        arcp_core::Error::LeaseSubsetViolation { capability, .. } => Some(json!({ "capability": capability })),
        _ => None,
    };
    let payload = e.to_payload();
    match details {
        Some(d) => payload.with_details(d),
        None => payload,
    }
}

impl Job {
    /// Now, in Unix milliseconds, on the job's monotonic clock: the runtime clock's reading at
    /// acceptance plus the monotonic time elapsed since.
    pub(crate) fn now_millis(&self) -> u64 {
        let elapsed = u64::try_from(self.anchor.0.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.anchor.1.saturating_add(elapsed)
    }

    /// When (monotonic) the lease expires, if it does.
    pub(crate) fn expiry_instant(&self) -> Option<tokio::time::Instant> {
        let at = self.expires_at.as_ref()?.unix_millis();
        Some(self.anchor.0 + Duration::from_millis(at.saturating_sub(self.anchor.1)))
    }

    /// The §9.3 check of one operation: expiry, budget, then pattern. Returns the canonical
    /// target to operate on.
    pub(crate) fn check_lease(&self, capability: &Capability, target: &str) -> Result<String, arcp_core::Error> {
        {
            let budget = self.budget.lock();
            self.lease.check_operation(
                capability,
                target,
                self.expires_at.as_ref(),
                Some(budget.remaining()),
                self.now_millis(),
            )?;
        }
        canonicalize_target(capability.target_kind(), target)
    }

    /// Ends the job with `error` as soon as the runner sees it (the first call wins); the agent
    /// is stopped.
    pub(crate) fn end_with(&self, error: ErrorPayload) {
        {
            let mut fatal = self.fatal.lock();
            if fatal.is_none() {
                *fatal = Some(error);
            }
        }
        self.fatal_signal.cancel();
    }

    /// The error `end_with` recorded (`INTERNAL_ERROR` if none, which cannot happen).
    pub(crate) fn fatal_error(&self) -> ErrorPayload {
        self.fatal.lock().clone().unwrap_or_else(|| ErrorPayload::new(ErrorCode::INTERNAL_ERROR, "job ended"))
    }

    /// The `job.error` of a lease that expired while the job was still running.
    pub(crate) fn expired_error(&self) -> ErrorPayload {
        let at = self.expires_at.map(|e| e.to_string()).unwrap_or_default();
        payload(&arcp_core::Error::LeaseExpired { expires_at: at })
    }
}

/// Reports a failed check of the operation `call_id` of `job`: a `tool_result` error on the
/// job's stream, and — for `LEASE_EXPIRED` — the end of the job (§9.5). Returns the error for
/// the agent.
pub(crate) async fn deny(rt: &Inner, job: &Job, call_id: &str, error: ErrorPayload) -> crate::Error {
    let result = ToolResult { call_id: call_id.to_owned(), result: None, error: Some(error.clone()) };
    let event = JobEvent { ts: rt.now_timestamp(), body: result.into() };
    if let Err(e) = job.emit(rt, Message::JobEvent(event)).await {
        tracing::debug!(job = %job.id, error = %e, "the refusal was not reported (the job has ended)");
    }
    if error.code == ErrorCode::LEASE_EXPIRED {
        tracing::info!(job = %job.id, "an expired lease was used; ending the job");
        job.end_with(error.clone());
    }
    crate::Error::Refused(error)
}
