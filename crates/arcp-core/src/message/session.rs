//! Payloads of the `session.*` messages (§6).

use std::num::NonZeroU64;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::negotiate::Capabilities;
use crate::{EventSeq, ResumeToken, SessionId, Timestamp};

/// Who the client is (`session.hello.payload.client`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct ClientInfo {
    /// Client name.
    pub name: String,
    /// Client version.
    pub version: String,
    /// Optional build fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Optional self-declared principal (informational; the bearer token decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

/// A bearer token. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[serde(transparent)]
pub struct BearerToken(pub String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// `session.hello.payload.auth`. Only `scheme: "bearer"` is defined; other schemes decode
/// (so the runtime can answer `INVALID_REQUEST` "not supported") but are never accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct Auth {
    /// The auth scheme; `bearer`.
    #[cfg_attr(any(test, feature = "proptest"), proptest(value = "\"bearer\".to_owned()"))]
    pub scheme: String,
    /// The bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<BearerToken>,
}

/// `resume` in `session.hello` / `session.resume`: where the client left off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct ResumeRequest {
    /// The session to resume.
    pub session_id: SessionId,
    /// The token from the last `session.welcome`.
    pub resume_token: ResumeToken,
    /// The highest `event_seq` the client has seen (0 if none).
    pub last_event_seq: EventSeq,
}

/// `session.hello` (C→R): opens a session, or resumes one when `resume` is present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct SessionHello {
    /// Who the client is.
    pub client: ClientInfo,
    /// Credentials.
    pub auth: Auth,
    /// What the client can do (v1.1: `features`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// Resume an earlier session instead of opening a new one (§6.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeRequest>,
}

/// `session.resume` (C→R): the v1.1 prose's resume message; same body as a hello, with
/// `resume` required (decision 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct SessionResume {
    /// Who the client is.
    pub client: ClientInfo,
    /// Credentials.
    pub auth: Auth,
    /// What the client can do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// Where the client left off.
    pub resume: ResumeRequest,
}

/// Who the runtime is (`session.welcome.payload.runtime`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct RuntimeInfo {
    /// Runtime name.
    pub name: String,
    /// Runtime version.
    pub version: String,
    /// Optional build fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

/// `session.welcome` (R→C): the session is open (or resumed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct SessionWelcome {
    /// Who the runtime is.
    pub runtime: RuntimeInfo,
    /// A fresh resume token (rotated on every welcome).
    pub resume_token: ResumeToken,
    /// How long the session stays resumable after its last message, in seconds.
    pub resume_window_sec: NonZeroU64,
    /// Heartbeat interval, present when `heartbeat` was negotiated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_sec: Option<NonZeroU64>,
    /// Negotiated capabilities.
    pub capabilities: Capabilities,
    /// The session id again, inside the payload. Not in the spec (the envelope carries it);
    /// the Python reference client (1.1.3) requires it, so our runtime always sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// When the session was accepted. Not in the spec; required by the Python reference
    /// client (1.1.3), so our runtime always sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<Timestamp>,
}

/// `session.bye` (either way): graceful close; jobs keep running and stay resumable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct SessionBye {
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `session.close` (C→R): the v1.1 prose's close request; answered by `session.closed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct SessionClose {
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `session.closed` (R→C): the close is done; jobs keep running and stay resumable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct SessionClosed {
    /// Echo of the close reason, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `session.ping` (either way, v1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct SessionPing {
    /// Echoed in the pong.
    pub nonce: String,
    /// When the ping was sent.
    pub sent_at: Timestamp,
}

/// `session.pong` (either way, v1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct SessionPong {
    /// The ping's nonce.
    pub ping_nonce: String,
    /// When the ping was received.
    pub received_at: Timestamp,
}

/// `session.ack` (C→R, v1.1): the highest `event_seq` the client has processed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct SessionAck {
    /// Highest processed `event_seq`.
    pub last_processed_seq: EventSeq,
}
