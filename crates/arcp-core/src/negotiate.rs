//! Feature flags and capability negotiation (§6.2).
//!
//! The effective feature set is the intersection of what the client offered and what the
//! runtime advertises (in the runtime's order). Other capability keys: `encodings` intersect
//! when both sides list them, `agents` always come from the runtime, unknown (vendor) keys are
//! merged with the client's value winning.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::agent::AgentInventory;

/// A feature flag. Open: flags from newer peers decode and are simply never negotiated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Feature(Cow<'static, str>);

macro_rules! features {
    ($( $(#[$doc:meta])* $konst:ident = $wire:literal; )*) => {
        impl Feature {
            $( $(#[$doc])* pub const $konst: Feature = Feature(Cow::Borrowed($wire)); )*
        }
        /// Every v1.1 feature flag, in the spec's order.
        pub const ALL_FEATURES: &[&str] = &[$($wire),*];
    };
}

features! {
    /// `session.ping`/`session.pong` liveness (§6.4).
    HEARTBEAT = "heartbeat";
    /// `session.ack` and back-pressure (§6.5).
    ACK = "ack";
    /// `session.list_jobs` (§6.6).
    LIST_JOBS = "list_jobs";
    /// `job.subscribe` (§7.6).
    SUBSCRIBE = "subscribe";
    /// `lease_constraints.expires_at` (§9.5).
    LEASE_EXPIRES_AT = "lease_expires_at";
    /// The `cost.budget` capability (§9.6).
    COST_BUDGET = "cost.budget";
    /// The `model.use` capability (§9.7).
    MODEL_USE = "model.use";
    /// Provisioned credentials in `job.accepted` (§9.8).
    PROVISIONED_CREDENTIALS = "provisioned_credentials";
    /// `progress` events (§8.2).
    PROGRESS = "progress";
    /// `result_chunk` events (§8.4).
    RESULT_CHUNK = "result_chunk";
    /// `name@version` agents and the rich inventory (§7.5).
    AGENT_VERSIONS = "agent_versions";
}

impl Feature {
    /// A feature flag from its wire name (any non-empty string up to 128 bytes).
    pub fn new(s: &str) -> Result<Self, crate::Error> {
        if s.is_empty() || s.len() > 128 {
            return Err(crate::Error::InvalidField {
                field: "features",
                reason: "a feature flag is 1..=128 bytes".into(),
            });
        }
        Ok(match ALL_FEATURES.iter().find(|f| **f == s) {
            Some(known) => Feature(Cow::Borrowed(known)),
            None => Feature(Cow::Owned(s.to_owned())),
        })
    }

    /// The wire name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Feature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Feature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        Feature::new(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Feature {
    fn schema_name() -> Cow<'static, str> {
        "Feature".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "examples": ALL_FEATURES,
        })
    }
}

#[cfg(any(test, feature = "proptest"))]
impl proptest::arbitrary::Arbitrary for Feature {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        use proptest::prelude::*;
        prop_oneof![
            proptest::sample::select(ALL_FEATURES).prop_map(|f| Feature(Cow::Borrowed(f))),
            "[a-z_]{1,12}".prop_map(|s| Feature::new(&s).unwrap_or(Feature::ACK)),
        ]
        .boxed()
    }
}

/// The `capabilities` object of `session.hello` / `session.welcome`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct Capabilities {
    /// Encodings the peer speaks (`json` is the only one defined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        any(test, feature = "proptest"),
        proptest(strategy = "proptest::option::of(proptest::collection::vec(\"(json|cbor)\", 0..2))")
    )]
    pub encodings: Option<Vec<String>>,
    /// v1.1 feature flags. Absent means a v1.0 peer: nothing is negotiated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<Feature>>,
    /// The runtime's agent inventory (either shape). Ignored when a client sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<AgentInventory>,
    /// Any other (vendor) capability keys, kept verbatim.
    #[serde(flatten)]
    #[cfg_attr(
        any(test, feature = "proptest"),
        proptest(
            strategy = "proptest::collection::btree_map(\"x-vendor\\\\.[a-z]{1,4}\\\\.[a-z]{1,4}\", crate::message::arb::json_value(), 0..2)"
        )
    )]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// The effective features: those the runtime advertises that the client also offered, in the
/// runtime's order. A client that sent no `features` (v1.0) gets none.
pub fn intersect_features(runtime: &[Feature], client: Option<&[Feature]>) -> Vec<Feature> {
    let Some(client) = client else { return Vec::new() };
    runtime.iter().filter(|f| client.contains(f)).cloned().collect()
}

/// The capabilities a welcome carries, given what the client sent and what the runtime offers.
pub fn negotiate_capabilities(client: Option<&Capabilities>, runtime: &Capabilities) -> Capabilities {
    let encodings = match (client.and_then(|c| c.encodings.as_ref()), runtime.encodings.as_ref()) {
        (Some(c), Some(r)) => Some(r.iter().filter(|e| c.contains(e)).cloned().collect()),
        (None, r) => r.cloned(),
        (Some(_), None) => None,
    };
    let features = runtime
        .features
        .as_ref()
        .and_then(|r| client.and_then(|c| c.features.as_deref()).map(|c| intersect_features(r, Some(c))));
    let mut other = runtime.other.clone();
    if let Some(c) = client {
        for (k, v) in &c.other {
            other.insert(k.clone(), v.clone());
        }
    }
    Capabilities { encodings, features, agents: runtime.agents.clone(), other }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feats(names: &[&str]) -> Vec<Feature> {
        names.iter().map(|n| Feature::new(n).unwrap()).collect()
    }

    #[test]
    fn intersection_keeps_runtime_order() {
        let runtime = feats(&["heartbeat", "ack", "list_jobs", "subscribe"]);
        let client = feats(&["subscribe", "heartbeat", "x-new"]);
        assert_eq!(intersect_features(&runtime, Some(&client)), feats(&["heartbeat", "subscribe"]));
        assert!(intersect_features(&runtime, None).is_empty());
        assert!(intersect_features(&runtime, Some(&[])).is_empty());
    }

    #[test]
    fn capability_merge() {
        let client: Capabilities = serde_json::from_value(serde_json::json!({
            "encodings": ["json", "cbor"], "features": ["ack", "progress"],
            "agents": ["ignored"], "x-vendor.acme.mode": "fast"
        }))
        .unwrap();
        let runtime: Capabilities = serde_json::from_value(serde_json::json!({
            "encodings": ["json"], "features": ["heartbeat", "ack"],
            "agents": [{"name": "echo", "versions": []}], "x-vendor.acme.mode": "slow", "x-vendor.acme.other": 1
        }))
        .unwrap();
        let out = serde_json::to_value(negotiate_capabilities(Some(&client), &runtime)).unwrap();
        assert_eq!(
            out,
            serde_json::json!({
                "encodings": ["json"], "features": ["ack"],
                "agents": [{"name": "echo", "versions": []}],
                "x-vendor.acme.mode": "fast", "x-vendor.acme.other": 1
            })
        );
        let v10 = negotiate_capabilities(None, &runtime);
        assert_eq!(v10.features, None, "a v1.0 client gets no features key");
    }
}
