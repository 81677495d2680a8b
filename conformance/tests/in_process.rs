//! Runs the whole conformance suite against an in-process runtime hosting the `arcp serve`
//! agent contract (`echo`, `count`, `sleep`), and checks that `CONFORMANCE.md` is current.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use arcp_server::{Runtime, StaticBearerVerifier};

fn target() -> conformance::Target {
    let verifier = StaticBearerVerifier::new()
        .with_token("conf-a", "alice")
        .with_token("conf-a2", "alice")
        .with_token("conf-b", "bob");
    let runtime = Runtime::builder(verifier).agents(conformance::reference_agents()).build();
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
}
