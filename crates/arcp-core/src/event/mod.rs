//! `job.event` payloads (§8): `{kind, ts, body}` with a typed body per reserved kind.
//!
//! Vendor kinds (`x-vendor.*`) are kept as raw JSON; kinds this build does not know are kept
//! too ([`EventBody::Unknown`]) because receivers must ignore, not reject, unknown kinds. A
//! reserved kind with a malformed body is an error.

mod bodies;

use std::borrow::Cow;

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

pub use bodies::{
    ArtifactRef, ChunkEncoding, Delegate, Log, LogLevel, Metric, Progress, ResultChunk, Status, Thought, ToolCall,
    ToolResult,
};

use crate::Timestamp;

macro_rules! event_kinds {
    ($( $(#[$doc:meta])* $variant:ident($body:ty) = $wire:literal, $since:literal; )*) => {
        /// A reserved event kind.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum EventKind {
            $( $(#[$doc])* $variant, )*
        }

        impl EventKind {
            /// Every reserved kind.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant),*];

            /// The wire name.
            pub const fn as_str(self) -> &'static str {
                match self { $(EventKind::$variant => $wire,)* }
            }

            /// The reserved kind with this wire name.
            pub fn from_wire(s: &str) -> Option<Self> {
                match s { $($wire => Some(EventKind::$variant),)* _ => None }
            }

            /// The protocol version that introduced the kind.
            pub const fn since(self) -> &'static str {
                match self { $(EventKind::$variant => $since,)* }
            }

            /// The JSON Schema of this kind's body.
            pub fn body_schema(self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                match self { $(EventKind::$variant => generator.subschema_for::<$body>(),)* }
            }
        }

        /// The body of a `job.event`, by kind.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum EventBody {
            $( $(#[$doc])* $variant($body), )*
            /// A vendor kind (`x-vendor.*`), body kept as raw JSON.
            Vendor {
                /// The vendor kind.
                kind: String,
                /// The body, verbatim.
                body: serde_json::Value,
            },
            /// A kind this build does not know; receivers ignore it.
            Unknown {
                /// The kind.
                kind: String,
                /// The body, verbatim.
                body: serde_json::Value,
            },
        }

        impl EventBody {
            /// The wire kind.
            pub fn kind(&self) -> &str {
                match self {
                    $(EventBody::$variant(_) => $wire,)*
                    EventBody::Vendor { kind, .. } | EventBody::Unknown { kind, .. } => kind,
                }
            }

            fn serialize_body<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
                match self {
                    $(EventBody::$variant(b) => map.serialize_entry("body", b),)*
                    EventBody::Vendor { body, .. } | EventBody::Unknown { body, .. } => map.serialize_entry("body", body),
                }
            }

            fn decode(kind: String, body: &RawValue) -> Result<Self, String> {
                match kind.as_str() {
                    $($wire => serde_json::from_str::<$body>(body.get())
                        .map(EventBody::$variant)
                        .map_err(|e| format!("invalid {} body: {e}", $wire)),)*
                    _ => {
                        let body = serde_json::from_str(body.get()).map_err(|e| e.to_string())?;
                        if crate::names::is_vendor_kind(&kind) {
                            Ok(EventBody::Vendor { kind, body })
                        } else {
                            Ok(EventBody::Unknown { kind, body })
                        }
                    }
                }
            }
        }

        $(
            impl From<$body> for EventBody {
                fn from(b: $body) -> Self {
                    EventBody::$variant(b)
                }
            }
        )*

        #[cfg(any(test, feature = "proptest"))]
        impl proptest::arbitrary::Arbitrary for EventBody {
            type Parameters = ();
            type Strategy = proptest::strategy::BoxedStrategy<Self>;

            fn arbitrary_with(_: ()) -> Self::Strategy {
                use proptest::prelude::*;
                prop_oneof![
                    $(any::<$body>().prop_map(EventBody::$variant),)*
                    ("x-vendor\\.acme\\.[a-z]{1,6}", crate::message::arb::json_value())
                        .prop_map(|(kind, body)| EventBody::Vendor { kind, body }),
                    ("[a-z]{3,9}", crate::message::arb::json_value())
                        .prop_filter("not a reserved kind", |(k, _)| EventKind::from_wire(k).is_none())
                        .prop_map(|(kind, body)| EventBody::Unknown { kind, body }),
                ]
                .boxed()
            }
        }
    };
}

event_kinds! {
    /// `log`.
    Log(Log) = "log", "1";
    /// `thought`.
    Thought(Thought) = "thought", "1";
    /// `tool_call`.
    ToolCall(ToolCall) = "tool_call", "1";
    /// `tool_result`.
    ToolResult(ToolResult) = "tool_result", "1";
    /// `status`.
    Status(Status) = "status", "1";
    /// `metric`.
    Metric(Metric) = "metric", "1";
    /// `artifact_ref`.
    ArtifactRef(ArtifactRef) = "artifact_ref", "1";
    /// `delegate`.
    Delegate(Delegate) = "delegate", "1";
    /// `progress` (v1.1).
    Progress(Progress) = "progress", "1.1";
    /// `result_chunk` (v1.1).
    ResultChunk(ResultChunk) = "result_chunk", "1.1";
}

/// A `job.event` payload: `{kind, ts, body}`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct JobEvent {
    /// When the event happened (kept verbatim through replays).
    pub ts: Timestamp,
    /// What happened.
    pub body: EventBody,
}

