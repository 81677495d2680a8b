//! Graceful shutdown (issue 8): SIGTERM during a running job tells the client `session.bye`,
//! lets the job finish within the deadline, exits 0; after a restart on the same store, a
//! resume delivers the job's remaining events and its result. A job that outlives the
//! deadline is ended on the next start with the durable restart error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Arcp, Client};
use serde_json::json;

const KEY: &str = "shutdown-key";

async fn serve_on(store: &str, deadline_secs: &str) -> (Arcp, String) {
    common::serve(&["--token", KEY, "--store", store, "--shutdown-deadline-secs", deadline_secs]).await
}

fn sigterm(arcp: &Arcp) {
    let pid = arcp.child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("run kill").success());
}

/// Reads until `session.bye`, checking the sequence; returns the last `event_seq` seen.
async fn until_bye(client: &mut Client, mut last: u64) -> u64 {
    loop {
        let env = client.next().await;
        if env["type"] == "session.bye" {
            assert_eq!(env["payload"]["reason"], "shutdown", "{env}");
            assert!(client.closed().await, "the transport closes after session.bye");
            return last;
        }
        if let Some(s) = env["event_seq"].as_u64() {
            assert_eq!(s, last + 1, "{env}");
            last = s;
        }
    }
}

async fn resume(url: &str, session: &str, token: &str, last: u64) -> Client {
    let mut client = Client::connect(url).await;
    let mut payload = common::hello_payload(KEY);
    payload["resume"] = json!({ "session_id": session, "resume_token": token, "last_event_seq": last });
    client.send("session.hello", payload, json!({})).await;
    let welcome = client.next().await;
    assert_eq!(welcome["type"], "session.welcome", "{welcome}");
    client.session_id = Some(session.to_owned());
    client
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("arcp-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_running_job_finish_and_a_resume_after_restart_gets_the_rest() {
    let dir = tempdir("shutdown-finish");
    let store = format!("sqlite:{}/arcp.db", dir.display());
    let (mut server, url) = serve_on(&store, "30").await;
    let mut client = Client::connect(&url).await;
    let welcome = client.hello(KEY).await;
    let token = welcome["payload"]["resume_token"].as_str().unwrap().to_owned();
    let session = client.session_id.clone().unwrap();
    let job = client.submit("count", json!({ "n": 30, "delay_ms": 40 })).await;
    let mut last = 0;
    while last < 3 {
        let env = client.next().await;
        if let Some(s) = env["event_seq"].as_u64() {
            last = s;
        }
    }
    sigterm(&server);
    let last = until_bye(&mut client, last).await;
    assert_eq!(server.exit_code().await, Some(0), "a clean stop once the job finished");
    let stderr = server.stderr().await;
    assert!(stderr.contains("jobs_left_running=0"), "the job finished within the deadline:\n{stderr}");

    let (_server, url) = serve_on(&store, "30").await;
    let mut resumed = resume(&url, &session, &token, last).await;
    let events = resumed.until_terminal(&job).await;
    let end = events.last().unwrap();
    assert_eq!(end["type"], "job.result", "{end}");
    assert_eq!(end["payload"]["result"], json!({ "count": 30 }));
    let mut seq = last;
    for env in &events {
        let s = env["event_seq"].as_u64().unwrap();
        assert_eq!(s, seq + 1, "exactly once, in order: {env}");
        seq = s;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_outliving_the_deadline_ends_with_the_restart_error_on_the_next_start() {
    let dir = tempdir("shutdown-deadline");
    let store = format!("sqlite:{}/arcp.db", dir.display());
    let (mut server, url) = serve_on(&store, "1").await;
    let mut client = Client::connect(&url).await;
    let welcome = client.hello(KEY).await;
    let token = welcome["payload"]["resume_token"].as_str().unwrap().to_owned();
    let session = client.session_id.clone().unwrap();
    let job = client.submit("sleep", json!({})).await;
    let running = client.next().await;
    assert_eq!(running["payload"]["kind"], "status", "{running}");
    sigterm(&server);
    let last = until_bye(&mut client, 1).await;
    assert_eq!(server.exit_code().await, Some(0));
    assert!(server.stderr().await.contains("jobs_left_running=1"));

    let (_server, url) = serve_on(&store, "30").await;
    let mut resumed = resume(&url, &session, &token, last).await;
    let end = resumed.until_terminal(&job).await.pop().unwrap();
    assert_eq!(end["type"], "job.error", "{end}");
    assert_eq!(end["payload"]["code"], "INTERNAL_ERROR");
    assert_eq!(end["event_seq"].as_u64(), Some(last + 1));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_stopping_new_sessions_are_refused() {
    let (mut server, url) = common::serve(&["--token", KEY, "--shutdown-deadline-secs", "5"]).await;
    let mut client = Client::connect(&url).await;
    client.hello(KEY).await;
    client.submit("sleep", json!({ "ms": 3000 })).await;
    client.next().await;
    sigterm(&server);
    until_bye(&mut client, 1).await;
    // The listener is closed: a new connection is refused outright.
    let refused =
        tokio::time::timeout(common::WAIT, arcp_server::transport::ws::connect(&url, common::MAX_FRAME)).await;
    assert!(matches!(refused, Ok(Err(_))));
    assert_eq!(server.exit_code().await, Some(0));
}
