//! The whole conformance suite against the real `arcp serve` binary over WebSocket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_conformance_case_passes_against_arcp_serve() {
    let (_server, url) = common::serve(&["--token", "conformance-token"]).await;
    let target = conformance::Target::Url { url, token: "conformance-token".into() };
    let report = conformance::run(target, None).await;
    let text = report.render_text();
    println!("{text}");
    let (_, failed, skipped) = report.counts();
    assert_eq!(failed, 0, "{text}");
    assert_eq!(skipped, 0, "arcp serve hosts every contract agent: {text}");
}
