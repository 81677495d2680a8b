//! JSON Schemas (draft 2020-12) for the [`Manifest`] and the [`Policy`], generated with
//! `schemars` from the same types the readers fill. `cargo xtask schemas` writes them to
//! `spec/schemas/plugins/`; `--check` fails when the committed files drift.
//!
//! The schemas check shape and per-field grammars; cross-field rules live in
//! [`crate::validate_manifest`] and [`crate::validate_policy`] only (a schema-valid document
//! may still be invalid; a schema-invalid one never is valid).

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::manifest::Manifest;
use crate::policy::Policy;

/// One generated schema file.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaFile {
    /// Path relative to `spec/schemas/`, with `/` separators.
    pub path: &'static str,
    /// The schema.
    pub schema: Value,
}

fn schema_for<T: JsonSchema>() -> Value {
    SchemaSettings::draft2020_12().into_generator().into_root_schema_for::<T>().to_value()
}

/// The manifest schema.
pub fn manifest_schema() -> Value {
    schema_for::<Manifest>()
}

/// The operator policy schema.
pub fn policy_schema() -> Value {
    schema_for::<Policy>()
}

/// Every schema file of this crate.
pub fn all_schemas() -> Vec<SchemaFile> {
    vec![
        SchemaFile { path: "plugins/manifest.json", schema: manifest_schema() },
        SchemaFile { path: "plugins/policy.json", schema: policy_schema() },
    ]
}
