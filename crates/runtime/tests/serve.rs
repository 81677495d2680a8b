//! `arcp serve`, driven from outside: the built binary on a free loopback port, spoken to over
//! WebSocket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn count_runs_to_a_result_with_progress() {
    let (_arcp, url) = serve(&["--token", "t"]).await;
    let mut c = Client::connect(&url).await;
    let welcome = c.hello("t").await;
    assert_eq!(welcome["type"], "session.welcome", "{welcome}");
    assert!(c.session_id.is_some(), "{welcome}");
    let job = c.submit("count", json!({"n": 3})).await;
    let seen: Vec<(String, serde_json::Value)> = c.until_terminal(&job).await.iter().map(describe).collect();
    let kinds: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["event:status", "event:progress", "event:progress", "event:progress", "job.result"]);
    assert_eq!(seen[0].1["phase"], "running", "{:?}", seen[0]);
    for (i, (_, body)) in seen[1..4].iter().enumerate() {
        assert_eq!((body["current"].as_u64(), body["total"].as_u64()), (Some(i as u64 + 1), Some(3)), "{body}");
    }
    assert_eq!(seen[4].1["result"], json!({"count": 3}));
}

#[tokio::test]
async fn echo_returns_its_input_and_logs_one_line() {
    let (_arcp, url) = serve(&["--token", "t"]).await;
    let mut c = Client::connect(&url).await;
    assert_eq!(c.hello("t").await["type"], "session.welcome");
    let input = json!({"hello": ["world", 1, 2.5, null, true, {"nested": {}}]});
    let job = c.submit("echo", input.clone()).await;
    let seen: Vec<(String, serde_json::Value)> = c.until_terminal(&job).await.iter().map(describe).collect();
    let kinds: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["event:status", "event:log", "job.result"]);
    assert_eq!(seen[2].1["result"], input);
}

#[tokio::test]
async fn sleep_can_be_cancelled_and_unknown_agents_are_refused() {
    let (_arcp, url) = serve(&["--token", "t"]).await;
    let mut c = Client::connect(&url).await;
    c.hello("t").await;
    let job = c.submit("sleep", json!({})).await;
    assert_eq!(describe(&c.next().await).0, "event:status");
    c.send("job.cancel", json!({}), json!({"job_id": job})).await;
    let end = c.until_terminal(&job).await;
    let last = &end.last().expect("terminal")["payload"];
    assert_eq!((&last["final_status"], &last["code"]), (&json!("cancelled"), &json!("CANCELLED")), "{last}");
    c.send("job.submit", json!({"agent": "no-such-agent", "input": {}}), json!({})).await;
    let refused = c.next().await;
    assert_eq!((&refused["type"], &refused["payload"]["code"]), (&json!("job.error"), &json!("AGENT_NOT_AVAILABLE")));
}

#[tokio::test]
async fn several_connections_are_served_at_once() {
    let (_arcp, url) = serve(&["--token", "t"]).await;
    let mut a = Client::connect(&url).await;
    let mut b = Client::connect(&url).await;
    a.hello("t").await;
    b.hello("t").await;
    let ja = a.submit("count", json!({"n": 5, "delay_ms": 20})).await;
    let jb = b.submit("echo", json!("b")).await;
    assert_eq!(b.until_terminal(&jb).await.last().expect("result")["payload"]["result"], "b");
    assert_eq!(a.until_terminal(&ja).await.last().expect("result")["payload"]["result"], json!({"count": 5}));
}

#[tokio::test]
async fn a_wrong_path_is_refused_and_the_server_keeps_serving() {
    let (_arcp, url) = serve(&["--token", "t"]).await;
    let base = url.strip_suffix("/arcp").expect("/arcp");
    for path in ["/", "/nope", "/arcp/x", "/ARCP"] {
        let refused =
            tokio::time::timeout(WAIT, arcp_server::transport::ws::connect(&format!("{base}{path}"), MAX_FRAME))
                .await
                .expect("an answer in time");
        let err = refused.expect_err(path);
        assert!(err.to_string().contains("404"), "{path}: {err}");
    }
    let mut c = Client::connect(&url).await;
    assert_eq!(c.hello("t").await["type"], "session.welcome");
}

#[tokio::test]
async fn a_bad_token_gets_session_error_then_close() {
    let (_arcp, url) = serve(&["--token", "t"]).await;
    let mut c = Client::connect(&url).await;
    let reply = c.hello("wrong").await;
    assert_eq!(
        (&reply["type"], &reply["payload"]["code"]),
        (&json!("session.error"), &json!("UNAUTHENTICATED")),
        "{reply}"
    );
    assert!(c.closed().await, "the connection is closed after session.error");
}

