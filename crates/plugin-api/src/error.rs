//! The crate's error type [`Error`], the load refusal [`PluginRefused`] with its stable
//! [`RefusalReason`]s, and the violation types the runtime raises at call time
//! ([`CapabilityViolation`], [`OutboundHostViolation`], [`DbScopeViolation`],
//! [`PolicyViolation`]).
//!
//! Who caused what: a refusal is caused by the plugin's manifest or the operator's policy (the
//! `remediation` says whom to ask); a violation is caused by the plugin's code at call time;
//! the parse errors are caused by whoever wrote the input. [`Error::reason`] is the single
//! mapping to the stable machine-readable strings.

use std::fmt;

use serde::Serialize;

use crate::capability::Capability;
use crate::problem::Problem;

/// Everything that can go wrong in `plugin-api`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A plugin was refused at load.
    #[error(transparent)]
    Refused(#[from] PluginRefused),
    /// A plugin used a surface it was not granted (or after its context was revoked).
    #[error(transparent)]
    Capability(#[from] CapabilityViolation),
    /// A plugin's outbound HTTP call was refused.
    #[error(transparent)]
    OutboundHost(#[from] OutboundHostViolation),
    /// A plugin's SQL touched a table outside its schema prefix.
    #[error(transparent)]
    DbScope(#[from] DbScopeViolation),
    /// The operator policy is unusable as a whole.
    #[error(transparent)]
    Policy(#[from] PolicyViolation),
    /// A host pattern (or a host) is not a valid hostname pattern.
    #[error("invalid host pattern {input:?}: {reason}")]
    InvalidHostPattern {
        /// The input (truncated to 256 characters).
        input: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A version is not `major.minor.patch`.
    #[error("invalid version {input:?}: {reason}")]
    InvalidVersion {
        /// The input (truncated to 64 characters).
        input: String,
        /// Why it is invalid.
        reason: String,
    },
}

impl Error {
    /// The stable machine-readable reason: a [`RefusalReason`] string for refusals, the
    /// violation's reason for violations, `invalid_host_pattern` / `invalid_version` otherwise.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Refused(r) => r.reason.as_str(),
            Self::Capability(v) => v.reason.as_str(),
            Self::OutboundHost(v) => v.reason.as_str(),
            Self::DbScope(v) => v.reason.as_str(),
            Self::Policy(v) => v.reason.as_str(),
            Self::InvalidHostPattern { .. } => "invalid_host_pattern",
            Self::InvalidVersion { .. } => "invalid_version",
        }
    }
}

macro_rules! reasons {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every reason, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stable machine-readable string.
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

reasons! {
    /// Why a plugin was refused at load. The strings are a stable contract (logs, audit,
    /// operator tooling); the first twelve are modelled on the TypeScript original's list, the
    /// last three are ours.
    pub enum RefusalReason {
        /// The manifest does not parse or breaks a validation rule (`validate_manifest`).
        ManifestInvalid = "manifest_invalid",
        /// The plugin's `apiVersion` fails the version rule.
        ApiVersionIncompatible = "api_version_incompatible",
        /// The operator policy has no entry for the plugin.
        PolicyMissing = "policy_missing",
        /// The policy pins a plugin `version` different from the manifest's.
        PolicyVersionMismatch = "policy_version_mismatch",
        /// The policy grants a capability the manifest does not request.
        PolicyCapabilityDrift = "policy_capability_drift",
        /// The policy allows an outbound host pattern that intersects no manifest pattern.
        PolicyOutboundHostDrift = "policy_outbound_host_drift",
        /// The policy's mTLS secrets and the manifest's `mtlsSecrets` differ.
        PolicyMtlsSecretDrift = "policy_mtls_secret_drift",
        /// A provisioned mTLS certificate or key file cannot be read (the runtime reports
        /// which; see `Grant::verify_mtls_files`).
        MtlsSecretUnreadable = "mtls_secret_unreadable",
        /// The manifest's `schemaPrefix` is missing, malformed or not the plugin's own, or
        /// overlaps another loaded plugin's prefix.
        SchemaPrefixInvalid = "schema_prefix_invalid",
        /// An external plugin would hold a root-equivalent combination the policy does not
        /// acknowledge.
        ExternalRootCombination = "external_root_combination",
        /// An external plugin requests a builtin-only capability.
        BuiltinOnly = "builtin_only",
        /// An external plugin asks for an absolute route prefix.
        AbsoluteRouteDenied = "absolute_route_denied",
        /// The policy entry has `enabled = false`.
        Disabled = "disabled",
        /// Another plugin with the same name is already loaded.
        DuplicateName = "duplicate_name",
        /// Another plugin already claimed the notification kind.
        DuplicateNotificationKind = "duplicate_notification_kind",
    }
}

/// A plugin refused at load: a stable `reason`, a message naming the plugin, and when we can
/// say it, what to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct PluginRefused {
    /// The stable reason.
    pub reason: RefusalReason,
    /// The plugin's name as written in its manifest, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// For a human: what was refused and why.
    pub message: String,
    /// For a human: what to change (in the manifest, the policy or the deployment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<String>,
    /// For `manifest_invalid` and `schema_prefix_invalid`: every problem found.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

impl PluginRefused {
    /// A refusal without remediation or problems.
    pub fn new(reason: RefusalReason, plugin: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            reason,
            plugin: plugin.map(str::to_owned),
            message: message.into(),
            remediation: None,
            problems: Vec::new(),
        }
    }

    /// Adds a remediation.
    #[must_use]
    pub fn with_remediation(mut self, remediation: impl Into<String>) -> Self {
        self.remediation = Some(remediation.into());
        self
    }

    /// Attaches the validation problems behind the refusal.
    #[must_use]
    pub fn with_problems(mut self, problems: Vec<Problem>) -> Self {
        self.problems = problems;
        self
    }
}

reasons! {
    /// Why a [`CapabilityViolation`] was raised.
    pub enum CapabilityViolationReason {
        /// The capability was not granted to the plugin.
        NotGranted = "capability_not_granted",
        /// The plugin's context was revoked (teardown, reload, policy change).
        Revoked = "context_revoked",
    }
}

/// A plugin used a surface without a grant, or after its context was revoked. The runtime
/// raises it at call time and writes it to the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("plugin `{plugin}` used `{capability}` ({surface}): {}", match .reason {
    CapabilityViolationReason::NotGranted => "capability not granted",
    CapabilityViolationReason::Revoked => "its context was revoked",
})]
pub struct CapabilityViolation {
    /// The stable reason.
    pub reason: CapabilityViolationReason,
    /// The plugin.
    pub plugin: String,
    /// The capability whose surface was used.
    pub capability: Capability,
    /// The surface, as named in the plugin context (e.g. `ctx.storage`).
    pub surface: &'static str,
}

