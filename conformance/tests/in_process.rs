//! Runs the whole conformance suite against an in-process runtime hosting the `arcp serve`
//! agent contract (`echo`, `count`, `sleep`, `chunks`, `delegate`) and the conformance fixtures, checks
//! that `CONFORMANCE.md` is current and that every test its coverage table names exists.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use arcp_server::{Runtime, StaticBearerVerifier};

fn target() -> conformance::Target {
    let verifier = StaticBearerVerifier::new()
        .with_token("conf-a", "alice")
        .with_token("conf-a2", "alice")
        .with_token("conf-b", "bob");
    let runtime = Runtime::builder(verifier).agents(conformance::in_process_agents()).build();
    conformance::Target::InProcess { runtime, token: "conf-a".into(), same_principal_token: Some("conf-a2".into()) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_passes_in_process() {
    let options = conformance::RunOptions::default().with_other_principal_token("conf-b");
    let report = conformance::run_with(target(), None, options).await;
    let text = report.render_text();
    println!("{text}");
    let (_, failed, skipped) = report.counts();
    assert_eq!(failed, 0, "{text}");
    assert_eq!(skipped, 0, "the in-process runtime hosts every contract agent: {text}");
}

#[test]
fn the_in_process_target_hosts_the_fixtures() {
    let inventory = conformance::in_process_agents().inventory();
    let fixture = inventory.iter().find(|a| a.name == conformance::VERSIONED_FIXTURE);
    assert!(fixture.is_some_and(|f| f.versions == conformance::VERSIONED_FIXTURE_VERSIONS), "{inventory:?}");
}

/// Every test the coverage table names exists: the file, and `fn <name>(` under a test
/// attribute (`#[test]`, `#[tokio::test…]`).
#[test]
fn every_test_the_coverage_table_names_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for r in conformance::coverage::REQUIREMENTS {
        let conformance::coverage::Checked::Test { file, test } = r.checked else { continue };
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file} ({}): {e}", r.text));
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.contains(&format!("fn {test}(")))
            .unwrap_or_else(|| panic!("no fn {test} in {file} ({})", r.text));
        let attributed =
            lines[at.saturating_sub(3)..at].iter().any(|l| l.trim_start().starts_with("#[") && l.contains("test"));
        assert!(attributed, "fn {test} in {file} is not under a test attribute");
    }
}

#[test]
fn conformance_md_lists_every_case() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../CONFORMANCE.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    for case in conformance::all_cases() {
        assert!(
            committed.contains(&format!("`{}`", case.id)),
            "CONFORMANCE.md lacks {}; run `cargo xtask conformance --write-md`",
            case.id
        );
    }
    assert!(
        committed.contains(&conformance::coverage::render_coverage_md()),
        "CONFORMANCE.md lacks the current coverage table; run `cargo xtask conformance --write-md`"
    );
}