impl Serialize for JobEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("kind", self.body.kind())?;
        map.serialize_entry("ts", &self.ts)?;
        self.body.serialize_body(&mut map)?;
        map.end()
    }
}

#[derive(Deserialize)]
struct OwnedRawEvent {
    kind: String,
    ts: Timestamp,
    body: Box<RawValue>,
}

impl<'de> Deserialize<'de> for JobEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = OwnedRawEvent::deserialize(d)?;
        if raw.kind.is_empty() || raw.kind.len() > 256 {
            return Err(D::Error::custom("`kind` must be 1..=256 bytes"));
        }
        let body = EventBody::decode(raw.kind, &raw.body).map_err(D::Error::custom)?;
        Ok(JobEvent { ts: raw.ts, body })
    }
}

impl schemars::JsonSchema for JobEvent {
    fn schema_name() -> Cow<'static, str> {
        "JobEvent".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let ts = generator.subschema_for::<Timestamp>();
        let mut variants: Vec<serde_json::Value> = EventKind::ALL
            .iter()
            .map(|k| {
                serde_json::json!({
                    "type": "object",
                    "required": ["kind", "ts", "body"],
                    "properties": { "kind": { "const": k.as_str() }, "ts": ts, "body": k.body_schema(generator) },
                })
            })
            .collect();
        let reserved: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        variants.push(serde_json::json!({
            "description": "Vendor (x-vendor.*) or unknown kind: body kept verbatim.",
            "type": "object",
            "required": ["kind", "ts", "body"],
            "properties": { "kind": { "type": "string", "minLength": 1, "maxLength": 256, "not": { "enum": reserved } }, "ts": ts, "body": true },
        }));
        schemars::json_schema!({ "oneOf": variants })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(json: &str) -> Result<JobEvent, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn typed_vendor_and_unknown_kinds() {
        let e =
            ev(r#"{"kind":"progress","ts":"2026-11-23T08:10:31.087Z","body":{"current":1,"total":3,"units":"steps"}}"#)
                .unwrap();
        assert!(matches!(e.body, EventBody::Progress(_)));
        let e = ev(r#"{"kind":"x-vendor.acme.blip","ts":"2026-11-23T08:10:31Z","body":{"a":[1]}}"#).unwrap();
        assert!(matches!(e.body, EventBody::Vendor { .. }));
        let e = ev(r#"{"kind":"sparkle","ts":"2026-11-23T08:10:31Z","body":7}"#).unwrap();
        assert!(matches!(e.body, EventBody::Unknown { .. }));
        assert!(ev(r#"{"kind":"progress","ts":"2026-11-23T08:10:31Z","body":{"current":-1}}"#).is_err());
        assert!(ev(r#"{"kind":"log","ts":"2026-11-23T08:10:31Z","body":{"level":"loud","message":"x"}}"#).is_err());
    }

    #[test]
    fn metric_accepts_dims_and_emits_dimensions() {
        let e = ev(r#"{"kind":"metric","ts":"2026-11-23T08:10:31Z","body":{"name":"cost.x","value":0.0234,"unit":"USD","dims":{"model":"m"}}}"#).unwrap();
        let out = serde_json::to_value(&e).unwrap();
        assert_eq!(out["body"]["dimensions"]["model"], "m");
        assert!(out["body"].get("dims").is_none());
        assert_eq!(out["body"]["value"].to_string(), "0.0234");
    }

    #[test]
    fn decodes_from_a_value_too() {
        let v = serde_json::json!({"kind":"thought","ts":"2026-11-23T08:10:31Z","body":{"text":"hm"}});
        let e: JobEvent = serde_json::from_value(v).unwrap();
        assert_eq!(e.body, EventBody::Thought(Thought { text: "hm".into() }));
    }
}
