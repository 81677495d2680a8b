//! The channel conformance suite against the real `arcp serve` binary, over HTTP (buffered
//! JSON), SSE and WebSocket, with the turns running the `conformance.channel` ARCP agent
//! through the runtime's agent binding.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_case_passes_against_arcp_serve_on_every_transport() {
    let (_server, url) = common::serve(&["--token", "channel-key", "--conformance-fixtures"]).await;
    let base = url.replace("ws://", "http://").trim_end_matches("/arcp").to_owned();
    for target in conformance::channel::ChannelTarget::network(&base, Some("channel-key".into())) {
        let report = conformance::channel::run_channel(&target, None).await;
        let text = report.render_text();
        println!("{text}");
        let (passed, failed, _) = report.counts();
        assert_eq!(failed, 0, "{text}");
        assert!(passed >= 20, "{text}");
    }
}

/// The same over the durable SQLite token store (digests only: the store can never hand a
/// token back, so transports must keep the one they were given).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_case_passes_against_arcp_serve_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("arcp-channel-sqlite-{}", std::process::id()));
    let store = format!("sqlite:{}/arcp.db", dir.display());
    let (_server, url) = common::serve(&["--token", "channel-key", "--conformance-fixtures", "--store", &store]).await;
    let base = url.replace("ws://", "http://").trim_end_matches("/arcp").to_owned();
    for target in conformance::channel::ChannelTarget::network(&base, Some("channel-key".into())) {
        let report = conformance::channel::run_channel(&target, None).await;
        let text = report.render_text();
        println!("{text}");
        let (passed, failed, _) = report.counts();
        assert_eq!(failed, 0, "{text}");
        assert!(passed >= 20, "{text}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn without_the_flag_the_fixture_agent_is_not_hosted_and_v1_needs_the_key() {
    let (_server, url) = common::serve(&["--token", "channel-key"]).await;
    let base = url.replace("ws://", "http://").trim_end_matches("/arcp").to_owned();
    let body = serde_json::json!({"agent": "conformance.channel", "input": {"force": "ok"}}).to_string();
    let run = |auth: Option<&'static str>| {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["-sS", "-X", "POST", &format!("{base}/v1/session"), "-H", "Content-Type: application/json"]);
        if let Some(a) = auth {
            cmd.args(["-H", a]);
        }
        cmd.args(["-d", &body, "-w", " %{http_code}"]);
        cmd.output()
    };
    let out = run(Some("Authorization: Bearer channel-key")).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(r#""reason":"invalid-body""#) && text.ends_with(" 400"), "{text}");
    assert!(text.contains("unknown agent"), "{text}");
    let out = run(None).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(r#""reason":"unauthorized""#) && text.ends_with(" 401"), "{text}");
    let out = run(Some("Authorization: Bearer wrong")).await.unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(" 401"));
}
