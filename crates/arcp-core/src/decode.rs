//! The decoder: any byte string in, a typed [`Envelope`] or a typed [`DecodeFailure`] out.
//!
//! Guarantees (each one is tested, including by property tests over arbitrary bytes):
//! - never panics, never recurses without bound (JSON nesting is capped at
//!   [`MAX_DEPTH`] by the parser), never allocates more than a small multiple of the frame;
//! - frames longer than [`DecodeOptions::max_frame_bytes`] are refused before parsing;
//! - every failure carries an [`Error`] whose [`Error::code`] is the wire code to answer
//!   with (always `INVALID_REQUEST` here), plus whatever envelope fields could be read
//!   (`id`, `type`, `session_id`, `job_id`) so the caller can address its reply.
//!
//! Lenient where interop needs it: unknown top-level fields are ignored; an optional envelope
//! field set to `null` counts as absent; ids are opaque strings.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::message::{EnvelopeRule, Message, MessageType, VendorMessage};
use crate::names::{TypeClass, classify_type};
use crate::{Envelope, Error, ErrorPayload, EventSeq, JobId, MessageId, ProtocolVersion, SessionId, TraceId};

/// The default maximum frame size: 16 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// The maximum nesting depth of arrays and objects (the parser's limit).
pub const MAX_DEPTH: usize = 128;

/// Decoder limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Frames longer than this many bytes are refused unparsed.
    pub max_frame_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions { max_frame_bytes: DEFAULT_MAX_FRAME_BYTES }
    }
}

/// Why a frame could not be decoded, with whatever could be read of its envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct DecodeFailure {
    /// What is wrong.
    pub error: Error,
    /// The envelope fields that could be read, to address a reply.
    pub context: Box<FrameContext>,
}

/// Envelope fields recovered from a frame that failed to decode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameContext {
    /// The envelope's `id`, if it could be read.
    pub id: Option<MessageId>,
    /// The envelope's `type`, if it was a string.
    pub type_name: Option<String>,
    /// The envelope's `session_id`, if it could be read.
    pub session_id: Option<SessionId>,
    /// The envelope's `job_id`, if it could be read.
    pub job_id: Option<JobId>,
}

impl DecodeFailure {
    fn bare(error: Error) -> Self {
        DecodeFailure { error, context: Box::default() }
    }

    /// The error payload to answer with.
    pub fn to_payload(&self) -> ErrorPayload {
        self.error.to_payload()
    }
}

/// Decodes one frame.
pub fn decode(bytes: &[u8], options: &DecodeOptions) -> Result<Envelope, DecodeFailure> {
    check_size(bytes.len(), options)?;
    let text =
        std::str::from_utf8(bytes).map_err(|e| DecodeFailure::bare(Error::InvalidUtf8 { offset: e.valid_up_to() }))?;
    decode_str(text, options)
}

/// Decodes one frame that is already known to be UTF-8 (e.g. a WebSocket text frame).
pub fn decode_str(text: &str, options: &DecodeOptions) -> Result<Envelope, DecodeFailure> {
    check_size(text.len(), options)?;
    if nesting_exceeds(text.as_bytes(), MAX_DEPTH) {
        return Err(DecodeFailure::bare(Error::TooDeep { max: MAX_DEPTH }));
    }
    if !text.trim_start().starts_with('{') {
        let error = match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => Error::NotAnObject,
            Err(e) => top_level_error(text, &e),
        };
        return Err(DecodeFailure::bare(error));
    }
    let raw: RawEnvelope<'_> = match serde_json::from_str(text) {
        Ok(raw) => raw,
        Err(e) => return Err(DecodeFailure::bare(top_level_error(text, &e))),
    };
    raw.into_envelope()
}

fn check_size(size: usize, options: &DecodeOptions) -> Result<(), DecodeFailure> {
    if size > options.max_frame_bytes {
        return Err(DecodeFailure::bare(Error::FrameTooLarge { size, max: options.max_frame_bytes }));
    }
    Ok(())
}

/// Whether arrays/objects nest deeper than `max` anywhere in `bytes` (including inside
/// fields the envelope ignores, which the parser skips without counting depth). One pass,
/// no allocation; malformed JSON is left for the parser to report.
fn nesting_exceeds(bytes: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn top_level_error(text: &str, e: &serde_json::Error) -> Error {
    if is_depth_error(e) {
        return Error::TooDeep { max: MAX_DEPTH };
    }
    let starts_with_brace = text.trim_start().starts_with('{');
    match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            Error::InvalidJson { line: e.line(), column: e.column(), reason: syntax_reason(e) }
        }
        _ if !starts_with_brace => Error::NotAnObject,
        _ => Error::InvalidField { field: "envelope", reason: syntax_reason(e) },
    }
}

