//! `arcp-core`: the ARCP wire format, and nothing else.
//!
//! What lives here: the envelope and every message type of ARCP v1.0 and v1.1
//! ([`message`]), every job-event kind ([`event`]), the error payload and the open set of
//! error codes ([`ErrorPayload`], [`ErrorCode`]), ids and tokens ([`ids`]), feature
//! negotiation and the agent grammar ([`negotiate`], [`agent`]), leases, globs, budgets and the
//! subset check ([`lease`]), and a decoder that turns *any* byte string into either a typed
//! message or a typed error ([`decode()`]).
//!
//! What deliberately does not: IO of any kind. There are no sockets, no async runtime, no
//! files; time and randomness come in through the [`Clock`] and [`Entropy`] traits so tests are
//! deterministic. The session and job runtime lives in `arcp-server`.

pub mod agent;
pub mod decode;
mod env;
mod error;
mod error_code;
mod error_payload;
pub mod event;
pub mod ids;
pub mod lease;
pub mod message;
pub mod names;
pub mod negotiate;
#[cfg(test)]
mod properties;
pub mod schema;
mod seq;
mod timestamp;
mod version;

pub use decode::{DecodeFailure, DecodeOptions, FrameContext, decode};
#[cfg(feature = "os-entropy")]
pub use env::OsEntropy;
pub use env::{Clock, Entropy, ManualClock, SeededEntropy, SystemClock};
pub use error::Error;
pub use error_code::{CANONICAL_CODES, CodeInfo, ErrorCode, Retryable};
pub use error_payload::ErrorPayload;
pub use ids::{JobId, MessageId, ResumeToken, SessionId, TraceId};
pub use message::{Envelope, Message, MessageType};
pub use names::TypeClass;
pub use seq::EventSeq;
pub use timestamp::Timestamp;
pub use version::ProtocolVersion;
