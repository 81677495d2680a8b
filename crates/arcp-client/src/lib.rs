//! `arcp-client`: an async (tokio) ARCP client.
//!
//! Open a session with [`Client::connect_ws`] or, over any transport, with
//! [`Client::connect_with`] and a [`Connector`]; submit jobs with [`Client::submit`]; follow
//! each job through its [`JobHandle`]: [`events`](JobHandle::events) (a [`futures_util::Stream`]),
//! [`result`](JobHandle::result), [`cancel`](JobHandle::cancel).
//!
//! ```no_run
//! # async fn demo() -> Result<(), arcp_client::ClientError> {
//! use arcp_client::{Client, ClientOptions, SubmitRequest};
//! use futures_util::StreamExt as _;
//!
//! let client = Client::connect_ws("ws://127.0.0.1:7777/arcp", ClientOptions::default().with_token("tok")).await?;
//! let mut job = client.submit(SubmitRequest::new("echo", serde_json::json!({"text": "hi"}))).await?;
//! let mut events = job.events();
//! while let Some(event) = events.next().await {
//!     println!("{} {:?}", event?.kind(), job.job_id());
//! }
//! let outcome = job.result().await?;
//! println!("{:?}", outcome.result);
//! client.close().await?;
//! # Ok(()) }
//! ```
//!
//! # How it works
//!
//! One background task (the *driver*) owns the connection; clients and handles talk to it
//! over channels, so every method can be called concurrently. The driver reads frames (through
//! a reader and a writer task per connection, so a slow write never stops reading), answers
//! `session.ping` with `session.pong` (always, as §6.4 asks), sends `session.ack` every 250 ms
//! when `ack` is negotiated and heartbeat pings when `heartbeat` is, and routes every
//! envelope:
//!
//! - **Submits** are correlated with their answer. A refusal is a `job.error` under a fresh
//!   job id whose `details.request_id` is the submit envelope's id (decision 21); the client
//!   remembers the ids of its recent requests, so such a `job.error` is never mistaken for
//!   the end of a job (a `DUPLICATE_KEY` refusal names the *existing* job). Runtimes that do
//!   not echo `request_id` are matched on `trace_id` (the client mints one per submit). A
//!   `job.accepted` is matched on its `trace_id`, falling back to submit order (§7.1: first
//!   answers come in the order the submits were received; an idempotent hit echoes the
//!   original submit's trace id).
//! - **Job envelopes** (`job.event`, `job.result`, `job.error`) go to their job's handle by
//!   `job_id`: events into a per-job buffer of [`ClientOptions::event_buffer`] entries (an
//!   unread buffer that overflows ends the stream with [`ClientError::Lagged`], it never
//!   stalls the connection), the terminal envelope into the handle's result.
//!
//! # Sequence numbers and gap detection
//!
//! `event_seq` is one gap-free sequence per session (§8.3). The driver keeps the highest
//! sequence number it has *processed* (`last_event_seq`). An envelope carrying exactly
//! `last_event_seq + 1` is processed; one at or below it is a repeat and is ignored (§8.3);
//! one above it means envelopes went missing: the session is treated as broken, the envelope
//! is *not* processed, and the session is resumed from the cursor. A frame that cannot be
//! decoded but is recognisably sequence-bearing still advances the cursor (an undecodable
//! terminal ends its job with [`ClientError::Protocol`]), so a bad frame cannot loop a resume.
//!
//! # Automatic resume
//!
//! When the transport drops, a gap appears, the runtime sends `session.error` or `session.bye`,
//! or (with `heartbeat`) nothing arrives for two intervals, the driver reconnects through the
//! [`Connector`] with exponential [`Backoff`] and sends `session.hello` with
//! `resume {session_id, resume_token, last_event_seq}` (§6.3). The runtime answers with a
//! `session.welcome` carrying a fresh token (kept for the next resume), then replays every
//! sequence-bearing envelope after the cursor, then continues live. Nothing is deduplicated
//! because nothing needs to be: the cursor only moves when an envelope is processed, so the
//! replay is exactly the missing part, and events keep reaching the same handles, in order,
//! exactly once. Running jobs stay attached and cancellable (decision 4).
//!
//! What the replay cannot carry (`job.accepted`, `job.cancelled`, pongs have no `event_seq`)
//! is recovered by resending the requests still unanswered: a submit is resent with the same
//! payload and idempotency key, so the runtime answers with the original `job.accepted`
//! without running the agent again (§7.2); events of that job replayed before the answer are
//! held until it arrives. That is why the client gives every submit an idempotency key by
//! default ([`ClientOptions::auto_idempotency_keys`]); a submit without one that is caught by
//! a disconnect fails with [`ClientError::Interrupted`].
//!
//! If the resume is refused (`session.error RESUME_WINDOW_EXPIRED`: the window passed, the
//! runtime restarted without a durable store…) or reconnecting fails
//! ([`ClientError::ReconnectFailed`]), the session is over: every pending handle, submit,
//! cancel and ping gets that error and later calls fail with it. Jobs submitted with an
//! idempotency key can then be recovered from a new client: resubmitting the same request
//! with the same key returns the same job (the same `job.accepted`, then the job's live
//! events or its terminal envelope) without running it twice.
//!
//! # Layering
//!
//! The transports (`Transport`, `memory`, `ws`, `stdio`) live in `arcp-server` today, so this
//! crate depends on it for them only; it uses nothing else from the runtime.

mod client;
mod connector;
mod driver;
mod error;
mod ids;
mod job;
mod link;
mod listing;
mod options;
mod subscription;

pub use client::Client;
pub use connector::Connector;
pub use error::ClientError;
pub use job::{JobEvents, JobHandle, JobOutcome, ReceivedEvent, SubmitRequest};
pub use listing::{JobsPage, ListedJob, ListingDeviation};
pub use options::{Backoff, ClientOptions};
pub use subscription::Subscription;
