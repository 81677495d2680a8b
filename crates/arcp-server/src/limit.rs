//! Per-principal admission of `job.submit`: the [`SubmitLimiter`] hook. The runtime crate
//! implements it with token buckets; this crate only asks it, so it depends on no rate-limit
//! library.
//!
//! A submit the limiter refuses is answered with a request error (decision 21, the session
//! stays open): `job.error` `INTERNAL_ERROR` (`retryable: true`, pinned by decision 10), under
//! a fresh `job_id`, with `details` `{cap: "rate_limit", reason: "rate_limited",
//! retry_after_ms, request_id}` (spec §14.1). The agent does not run and no idempotency key
//! is bound, so the client retries the same submit (same key) after `retry_after_ms`.

use std::time::Duration;

use arcp_core::{ErrorCode, ErrorPayload};

/// Decides whether one more `job.submit` of a principal is admitted now.
pub trait SubmitLimiter: Send + Sync + 'static {
    /// `Ok(())` admits one submit of `principal` (and takes its share of the budget);
    /// `Err(wait)` refuses it: the earliest a retry can be admitted is after `wait`. Called
    /// on the connection's task: it must not block.
    fn check(&self, principal: &str) -> Result<(), Duration>;
}

/// The default [`SubmitLimiter`]: admits everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unlimited;

impl SubmitLimiter for Unlimited {
    fn check(&self, _principal: &str) -> Result<(), Duration> {
        Ok(())
    }
}

/// The refusal of a submit over the limit (see the module docs). `retry_after_ms` is rounded
/// up, and at least 1.
pub(crate) fn rate_limited(wait: Duration) -> ErrorPayload {
    let ms = u64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX).max(1);
    ErrorPayload::new(ErrorCode::INTERNAL_ERROR, format!("rate limit exceeded for this principal; retry in {ms} ms"))
        .with_details(serde_json::json!({ "cap": "rate_limit", "reason": "rate_limited", "retry_after_ms": ms }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_retryable_and_carries_the_hint() {
        let e = rate_limited(Duration::from_micros(1500));
        assert_eq!(e.code, ErrorCode::INTERNAL_ERROR);
        assert!(e.retryable);
        let details = e.details.unwrap();
        assert_eq!(details["reason"], "rate_limited");
        assert_eq!(details["cap"], "rate_limit");
        assert_eq!(details["retry_after_ms"], 2);
        assert_eq!(rate_limited(Duration::ZERO).details.unwrap()["retry_after_ms"], 1);
        assert!(Unlimited.check("anyone").is_ok());
    }
}
