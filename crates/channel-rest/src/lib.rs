//! `channel-rest`: the HTTP + SSE + WebSocket transport over `channel-core` (not yet built).
//!
//! This crate will own the hyper/tokio side of the channel: routes and status mapping, SSE
//! streams, the `/v1/ws` WebSocket, body-size limits and graceful shutdown. Tracked by the issue
//! "channel-core and channel-rest".
