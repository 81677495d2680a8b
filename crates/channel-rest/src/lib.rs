//! `channel-rest`: the HTTP + SSE + WebSocket transport of the channel protocol, over
//! [`channel_core::Channel`] (hyper 1 + tokio; WebSocket via tokio-tungstenite).
//!
//! | request | answer |
//! |---|---|
//! | `POST /v1/session` (JSON body = the turn body) | start: `200` [`TurnReply`](channel_core::TurnReply) JSON |
//! | `POST /v1/session/{id}/message` (token in `X-Continuation-Token` or the body's `continuationToken`; the header wins) | continue: `200` `TurnReply` JSON |
//! | `POST /v1/session/{id}/recover` (token as above; body optional) | the last turn's `TurnReply` again (`X-Recording-Truncated: true` when its recording was cut); `404 nothing-to-recover` when none completed |
//! | `GET /v1/session/{id}` | [`SessionInfo`](channel_core::SessionInfo) JSON (never a token) |
//! | any `POST` above with `Accept: text/event-stream` | SSE: `record`/`delta` events, then `outcome` (or `error`); keep-alive comments while idle |
//! | `GET /v1/ws` | WebSocket (see the `ws` module docs); `426` when disabled or not an upgrade |
//!
//! Every failure is a status with the body `{"error": "<human message>", "reason":
//! "<reason>"}` (see [`Error`]). With a [`RequestLimiter`]
//! ([`ChannelService::with_limiter`]) a request over its owner's limit is `429 rate-limited`
//! with `Retry-After` (seconds); a [`ChannelObserver`] ([`ChannelService::with_observer`]) is
//! told how turns end and which errors were answered. **A refusal is always a status before any stream opens**; an
//! error after an SSE stream opened is an in-band `error` event. Every turn runs in its own
//! task, so a client that goes away mid-turn cancels nothing.
//!
//! ```no_run
//! # async fn demo(
//! #     channel: channel_core::Channel,
//! #     runner: std::sync::Arc<dyn channel_core::TurnRunner>,
//! #     stop: tokio::sync::oneshot::Receiver<()>,
//! # ) -> std::io::Result<()> {
//! use channel_rest::{ChannelService, RestConfig, serve};
//! let service = ChannelService::new(channel, runner, RestConfig::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, service, async move { let _ = stop.await; }).await
//! # }
//! ```

mod auth;
mod config;
mod error;
mod observe;
mod reply;
mod request;
mod serve;
mod service;
mod sse;
mod turn;
mod ws;

pub use auth::Authenticator;
pub use config::RestConfig;
pub use error::Error;
pub use observe::{ChannelObserver, NoChannelObserver, RequestLimiter, TurnEnd};
pub use reply::Body;
pub use serve::serve;
pub use service::ChannelService;
