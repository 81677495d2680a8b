//! The envelope (§5): the fields every message shares, and its wire encoding.

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Extensions, Message};
use crate::{EventSeq, JobId, MessageId, ProtocolVersion, SessionId, TraceId};

/// One ARCP message: the envelope fields plus the typed `type`/`payload` ([`Message`]).
///
/// Encodes with a fixed field order (`arcp`, `id`, `type`, `session_id`, `job_id`,
/// `event_seq`, `trace_id`, `payload`, `extensions`); absent optional fields are omitted.
/// Decoding goes through [`crate::decode()`], which never panics; the `Deserialize` impl
/// applies the same rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Protocol version literal.
    pub arcp: ProtocolVersion,
    /// Per-message id.
    pub id: MessageId,
    /// The session (absent only on `session.hello`).
    pub session_id: Option<SessionId>,
    /// The job, on job-scoped messages.
    pub job_id: Option<JobId>,
    /// Session-scoped sequence number, on `job.event`/`job.result`/`job.error`.
    pub event_seq: Option<EventSeq>,
    /// W3C trace id.
    pub trace_id: Option<TraceId>,
    /// Vendor extensions.
    pub extensions: Option<Extensions>,
    /// The type and payload.
    pub message: Message,
}

impl Envelope {
    /// An envelope with just a version, an id and a message.
    pub fn new(arcp: ProtocolVersion, id: MessageId, message: impl Into<Message>) -> Self {
        Envelope {
            arcp,
            id,
            session_id: None,
            job_id: None,
            event_seq: None,
            trace_id: None,
            extensions: None,
            message: message.into(),
        }
    }

    /// Sets `session_id`.
    pub fn with_session(mut self, session_id: SessionId) -> Self {
        self.session_id = Some(session_id);
        self
    }

    /// Sets `job_id`.
    pub fn with_job(mut self, job_id: JobId) -> Self {
        self.job_id = Some(job_id);
        self
    }

    /// Sets `event_seq`.
    pub fn with_event_seq(mut self, seq: EventSeq) -> Self {
        self.event_seq = Some(seq);
        self
    }

    /// Sets `trace_id`.
    pub fn with_trace(mut self, trace_id: TraceId) -> Self {
        self.trace_id = Some(trace_id);
        self
    }

    /// Whether `extensions.optional` is `true`.
    pub fn is_optional(&self) -> bool {
        self.extensions.as_ref().and_then(|e| e.optional).unwrap_or(false)
    }

    /// The wire encoding (one JSON object, no trailing newline).
    pub fn to_json(&self) -> String {
        // Serialising our own types to a String cannot fail: every map key is a string and no
        // Serialize impl in this crate returns an error.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Serialize for Envelope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("arcp", &self.arcp)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("type", self.message.type_name())?;
        if let Some(v) = &self.session_id {
            map.serialize_entry("session_id", v)?;
        }
        if let Some(v) = &self.job_id {
            map.serialize_entry("job_id", v)?;
        }
        if let Some(v) = &self.event_seq {
            map.serialize_entry("event_seq", v)?;
        }
        if let Some(v) = &self.trace_id {
            map.serialize_entry("trace_id", v)?;
        }
        self.message.serialize_payload(&mut map)?;
        if let Some(v) = &self.extensions {
            map.serialize_entry("extensions", v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        crate::decode::decode_str(raw.get(), &crate::DecodeOptions::default())
            .map_err(|f| serde::de::Error::custom(f.error))
    }
}

#[cfg(any(test, feature = "proptest"))]
impl proptest::arbitrary::Arbitrary for Envelope {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        use proptest::prelude::*;

        use super::EnvelopeRule;
        (
            any::<ProtocolVersion>(),
            any::<MessageId>(),
            proptest::option::of(any::<SessionId>()),
            any::<JobId>(),
            any::<EventSeq>(),
            proptest::option::of(any::<TraceId>()),
            proptest::option::of(any::<Extensions>()),
            any::<Message>(),
            any::<bool>(),
        )
            .prop_map(|(arcp, id, session_id, job_id, seq, trace_id, extensions, message, extra)| {
                let rule = message.message_type().map_or(EnvelopeRule::Plain, |t| t.envelope_rule());
                let (mut job_id, event_seq) = match rule {
                    EnvelopeRule::Sequenced => (Some(job_id), Some(seq)),
                    EnvelopeRule::JobScoped => (Some(job_id), extra.then_some(seq)),
                    EnvelopeRule::Plain => (extra.then_some(job_id), None),
                };
                if let (Some(_), Some(inner)) = (&job_id, message.payload_job_id()) {
                    job_id = Some(inner.clone());
                }
                Envelope { arcp, id, session_id, job_id, event_seq, trace_id, extensions, message }
            })
            .boxed()
    }
}
