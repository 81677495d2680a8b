//! Runtime configuration, with the defaults of the brief (TS SDK values where they exist).

use std::time::Duration;

use arcp_core::message::RuntimeInfo;
use arcp_core::negotiate::Feature;

/// How the runtime behaves. Every limit is enforced and configurable.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// What `session.welcome.runtime` says.
    pub runtime: RuntimeInfo,
    /// How long a detached session stays resumable (`resume_window_sec`). Default 600 s.
    pub resume_window: Duration,
    /// How long a cancelled agent may take to stop before it is dropped. Default 30 s.
    pub cancel_grace: Duration,
    /// How long an idempotency key stays bound. Default 24 h.
    pub idempotency_ttl: Duration,
    /// The largest inbound frame accepted. Default 16 MiB.
    pub max_frame_bytes: usize,
    /// Frames queued per connection before senders wait. Default 1024.
    pub outbound_queue: usize,
    /// How long a sender waits for room in a connection's queue before the connection is
    /// dropped (the session stays resumable; nothing is lost). Default 10 s.
    pub send_timeout: Duration,
    /// Running jobs per session. Default 100.
    pub max_concurrent_jobs: usize,
    /// Features the runtime advertises (only ones it implements).
    pub features: Vec<Feature>,
    /// Events read per batch during a replay. Default 1000.
    pub replay_batch: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            runtime: RuntimeInfo {
                name: "arcp-rs".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                fingerprint: None,
            },
            resume_window: Duration::from_secs(600),
            cancel_grace: Duration::from_secs(30),
            idempotency_ttl: Duration::from_secs(24 * 3600),
            max_frame_bytes: arcp_core::decode::DEFAULT_MAX_FRAME_BYTES,
            outbound_queue: 1024,
            send_timeout: Duration::from_secs(10),
            max_concurrent_jobs: 100,
            features: vec![Feature::AGENT_VERSIONS, Feature::PROGRESS, Feature::LEASE_EXPIRES_AT],
            replay_batch: 1000,
        }
    }
}
