//! Hooks for the host: a [`ChannelObserver`] told how turns end and which errors were
//! answered (for metrics), and a [`RequestLimiter`] that admits each request of an owner (for
//! rate limits). Both are optional; this crate depends on no metrics or rate-limit library.

use std::sync::Arc;
use std::time::Duration;

/// How a turn ended, as [`ChannelObserver::turn_ended`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TurnEnd {
    /// The runner returned an outcome: `finished`, `parked`, `contended` or `aborted`
    /// ([`TurnOutcome::status`](channel_core::TurnOutcome::status)).
    Outcome(&'static str),
    /// Nothing ran: a refusal (`unknown-session`, `missing-token`, `stale-token`,
    /// `in-flight`) or an invalid body.
    Refused,
    /// The turn failed (the runner, the store or the entropy source failed).
    Failed,
}

impl TurnEnd {
    /// `finished`, `parked`, `contended`, `aborted`, `refused` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            TurnEnd::Outcome(status) => status,
            TurnEnd::Refused => "refused",
            TurnEnd::Failed => "failed",
        }
    }

    /// How a turn call that returned `result` ended.
    pub(crate) fn of<T>(result: &Result<T, channel_core::Error>, status: impl FnOnce(&T) -> &'static str) -> Self {
        match result {
            Ok(reply) => TurnEnd::Outcome(status(reply)),
            Err(e) => Self::of_error(e),
        }
    }

    /// How a turn call that failed with `e` ended.
    pub(crate) fn of_error(e: &channel_core::Error) -> Self {
        match e {
            channel_core::Error::Refused(_) | channel_core::Error::InvalidBody(_) => TurnEnd::Refused,
            _ => TurnEnd::Failed,
        }
    }
}

/// Told what the channel did. Methods default to doing nothing; they are called on request
/// paths and must not block.
pub trait ChannelObserver: Send + Sync + 'static {
    /// A start or continue (over HTTP, SSE or WebSocket) ended as `end`.
    fn turn_ended(&self, end: TurnEnd) {
        let _ = end;
    }

    /// An error was answered with the stable `reason` (the `reason` of an HTTP error body, of
    /// an in-band SSE `error` event, or of a WebSocket `error` frame): `unauthorized`,
    /// `stale-token`, `rate-limited`, `turn-failed`, ….
    fn error_answered(&self, reason: &str) {
        let _ = reason;
    }
}

/// Observes nothing (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoChannelObserver;

impl ChannelObserver for NoChannelObserver {}

/// Admits or refuses each request of an authenticated owner (every HTTP request to the
/// channel's routes, and every WebSocket frame that advances a session).
pub trait RequestLimiter: Send + Sync + 'static {
    /// `Ok(())` admits one request of `owner`; `Err(wait)` refuses it (`429 rate-limited`
    /// with `Retry-After`, or an in-band `rate-limited` error frame): the earliest a retry
    /// can be admitted is after `wait`. Must not block.
    fn check(&self, owner: &str) -> Result<(), Duration>;
}

/// The hooks a service and its WebSocket connections call.
#[derive(Clone)]
pub(crate) struct Hooks {
    pub(crate) observer: Arc<dyn ChannelObserver>,
    pub(crate) limiter: Option<Arc<dyn RequestLimiter>>,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks { observer: Arc::new(NoChannelObserver), limiter: None }
    }
}

impl Hooks {
    /// Admits one request of `owner`, or says after how many whole seconds to retry.
    pub(crate) fn admit(&self, owner: &str) -> Result<(), u64> {
        match &self.limiter {
            Some(limiter) => limiter.check(owner).map_err(retry_after_secs),
            None => Ok(()),
        }
    }
}

/// `wait` in whole seconds for `Retry-After`: rounded up, at least 1.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn turn_ends() {
        let ok: Result<u8, channel_core::Error> = Ok(1);
        assert_eq!(TurnEnd::of(&ok, |_| "finished").as_str(), "finished");
        let refused: Result<u8, _> = Err(channel_core::Error::Refused(channel_core::Refusal::StaleToken));
        assert_eq!(TurnEnd::of(&refused, |_| "finished"), TurnEnd::Refused);
        let failed: Result<u8, _> = Err(channel_core::Error::Runner(channel_core::RunnerError::new("x")));
        assert_eq!(TurnEnd::of(&failed, |_| "finished").as_str(), "failed");
    }
}
