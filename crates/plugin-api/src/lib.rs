//! `plugin-api`: plugin manifests, capabilities and operator policy (not yet built).
//!
//! This crate will own the plugin manifest and policy types, their validation with paths and
//! messages, the capability list and surface map, host-pattern matching and the version rule.
//! It will stay light: no async runtime, no IO. Tracked by the issue "plugin-api and the
//! capability membrane".
