//! One test per refusal reason, each triggered from manifest and policy **files** under
//! `tests/fixtures/` (JSON and TOML), through the same steps the runtime takes: read and
//! validate the manifest, read and validate the policy, [`decide`], then verify the mTLS files
//! and admit the plugin into the [`Roster`].
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use plugin_api::{
    Capability, Error, Format, Grant, Origin, PluginRefused, RefusalReason, Roster, ValidManifest, ValidPolicy, decide,
    load_manifest, load_policy,
};

fn fixture(rel: &str) -> (String, Format) {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let format = Format::from_extension(path.extension().unwrap().to_str().unwrap()).unwrap();
    (text, format)
}

fn manifest(rel: &str) -> Result<ValidManifest, PluginRefused> {
    let (text, format) = fixture(&format!("manifests/{rel}"));
    load_manifest(&text, format)
}

fn policy(rel: &str) -> ValidPolicy {
    let (text, format) = fixture(&format!("policies/{rel}"));
    load_policy(&text, format).unwrap_or_else(|v| panic!("{rel}: {v}"))
}

/// The load decision for one manifest file against one policy file.
fn load(manifest_file: &str, policy_file: &str, origin: Origin) -> Result<Grant, PluginRefused> {
    let m = manifest(manifest_file)?;
    let p = policy(policy_file);
    decide(&m, p.entry(m.name()), origin)
}

/// Reads files relative to the crate root, as the runtime reads the policy's paths.
fn readable(path: &str) -> Result<(), String> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    fs::metadata(full).map(|_| ()).map_err(|e| e.to_string())
}

fn assert_refused(result: Result<Grant, PluginRefused>, reason: RefusalReason) -> PluginRefused {
    let refusal = result.expect_err("the plugin should be refused");
    assert_eq!(refusal.reason, reason, "{refusal:#?}");
    assert!(!refusal.message.is_empty());
    refusal
}

#[test]
fn loads_grant_what_the_policy_allows() {
    let g = load("demo.toml", "policy.toml", Origin::External).unwrap();
    assert_eq!(g.plugin().as_str(), "demo");
    assert!(g.allows(Capability::StorageKv) && !g.allows(Capability::Scheduler));
    let hosts: Vec<String> = g.outbound_hosts().iter().map(ToString::to_string).collect();
    assert_eq!(hosts, ["a.hooks.example.com", "api.example.com"], "manifest ∩ policy");
    assert_eq!(g.mount_point(), Some("/plugins/demo/"));
    assert!(g.check_outbound("https", "A.hooks.example.com").is_ok());
    assert_eq!(g.check_outbound("https", "b.hooks.example.com").unwrap_err().reason(), "host_not_allowed");
    assert_eq!(g.check_outbound("ftp", "api.example.com").unwrap_err().reason(), "scheme_not_allowed");

    let g = load("webhooks.json", "policy.toml", Origin::External).unwrap();
    assert_eq!(g.root_equivalent().len(), 1, "acknowledged, and reported");
    let g = load("bank.json", "policy.toml", Origin::External).unwrap();
    g.verify_mtls_files(readable).unwrap();
    let g = load("ledger.toml", "policy.toml", Origin::Builtin).unwrap();
    assert_eq!(g.schema_prefix().unwrap().as_str(), "ledger_");
    assert!(g.check_db_object("ledger_entries").is_ok());
    assert_eq!(Error::from(g.check_db_object("arcp_sessions").unwrap_err()).reason(), "outside_schema_prefix");
    let g = load("slack.toml", "policy.toml", Origin::Builtin).unwrap();
    assert_eq!(g.mount_point(), Some("/slack/"));
}

#[test]
fn manifest_invalid() {
    let r = assert_refused(load("invalid.json", "policy.toml", Origin::External), RefusalReason::ManifestInvalid);
    let paths: Vec<&str> = r.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["/colour"], "shape problems come first, in one pass");
    // With the unknown key gone, every rule problem is reported at once.
    let (text, _) = fixture("manifests/invalid.json");
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_object_mut().unwrap().remove("colour");
    let r = load_manifest(&v.to_string(), Format::Json).unwrap_err();
    let paths: Vec<&str> = r.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["/name", "/version", "/capabilities/1", "/outboundHosts/0", "/outboundHosts"]);
}

#[test]
fn api_version_incompatible() {
    let r =
        assert_refused(load("future-api.json", "policy.toml", Origin::External), RefusalReason::ApiVersionIncompatible);
    assert!(r.message.contains("1.1.0") && r.message.contains("1.0.0"), "{}", r.message);
    assert!(r.message.contains("upgrade the runtime"), "{}", r.message);
}

#[test]
fn policy_missing() {
    let r = assert_refused(load("demo.toml", "empty.json", Origin::External), RefusalReason::PolicyMissing);
    assert!(r.remediation.unwrap().contains("[plugins.demo]"));
}

#[test]
fn policy_version_mismatch() {
    let r = assert_refused(
        load("webhooks.json", "version-pin.json", Origin::Builtin),
        RefusalReason::PolicyVersionMismatch,
    );
    assert!(r.message.contains("0.3.0") && r.message.contains("0.3.1"), "{}", r.message);
}

#[test]
fn policy_capability_drift() {
    let r = assert_refused(
        load("demo.toml", "capability-drift.toml", Origin::External),
        RefusalReason::PolicyCapabilityDrift,
    );
    assert!(r.message.contains("`scheduler`"), "{}", r.message);
}