fn is_depth_error(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("recursion limit exceeded")
}

/// The parser's message without its " at line L column C" suffix.
fn syntax_reason(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// The envelope with every field captured raw, so each can be checked on its own.
#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow, default)]
    arcp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "type")]
    type_: Option<&'a RawValue>,
    #[serde(borrow, default)]
    session_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    trace_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    job_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event_seq: Option<&'a RawValue>,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
    #[serde(borrow, default)]
    extensions: Option<&'a RawValue>,
}

fn field<T: DeserializeOwned>(raw: Option<&RawValue>, name: &'static str) -> Result<Option<T>, Error> {
    match raw {
        None => Ok(None),
        Some(r) if r.get() == "null" => Ok(None),
        Some(r) => serde_json::from_str(r.get()).map(Some).map_err(|e| {
            if is_depth_error(&e) {
                Error::TooDeep { max: MAX_DEPTH }
            } else {
                Error::InvalidField { field: name, reason: syntax_reason(&e) }
            }
        }),
    }
}

fn required<T: DeserializeOwned>(raw: Option<&RawValue>, name: &'static str) -> Result<T, Error> {
    field(raw, name)?.ok_or(Error::MissingField { field: name })
}

impl RawEnvelope<'_> {
    fn into_envelope(self) -> Result<Envelope, DecodeFailure> {
        // Best-effort context first, so that every failure below can be addressed.
        let context = FrameContext {
            id: field(self.id, "id").ok().flatten(),
            type_name: field::<String>(self.type_, "type").ok().flatten().map(|t| crate::error::clip(&t)),
            session_id: field(self.session_id, "session_id").ok().flatten(),
            job_id: field(self.job_id, "job_id").ok().flatten(),
        };
        self.validate().map_err(|error| DecodeFailure { error, context: Box::new(context) })
    }

    fn validate(self) -> Result<Envelope, Error> {
        let version: String = required(self.arcp, "arcp")?;
        let arcp = ProtocolVersion::parse(&version)?;
        let id: MessageId = required(self.id, "id")?;
        let type_name: String = required(self.type_, "type")?;
        let session_id: Option<SessionId> = field(self.session_id, "session_id")?;
        let trace_id: Option<TraceId> = field(self.trace_id, "trace_id")?;
        let job_id: Option<JobId> = field(self.job_id, "job_id")?;
        let event_seq: Option<EventSeq> = field(self.event_seq, "event_seq")?;
        let extensions = field(self.extensions, "extensions")?;
        // An absent (or null) payload is read as `{}` (spec §5.1).
        let empty: Box<RawValue>;
        let payload = match self.payload.filter(|p| p.get() != "null") {
            Some(p) => p,
            None => {
                empty = RawValue::from_string("{}".to_owned()).map_err(|_| Error::MissingField { field: "payload" })?;
                &empty
            }
        };
        if !payload.get().starts_with('{') {
            return Err(Error::InvalidField { field: "payload", reason: "must be a JSON object".into() });
        }

        let message = match classify_type(&type_name) {
            TypeClass::Known => {
                let Some(ty) = MessageType::from_wire(&type_name) else {
                    return Err(Error::UnknownType {
                        type_name: crate::error::clip(&type_name),
                        class: TypeClass::Other,
                    });
                };
                check_envelope_rule(ty, job_id.is_some(), event_seq.is_some())?;
                Message::decode_payload(ty, payload).map_err(|e| {
                    if is_depth_error(&e) {
                        Error::TooDeep { max: MAX_DEPTH }
                    } else {
                        Error::InvalidPayload { message_type: ty.as_str(), reason: syntax_reason(&e) }
                    }
                })?
            }
            TypeClass::Vendor => {
                let payload = serde_json::from_str(payload.get())
                    .map_err(|e| Error::InvalidField { field: "payload", reason: syntax_reason(&e) })?;
                Message::Vendor(VendorMessage { type_name, payload })
            }
            class => return Err(Error::UnknownType { type_name: crate::error::clip(&type_name), class }),
        };
        if let (Some(outer), Some(inner)) = (&job_id, message.payload_job_id())
            && outer != inner
        {
            return Err(Error::InvalidField {
                field: "job_id",
                reason: format!("envelope job_id {outer} differs from payload job_id {inner}"),
            });
        }
        Ok(Envelope { arcp, id, session_id, job_id, event_seq, trace_id, extensions, message })
    }
}

fn check_envelope_rule(ty: MessageType, has_job: bool, has_seq: bool) -> Result<(), Error> {
    match ty.envelope_rule() {
        EnvelopeRule::Sequenced if !has_seq => Err(Error::MissingField { field: "event_seq" }),
        EnvelopeRule::Sequenced | EnvelopeRule::JobScoped if !has_job => Err(Error::MissingField { field: "job_id" }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
