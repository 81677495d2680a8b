//! The generated JSON Schemas and the validators agree: every example manifest and policy (the
//! fixture files and the inline cases below) is checked with the `jsonschema` crate against
//! `plugin_api::schema` and with `validate_manifest` / `validate_policy`.
//!
//! The schemas check shape and per-field grammars; cross-field rules are code-only. So: a
//! schema-invalid document is always invalid in code, and schema and code agree on every
//! example except those listed as code-only, which must be schema-valid and code-invalid.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

use plugin_api::{Format, Manifest, Policy, validate_manifest, validate_policy};
use serde_json::{Value, json};

fn code_valid_manifest(v: &Value) -> bool {
    Manifest::from_value(v).is_ok_and(|m| validate_manifest(&m).is_ok())
}

fn code_valid_policy(v: &Value) -> bool {
    Policy::from_value(v).is_ok_and(|p| validate_policy(&p).is_ok())
}

fn read_dir(rel: &str) -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel);
    let mut out: Vec<(String, Value)> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|path| {
            let format = Format::from_extension(path.extension()?.to_str()?)?;
            let text = fs::read_to_string(&path).unwrap();
            let value: Value = match format {
                Format::Json => serde_json::from_str(&text).unwrap(),
                Format::Toml => toml::from_str(&text).unwrap(),
                _ => return None,
            };
            Some((path.file_name()?.to_str()?.to_owned(), value))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no fixtures in {rel}");
    out
}

/// Checks every example: `(label, document, code-only rule broken?)`.
fn check(schema: &Value, code_valid: fn(&Value) -> bool, examples: &[(String, Value, bool)]) {
    let validator = jsonschema::validator_for(schema).expect("the generated schema compiles");
    for (label, doc, code_only) in examples {
        let by_schema = validator.is_valid(doc);
        let by_code = code_valid(doc);
        if *code_only {
            assert!(by_schema && !by_code, "{label}: expected schema-valid, code-invalid; got {by_schema}/{by_code}");
        } else {
            let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
            assert_eq!(by_schema, by_code, "{label}: schema says {by_schema} ({errors:?}), code says {by_code}");
        }
    }
}

fn base_manifest(patch: Value) -> Value {
    let mut v = json!({"name": "demo", "version": "0.1.0", "apiVersion": "1.0.0", "capabilities": ["routes"]});
    for (k, val) in patch.as_object().unwrap() {
        v[k] = val.clone();
    }
    v
}

#[test]
fn manifests_schema_and_code_agree() {
    const CODE_ONLY: &[&str] = &["invalid-schema-prefix.toml"];
    let mut examples: Vec<(String, Value, bool)> =
        read_dir("manifests").into_iter().map(|(n, v)| (n.clone(), v, CODE_ONLY.contains(&n.as_str()))).collect();
    let inline: &[(&str, Value, bool)] = &[
        ("unknown key", base_manifest(json!({"extra": 1})), false),
        ("bad name", base_manifest(json!({"name": "Demo"})), false),
        ("name with underscore", base_manifest(json!({"name": "a_b"})), false),
        ("bad version", base_manifest(json!({"version": "1.0"})), false),
        ("leading zero", base_manifest(json!({"apiVersion": "1.01.0"})), false),
        ("unknown capability", base_manifest(json!({"capabilities": ["root"]})), false),
        ("duplicate capability", base_manifest(json!({"capabilities": ["routes", "routes"]})), false),
        ("wrong type", base_manifest(json!({"capabilities": "routes"})), false),
        (
            "host with path",
            base_manifest(json!({"capabilities": ["http.outbound"], "outboundHosts": ["x.com/a"]})),
            false,
        ),
        (
            "host with port",
            base_manifest(json!({"capabilities": ["http.outbound"], "outboundHosts": ["x.com:1"]})),
            false,
        ),
        ("inner star", base_manifest(json!({"capabilities": ["http.outbound"], "outboundHosts": ["a.*.com"]})), false),
        ("empty hosts", base_manifest(json!({"capabilities": ["http.outbound"], "outboundHosts": []})), false),
        (
            "padded host",
            base_manifest(json!({"capabilities": ["http.outbound"], "outboundHosts": [" X.com. "]})),
            false,
        ),
        ("route auto", base_manifest(json!({"routePrefix": "auto"})), false),
        ("route relative", base_manifest(json!({"routePrefix": "slack"})), false),
        ("route trailing slash", base_manifest(json!({"routePrefix": "/slack/"})), false),
        (
            "bad secret name",
            base_manifest(
                json!({"capabilities": ["http.outbound", "secrets.mtls"], "outboundHosts": ["x.com"], "mtlsSecrets": ["Bank"]}),
            ),
            false,
        ),
        ("bad schema prefix", base_manifest(json!({"capabilities": ["db.migrations"], "schemaPrefix": "demo"})), false),
        (
            "migration extra key",
            base_manifest(
                json!({"capabilities": ["db.migrations"], "schemaPrefix": "demo_", "migrations": [{"name": "a", "up": "x", "down": "y"}]}),
            ),
            false,
        ),
        (
            "blank migration",
            base_manifest(
                json!({"capabilities": ["db.migrations"], "schemaPrefix": "demo_", "migrations": [{"name": "a", "up": " "}]}),
            ),
            false,
        ),
        ("null optional", base_manifest(json!({"routePrefix": null})), false),
        // Code-only rules: cross-field, IDNA, reserved names, uniqueness by normalisation.
        ("hosts without capability", base_manifest(json!({"outboundHosts": ["x.com"]})), true),
        ("capability without hosts", base_manifest(json!({"capabilities": ["http.outbound"]})), true),
        ("IP literal", base_manifest(json!({"capabilities": ["http.outbound"], "outboundHosts": ["10.0.0.1"]})), true),
        (
            "wildcard over a TLD",
            base_manifest(json!({"capabilities": ["http.outbound"], "outboundHosts": ["*.com"]})),
            true,
        ),
        (
            "same host twice",
            base_manifest(json!({"capabilities": ["http.outbound"], "outboundHosts": ["x.com", "X.com."]})),
            true,
        ),
        ("reserved route", base_manifest(json!({"routePrefix": "/arcp"})), true),
        ("routePrefix without routes", base_manifest(json!({"capabilities": [], "routePrefix": "auto"})), true),
        (
            "mtls without outbound",
            base_manifest(json!({"capabilities": ["secrets.mtls"], "mtlsSecrets": ["bank"]})),
            true,
        ),
        (
            "prefix of another plugin",
            base_manifest(json!({"capabilities": ["db.migrations"], "schemaPrefix": "other_"})),
            true,
        ),
        (
            "duplicate migration",
            base_manifest(
                json!({"capabilities": ["db.migrations"], "schemaPrefix": "demo_", "migrations": [{"name": "a", "up": "x"}, {"name": "a", "up": "x"}]}),
            ),
            true,
        ),
    ];
    examples.extend(inline.iter().map(|(l, v, c)| ((*l).to_owned(), v.clone(), *c)));
    check(&plugin_api::schema::manifest_schema(), code_valid_manifest, &examples);
}

