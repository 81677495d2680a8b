//! The envelope (§5) and every message type of ARCP v1.0 and v1.1 (§4), plus the
//! `session.resume`, `session.close`/`session.closed` and `job.cancelled` messages of the
//! later v1.1 text.
//!
//! [`MessageType`] and [`Message`] are generated from one table (the `messages!` invocation
//! below), which also drives schema generation and payload decoding, so a message type cannot
//! be added in one place and forgotten in another.

#[cfg(any(test, feature = "proptest"))]
pub mod arb;
mod envelope;
mod extensions;
mod job;
mod lease_wire;
mod listing;
pub(crate) mod serde_util;
mod session;

use serde::ser::SerializeMap;
use serde_json::value::RawValue;

pub use envelope::Envelope;
pub use extensions::Extensions;
pub use job::{
    Credential, ErrorStatus, JobAccepted, JobCancel, JobCancelled, JobError, JobResult, JobSubmit, ResultStatus,
};
pub use lease_wire::{LeaseConstraints, LeaseMap};
pub use listing::{
    JobFilter, JobListEntry, JobStatus, JobSubscribe, JobSubscribed, JobUnsubscribe, SessionJobs, SessionListJobs,
};
pub use session::{
    Auth, BearerToken, ClientInfo, ResumeRequest, RuntimeInfo, SessionAck, SessionBye, SessionClose, SessionClosed,
    SessionHello, SessionPing, SessionPong, SessionResume, SessionWelcome,
};

use crate::ErrorPayload;
use crate::event::JobEvent;

/// Who sends a message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client → runtime.
    ClientToRuntime,
    /// Runtime → client.
    RuntimeToClient,
    /// Either side.
    Both,
}

/// What the envelope of a message type must carry besides the always-required fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeRule {
    /// Nothing more.
    Plain,
    /// `job_id` is required.
    JobScoped,
    /// `job_id` and `event_seq` are required (`job.event`, `job.result`, `job.error`).
    Sequenced,
}

