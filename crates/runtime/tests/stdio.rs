//! `arcp stdio`, driven through the child's stdin and stdout pipes (NDJSON).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt as _, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};

/// Writes one envelope as one line.
async fn send(stdin: &mut ChildStdin, env: &Value) {
    let line = format!("{env}\n");
    tokio::time::timeout(WAIT, stdin.write_all(line.as_bytes())).await.expect("write in time").expect("write");
    tokio::time::timeout(WAIT, stdin.flush()).await.expect("flush in time").expect("flush");
}

/// Reads one line and parses it as an envelope (every stdout line must be one).
async fn next(stdout: &mut Lines<BufReader<ChildStdout>>) -> Value {
    let line = tokio::time::timeout(WAIT, stdout.next_line())
        .await
        .expect("a line in time")
        .expect("readable")
        .expect("stdout open");
    let env: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
    assert_eq!(env["arcp"], "1.1", "{line}");
    env
}

#[tokio::test]
async fn hello_submit_echo_then_stdin_close_exits_0() {
    let mut arcp = spawn(&["stdio", "--token", "t"]);
    let mut stdin = arcp.child.stdin.take().expect("stdin");
    let mut stdout = arcp.stdout.take().expect("stdout");

    send(&mut stdin, &envelope("msg_1", "session.hello", hello_payload("t"), None, json!({}))).await;
    let welcome = next(&mut stdout).await;
    assert_eq!(welcome["type"], "session.welcome", "{welcome}");
    let session = welcome["session_id"].as_str().expect("session_id").to_owned();

    let input = json!({"line": "one\ntwo", "n": [1, 2, 3]});
    let submit = json!({"agent": "echo", "input": input});
    send(&mut stdin, &envelope("msg_2", "job.submit", submit, Some(&session), json!({}))).await;
    let accepted = next(&mut stdout).await;
    assert_eq!(accepted["type"], "job.accepted", "{accepted}");
    let mut kinds = Vec::new();
    loop {
        let env = next(&mut stdout).await;
        let (kind, body) = describe(&env);
        kinds.push(kind);
        if env["type"] == "job.result" {
            assert_eq!(body["result"], input);
            break;
        }
    }
    assert_eq!(kinds, ["event:status", "event:log", "job.result"]);

    send(
        &mut stdin,
        &envelope("msg_3", "job.submit", json!({"agent": "count", "input": {"n": 2}}), Some(&session), json!({})),
    )
    .await;
    let mut progress = 0;
    loop {
        let env = next(&mut stdout).await;
        if describe(&env).0 == "event:progress" {
            progress += 1;
        }
        if env["type"] == "job.result" {
            assert_eq!(env["payload"]["result"], json!({"count": 2}));
            break;
        }
    }
    assert_eq!(progress, 2);

    drop(stdin);
    assert_eq!(arcp.exit_code().await, Some(0));
    // Nothing else was written to stdout.
    assert_eq!(tokio::time::timeout(WAIT, stdout.next_line()).await.expect("eof in time").expect("readable"), None);
    // Logs went to stderr.
    assert!(arcp.stderr().await.contains("stdin closed"));
}

#[tokio::test]
async fn a_bad_token_gets_session_error_and_the_process_key_goes_to_stderr() {
    let mut arcp = spawn(&["stdio"]);
    let mut stdin = arcp.child.stdin.take().expect("stdin");
    let mut stdout = arcp.stdout.take().expect("stdout");
    send(&mut stdin, &envelope("msg_1", "session.hello", hello_payload("wrong"), None, json!({}))).await;
    let reply = next(&mut stdout).await;
    assert_eq!((&reply["type"], &reply["payload"]["code"]), (&json!("session.error"), &json!("UNAUTHENTICATED")));
    drop(stdin);
    assert_eq!(arcp.exit_code().await, Some(0));
    assert_eq!(tokio::time::timeout(WAIT, stdout.next_line()).await.expect("eof in time").expect("readable"), None);
    let stderr = arcp.stderr().await;
    let key = stderr.lines().find_map(|l| l.strip_prefix("api key: ")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(key.starts_with("arcp_sk_") && key.len() == 60, "{key}");
}

#[tokio::test]
async fn immediate_eof_exits_0_with_empty_stdout() {
    let mut arcp = spawn(&["stdio", "--token", "t"]);
    drop(arcp.child.stdin.take());
    assert_eq!(arcp.exit_code().await, Some(0));
    let mut stdout = arcp.stdout.take().expect("stdout");
    assert_eq!(tokio::time::timeout(WAIT, stdout.next_line()).await.expect("eof in time").expect("readable"), None);
}
