//! [`RestConfig`]: the limits and switches of the HTTP transport.

use std::time::Duration;

/// Limits and switches of a [`ChannelService`](crate::ChannelService).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestConfig {
    /// The largest request body accepted, in bytes (default 1 MiB). A larger body is refused
    /// with `413 body-too-large`, from its `Content-Length` before it is read when the header
    /// is present, otherwise as soon as the limit is crossed while reading.
    pub max_body_bytes: usize,
    /// The largest WebSocket message (and frame) accepted, in bytes (default 4 MiB). A larger
    /// one ends the connection (tungstenite's `max_message_size`/`max_frame_size`).
    pub max_ws_frame_bytes: usize,
    /// How often an SSE stream sends a keep-alive comment (`:`) while no event is due, so
    /// proxies do not cut an idle stream (default 15 s). `Duration::ZERO` disables them.
    pub keep_alive: Duration,
    /// Whether `GET /v1/ws` upgrades to a WebSocket (default `true`). The capability gate:
    /// with `false` the route answers `426 upgrade-required`, never a silent downgrade.
    pub websocket: bool,
}

impl Default for RestConfig {
    fn default() -> Self {
        RestConfig {
            max_body_bytes: 1024 * 1024,
            max_ws_frame_bytes: 4 * 1024 * 1024,
            keep_alive: Duration::from_secs(15),
            websocket: true,
        }
    }
}
