//! The README's `curl` walkthrough of the HTTP channel, run as written against `arcp serve`
//! (needs `bash`, `curl` and `jq` on the PATH, as the README says).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

/// The shell block between the walkthrough markers of the README.
fn walkthrough() -> String {
    let readme = include_str!("../../../README.md");
    let start = readme.find("<!-- walkthrough:begin -->").expect("begin marker");
    let end = readme.find("<!-- walkthrough:end -->").expect("end marker");
    let block = &readme[start..end];
    let body = block.split_once("```sh\n").expect("a sh block").1;
    body.rsplit_once("```").expect("the block ends").0.to_owned()
}

#[tokio::test]
async fn the_readme_curl_walkthrough_works_as_written() {
    let (mut arcp, url) = common::serve(&["--token", "walkthrough-key"]).await;
    let base = url.replace("ws://", "http://").trim_end_matches("/arcp").to_owned();
    let line = arcp.line().await;
    assert!(line.starts_with("channel at http://127.0.0.1:"), "{line}");
    let dir = std::env::temp_dir().join(format!("arcp-walkthrough-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &walkthrough()])
        .env("ARCP", &base)
        .env("KEY", "walkthrough-key")
        .current_dir(&dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run).await.expect("in time").expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "the walkthrough failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    // 1 and 2: buffered turns that finished with echo's output.
    assert!(stdout.contains(r#""status":"finished","output":{"text":"hello"}"#), "{stdout}");
    assert!(stdout.contains(r#""output":{"text":"again"}"#), "{stdout}");
    // 3: the consumed token is refused.
    assert!(stdout.contains(r#""reason":"stale-token"}"#) && stdout.contains("HTTP 409"), "{stdout}");
    // 4: the SSE turn streamed count's progress as records, then the outcome.
    assert!(stdout.contains("event: record") && stdout.contains(r#""kind":"progress""#), "{stdout}");
    assert!(stdout.contains("event: outcome") && stdout.contains(r#""output":{"count":3}"#), "{stdout}");
    // 5: the status shows three turns and no token.
    let status = stdout.lines().last().unwrap();
    assert!(status.contains(r#""turns":3"#) && !status.contains("ct_"), "{status}");
}
