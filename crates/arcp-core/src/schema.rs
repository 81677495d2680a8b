//! JSON Schemas for every message type, event kind and error code, generated with `schemars`
//! from the same types the decoder uses. `cargo xtask schemas` writes them to `spec/schemas/`;
//! `cargo xtask schemas --check` fails when the committed files drift.
//!
//! Files (all draft 2020-12, self-contained: each carries its own `$defs`):
//! - `envelope.json`: any envelope (type and payload left open);
//! - `messages/<type>.json`: the full envelope of one message type;
//! - `events/<kind>.json`: a `job.event` envelope whose payload has that kind;
//! - `errors/<CODE>.json`: an error payload with that code (and its pinned `retryable`).

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::error_code::{CANONICAL_CODES, CodeInfo, Retryable};
use crate::event::EventKind;
use crate::message::{EnvelopeRule, Extensions, MessageType};
use crate::{EventSeq, JobId, MessageId, SessionId, TraceId};

/// One generated schema file.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaFile {
    /// Path relative to `spec/schemas/`, with `/` separators.
    pub path: String,
    /// The schema.
    pub schema: Value,
}

impl SchemaFile {
    /// The file's bytes: pretty JSON with a trailing newline.
    pub fn to_pretty(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.schema).unwrap_or_default();
        s.push('\n');
        s
    }
}

const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12().into_generator()
}

fn sub<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().to_value()
}

fn nullable(schema: Value) -> Value {
    json!({ "anyOf": [schema, { "type": "null" }] })
}

fn finish(mut g: SchemaGenerator, title: &str, description: &str, mut root: Map<String, Value>) -> Value {
    let mut out = Map::new();
    out.insert("$schema".into(), json!(DRAFT));
    out.insert("title".into(), json!(title));
    out.insert("description".into(), json!(description));
    out.append(&mut root);
    let defs: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    if !defs.is_empty() {
        out.insert("$defs".into(), Value::Object(defs));
    }
    Value::Object(out)
}

fn envelope_root(
    g: &mut SchemaGenerator,
    type_schema: Value,
    payload: Value,
    rule: EnvelopeRule,
) -> Map<String, Value> {
    let mut required = vec!["arcp", "id", "type"];
    match rule {
        EnvelopeRule::Plain => {}
        EnvelopeRule::JobScoped => required.push("job_id"),
        EnvelopeRule::Sequenced => required.extend(["job_id", "event_seq"]),
    }
    let properties = json!({
        "arcp": { "enum": ["1", "1.1"], "description": "Protocol version literal (decision 1)." },
        "id": sub::<MessageId>(g),
        "type": type_schema,
        "session_id": nullable(sub::<SessionId>(g)),
        "trace_id": nullable(sub::<TraceId>(g)),
        "job_id": if rule == EnvelopeRule::Plain { nullable(sub::<JobId>(g)) } else { sub::<JobId>(g) },
        "event_seq": if rule == EnvelopeRule::Sequenced { sub::<EventSeq>(g) } else { nullable(sub::<EventSeq>(g)) },
        "payload": nullable(payload),
        "extensions": nullable(sub::<Extensions>(g)),
    });
    let mut root = Map::new();
    root.insert("type".into(), json!("object"));
    root.insert("required".into(), json!(required));
    root.insert("properties".into(), properties);
    root
}

/// The schema of one message type's envelope.
pub fn message_schema(ty: MessageType) -> Value {
    let mut g = generator();
    let payload = ty.payload_schema(&mut g).to_value();
    let root = envelope_root(&mut g, json!({ "const": ty.as_str() }), payload, ty.envelope_rule());
    let description = format!("ARCP `{}` envelope (since {}, {:?}).", ty.as_str(), ty.since(), ty.direction());
    finish(g, ty.as_str(), &description, root)
}

/// The schema of a `job.event` envelope carrying one event kind.
pub fn event_schema(kind: EventKind) -> Value {
    let mut g = generator();
    let payload = json!({
        "type": "object",
        "required": ["kind", "ts", "body"],
        "properties": {
            "kind": { "const": kind.as_str() },
            "ts": sub::<crate::Timestamp>(&mut g),
            "body": kind.body_schema(&mut g).to_value(),
        },
    });
    let root = envelope_root(&mut g, json!({ "const": "job.event" }), payload, EnvelopeRule::Sequenced);
    let description = format!("`job.event` with kind `{}` (since {}).", kind.as_str(), kind.since());
    finish(g, &format!("job.event:{}", kind.as_str()), &description, root)
}

/// The schema of an error payload carrying one canonical code.
pub fn error_code_schema(info: &CodeInfo) -> Value {
    let g = generator();
    let retryable = match info.retryable {
        Retryable::Pinned(v) => json!({ "const": v, "description": "Pinned (decision 10)." }),
        Retryable::Default(v) => json!({ "type": "boolean", "default": v }),
    };
    let mut root = Map::new();
    root.insert("type".into(), json!("object"));
    root.insert("required".into(), json!(["code", "message"]));
    root.insert(
        "properties".into(),
        json!({
            "code": { "const": info.code },
            "message": { "type": "string" },
            "retryable": retryable,
            "details": true,
        }),
    );
    finish(g, info.code, info.meaning, root)
}

/// The schema of any envelope (type and payload open).
pub fn envelope_schema() -> Value {
    let mut g = generator();
    let root = envelope_root(
        &mut g,
        json!({ "type": "string", "minLength": 1 }),
        json!({ "type": "object" }),
        EnvelopeRule::Plain,
    );
    finish(g, "envelope", "Any ARCP envelope (§5); unknown top-level fields are ignored.", root)
}

/// Every schema file, in a stable order.
pub fn all_schemas() -> Vec<SchemaFile> {
    let mut files = vec![SchemaFile { path: "envelope.json".into(), schema: envelope_schema() }];
    files.extend(
        MessageType::ALL
            .iter()
            .map(|t| SchemaFile { path: format!("messages/{}.json", t.as_str()), schema: message_schema(*t) }),
    );
    files.extend(
        EventKind::ALL
            .iter()
            .map(|k| SchemaFile { path: format!("events/{}.json", k.as_str()), schema: event_schema(*k) }),
    );
    files.extend(
        CANONICAL_CODES
            .iter()
            .map(|c| SchemaFile { path: format!("errors/{}.json", c.code), schema: error_code_schema(c) }),
    );
    files
}