macro_rules! messages {
    ($( $(#[$doc:meta])* $variant:ident($payload:ty) = $wire:literal, $dir:ident, $rule:ident, $since:literal; )*) => {
        /// A message type this build knows.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum MessageType {
            $( $(#[$doc])* $variant, )*
        }

        impl MessageType {
            /// Every known message type, in catalogue order.
            pub const ALL: &'static [MessageType] = &[$(MessageType::$variant),*];

            /// The wire name.
            pub const fn as_str(self) -> &'static str {
                match self { $(MessageType::$variant => $wire,)* }
            }

            /// The message type with this wire name.
            pub fn from_wire(s: &str) -> Option<Self> {
                match s { $($wire => Some(MessageType::$variant),)* _ => None }
            }

            /// Who sends it.
            pub const fn direction(self) -> Direction {
                match self { $(MessageType::$variant => Direction::$dir,)* }
            }

            /// What its envelope must carry.
            pub const fn envelope_rule(self) -> EnvelopeRule {
                match self { $(MessageType::$variant => EnvelopeRule::$rule,)* }
            }

            /// The protocol text that introduced it (`"1"`, `"1.1"`).
            pub const fn since(self) -> &'static str {
                match self { $(MessageType::$variant => $since,)* }
            }

            /// The JSON Schema of its payload.
            pub fn payload_schema(self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                match self { $(MessageType::$variant => generator.subschema_for::<$payload>(),)* }
            }
        }

        /// A typed message: the `type` and `payload` of an envelope.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum Message {
            $( $(#[$doc])* $variant($payload), )*
            /// A vendor message (`x-vendor.<vendor>.<name>`), payload kept as raw JSON.
            Vendor(VendorMessage),
        }

        impl Message {
            /// The known type, or `None` for a vendor message.
            pub fn message_type(&self) -> Option<MessageType> {
                match self {
                    $(Message::$variant(_) => Some(MessageType::$variant),)*
                    Message::Vendor(_) => None,
                }
            }

            /// The wire `type`.
            pub fn type_name(&self) -> &str {
                match self {
                    $(Message::$variant(_) => $wire,)*
                    Message::Vendor(v) => &v.type_name,
                }
            }

            pub(crate) fn serialize_payload<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
                match self {
                    $(Message::$variant(p) => map.serialize_entry("payload", p),)*
                    Message::Vendor(v) => map.serialize_entry("payload", &v.payload),
                }
            }

            pub(crate) fn decode_payload(ty: MessageType, payload: &RawValue) -> Result<Self, serde_json::Error> {
                match ty {
                    $(MessageType::$variant => serde_json::from_str::<$payload>(payload.get()).map(Message::$variant),)*
                }
            }
        }

        $(
            impl From<$payload> for Message {
                fn from(p: $payload) -> Self {
                    Message::$variant(p)
                }
            }
        )*

        #[cfg(any(test, feature = "proptest"))]
        impl proptest::arbitrary::Arbitrary for Message {
            type Parameters = ();
            type Strategy = proptest::strategy::BoxedStrategy<Self>;

            fn arbitrary_with(_: ()) -> Self::Strategy {
                use proptest::prelude::*;
                prop_oneof![
                    $(any::<$payload>().prop_map(Message::$variant),)*
                    ("x-vendor\\.acme\\.[a-z]{1,6}", arb::json_object().prop_map(serde_json::Value::Object))
                        .prop_map(|(type_name, payload)| Message::Vendor(VendorMessage { type_name, payload })),
                ]
                .boxed()
            }
        }
    };
}

// One row per message type: variant(payload) = wire name, direction, envelope rule, since.
// `session.error`/`session.hello` with `payload.resume`, `session.bye` and the job.* core of
// v1.0; the v1.1 additions; and the later-v1.1 messages of decisions 2, 3 and 11.
messages! {
    /// `session.hello` (§6.2).
    SessionHello(SessionHello) = "session.hello", ClientToRuntime, Plain, "1";
    /// `session.welcome` (§6.2).
    SessionWelcome(SessionWelcome) = "session.welcome", RuntimeToClient, Plain, "1";
    /// `session.error` (§6, §12): fatal; the transport closes after it.
    SessionError(ErrorPayload) = "session.error", RuntimeToClient, Plain, "1";
    /// `session.bye` (§6.7).
    SessionBye(SessionBye) = "session.bye", Both, Plain, "1";
    /// `session.ping` (§6.4).
    SessionPing(SessionPing) = "session.ping", Both, Plain, "1.1";
    /// `session.pong` (§6.4).
    SessionPong(SessionPong) = "session.pong", Both, Plain, "1.1";
    /// `session.ack` (§6.5).
    SessionAck(SessionAck) = "session.ack", ClientToRuntime, Plain, "1.1";
    /// `session.list_jobs` (§6.6).
    SessionListJobs(SessionListJobs) = "session.list_jobs", ClientToRuntime, Plain, "1.1";
    /// `session.jobs` (§6.6).
    SessionJobs(SessionJobs) = "session.jobs", RuntimeToClient, Plain, "1.1";
    /// `session.resume` (§6.3, later v1.1 text; decision 2).
    SessionResume(SessionResume) = "session.resume", ClientToRuntime, Plain, "1.1";
    /// `session.close` (§6.7, later v1.1 text; decision 3).
    SessionClose(SessionClose) = "session.close", ClientToRuntime, Plain, "1.1";
    /// `session.closed` (§6.7, later v1.1 text; decision 3).
    SessionClosed(SessionClosed) = "session.closed", RuntimeToClient, Plain, "1.1";
    /// `job.submit` (§7.1).
    JobSubmit(JobSubmit) = "job.submit", ClientToRuntime, Plain, "1";
    /// `job.accepted` (§7.1).
    JobAccepted(JobAccepted) = "job.accepted", RuntimeToClient, Plain, "1";
    /// `job.cancel` (§7.4).
    JobCancel(JobCancel) = "job.cancel", ClientToRuntime, JobScoped, "1";
    /// `job.cancelled` (§7.4, later v1.1 text; decision 11).
    JobCancelled(JobCancelled) = "job.cancelled", RuntimeToClient, JobScoped, "1.1";
    /// `job.event` (§8).
    JobEvent(JobEvent) = "job.event", RuntimeToClient, Sequenced, "1";
    /// `job.result` (§7.3).
    JobResult(JobResult) = "job.result", RuntimeToClient, Sequenced, "1";
    /// `job.error` (§7.3).
    JobError(JobError) = "job.error", RuntimeToClient, Sequenced, "1";
    /// `job.subscribe` (§7.6).
    JobSubscribe(JobSubscribe) = "job.subscribe", ClientToRuntime, Plain, "1.1";
    /// `job.subscribed` (§7.6).
    JobSubscribed(JobSubscribed) = "job.subscribed", RuntimeToClient, Plain, "1.1";
    /// `job.unsubscribe` (§7.6).
    JobUnsubscribe(JobUnsubscribe) = "job.unsubscribe", ClientToRuntime, Plain, "1.1";
}

impl Message {
    /// The `job_id` a payload names, for the messages that carry one in the payload
    /// (`job.accepted`, `job.subscribe`, `job.subscribed`, `job.unsubscribe`). When the
    /// envelope also has a `job_id`, the two must agree.
    pub fn payload_job_id(&self) -> Option<&crate::JobId> {
        match self {
            Message::JobAccepted(p) => Some(&p.job_id),
            Message::JobSubscribe(p) => Some(&p.job_id),
            Message::JobSubscribed(p) => Some(&p.job_id),
            Message::JobUnsubscribe(p) => Some(&p.job_id),
            _ => None,
        }
    }
}

/// A vendor message: type `x-vendor.<vendor>.<name>`, payload verbatim.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorMessage {
    /// The vendor type.
    pub type_name: String,
    /// The payload.
    pub payload: serde_json::Value,
}
