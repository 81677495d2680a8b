//! `plugin-api`: what a plugin asks for (its [`Manifest`]), what the operator grants (the
//! [`Policy`]), the version rule, and the load decision between them ([`decide`] → [`Grant`]
//! or [`PluginRefused`]). The runtime enforces the result at load and at every call.
//!
//! Sans-IO, deliberately: no async runtime, no sockets, no files (`xtask/tests/tidy.rs`
//! checks the dependency graph). Callers read manifests and policies and pass text in; facts
//! only the runtime can learn (is a certificate file readable? what does a name resolve to?)
//! come in as arguments ([`Grant::verify_mtls_files`], [`is_forbidden_address`]).
//!
//! | module | holds |
//! |---|---|
//! | `version` | [`PLUGIN_API_VERSION`], [`Version`] (`major.minor.patch`), the load rule |
//! | `capability` | [`Capability`] and its surface table, [`BUILTIN_ONLY`], [`RootCombination`] |
//! | `host` | host-pattern normalisation, matching and intersection |
//! | `address` | the private/reserved address ranges outbound calls must never reach |
//! | `names` | [`PluginName`], [`SecretName`], [`SchemaPrefix`], [`MigrationName`], route prefixes |
//! | `manifest` | [`Manifest`], [`validate_manifest`] → [`ValidManifest`] |
//! | `policy` | [`Policy`], [`validate_policy`] → [`ValidPolicy`] |
//! | `decide` | [`decide`], [`Grant`], [`Roster`] |
//! | `error` | [`Error`], [`PluginRefused`] and [`RefusalReason`], the violation types |
//! | `problem` | [`Problem`] (path + message), [`Format`] |
//! | `schema` | the JSON Schemas of manifest and policy |
//!
//! The membrane itself (a per-plugin context whose every surface calls [`Grant::require`],
//! revoked at teardown, reload or policy change) lives in the runtime. Like the TypeScript
//! original's, it is **not a sandbox** for compiled-in Rust plugins: such code runs in the
//! runtime's process with its authority, and the membrane only keeps honest plugins honest
//! and their mistakes audited. A WebAssembly host, where the membrane is the sandbox, is a
//! later goal.

mod address;
mod capability;
mod decide;
mod error;
mod host;
mod manifest;
mod names;
mod policy;
mod problem;
pub mod schema;
mod version;

pub use address::is_forbidden_address;
pub use capability::{BUILTIN_ONLY, Capability, RootCombination, Surface};
pub use decide::{Grant, Origin, Roster, decide, load_manifest, refuse_manifest};
pub use error::{
    CapabilityViolation, CapabilityViolationReason, DbScopeReason, DbScopeViolation, Error, OutboundHostReason,
    OutboundHostViolation, PluginRefused, PolicyViolation, PolicyViolationReason, RefusalReason,
};
pub use host::{HostPattern, match_outbound_host, normalize_host, normalize_host_pattern};
pub use manifest::{
    HOST_PATTERN_SHAPE, MANIFEST_KEYS, Manifest, Migration, RoutePrefix, ValidManifest, ValidMigration,
    validate_manifest,
};
pub use names::{
    MIGRATION_NAME_MAX_LEN, MIGRATION_NAME_PATTERN, MigrationName, PLUGIN_NAME_MAX_LEN, PLUGIN_NAME_PATTERN,
    PluginName, RESERVED_ROUTE_SEGMENTS, RESERVED_SCHEMA_PREFIXES, ROUTE_PREFIX_MAX_LEN, ROUTE_PREFIX_PATTERN,
    SCHEMA_PREFIX_MAX_LEN, SCHEMA_PREFIX_PATTERN, SECRET_NAME_MAX_LEN, SECRET_NAME_PATTERN, SchemaPrefix, SecretName,
    check_absolute_route_prefix,
};
pub use policy::{
    MtlsFiles, POLICY_ENTRY_KEYS, POLICY_KEYS, Policy, PolicyEntry, ValidPolicy, ValidPolicyEntry, load_policy,
    validate_policy,
};
pub use problem::{Format, Problem};
pub use version::{
    PLUGIN_API_VERSION, Upgrade, VERSION_MAX_LEN, VERSION_PATTERN, Version, check_api_compatible,
    check_api_compatible_with, compatibility,
};
