//! Minting the ids the client sends: envelope ids, ping nonces, trace ids and automatic
//! idempotency keys (all from the OS CSPRNG, as `arcp-core` mints them).

use arcp_core::{MessageId, OsEntropy, SystemClock, TraceId};

use crate::error::ClientError;

fn local(e: arcp_core::Error) -> ClientError {
    ClientError::Local { reason: e.to_string() }
}

/// A fresh envelope id (`msg_` + ULID).
pub(crate) fn message_id() -> Result<MessageId, ClientError> {
    MessageId::mint(&SystemClock, &OsEntropy).map_err(local)
}

/// A fresh W3C trace id.
pub(crate) fn trace_id() -> Result<TraceId, ClientError> {
    TraceId::mint(&OsEntropy).map_err(local)
}

/// A fresh idempotency key (`idem_` + ULID): unique, so it only ever matches its own resubmits.
pub(crate) fn idempotency_key() -> Result<String, ClientError> {
    let id = message_id()?;
    Ok(format!("idem_{}", id.as_str().trim_start_matches(MessageId::PREFIX)))
}
