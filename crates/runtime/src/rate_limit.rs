//! Per-principal rate limits of `arcp serve` (`--rate-limit-per-sec`, `--rate-limit-burst`): one
//! token bucket per principal (GCRA, `governor`), shared by the principal's ARCP submits and
//! channel requests.
//!
//! - An ARCP `job.submit` over the limit is refused with a request error (the session stays
//!   open): `job.error` `INTERNAL_ERROR`, `retryable: true`, `details: {cap: "rate_limit",
//!   reason: "rate_limited", retry_after_ms, request_id}` (`arcp_server::SubmitLimiter`).
//! - A channel request over the limit is `429 rate-limited` with `Retry-After: <seconds>`; a
//!   WebSocket frame over it gets an `error` frame with `reason: "rate-limited"` and
//!   `retryAfter` (`channel_rest::RequestLimiter`).
//!
//! A channel turn costs one token: the ARCP job it runs is submitted over an in-process
//! connection that bypasses the limiter (`Runtime::spawn_unlimited`), since the HTTP request
//! (or WebSocket frame) was already admitted. Buckets of principals idle for longer than a
//! full refill are dropped periodically, so memory follows the active principals.

use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::metrics::{Metrics, Surface};

/// How often buckets of idle principals are dropped.
const HOUSEKEEPING: Duration = Duration::from_secs(60);

/// The per-principal limiter (see the module docs).
pub(crate) struct PrincipalLimiter {
    buckets: DefaultKeyedRateLimiter<String>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for PrincipalLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrincipalLimiter").field("principals", &self.buckets.len()).finish_non_exhaustive()
    }
}

/// The bucket of `--rate-limit-per-sec RATE` and `--rate-limit-burst BURST`: `None` when
/// `rate` is 0 (no limit). `burst` 0 means one second's worth of requests (at least 1).
pub(crate) fn quota(rate: f64, burst: u32) -> Result<Option<Quota>, String> {
    if rate == 0.0 {
        return Ok(None);
    }
    if !rate.is_finite() || rate < 0.0 {
        return Err(format!("--rate-limit-per-sec must be a finite number ≥ 0 (0: no limit), not {rate}"));
    }
    let period = Duration::try_from_secs_f64(1.0 / rate)
        .ok()
        .filter(|p| !p.is_zero())
        .ok_or_else(|| format!("--rate-limit-per-sec {rate} is out of range"))?;
    let burst = match NonZeroU32::new(burst) {
        Some(b) => b,
        // One second's worth, rounded up: at most u32::MAX (the float-to-int cast saturates).
        None => NonZeroU32::new(rate.ceil() as u32).unwrap_or(NonZeroU32::MIN),
    };
    let quota = Quota::with_period(period).ok_or_else(|| format!("--rate-limit-per-sec {rate} is out of range"))?;
    Ok(Some(quota.allow_burst(burst)))
}

impl PrincipalLimiter {
    /// A limiter with one `quota` bucket per principal, counting its refusals in `metrics`.
    pub(crate) fn new(quota: Quota, metrics: Arc<Metrics>) -> Self {
        PrincipalLimiter { buckets: RateLimiter::keyed(quota), metrics }
    }

    /// Starts dropping the buckets of idle principals every minute, until the limiter is
    /// dropped. Call from inside a tokio runtime.
    pub(crate) fn start_housekeeping(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HOUSEKEEPING);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limiter) = weak.upgrade() else { break };
                limiter.buckets.retain_recent();
                limiter.buckets.shrink_to_fit();
            }
        });
    }

    /// Takes one token of `principal`'s bucket, or says how long until one is available.
    fn admit(&self, principal: &str, surface: Surface) -> Result<(), Duration> {
        match self.buckets.check_key(&principal.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                self.metrics.rate_limited(surface);
                Err(not_until.wait_time_from(self.buckets.clock().now()))
            }
        }
    }
}

impl arcp_server::SubmitLimiter for PrincipalLimiter {
    fn check(&self, principal: &str) -> Result<(), Duration> {
        self.admit(principal, Surface::Arcp)
    }
}

impl channel_rest::RequestLimiter for PrincipalLimiter {
    fn check(&self, owner: &str) -> Result<(), Duration> {
        self.admit(owner, Surface::Channel)
    }
}

#[cfg(test)]
mod tests {
    use arcp_server::SubmitLimiter;
    use channel_rest::RequestLimiter;

    use super::*;

    #[test]
    fn flags_make_a_quota() {
        assert_eq!(quota(0.0, 5), Ok(None));
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e-300] {
            assert!(quota(bad, 1).is_err(), "{bad}");
        }
        let q = quota(10.0, 0).unwrap().unwrap();
        assert_eq!(q.burst_size().get(), 10);
        assert_eq!(q.replenish_interval(), Duration::from_millis(100));
        assert_eq!(quota(0.5, 0).unwrap().unwrap().burst_size().get(), 1);
        assert_eq!(quota(2.0, 7).unwrap().unwrap().burst_size().get(), 7);
    }

    #[test]
    fn buckets_are_per_principal_and_shared_by_both_surfaces() {
        let metrics = Arc::new(Metrics::new());
        // One token per 1000 s: nothing refills during the test.
        let limiter = PrincipalLimiter::new(quota(0.001, 2).unwrap().unwrap(), metrics.clone());
        assert!(SubmitLimiter::check(&limiter, "alice").is_ok());
        assert!(RequestLimiter::check(&limiter, "alice").is_ok());
        let wait = SubmitLimiter::check(&limiter, "alice").unwrap_err();
        assert!(wait > Duration::from_secs(900) && wait <= Duration::from_secs(1000), "{wait:?}");
        assert!(RequestLimiter::check(&limiter, "alice").is_err());
        assert!(SubmitLimiter::check(&limiter, "bob").is_ok());
        let text = metrics.encode().unwrap();
        assert!(text.contains("arcp_rate_limited_total{surface=\"arcp\"} 1\n"), "{text}");
        assert!(text.contains("arcp_rate_limited_total{surface=\"channel\"} 1\n"), "{text}");
    }
}
