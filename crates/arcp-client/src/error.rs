//! [`ClientError`], the crate's one error type, and its mapping to wire error codes.

use arcp_core::message::ErrorStatus;
use arcp_core::{ErrorCode, ErrorPayload};
use arcp_server::transport::TransportError;

/// Everything a [`Client`](crate::Client) or a [`JobHandle`](crate::JobHandle) can fail with.
///
/// Cheap to clone: one failure (for example a refused resume) is delivered to every pending
/// handle. [`ClientError::code`] gives the wire [`ErrorCode`] where the failure has one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The runtime sent `session.error`: during the handshake (e.g. `UNAUTHENTICATED`),
    /// when a resume was refused (`RESUME_WINDOW_EXPIRED`), or later on the session.
    #[error("session error {}: {}", .payload.code, .payload.message)]
    Session {
        /// The `session.error` payload.
        payload: ErrorPayload,
    },
    /// A request (`job.submit`, `job.cancel`) was refused: the runtime answered with a
    /// `job.error` whose `details.request_id` names the request (decision 21), e.g.
    /// `AGENT_NOT_AVAILABLE`, `DUPLICATE_KEY`, `JOB_NOT_FOUND`.
    #[error("request refused {}: {}", .payload.code, .payload.message)]
    Refused {
        /// The refusal's error payload (including `details`).
        payload: ErrorPayload,
    },
    /// The job ended without success (`job.error`): failed, cancelled or timed out.
    #[error("job ended {final_status:?} with {}: {}", .payload.code, .payload.message)]
    Job {
        /// `error`, `cancelled` or `timed_out`.
        final_status: ErrorStatus,
        /// The error part of the `job.error` payload.
        payload: ErrorPayload,
    },
    /// The transport failed (connect, send, or a frame it could not carry).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The connection was lost and could not be resumed within the configured attempts.
    #[error("could not reconnect after {attempts} attempt(s): {last}")]
    ReconnectFailed {
        /// How many connection attempts were made.
        attempts: u32,
        /// Why the last attempt failed.
        last: String,
    },
    /// The connection was lost and automatic resume is off.
    #[error("disconnected: {reason}")]
    Disconnected {
        /// Why the connection was lost.
        reason: String,
    },
    /// The connection was lost after a `job.submit` without an idempotency key was sent and
    /// before the runtime answered it: the job may or may not exist. Resubmitting may start
    /// it twice; submit with an idempotency key (the default, see
    /// [`ClientOptions::auto_idempotency_keys`](crate::ClientOptions::auto_idempotency_keys))
    /// to make this case recoverable.
    #[error("the connection was lost before the submit was answered; its outcome is unknown")]
    Interrupted,
    /// The runtime violated the protocol in a way the client cannot recover from.
    #[error("protocol violation: {reason}")]
    Protocol {
        /// What went wrong.
        reason: String,
    },
    /// Nothing was heard from the runtime for two heartbeat intervals (§6.4).
    #[error("heartbeat lost: nothing received for two heartbeat intervals")]
    HeartbeatLost,
    /// A step did not finish in time (connecting, the handshake).
    #[error("timed out: {what}")]
    Timeout {
        /// What timed out.
        what: &'static str,
    },
    /// A job's event buffer overflowed because its stream was not read fast enough; the
    /// stream ends after this item (the job's result is still delivered by
    /// [`JobHandle::result`](crate::JobHandle::result)).
    #[error("event stream lagged: more than {capacity} unread events")]
    Lagged {
        /// The per-job buffer capacity ([`ClientOptions::event_buffer`](crate::ClientOptions::event_buffer)).
        capacity: usize,
    },
    /// The client was closed ([`Client::close`](crate::Client::close)), or every handle to it
    /// was dropped.
    #[error("the client is closed")]
    Closed,
    /// A local failure (e.g. no randomness available to mint ids).
    #[error("local error: {reason}")]
    Local {
        /// What failed.
        reason: String,
    },
}

impl ClientError {
    /// The wire error code, where one applies: the payload's code for
    /// [`Session`](Self::Session), [`Refused`](Self::Refused) and [`Job`](Self::Job);
    /// `INVALID_REQUEST` for [`Protocol`](Self::Protocol); `HEARTBEAT_LOST` for
    /// [`HeartbeatLost`](Self::HeartbeatLost). `None` for local and transport failures.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Session { payload } | ClientError::Refused { payload } | ClientError::Job { payload, .. } => {
                Some(payload.code.clone())
            }
            ClientError::Protocol { .. } => Some(ErrorCode::INVALID_REQUEST),
            ClientError::HeartbeatLost => Some(ErrorCode::HEARTBEAT_LOST),
            _ => None,
        }
    }

    /// The wire error payload, for errors that carry one.
    pub fn payload(&self) -> Option<&ErrorPayload> {
        match self {
            ClientError::Session { payload } | ClientError::Refused { payload } | ClientError::Job { payload, .. } => {
                Some(payload)
            }
            _ => None,
        }
    }

    /// Whether retrying may succeed: the payload's `retryable` flag where there is one;
    /// otherwise `true` for transport-level failures and `false` for the rest.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Session { payload } | ClientError::Refused { payload } | ClientError::Job { payload, .. } => {
                payload.retryable
            }
            ClientError::Transport(_)
            | ClientError::ReconnectFailed { .. }
            | ClientError::Disconnected { .. }
            | ClientError::HeartbeatLost
            | ClientError::Timeout { .. } => true,
            _ => false,
        }
    }
}
