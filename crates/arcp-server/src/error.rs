//! The crate's error type and its single mapping to wire error codes.

use arcp_core::{ErrorCode, ErrorPayload};

use crate::store::StoreError;
use crate::transport::TransportError;

/// Everything that can go wrong inside the runtime.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A store failed (local fault; retryable).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A transport failed (local or network fault).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The peer sent something the protocol does not allow.
    #[error(transparent)]
    Protocol(#[from] arcp_core::Error),
    /// A request was refused with a specific wire error.
    #[error("{}: {}", .0.code, .0.message)]
    Refused(ErrorPayload),
}

impl Error {
    /// A refusal with `code` and `message` (retryable per the code's rule).
    pub fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::Refused(ErrorPayload::new(code, message))
    }

    /// The wire error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Store(_) | Error::Transport(_) => ErrorCode::INTERNAL_ERROR,
            Error::Protocol(e) => e.code(),
            Error::Refused(p) => p.code.clone(),
        }
    }

    /// The wire error payload.
    pub fn to_payload(&self) -> ErrorPayload {
        match self {
            Error::Refused(p) => p.clone(),
            other => ErrorPayload::new(other.code(), other.to_string()),
        }
    }
}