#[test]
fn policies_schema_and_code_agree() {
    const CODE_ONLY: &[&str] = &["invalid-rules.toml"];
    let mut examples: Vec<(String, Value, bool)> =
        read_dir("policies").into_iter().map(|(n, v)| (n.clone(), v, CODE_ONLY.contains(&n.as_str()))).collect();
    let entry = |e: Value| json!({"plugins": {"demo": e}});
    let files = json!({"certFile": "/c.pem", "keyFile": "/k.pem"});
    let inline: &[(&str, Value, bool)] = &[
        ("no plugins key", json!({}), false),
        ("unknown top key", json!({"plugins": {}, "x": 1}), false),
        ("bad plugin name", json!({"plugins": {"Demo": {"enabled": true, "grant": []}}}), false),
        ("missing enabled", entry(json!({"grant": []})), false),
        ("unknown entry key", entry(json!({"enabled": true, "grant": [], "x": 1})), false),
        ("unknown capability", entry(json!({"enabled": true, "grant": ["root"]})), false),
        ("bad pin", entry(json!({"enabled": true, "grant": [], "version": "latest"})), false),
        ("bad ack", entry(json!({"enabled": true, "grant": [], "acknowledgeRootEquivalent": ["all"]})), false),
        (
            "mtls ok",
            entry(
                json!({"enabled": true, "grant": ["http.outbound", "secrets.mtls"], "outboundHosts": ["x.com"], "mtlsSecrets": {"bank": files}}),
            ),
            false,
        ),
        (
            "mtls missing key file",
            entry(
                json!({"enabled": true, "grant": ["http.outbound", "secrets.mtls"], "outboundHosts": ["x.com"], "mtlsSecrets": {"bank": {"certFile": "/c"}}}),
            ),
            false,
        ),
        (
            "mtls bad name",
            entry(
                json!({"enabled": true, "grant": ["http.outbound", "secrets.mtls"], "outboundHosts": ["x.com"], "mtlsSecrets": {"Bank": files}}),
            ),
            false,
        ),
        (
            "mtls blank file",
            entry(
                json!({"enabled": true, "grant": ["http.outbound", "secrets.mtls"], "outboundHosts": ["x.com"], "mtlsSecrets": {"bank": {"certFile": " ", "keyFile": "/k"}}}),
            ),
            false,
        ),
        (
            "host with scheme",
            entry(json!({"enabled": true, "grant": ["http.outbound"], "outboundHosts": ["https://x.com"]})),
            false,
        ),
        // Code-only rules.
        ("hosts without grant", entry(json!({"enabled": true, "grant": [], "outboundHosts": ["x.com"]})), true),
        ("mtls without grant", entry(json!({"enabled": true, "grant": [], "mtlsSecrets": {"bank": files}})), true),
        (
            "stale ack",
            entry(json!({"enabled": true, "grant": [], "acknowledgeRootEquivalent": ["db.migrations+http.outbound"]})),
            true,
        ),
    ];
    examples.extend(inline.iter().map(|(l, v, c)| ((*l).to_owned(), v.clone(), *c)));
    check(&plugin_api::schema::policy_schema(), code_valid_policy, &examples);
}

#[test]
fn schemas_are_draft_2020_12_and_closed() {
    for file in plugin_api::schema::all_schemas() {
        assert_eq!(file.schema["$schema"], "https://json-schema.org/draft/2020-12/schema", "{}", file.path);
        assert_eq!(file.schema["additionalProperties"], false, "{}", file.path);
    }
}
