//! Leases as they travel on the wire: unvalidated maps and constraints.
//!
//! A bad lease in a `job.submit` is a *job* error (`job.error INVALID_REQUEST` under a fresh
//! job id), not a session error, so the wire types accept any map of strings and the typed,
//! validated view is built by [`crate::lease::Lease::from_wire`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A lease on the wire: capability name → glob patterns (`lease_request`, `lease`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
#[serde(transparent)]
pub struct LeaseMap(
    #[cfg_attr(any(test, feature = "proptest"), proptest(strategy = "crate::message::arb::lease_map()"))]
    pub  BTreeMap<String, Vec<String>>,
);

impl LeaseMap {
    /// Whether the lease grants nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `lease_constraints` (§9.5): today only `expires_at`, kept as the raw wire string; parse it
/// with [`crate::lease::ExpiresAt::parse`]. Unknown keys are kept (never silently dropped:
/// dropping a constraint would widen authority) so the runtime can refuse them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(any(test, feature = "proptest"), derive(proptest_derive::Arbitrary))]
pub struct LeaseConstraints {
    /// When the lease stops authorising operations: RFC 3339 UTC with a `Z` suffix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        any(test, feature = "proptest"),
        proptest(strategy = "proptest::option::of(crate::message::arb::utc_timestamp())")
    )]
    pub expires_at: Option<String>,
    /// Constraint keys this build does not know; a runtime refuses a lease that has any.
    #[serde(flatten)]
    #[cfg_attr(
        any(test, feature = "proptest"),
        proptest(
            strategy = "proptest::collection::btree_map(\"max_[a-z]{1,5}\", crate::message::arb::non_null_value(), 0..2)"
        )
    )]
    pub unknown: std::collections::BTreeMap<String, serde_json::Value>,
}
