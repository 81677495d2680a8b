//! [`ClientOptions`] and the reconnect [`Backoff`].

use std::time::Duration;

use arcp_core::message::BearerToken;
use arcp_core::negotiate::{ALL_FEATURES, Feature};

/// How a [`Client`](crate::Client) connects and behaves. Start from [`Default`] and adjust
/// with the `with_*` methods (or set the public fields).
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The bearer token sent in `session.hello.auth` (§6.1). `Debug` never shows it.
    pub token: Option<BearerToken>,
    /// `session.hello.client.name`. Default `"arcp-rs-client"`.
    pub client_name: String,
    /// `session.hello.client.version`. Default: this crate's version.
    pub client_version: String,
    /// Feature flags to request (§6.2); the runtime answers with the intersection. Default:
    /// every v1.1 flag this build knows ([`ALL_FEATURES`]).
    pub features: Vec<Feature>,
    /// Resume the session automatically when the transport drops or an `event_seq` gap is
    /// seen. Default `true`. When `false`, such a loss fails every pending handle with
    /// [`ClientError::Disconnected`](crate::ClientError::Disconnected).
    pub auto_resume: bool,
    /// Reconnect attempts and delays for automatic resume.
    pub backoff: Backoff,
    /// The largest frame sent or accepted, in bytes. Default 16 MiB (the spec's default).
    pub max_frame_bytes: usize,
    /// How many unread events each job's stream buffers before it overflows
    /// ([`ClientError::Lagged`](crate::ClientError::Lagged)). Default 1024.
    pub event_buffer: usize,
    /// Bound on opening a transport and on the handshake (hello → welcome). Default 10 s.
    pub connect_timeout: Duration,
    /// Give every submit without an `idempotency_key` a fresh, unique one. Default `true`.
    ///
    /// `job.accepted` carries no `event_seq` and is not replayed by a resume, so when a
    /// connection drops between a submit and its answer, the only safe way to learn the job
    /// is to resubmit with the same key (the runtime answers with the same `job.accepted`
    /// and never runs the agent twice, §7.2). With this off, such a submit fails with
    /// [`ClientError::Interrupted`](crate::ClientError::Interrupted).
    pub auto_idempotency_keys: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            token: None,
            client_name: "arcp-rs-client".to_owned(),
            client_version: env!("CARGO_PKG_VERSION").to_owned(),
            features: ALL_FEATURES.iter().filter_map(|f| Feature::new(f).ok()).collect(),
            auto_resume: true,
            backoff: Backoff::default(),
            max_frame_bytes: arcp_core::decode::DEFAULT_MAX_FRAME_BYTES,
            event_buffer: 1024,
            connect_timeout: Duration::from_secs(10),
            auto_idempotency_keys: true,
        }
    }
}

impl ClientOptions {
    /// Sets the bearer token.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(BearerToken(token.into()));
        self
    }

    /// Sets the client name and version sent in `session.hello`.
    pub fn with_client(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        self.client_name = name.into();
        self.client_version = version.into();
        self
    }

    /// Sets the feature flags to request.
    pub fn with_features(mut self, features: impl IntoIterator<Item = Feature>) -> Self {
        self.features = features.into_iter().collect();
        self
    }

    /// Turns automatic resume on or off.
    pub fn with_auto_resume(mut self, on: bool) -> Self {
        self.auto_resume = on;
        self
    }

    /// Sets the reconnect backoff.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets the maximum frame size in bytes.
    pub fn with_max_frame_bytes(mut self, max: usize) -> Self {
        self.max_frame_bytes = max;
        self
    }

    /// Sets the per-job event buffer (at least 1).
    pub fn with_event_buffer(mut self, events: usize) -> Self {
        self.event_buffer = events.max(1);
        self
    }

    /// Sets the connect and handshake timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Turns automatic idempotency keys on or off.
    pub fn with_auto_idempotency_keys(mut self, on: bool) -> Self {
        self.auto_idempotency_keys = on;
        self
    }
}

/// Exponential reconnect backoff: the first attempt is immediate, attempt `n + 1` waits
/// `min(initial_delay × 2ⁿ⁻¹, max_delay)`; after `max_attempts` failed attempts the session is
/// given up ([`ClientError::ReconnectFailed`](crate::ClientError::ReconnectFailed)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Connection attempts per loss, including the first, immediate one (at least 1).
    /// Default 8.
    pub max_attempts: u32,
    /// Delay before the second attempt. Default 100 ms.
    pub initial_delay: Duration,
    /// Cap on any single delay. Default 5 s.
    pub max_delay: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { max_attempts: 8, initial_delay: Duration::from_millis(100), max_delay: Duration::from_secs(5) }
    }
}

impl Backoff {
    /// The delay before attempt number `attempt` (1-based; attempt 1 has none).
    pub fn delay_before(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let doublings = attempt.saturating_sub(2).min(31);
        self.initial_delay.saturating_mul(1u32 << doublings).min(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_exponential_and_capped() {
        let b =
            Backoff { max_attempts: 10, initial_delay: Duration::from_millis(100), max_delay: Duration::from_secs(1) };
        let delays: Vec<u128> = (1..=7).map(|n| b.delay_before(n).as_millis()).collect();
        assert_eq!(delays, [0, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.delay_before(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn defaults_request_every_feature_and_hide_the_token() {
        let o = ClientOptions::default().with_token("secret-token");
        assert_eq!(o.features.len(), ALL_FEATURES.len());
        assert!(o.auto_resume && o.auto_idempotency_keys);
        assert!(!format!("{o:?}").contains("secret-token"));
    }
}
