//! The client commands (`arcp submit`, `tail`, `jobs`, `conformance`), driven from outside:
//! the built binary against `arcp serve`, its stdout read as NDJSON (`--json`), as lines
//! (human mode, not a terminal) and through a pseudo-terminal (`script`, for the progress
//! bar); exit statuses checked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arcp_client::{ClientOptions, SubmitRequest};
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long one client command may take.
const RUN: Duration = Duration::from_secs(60);

/// The key every test server accepts.
const KEY: &str = "cli-key";

/// What a finished command left.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// stdout as NDJSON (panics on a line that is not JSON).
    fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\n{self:?}")))
            .collect()
    }
}

/// `arcp ARGS` with a clean environment (no `ARCP_*` of the caller's shell, the default log
/// filter of client commands) and stdin closed.
fn client_command(args: &[&str]) -> tokio::process::Command {
    let mut cmd = command(args);
    cmd.env_remove("ARCP_LOG")
        .env_remove("RUST_LOG")
        .env_remove("ARCP_URL")
        .env_remove("ARCP_KEY")
        .env_remove("ARCP_OTHER_KEY")
        .stdin(Stdio::null());
    cmd
}

/// Runs `arcp ARGS` to its end.
async fn arcp(args: &[&str]) -> Ran {
    let run = client_command(args).output();
    let out = tokio::time::timeout(RUN, run).await.expect("the command ends in time").expect("arcp runs");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `arcp serve --token KEY` on a free port; its URL.
async fn server() -> (Arcp, String) {
    serve(&["--token", KEY]).await
}

/// The `current` of each `progress` event among `lines`, in order.
fn progress(lines: &[Value]) -> Vec<u64> {
    lines
        .iter()
        .filter(|l| l["type"] == "job.event" && l["payload"]["kind"] == "progress")
        .map(|l| l["payload"]["body"]["current"].as_u64().unwrap())
        .collect()
}

fn sorted(ids: &[String]) -> Vec<String> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids
}

