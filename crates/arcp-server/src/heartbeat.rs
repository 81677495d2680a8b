//! Heartbeats (§6.4, feature `heartbeat`), per connection.
//!
//! When the session negotiated `heartbeat`, the connection's reader loop also waits on
//! [`Watch::due`]: after one interval without sending anything the runtime sends
//! `session.ping`, and after two intervals without receiving anything it sends
//! `session.error HEARTBEAT_LOST` (best effort) and closes. That is a disconnect like any
//! other: the session is detached, stays resumable, and no job is cancelled (decision 15).
//!
//! The interval is `RuntimeConfig::heartbeat_interval`; a client may ask for a shorter one
//! (never below `min_heartbeat_interval`) with the vendor capability
//! [`INTERVAL_CAPABILITY`] in its hello (*arcp-rs choice*, used by the conformance suite to
//! observe heartbeat loss quickly). Time is `tokio::time`, so tests run on a paused clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arcp_core::negotiate::Capabilities;
use tokio::time::Instant;

use crate::config::RuntimeConfig;

/// The vendor capability a client may set (a whole number of seconds) to ask for a shorter
/// heartbeat interval; the welcome echoes the effective value under the same key.
pub(crate) const INTERVAL_CAPABILITY: &str = "x-vendor.arcp-rs.heartbeat_interval_sec";

/// The session's heartbeat interval once `heartbeat` is negotiated: the configured one, or
/// the client's shorter request clamped to the configured minimum. Whole seconds, at least 1.
pub(crate) fn interval(config: &RuntimeConfig, client: Option<&Capabilities>) -> Duration {
    let max = config.heartbeat_interval.as_secs().max(1);
    let min = config.min_heartbeat_interval.as_secs().clamp(1, max);
    let asked = client.and_then(|c| c.other.get(INTERVAL_CAPABILITY)).and_then(serde_json::Value::as_u64);
    Duration::from_secs(asked.map_or(max, |a| a.clamp(min, max)))
}

/// When the connection last sent a frame; shared by the writer task (which records every
/// frame it writes) and the reader loop (which schedules pings from it).
#[derive(Debug)]
pub(crate) struct Activity {
    base: Instant,
    /// Milliseconds after `base`.
    last_out: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Activity { base: Instant::now(), last_out: AtomicU64::new(0) })
    }

    /// Records that something was sent now.
    pub(crate) fn sent(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_out.fetch_max(ms, Ordering::SeqCst);
    }

    fn last_out(&self) -> Instant {
        self.base + Duration::from_millis(self.last_out.load(Ordering::SeqCst))
    }
}

/// What the heartbeat timer asks the connection to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Beat {
    /// Nothing was sent for an interval: send `session.ping`.
    Ping,
    /// Nothing was received for two intervals: `HEARTBEAT_LOST`, close.
    Lost,
}

/// One connection's heartbeat schedule.
#[derive(Debug)]
pub(crate) struct Watch {
    interval: Duration,
    last_in: Instant,
    activity: Arc<Activity>,
}

impl Watch {
    /// Starts watching now (the welcome was just sent and the hello just received).
    pub(crate) fn new(interval: Duration, activity: Arc<Activity>) -> Self {
        activity.sent();
        Watch { interval, last_in: Instant::now(), activity }
    }

    /// Records that a frame arrived.
    pub(crate) fn received(&mut self) {
        self.last_in = Instant::now();
    }

    /// Records that a ping was queued (so the next one waits a full interval even if the
    /// writer is slow to send it).
    pub(crate) fn pinged(&self) {
        self.activity.sent();
    }

    /// Resolves when the next beat is due. The writer may send frames while this waits, so
    /// a ping deadline is re-checked against the latest activity before it counts.
    pub(crate) async fn due(&self) -> Beat {
        let lost_at = self.last_in + self.interval * 2;
        loop {
            let ping_at = self.activity.last_out() + self.interval;
            if lost_at <= ping_at {
                tokio::time::sleep_until(lost_at).await;
                return Beat::Lost;
            }
            tokio::time::sleep_until(ping_at).await;
            if self.activity.last_out() + self.interval <= Instant::now() {
                return Beat::Ping;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_may_only_shorten_the_interval() {
        let config = RuntimeConfig::default();
        let caps = |v: serde_json::Value| Capabilities {
            other: [(INTERVAL_CAPABILITY.to_owned(), v)].into_iter().collect(),
            ..Capabilities::default()
        };
        assert_eq!(interval(&config, None), Duration::from_secs(30));
        assert_eq!(interval(&config, Some(&caps(serde_json::json!(5)))), Duration::from_secs(5));
        assert_eq!(interval(&config, Some(&caps(serde_json::json!(0)))), Duration::from_secs(1));
        assert_eq!(interval(&config, Some(&caps(serde_json::json!(999)))), Duration::from_secs(30));
        assert_eq!(interval(&config, Some(&caps(serde_json::json!("2")))), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn pings_when_idle_and_is_lost_after_two_silent_intervals() {
        let activity = Activity::new();
        let mut watch = Watch::new(Duration::from_secs(10), activity.clone());
        let start = Instant::now();
        assert_eq!(watch.due().await, Beat::Ping);
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        watch.pinged();
        assert_eq!(watch.due().await, Beat::Lost);
        assert_eq!(start.elapsed(), Duration::from_secs(20));
        watch.received();
        activity.sent();
        assert_eq!(watch.due().await, Beat::Ping);
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }
}
