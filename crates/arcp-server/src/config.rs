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
    /// `heartbeat_interval_sec` of sessions that negotiate `heartbeat` (§6.4): the runtime
    /// pings after this long without sending anything, and drops the connection with
    /// `HEARTBEAT_LOST` after two of them without receiving anything. Default 30 s.
    pub heartbeat_interval: Duration,
    /// The shortest interval a client may ask for with the vendor capability
    /// `x-vendor.arcp-rs.heartbeat_interval_sec` (a client may only shorten the interval).
    /// Default 1 s.
    pub min_heartbeat_interval: Duration,
    /// `latest event_seq − last acknowledged seq` above which a session that negotiated `ack`
    /// gets one `status {phase: "back_pressure"}` event (§6.5); re-armed once the lag is back
    /// to half of it. `0` disables back-pressure events. Default 1000.
    pub back_pressure_threshold: u64,
    /// Whether the default in-memory event log frees acknowledged events as soon as they are
    /// acknowledged (`true`) or only when a cap needs the room (`false`). Keeping them lets a
    /// subscriber replay a job's history (§7.6) and a resume start from before the
    /// acknowledged point. Default `false`.
    pub free_acked_events_eagerly: bool,
    /// Buffered (unacknowledged, unexpired) events per session in the default in-memory event
    /// log (§14). Default 10 000. A custom [`EventLog`](crate::store::EventLog) enforces its
    /// own caps.
    pub max_buffered_events: usize,
    /// Buffered event bytes (encoded frames) per session in the default in-memory event log
    /// (§14). Default 16 MiB.
    pub max_buffered_bytes: usize,
    /// Open (attached) sessions per principal; a further `session.hello` is refused with
    /// `session.error INTERNAL_ERROR` (§14). Resuming an existing session is not limited.
    /// Default 100.
    pub max_sessions_per_principal: usize,
    /// Events read per batch during a replay. Default 1000.
    pub replay_batch: usize,
    /// How long after its lease's `expires_at` a still-running job is ended with
    /// `LEASE_EXPIRED` (§9.5). Default 1 s.
    pub lease_expiry_grace: Duration,
    /// How deep delegation may nest (a top-level job is depth 0). Default 8 (§14).
    pub max_delegation_depth: u32,
    /// The largest decoded `result_chunk` (§8.4, §14). Default 1 MiB.
    pub max_result_chunk_bytes: u64,
    /// The largest decoded streamed result (§8.4, §14). Default 256 MiB.
    pub max_result_bytes: u64,
    /// How long a finished job stays listable (§6.6) in the job store. Default 24 h.
    pub job_retention: Duration,
    /// `session.list_jobs` page size when the request has no `limit` (§6.6). Default 100.
    pub default_list_limit: u32,
    /// The largest `session.list_jobs` page; a larger `limit` is clamped (§14). Default 1000.
    pub max_list_limit: u32,
    /// Envelopes queued per subscriber (§7.6) before it counts as fallen behind and its
    /// subscription is dropped with a typed error (the job is never slowed). Default 1024.
    pub subscriber_queue: usize,
    /// `job.subscribe` subscriptions per session (§14); more is a request error
    /// `INTERNAL_ERROR`. Default 100.
    pub max_subscriptions_per_session: usize,
    /// This runtime's name among the nodes sharing a store (stored on every job record). On
    /// start, [`Runtime::recover`](crate::Runtime::recover) ends the unfinished jobs of this
    /// node: they were running when it died. Keep it stable across restarts. Default `"local"`.
    pub node_id: String,
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
            features: vec![
                Feature::AGENT_VERSIONS,
                Feature::PROGRESS,
                Feature::LEASE_EXPIRES_AT,
                Feature::COST_BUDGET,
                Feature::MODEL_USE,
                Feature::RESULT_CHUNK,
                Feature::HEARTBEAT,
                Feature::ACK,
                Feature::LIST_JOBS,
                Feature::SUBSCRIBE,
            ],
            heartbeat_interval: Duration::from_secs(30),
            min_heartbeat_interval: Duration::from_secs(1),
            back_pressure_threshold: 1000,
            free_acked_events_eagerly: false,
            max_buffered_events: crate::store::memory::DEFAULT_MAX_EVENTS_PER_SESSION,
            max_buffered_bytes: crate::store::memory::DEFAULT_MAX_BYTES_PER_SESSION,
            max_sessions_per_principal: 100,
            replay_batch: 1000,
            lease_expiry_grace: Duration::from_secs(1),
            max_delegation_depth: 8,
            max_result_chunk_bytes: 1 << 20,
            max_result_bytes: 256 << 20,
            job_retention: Duration::from_secs(24 * 3600),
            default_list_limit: 100,
            max_list_limit: 1000,
            subscriber_queue: 1024,
            max_subscriptions_per_session: 100,
            node_id: "local".into(),
        }
    }
}