impl CapabilityViolation {
    /// A violation for `capability` by `plugin`.
    pub fn new(reason: CapabilityViolationReason, plugin: &str, capability: Capability) -> Self {
        Self { reason, plugin: plugin.to_owned(), capability, surface: capability.surface().context }
    }
}

reasons! {
    /// Why an [`OutboundHostViolation`] was raised.
    pub enum OutboundHostReason {
        /// The URL does not parse or has no host.
        InvalidUrl = "invalid_url",
        /// The scheme is not `http` or `https`.
        SchemeNotAllowed = "scheme_not_allowed",
        /// The host matches no pattern of the effective allowlist (manifest ∩ policy).
        HostNotAllowed = "host_not_allowed",
        /// A resolved address is private or reserved (see `is_forbidden_address`).
        PrivateAddress = "private_address",
        /// More than the allowed number of redirects.
        TooManyRedirects = "too_many_redirects",
    }
}

/// A plugin's outbound HTTP call was refused before (or while) it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("plugin `{plugin}` outbound call to {target:?} refused: {reason}")]
pub struct OutboundHostViolation {
    /// The stable reason.
    pub reason: OutboundHostReason,
    /// The plugin.
    pub plugin: String,
    /// What was refused: a host, a URL or an address, as the runtime saw it.
    pub target: String,
}

reasons! {
    /// Why a [`DbScopeViolation`] was raised.
    pub enum DbScopeReason {
        /// A table (or other object) name is outside the plugin's `schemaPrefix`.
        OutsideSchemaPrefix = "outside_schema_prefix",
    }
}

/// A plugin's migration touched a database object outside its `schemaPrefix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("plugin `{plugin}` touched `{object}`, outside its schema prefix `{schema_prefix}`")]
pub struct DbScopeViolation {
    /// The stable reason.
    pub reason: DbScopeReason,
    /// The plugin.
    pub plugin: String,
    /// The object named (a table, an index, …).
    pub object: String,
    /// The plugin's prefix.
    pub schema_prefix: String,
}

reasons! {
    /// Why a [`PolicyViolation`] was raised.
    pub enum PolicyViolationReason {
        /// The policy file does not parse or breaks a validation rule; `problems` lists all.
        PolicyInvalid = "policy_invalid",
        /// The policy has an entry for a plugin that is not installed.
        UnknownPlugin = "unknown_plugin",
    }
}

/// The operator policy is unusable: the runtime refuses to start (or to reload) with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct PolicyViolation {
    /// The stable reason.
    pub reason: PolicyViolationReason,
    /// For a human.
    pub message: String,
    /// Every problem found (for `policy_invalid`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

impl PolicyViolation {
    /// `policy_invalid` with every problem.
    pub fn invalid(problems: Vec<Problem>) -> Self {
        let message = format!(
            "the operator policy is invalid ({} problem{}): {}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        );
        Self { reason: PolicyViolationReason::PolicyInvalid, message, problems }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_reasons_are_the_stable_list() {
        let all: Vec<&str> = RefusalReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            all,
            [
                "manifest_invalid",
                "api_version_incompatible",
                "policy_missing",
                "policy_version_mismatch",
                "policy_capability_drift",
                "policy_outbound_host_drift",
                "policy_mtls_secret_drift",
                "mtls_secret_unreadable",
                "schema_prefix_invalid",
                "external_root_combination",
                "builtin_only",
                "absolute_route_denied",
                "disabled",
                "duplicate_name",
                "duplicate_notification_kind",
            ]
        );
        for r in RefusalReason::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }

    #[test]
    fn refusals_serialise_without_empty_fields() {
        let r = PluginRefused::new(RefusalReason::Disabled, Some("demo"), "plugin `demo` is disabled");
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"reason": "disabled", "plugin": "demo", "message": "plugin `demo` is disabled"})
        );
        assert_eq!(Error::from(r).reason(), "disabled");
    }

    #[test]
    fn violations_have_stable_reasons_and_say_who() {
        let v = CapabilityViolation::new(CapabilityViolationReason::NotGranted, "demo", Capability::StorageKv);
        assert_eq!(Error::from(v.clone()).reason(), "capability_not_granted");
        assert!(v.to_string().contains("ctx.storage"), "{v}");
        let v = OutboundHostViolation {
            reason: OutboundHostReason::PrivateAddress,
            plugin: "demo".into(),
            target: "10.0.0.1".into(),
        };
        assert_eq!(Error::from(v).reason(), "private_address");
        let v = PolicyViolation::invalid(vec![Problem::new("/plugins", "x")]);
        assert_eq!(v.reason.as_str(), "policy_invalid");
        assert!(v.message.contains("1 problem"));
    }
}