#[test]
fn policy_outbound_host_drift() {
    let r =
        assert_refused(load("demo.toml", "host-drift.json", Origin::External), RefusalReason::PolicyOutboundHostDrift);
    // `b.c.hooks.example.com` is two labels below `*.hooks.example.com`: no intersection.
    assert!(r.message.contains("b.c.hooks.example.com") && r.message.contains("evil.example"), "{}", r.message);
    assert!(!r.message.contains("`api.example.com`, `b"), "api.example.com intersects: {}", r.message);
}

#[test]
fn policy_mtls_secret_drift() {
    let r =
        assert_refused(load("bank.json", "mtls-drift.toml", Origin::External), RefusalReason::PolicyMtlsSecretDrift);
    assert!(r.message.contains("`other`") && r.message.contains("`partner`"), "{}", r.message);
}

#[test]
fn mtls_secret_unreadable() {
    let g = load("bank.json", "mtls-unreadable.json", Origin::External).unwrap();
    let r = g.verify_mtls_files(readable).unwrap_err();
    assert_eq!(r.reason, RefusalReason::MtlsSecretUnreadable);
    assert!(r.message.contains("missing.key") && !r.message.contains("partner.crt"), "{}", r.message);
}

#[test]
fn schema_prefix_invalid() {
    // Not the plugin's own prefix: refused before the decision.
    let r = manifest("invalid-schema-prefix.toml").unwrap_err();
    assert_eq!(r.reason, RefusalReason::SchemaPrefixInvalid, "{r:#?}");
    // Two plugins whose prefixes overlap: the second is refused at admission.
    let mut roster = Roster::new();
    roster.admit(&load("ledger.toml", "policy.toml", Origin::Builtin).unwrap()).unwrap();
    let archive = load("ledger-archive.toml", "policy.toml", Origin::Builtin).unwrap();
    let r = roster.admit(&archive).unwrap_err();
    assert_eq!(r.reason, RefusalReason::SchemaPrefixInvalid);
}

#[test]
fn external_root_combination() {
    let r = assert_refused(
        load("webhooks.json", "root-unacknowledged.json", Origin::External),
        RefusalReason::ExternalRootCombination,
    );
    assert!(r.message.contains("session.events+http.outbound"), "{}", r.message);
    // The same grant for a builtin plugin needs no acknowledgement, but is reported.
    let g = load("webhooks.json", "root-unacknowledged.json", Origin::Builtin).unwrap();
    assert_eq!(g.root_equivalent().len(), 1);
}

#[test]
fn builtin_only() {
    let r = assert_refused(load("ledger.toml", "policy.toml", Origin::External), RefusalReason::BuiltinOnly);
    assert!(r.message.contains("db.migrations"), "{}", r.message);
}

#[test]
fn absolute_route_denied() {
    let r = assert_refused(load("slack.toml", "policy.toml", Origin::External), RefusalReason::AbsoluteRouteDenied);
    assert!(r.remediation.unwrap().contains("/plugins/slack/"));
}

#[test]
fn disabled() {
    assert_refused(load("demo.toml", "disabled.toml", Origin::External), RefusalReason::Disabled);
}

#[test]
fn duplicate_name() {
    let mut roster = Roster::new();
    roster.admit(&load("demo.toml", "policy.toml", Origin::External).unwrap()).unwrap();
    // A second plugin named `demo` (another file, another version), admitted by its policy.
    let again = load("demo-again.json", "demo-routes.json", Origin::External).unwrap();
    let r = roster.admit(&again).unwrap_err();
    assert_eq!(r.reason, RefusalReason::DuplicateName);
}

#[test]
fn duplicate_notification_kind() {
    let mut roster = Roster::new();
    let demo = load("demo.toml", "policy.toml", Origin::External).unwrap();
    let mailer = load("mailer.toml", "policy.toml", Origin::External).unwrap();
    roster.admit(&demo).unwrap();
    roster.admit(&mailer).unwrap();
    roster.claim_notification_kind(&mailer, "email").unwrap();
    match roster.claim_notification_kind(&demo, "email").unwrap_err() {
        Error::Refused(r) => assert_eq!(r.reason, RefusalReason::DuplicateNotificationKind),
        other => panic!("{other:?}"),
    }
    assert_eq!(roster.notification_owner("email").unwrap().as_str(), "mailer");
    // Without `notifications`, a claim is a capability violation, not a refusal.
    let webhooks = load("webhooks.json", "policy.toml", Origin::Builtin).unwrap();
    assert_eq!(roster.claim_notification_kind(&webhooks, "sms").unwrap_err().reason(), "capability_not_granted");
}

#[test]
fn every_reason_has_a_test_here() {
    let src = include_str!("refusals.rs");
    for reason in RefusalReason::ALL {
        assert!(src.contains(&format!("fn {}()", reason.as_str())), "no test named after `{reason}`");
    }
}

#[test]
fn an_invalid_policy_is_a_violation_with_every_problem() {
    let (text, format) = fixture("policies/invalid.json");
    let v = load_policy(&text, format).unwrap_err();
    assert_eq!(Error::from(v.clone()).reason(), "policy_invalid");
    let paths: Vec<&str> = v.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["/defaults", "/plugins/demo/colour", "/plugins/demo/enabled"]);
    let (text, format) = fixture("policies/invalid-rules.toml");
    let v = load_policy(&text, format).unwrap_err();
    let paths: Vec<&str> = v.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["/plugins/demo/outboundHosts", "/plugins/demo/acknowledgeRootEquivalent/0"]);
}