#[tokio::test]
async fn without_a_token_the_first_api_key_is_created_printed_once_and_accepted() {
    let (mut arcp, url) = serve(&[]).await;
    let line = arcp.line().await;
    let key = line.strip_prefix("api key: ").unwrap_or_else(|| panic!("{line:?}"));
    let rest = key.strip_prefix("arcp_sk_").unwrap_or_else(|| panic!("{key:?}"));
    assert!(rest.len() == 52 && rest.bytes().all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7')), "{key}");
    assert!(arcp.line().await.starts_with("channel at http://"));
    let mut c = Client::connect(&url).await;
    assert_eq!(c.hello(key).await["type"], "session.welcome");
    let mut d = Client::connect(&url).await;
    assert_eq!(d.hello("t").await["type"], "session.error");
}

#[tokio::test]
async fn env_vars_configure_and_flags_win() {
    // ARCP_TOKEN alone is used (nothing generated, nothing printed but the listening line).
    let mut cmd = command(&["serve"]);
    cmd.env("ARCP_LISTEN", "127.0.0.1:0").env("ARCP_TOKEN", "from-env");
    let mut arcp = spawn_command(cmd);
    let url = arcp.line().await.strip_prefix("arcp listening on ").expect("listening line").to_owned();
    let mut c = Client::connect(&url).await;
    assert_eq!(c.hello("from-env").await["type"], "session.welcome");
    drop(arcp);

    // --token wins over ARCP_TOKEN.
    let mut cmd = command(&["serve", "--listen", "127.0.0.1:0", "--token", "from-flag"]);
    cmd.env("ARCP_TOKEN", "from-env").env("ARCP_LISTEN", "0.0.0.0:0");
    let mut arcp = spawn_command(cmd);
    let url = arcp.line().await.strip_prefix("arcp listening on ").expect("listening line").to_owned();
    assert!(url.starts_with("ws://127.0.0.1:"), "--listen wins over ARCP_LISTEN: {url}");
    let mut c = Client::connect(&url).await;
    assert_eq!(c.hello("from-env").await["type"], "session.error");
    let mut c = Client::connect(&url).await;
    assert_eq!(c.hello("from-flag").await["type"], "session.welcome");
}

#[tokio::test]
async fn non_loopback_listen_needs_insecure() {
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let mut arcp = spawn(&["serve", "--listen", addr, "--token", "t"]);
        assert_eq!(arcp.exit_code().await, Some(2), "{addr}");
        let stderr = arcp.stderr().await;
        assert!(stderr.contains("--insecure"), "{addr}: {stderr}");
        let mut out = String::new();
        let stdout = arcp.stdout.as_mut().expect("stdout");
        while let Ok(Ok(Some(line))) = tokio::time::timeout(WAIT, stdout.next_line()).await {
            out.push_str(&line);
        }
        assert_eq!(out, "", "nothing on stdout: {addr}");
    }
}

#[tokio::test]
async fn insecure_allows_a_non_loopback_listen() {
    let mut arcp = spawn(&["serve", "--listen", "0.0.0.0:0", "--insecure", "--token", "t"]);
    let line = arcp.line().await;
    let url = line.strip_prefix("arcp listening on ws://0.0.0.0:").unwrap_or_else(|| panic!("{line:?}"));
    let port = url.strip_suffix("/arcp").expect("/arcp");
    let mut c = Client::connect(&format!("ws://127.0.0.1:{port}/arcp")).await;
    assert_eq!(c.hello("t").await["type"], "session.welcome");
}

#[tokio::test]
async fn bad_arguments_exit_2() {
    for args in [
        &["serve", "--listen", "nonsense", "--token", "t"][..],
        &["serve", "--listen", "127.0.0.1:0", "--token", ""],
        &["serve", "--no-such-flag"],
        &["frobnicate"],
        &[],
    ] {
        let mut arcp = spawn(args);
        assert_eq!(arcp.exit_code().await, Some(2), "{args:?}");
    }
}

#[tokio::test]
async fn an_address_in_use_is_an_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let mut arcp = spawn(&["serve", "--listen", &addr, "--token", "t"]);
    assert_eq!(arcp.exit_code().await, Some(1));
    assert!(arcp.stderr().await.contains(&addr));
}

#[tokio::test]
async fn version_names_the_protocol() {
    let mut arcp = spawn(&["--version"]);
    assert_eq!(arcp.line().await, format!("arcp {} (ARCP 1.1)", env!("CARGO_PKG_VERSION")));
    assert_eq!(arcp.exit_code().await, Some(0));
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_and_sigint_stop_the_server_with_status_0() {
    for signal in ["-TERM", "-INT"] {
        let (mut arcp, url) = serve(&["--token", "t"]).await;
        let mut c = Client::connect(&url).await;
        c.hello("t").await;
        let pid = arcp.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill").args([signal, &pid]).status().expect("run kill");
        assert!(sent.success());
        assert_eq!(arcp.exit_code().await, Some(0), "{signal}");
        // It no longer accepts connections.
        let refused = tokio::time::timeout(WAIT, arcp_server::transport::ws::connect(&url, MAX_FRAME)).await;
        assert!(matches!(refused, Ok(Err(_))), "{signal}");
    }
}