fn types(lines: &[Value]) -> Vec<&str> {
    lines.iter().map(|l| l["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn submit_json_prints_every_progress_event_then_the_result() {
    let (_server, url) = server().await;
    let ran = arcp(&["submit", "count", r#"{"n":50}"#, "--json", "--url", &url, "--key", KEY]).await;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let lines = ran.lines();
    assert_eq!(lines[0]["type"], "job.accepted", "{ran:?}");
    let job = lines[0]["job_id"].as_str().unwrap();
    assert!(job.starts_with("job_"), "{job}");
    assert_eq!(lines[0]["payload"]["job_id"], job);
    assert!(lines.iter().all(|l| l["job_id"] == job), "{ran:?}");
    assert_eq!(progress(&lines), (1..=50).collect::<Vec<_>>());
    assert!(
        lines.iter().filter(|l| l["payload"]["kind"] == "progress").all(|l| l["payload"]["body"]["total"] == 50),
        "{ran:?}"
    );
    // The events carry their session sequence numbers, strictly increasing.
    let seqs: Vec<u64> = lines.iter().filter_map(|l| l["event_seq"].as_u64()).collect();
    assert_eq!(seqs.len(), lines.len() - 2, "every job.event has one: {ran:?}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "job.result", "{ran:?}");
    assert_eq!(last["payload"]["final_status"], "success");
    assert_eq!(last["payload"]["result"], json!({"count": 50}));
    assert_eq!(ran.stderr, "", "nothing on stderr: {ran:?}");
}

#[tokio::test]
async fn a_refused_submit_exits_3_with_the_error() {
    let (_server, url) = server().await;
    let ran = arcp(&["submit", "no-such-agent", "--json", "--url", &url, "--key", KEY]).await;
    assert_eq!(ran.code, Some(3), "{ran:?}");
    let lines = ran.lines();
    assert_eq!(types(&lines), ["job.error"], "{ran:?}");
    assert_eq!(lines[0]["payload"]["code"], "AGENT_NOT_AVAILABLE", "{ran:?}");
    assert_eq!(lines[0]["payload"]["final_status"], "error");
    // Human mode: the error on stderr, nothing on stdout.
    let ran = arcp(&["submit", "no-such-agent", "--url", &url, "--key", KEY]).await;
    assert_eq!(ran.code, Some(3), "{ran:?}");
    assert_eq!(ran.stdout, "");
    assert!(ran.stderr.starts_with("arcp: refused: AGENT_NOT_AVAILABLE: "), "{ran:?}");
}

#[tokio::test]
async fn a_failing_job_exits_3_and_a_cancelled_one_4() {
    let (_server, url) = server().await;
    // count refuses an input without "n": the job fails.
    let ran = arcp(&["submit", "count", "{}", "--json", "--url", &url, "--key", KEY]).await;
    assert_eq!(ran.code, Some(3), "{ran:?}");
    let lines = ran.lines();
    assert_eq!(lines.first().unwrap()["type"], "job.accepted");
    let last = lines.last().unwrap();
    assert_eq!((&last["type"], &last["payload"]["final_status"]), (&json!("job.error"), &json!("error")), "{ran:?}");
    assert_eq!(last["job_id"], lines[0]["job_id"]);
    // Human mode: the error and its code on stderr.
    let ran = arcp(&["submit", "count", "{}", "--url", &url, "--key", KEY]).await;
    assert_eq!(ran.code, Some(3), "{ran:?}");
    assert!(ran.stderr.contains(" failed: INVALID_"), "{ran:?}");
    // A job that runs out of time: `timed_out`, exit status 5.
    let ran = arcp(&["submit", "sleep", "{}", "--max-runtime-sec", "1", "--json", "--url", &url, "--key", KEY]).await;
    assert_eq!(ran.code, Some(5), "{ran:?}");
    assert_eq!(ran.lines().last().unwrap()["payload"]["final_status"], "timed_out", "{ran:?}");
}

#[tokio::test]
async fn invalid_input_json_is_a_usage_error() {
    let (_server, url) = server().await;
    for bad in ["{n: 50}", "{\"n\": 50", "fifty"] {
        let ran = arcp(&["submit", "count", bad, "--url", &url, "--key", KEY]).await;
        assert_eq!(ran.code, Some(2), "{bad}: {ran:?}");
        assert!(ran.stderr.starts_with("arcp: error: INPUT_JSON is not valid JSON ("), "{bad}: {ran:?}");
        assert_eq!(ran.stdout, "");
    }
    // Other usage errors: a bad URL, a bad job id, an empty idempotency key.
    let ran = arcp(&["submit", "echo", "--url", "http://127.0.0.1:8787/arcp"]).await;
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(ran.stderr.contains("is not a ws:// or wss:// URL"), "{ran:?}");
    let ran = arcp(&["tail", "", "--url", &url, "--key", KEY]).await;
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(ran.stderr.starts_with("arcp: error: invalid JOB_ID"), "{ran:?}");
    let ran = arcp(&["submit", "echo", "--idempotency-key", "", "--url", &url, "--key", KEY]).await;
    assert_eq!(ran.code, Some(2), "{ran:?}");
}

#[tokio::test]
async fn connection_failures_are_one_line_and_exit_1() {
    let (_server, url) = server().await;
    // Nothing listens there.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let nowhere = format!("ws://{closed}/arcp");
    let ran = arcp(&["submit", "echo", "--url", &nowhere, "--key", KEY]).await;
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(ran.stderr.starts_with(&format!("arcp: error: cannot open a session at {nowhere}: ")), "{ran:?}");
    assert_eq!(ran.stderr.lines().count(), 1, "{ran:?}");
    // A wrong key, and no key.
    let ran = arcp(&["jobs", "--url", &url, "--key", "wrong"]).await;
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(ran.stderr.contains("UNAUTHENTICATED") && ran.stderr.contains("check --key"), "{ran:?}");
    let ran = arcp(&["jobs", "--url", &url]).await;
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(ran.stderr.contains("no key given"), "{ran:?}");
    // The key and URL also come from ARCP_KEY and ARCP_URL.
    let out = client_command(&["jobs", "--json"]).env("ARCP_URL", &url).env("ARCP_KEY", KEY).output().await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[tokio::test]
async fn the_same_idempotency_key_gives_the_same_job_run_once() {
    let (_server, url) = server().await;
    let submit = |input: &'static str| {
        let url = url.clone();
        async move {
            arcp(&["submit", "count", input, "--idempotency-key", "order-42", "--json", "--url", &url, "--key", KEY])
                .await
        }
    };
    let first = submit(r#"{"n":5}"#).await;
    assert_eq!(first.code, Some(0), "{first:?}");
    let second = submit(r#"{"n":5}"#).await;
    assert_eq!(second.code, Some(0), "{second:?}");
    let (first, second) = (first.lines(), second.lines());
    assert_eq!(first[0]["job_id"], second[0]["job_id"], "the same job");
    assert_eq!(progress(&first), [1, 2, 3, 4, 5]);
    // The agent did not run again: the second session got the accepted job and its result,
    // no new events.
    assert_eq!(types(&second), ["job.accepted", "job.result"], "{second:?}");
    assert_eq!(second[1]["payload"]["result"], json!({"count": 5}));
    // One job in the listing.
    let jobs = arcp(&["jobs", "--json", "--url", &url, "--key", KEY]).await;
    assert_eq!(jobs.code, Some(0), "{jobs:?}");
    let jobs = jobs.lines();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["job_id"], first[0]["job_id"]);
    // The same key with another input is refused.
    let other = submit(r#"{"n":6}"#).await;
    assert_eq!(other.code, Some(3), "{other:?}");
    assert_eq!(other.lines()[0]["payload"]["code"], "DUPLICATE_KEY", "{other:?}");
}

#[tokio::test]
async fn jobs_lists_with_filters_across_pages() {
    let (_server, url) = server().await;
    // More jobs than one page holds (the runtime's default page is 100).
    let client = arcp_client::Client::connect_ws(url.clone(), ClientOptions::default().with_token(KEY)).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..103 {
        let job = client.submit(SubmitRequest::new("echo", json!({"i": i}))).await.unwrap();
        job.result().await.unwrap();
        ids.push(job.job_id().to_string());
    }
    let job = client.submit(SubmitRequest::new("count", json!({"n": 1}))).await.unwrap();
    job.result().await.unwrap();
    ids.push(job.job_id().to_string());
    let failed = client.submit(SubmitRequest::new("count", json!({}))).await.unwrap();
    assert!(failed.result().await.is_err());
    ids.push(failed.job_id().to_string());
    client.close().await.unwrap();

    let listed = |extra: &'static [&'static str]| {
        let url = url.clone();
        async move {
            let mut args = vec!["jobs", "--json", "--url", &url, "--key", KEY];
            args.extend_from_slice(extra);
            let ran = arcp(&args).await;
            assert_eq!(ran.code, Some(0), "{ran:?}");
            ran.lines().iter().map(|j| j["job_id"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    // Every job once, across pages, in the runtime's order (oldest first: by acceptance
    // time, then id, so jobs accepted within the same millisecond may swap).
    let all = listed(&[]).await;
    assert_eq!(sorted(&all), sorted(&ids), "every job once");
    assert_eq!(listed(&["--limit", "2"]).await, all[..2]);
    assert_eq!(listed(&["--limit", "101"]).await, all[..101]);
    assert_eq!(sorted(&listed(&["--agent", "count"]).await), sorted(&ids[103..]));
    assert_eq!(listed(&["--agent", "count", "--status", "error"]).await, ids[104..]);
    assert_eq!(
        sorted(&listed(&["--status", "success", "--status", "error", "--agent", "count"]).await),
        sorted(&ids[103..])
    );
    assert_eq!(listed(&["--status", "running"]).await, Vec::<String>::new());

    // The entries carry the wire fields.
    let ran = arcp(&["jobs", "--json", "--agent", "count", "--url", &url, "--key", KEY]).await;
    let lines = ran.lines();
    let entry = lines.iter().find(|e| e["job_id"] == ids[103].as_str()).unwrap();
    assert_eq!((&entry["agent"], &entry["status"]), (&json!("count"), &json!("success")), "{entry}");
    assert!(entry["created_at"].is_string() && entry["last_event_seq"].is_u64() && entry["lease"].is_object());

    // Human mode: a table.
    let ran = arcp(&["jobs", "--agent", "count", "--url", &url, "--key", KEY]).await;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let rows: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(rows.len(), 3, "{ran:?}");
    assert!(rows[0].starts_with("JOB ID") && rows[0].contains("STATUS"), "{ran:?}");
    let row = |id: &str| *rows.iter().find(|r| r.starts_with(id)).unwrap_or_else(|| panic!("{id}: {ran:?}"));
    assert!(row(&ids[103]).contains(" count ") && row(&ids[103]).contains(" success "), "{ran:?}");
    assert!(row(&ids[104]).contains(" error "), "{ran:?}");
    let ran = arcp(&["jobs", "--status", "running", "--url", &url, "--key", KEY]).await;
    assert_eq!(ran.stdout, "no jobs\n", "{ran:?}");
}

#[tokio::test]
async fn tail_replays_a_finished_job() {
    let (_server, url) = server().await;
    let submitted = arcp(&["submit", "count", r#"{"n":4}"#, "--json", "--url", &url, "--key", KEY]).await;
    assert_eq!(submitted.code, Some(0), "{submitted:?}");
    let job = submitted.lines()[0]["job_id"].as_str().unwrap().to_owned();
    let ran = arcp(&["tail", &job, "--json", "--url", &url, "--key", KEY]).await;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let lines = ran.lines();
    assert_eq!(lines[0]["type"], "job.subscribed", "{ran:?}");
    assert_eq!(
        (&lines[0]["payload"]["current_status"], &lines[0]["payload"]["replayed"]),
        (&json!("success"), &json!(true))
    );
    assert_eq!(progress(&lines), [1, 2, 3, 4], "{ran:?}");
    let last = lines.last().unwrap();
    assert_eq!((&last["type"], &last["payload"]["result"]), (&json!("job.result"), &json!({"count": 4})));
    assert!(lines.iter().all(|l| l["job_id"] == job.as_str()));
    // A job that does not exist (or is another principal's).
    let ran = arcp(&["tail", "job_01KXXXXXXXXXXXXXXXXXXXXXXX", "--json", "--url", &url, "--key", KEY]).await;
    assert_eq!(ran.code, Some(3), "{ran:?}");
    assert_eq!(ran.lines()[0]["payload"]["code"], "JOB_NOT_FOUND", "{ran:?}");
}

#[tokio::test]
async fn tail_follows_a_running_job_to_its_end() {
    let (_server, url) = server().await;
    let client = arcp_client::Client::connect_ws(url.clone(), ClientOptions::default().with_token(KEY)).await.unwrap();
    let job = client.submit(SubmitRequest::new("count", json!({"n": 20, "delay_ms": 50}))).await.unwrap();
    let id = job.job_id().to_string();
    let ran = arcp(&["tail", &id, "--json", "--url", &url, "--key", KEY]).await;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let lines = ran.lines();
    assert_eq!(lines[0]["type"], "job.subscribed", "{ran:?}");
    // History first, then live: every event exactly once, in order, whenever tail came in.
    assert_eq!(progress(&lines), (1..=20).collect::<Vec<_>>(), "{ran:?}");
    assert_eq!(lines.last().unwrap()["payload"]["result"], json!({"count": 20}), "{ran:?}");
    job.result().await.unwrap();

    // A job that never ends on its own: tail is following it (`running`) when it is
    // cancelled from the submitting session, and exits 4.
    let mut sleeper = client.submit(SubmitRequest::new("sleep", json!({}))).await.unwrap();
    let mut events = sleeper.events();
    futures_util::StreamExt::next(&mut events).await.unwrap().unwrap(); // status running
    let id = sleeper.job_id().to_string();
    let mut tail = client_command(&["tail", &id, "--json", "--url", &url, "--key", KEY]).spawn().unwrap();
    let mut out = BufReader::new(tail.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&within(out.next_line()).await.unwrap().unwrap()).unwrap();
    assert_eq!((&first["type"], &first["payload"]["current_status"]), (&json!("job.subscribed"), &json!("running")));
    sleeper.cancel(Some("enough".to_owned())).await.unwrap();
    let mut rest = Vec::new();
    while let Some(line) = within(out.next_line()).await.unwrap() {
        rest.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    let status = within(tail.wait()).await.unwrap();
    assert_eq!(status.code(), Some(4), "{rest:?}");
    let last = rest.last().unwrap();
    assert_eq!((&last["type"], &last["payload"]["final_status"]), (&json!("job.error"), &json!("cancelled")));
    client.close().await.unwrap();
}

#[tokio::test]
async fn human_output_without_a_terminal_is_one_line_per_event() {
    let (_server, url) = server().await;
    let ran = arcp(&["submit", "count", r#"{"n":3}"#, "--url", &url, "--key", KEY]).await;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert!(lines[0].starts_with("job job_") && lines[0].ends_with(" accepted (count)"), "{ran:?}");
    assert_eq!(
        lines[1..],
        [
            "status      running",
            "progress    1/3 (33%)",
            "progress    2/3 (66%)",
            "progress    3/3 (100%)",
            "{",
            "  \"count\": 3",
            "}"
        ],
        "{ran:?}"
    );
    assert_eq!(ran.stderr, "", "{ran:?}");
    let ran = arcp(&["submit", "echo", r#"{"a":[1,2]}"#, "--url", &url, "--key", KEY]).await;
    assert!(ran.stdout.contains("\nlog         info: echo\n"), "{ran:?}");
}

/// `script` (util-linux) runs a command in a pseudo-terminal; `None` when it is missing.
fn script() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("script")).find(|p| p.is_file())
}

#[tokio::test]
async fn on_a_terminal_progress_is_a_bar() {
    let Some(script) = script() else {
        eprintln!("skipped: `script` (util-linux) is not installed, so no pseudo-terminal");
        return;
    };
    let (_server, url) = server().await;
    let line =
        format!("{} submit count '{{\"n\":50,\"delay_ms\":2}}' --url {url} --key {KEY}", env!("CARGO_BIN_EXE_arcp"));
    let mut cmd = tokio::process::Command::new(script);
    cmd.args(["-q", "-e", "-c", &line, "/dev/null"])
        .env_remove("ARCP_LOG")
        .env_remove("RUST_LOG")
        .env("TERM", "xterm")
        .env("COLUMNS", "100")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut stdout = Vec::new();
    let mut pty = child.stdout.take().unwrap();
    tokio::time::timeout(RUN, pty.read_to_end(&mut stdout)).await.unwrap().unwrap();
    let status = within(child.wait()).await.unwrap();
    let screen = String::from_utf8_lossy(&stdout);
    assert_eq!(status.code(), Some(0), "{screen}");
    // The bar, finished at 50/50, instead of one line per progress event…
    assert!(screen.contains("50/50 (100%)"), "{screen}");
    assert!(!screen.contains("progress    "), "{screen}");
    // …then the result.
    assert!(screen.contains("\"count\": 50"), "{screen}");
    assert!(screen.contains("status      running"), "{screen}");
}

/// A TCP proxy whose live connections can be cut at once; counts the connections it took.
#[derive(Clone, Default)]
struct Proxy {
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accepted: Arc<AtomicUsize>,
}

impl Proxy {
    async fn start(&self, upstream: SocketAddr) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (conns, accepted) = (self.conns.clone(), self.accepted.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap().push(task);
            }
        });
        addr
    }

    fn cut(&self) {
        for task in self.conns.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(RUN, f).await.expect("in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_survives_a_dropped_connection() {
    let (_server, url) = server().await;
    let upstream: SocketAddr = url.trim_start_matches("ws://").trim_end_matches("/arcp").parse().unwrap();
    let proxy = Proxy::default();
    let via = format!("ws://{}/arcp", proxy.start(upstream).await);
    let mut child =
        client_command(&["submit", "count", r#"{"n":50,"delay_ms":40}"#, "--json", "--url", &via, "--key", KEY])
            .spawn()
            .unwrap();
    let stderr = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut s = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut s).await;
        s
    });
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut lines = Vec::new();
    while let Some(line) = within(out.next_line()).await.unwrap() {
        lines.push(serde_json::from_str::<Value>(&line).unwrap());
        if progress(&lines).len() == 10 && proxy.accepted.load(Ordering::SeqCst) == 1 {
            proxy.cut();
        }
    }
    let status = within(child.wait()).await.unwrap();
    let stderr = within(stderr).await.unwrap();
    assert_eq!(status.code(), Some(0), "{lines:?}\n{stderr}");
    assert!(proxy.accepted.load(Ordering::SeqCst) >= 2, "the client reconnected");
    assert_eq!(progress(&lines), (1..=50).collect::<Vec<_>>(), "every event exactly once, in order");
    assert_eq!(lines.last().unwrap()["payload"]["result"], json!({"count": 50}));
    assert!(stderr.contains("the session was resumed"), "{stderr}");
}

#[tokio::test]
async fn conformance_runs_the_suite() {
    let (_server, url) = server().await;
    let ran = arcp(&["conformance", "--url", &url, "--key", KEY, "--filter", "s7_1_submit_echo"]).await;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(ran.stdout.contains("conformance: 1 passed, 0 failed"), "{ran:?}");
    // A refused key is one error, not a report of failures.
    let ran = arcp(&["conformance", "--url", &url, "--key", "wrong", "--filter", "s7_1"]).await;
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(ran.stderr.contains("UNAUTHENTICATED"), "{ran:?}");
}

#[tokio::test]
async fn conformance_exits_3_when_a_case_fails() {
    // A runtime whose `echo` does not echo.
    let verifier = arcp_server::StaticBearerVerifier::new().with_token(KEY, "p");
    let mut agents = arcp_server::builtin::registry().unwrap();
    agents
        .register("echo", |_ctx, _input: Value| async move { Ok::<_, arcp_server::AgentError>(json!("not the input")) })
        .unwrap();
    let runtime = arcp_server::Runtime::builder(verifier).agents(agents).build();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let runtime = runtime.clone();
            tokio::spawn(async move {
                if let Ok(t) = arcp_server::transport::ws::accept(stream, "/arcp", MAX_FRAME).await {
                    runtime.serve(t).await;
                }
            });
        }
    });
    let url = format!("ws://{addr}/arcp");
    let ran = arcp(&["conformance", "--url", &url, "--key", KEY, "--filter", "s7_1_submit_echo"]).await;
    assert_eq!(ran.code, Some(3), "{ran:?}");
    assert!(ran.stdout.contains("conformance: 0 passed, 1 failed"), "{ran:?}");
    assert!(ran.stdout.contains("s7_1_submit_echo_runs_to_a_result"), "the failed case is named: {ran:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_over_wss_checks_the_certificate() {
    let dir = std::env::temp_dir().join(format!("arcp-cli-wss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(made.success(), "openssl made the certificate");
    let (cert_path, key_path) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let mut server =
        spawn(&["serve", "--listen", "127.0.0.1:0", "--token", KEY, "--tls-cert", cert_path, "--tls-key", key_path]);
    let line = server.line().await;
    let url = line.strip_prefix("arcp listening on ").unwrap_or_else(|| panic!("{line}")).to_owned();
    assert!(url.starts_with("wss://127.0.0.1:"), "{url}");
    // The self-signed certificate (a CA certificate, as `openssl req -x509` makes it) is
    // trusted as given, for the name it holds: localhost.
    let url = url.replace("127.0.0.1", "localhost");
    let ran =
        arcp(&["submit", "count", r#"{"n":3}"#, "--json", "--url", &url, "--key", KEY, "--ca-cert", cert_path]).await;
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(progress(&ran.lines()), [1, 2, 3]);
    assert_eq!(ran.lines().last().unwrap()["payload"]["result"], json!({"count": 3}));
    let ran = arcp(&["jobs", "--json", "--url", &url, "--key", KEY, "--ca-cert", cert_path]).await;
    assert_eq!((ran.code, ran.lines().len()), (Some(0), 1), "{ran:?}");
    // The same server by an address the certificate does not name: refused.
    let by_ip = url.replace("localhost", "127.0.0.1");
    let ran = arcp(&["jobs", "--url", &by_ip, "--key", KEY, "--ca-cert", cert_path]).await;
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert!(ran.stderr.contains("certificate"), "{ran:?}");
    // Not trusting it (another CA, or the system bundle): no session, exit 1.
    let ran = arcp(&["jobs", "--url", &url, "--key", KEY]).await;
    assert!(matches!(ran.code, Some(1 | 2)), "{ran:?}");
    assert!(ran.stderr.contains("pass it with --ca-cert") || ran.stderr.contains("CA bundle"), "{ran:?}");
    // A certificate file that is not one: a usage error.
    let ran = arcp(&["jobs", "--url", &url, "--key", KEY, "--ca-cert", key_path]).await;
    assert_eq!(ran.code, Some(2), "{ran:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
