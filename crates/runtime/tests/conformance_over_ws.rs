//! The whole conformance suite against the real `arcp serve` binary over WebSocket (SQLite
//! store, conformance fixtures hosted).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_conformance_case_passes_against_arcp_serve() {
    // The suite makes the server log a lot (ARCP_LOG=debug): its stderr goes nowhere rather
    // than into a pipe nobody drains (a full pipe would block the server's logging).
    // On the default store kind (SQLite) and with the fixtures, so the §7.5 version cases run
    // in full.
    let dir = std::env::temp_dir().join(format!("arcp-conformance-ws-{}", std::process::id()));
    let store = format!("sqlite:{}/arcp.db", dir.display());
    let mut cmd = common::command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--token",
        "conformance-token",
        "--conformance-fixtures",
        "--store",
        &store,
        // The durable store's caps are disk-sized by default: small ones, given to the suite
        // too, so the §14 cap cases run (and the flags are checked).
        "--max-buffered-events",
        "3000",
        "--max-buffered-bytes",
        "4194304",
    ]);
    cmd.stderr(std::process::Stdio::null());
    let mut server = common::spawn_command(cmd);
    let line = server.line().await;
    let url =
        line.strip_prefix("arcp listening on ").unwrap_or_else(|| panic!("unexpected first line: {line:?}")).to_owned();
    let target = conformance::Target::Url { url, token: "conformance-token".into() };
    let caps = conformance::BufferCaps { events: 3000, bytes: 4 << 20 };
    let report = conformance::run_with(target, None, conformance::RunOptions::default().with_buffer_caps(caps)).await;
    let text = report.render_text();
    println!("{text}");
    let (_, failed, _) = report.counts();
    assert_eq!(failed, 0, "{text}");
    // `arcp serve --token` has one principal: only the cross-principal cases may skip.
    for (case, outcome) in &report.results {
        if let conformance::Outcome::Skip(why) = outcome {
            assert!(
                why.contains("second principal"),
                "arcp serve hosts every contract agent; {} skipped: {text}",
                case.id
            );
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}
