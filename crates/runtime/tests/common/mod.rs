//! Test support: spawning the built `arcp` binary (killed when its guard drops) and a small
//! raw-JSON ARCP client over WebSocket.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use arcp_server::transport::ws::{self, WsSink, WsSource};
use arcp_server::transport::{FrameSink as _, FrameSource as _, Transport as _};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio_tungstenite::MaybeTlsStream;

/// How long any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// The largest frame the test client accepts.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

/// A spawned `arcp` process, killed when dropped.
pub struct Arcp {
    pub child: Child,
    pub stdout: Option<Lines<BufReader<ChildStdout>>>,
    /// Drains stderr from the start (a full pipe would block the server's logging, and so
    /// the server) and yields everything it read once the process closed it.
    stderr: Option<tokio::task::JoinHandle<String>>,
}

impl Drop for Arcp {
    fn drop(&mut self) {
        // Best effort: the process may already have exited. `kill_on_drop` is set as well.
        let _ = self.child.start_kill();
    }
}

/// A `Command` for the built binary with piped stdio, killed on drop, and a clean
/// environment (no `ARCP_*` from the caller's shell).
pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_arcp"));
    cmd.args(args)
        .env_remove("ARCP_LISTEN")
        .env_remove("ARCP_TOKEN")
        .env_remove("ARCP_PRINCIPAL")
        .env_remove("ARCP_DEFAULT_AGENT")
        .env_remove("ARCP_CHANNEL_IDLE_TTL_SECS")
        .env_remove("ARCP_CHANNEL_MAX_BODY_BYTES")
        .env_remove("ARCP_CONFORMANCE_FIXTURES")
        .env_remove("ARCP_PLUGINS_POLICY")
        .env_remove("ARCP_NODE_ID")
        // Tests run in parallel: each server keeps its state in memory unless the test
        // passes its own `--store` (the flag wins over the variable).
        .env("ARCP_STORE", "memory")
        .env("ARCP_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Spawns `arcp` with `args`.
pub fn spawn(args: &[&str]) -> Arcp {
    spawn_command(command(args))
}

/// Spawns a [`command`] (perhaps with more environment).
pub fn spawn_command(mut cmd: Command) -> Arcp {
    let mut child = cmd.spawn().expect("spawn arcp");
    let stdout = child.stdout.take().map(|s| BufReader::new(s).lines());
    let stderr = child.stderr.take().map(|mut pipe: ChildStderr| {
        tokio::spawn(async move {
            let mut bytes = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut bytes).await;
            String::from_utf8_lossy(&bytes).into_owned()
        })
    });
    Arcp { child, stdout, stderr }
}

impl Arcp {
    /// The next line on stdout (panics after [`WAIT`] or at end of output).
    pub async fn line(&mut self) -> String {
        let lines = self.stdout.as_mut().expect("stdout is piped");
        tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("a stdout line in time")
            .expect("stdout is readable")
            .expect("stdout is still open")
    }

    /// Waits for the process to exit (panics after [`WAIT`]) and returns its exit code.
    pub async fn exit_code(&mut self) -> Option<i32> {
        let status = tokio::time::timeout(WAIT, self.child.wait()).await.expect("exit in time").expect("wait");
        status.code()
    }

    /// Everything the process wrote to stderr (call after it exited).
    pub async fn stderr(&mut self) -> String {
        let task = self.stderr.take().expect("stderr is piped and read once");
        tokio::time::timeout(WAIT, task).await.expect("stderr ends in time").expect("the stderr reader")
    }
}

/// `arcp serve` with `extra` arguments on a free loopback port; returns the process and the
/// `ws://…/arcp` URL it printed.
pub async fn serve(extra: &[&str]) -> (Arcp, String) {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut arcp = spawn(&args);
    let line = arcp.line().await;
    let url =
        line.strip_prefix("arcp listening on ").unwrap_or_else(|| panic!("unexpected first line: {line:?}")).to_owned();
    assert!(url.starts_with("ws://127.0.0.1:") && url.ends_with("/arcp"), "{url}");
    (arcp, url)
}

/// A raw ARCP client: sends JSON envelopes, reads them back as `serde_json::Value`.
pub struct Client {
    sink: WsSink<MaybeTlsStream<TcpStream>>,
    source: WsSource<MaybeTlsStream<TcpStream>>,
    pub session_id: Option<String>,
    n: u64,
}

impl Client {
    /// Connects to `url` (panics after [`WAIT`] or if the upgrade is refused).
    pub async fn connect(url: &str) -> Client {
        let transport = tokio::time::timeout(WAIT, ws::connect(url, MAX_FRAME))
            .await
            .expect("connect in time")
            .expect("the upgrade is accepted");
        let (sink, source) = transport.split();
        Client { sink, source, session_id: None, n: 0 }
    }

    /// Sends an envelope of type `ty`; `extra` holds more envelope fields. Returns its id.
    pub async fn send(&mut self, ty: &str, payload: Value, extra: Value) -> String {
        self.n += 1;
        let id = format!("msg_test_{}", self.n);
        let env = envelope(&id, ty, payload, self.session_id.as_deref(), extra);
        tokio::time::timeout(WAIT, self.sink.send(env.to_string())).await.expect("send in time").expect("send");
        id
    }

    /// The next envelope (panics after [`WAIT`] or if the connection closed).
    pub async fn next(&mut self) -> Value {
        self.next_within(WAIT).await
    }

    /// The next envelope (panics after `wait` or if the connection closed).
    pub async fn next_within(&mut self, wait: Duration) -> Value {
        let frame = tokio::time::timeout(wait, self.source.recv())
            .await
            .expect("a frame in time")
            .expect("the connection is open")
            .expect("a text frame");
        serde_json::from_str(&frame).unwrap_or_else(|e| panic!("not JSON ({e}): {frame}"))
    }

    /// Whether the server closes the connection within [`WAIT`] (frames still in flight are
    /// skipped).
    pub async fn closed(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.source.recv()).await {
                Ok(None) => return true,
                Ok(Some(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// `session.hello` with `token` and the `progress` feature; returns the reply.
    pub async fn hello(&mut self, token: &str) -> Value {
        self.send("session.hello", hello_payload(token), json!({})).await;
        let reply = self.next().await;
        if reply["type"] == "session.welcome" {
            self.session_id = reply["session_id"].as_str().map(str::to_owned);
        }
        reply
    }

    /// Submits `input` to `agent`; returns the `job.accepted` job id.
    pub async fn submit(&mut self, agent: &str, input: Value) -> String {
        self.send("job.submit", json!({"agent": agent, "input": input}), json!({})).await;
        let accepted = self.next().await;
        assert_eq!(accepted["type"], "job.accepted", "{accepted}");
        accepted["job_id"].as_str().expect("job_id").to_owned()
    }

    /// Every envelope of `job` up to and including its `job.result` or `job.error`.
    pub async fn until_terminal(&mut self, job: &str) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let env = self.next().await;
            if env["job_id"] != job {
                continue;
            }
            let done = matches!(env["type"].as_str(), Some("job.result" | "job.error"));
            out.push(env);
            if done {
                return out;
            }
        }
    }
}

/// A `session.hello` payload with `token` that negotiates `progress`.
pub fn hello_payload(token: &str) -> Value {
    json!({
        "client": {"name": "runtime-tests", "version": "0"},
        "auth": {"scheme": "bearer", "token": token},
        "capabilities": {"features": ["progress"]},
    })
}

/// An ARCP envelope.
pub fn envelope(id: &str, ty: &str, payload: Value, session_id: Option<&str>, extra: Value) -> Value {
    let mut env = json!({"arcp": "1.1", "id": id, "type": ty, "payload": payload});
    if let Some(s) = session_id {
        env["session_id"] = json!(s);
    }
    if let Value::Object(fields) = extra {
        for (k, v) in fields {
            env[k] = v;
        }
    }
    env
}

/// `(kind, body)` of a `job.event`, or `(type, payload)` of anything else.
pub fn describe(env: &Value) -> (String, Value) {
    if env["type"] == "job.event" {
        (format!("event:{}", env["payload"]["kind"].as_str().unwrap_or("?")), env["payload"]["body"].clone())
    } else {
        (env["type"].as_str().unwrap_or("?").to_owned(), env["payload"].clone())
    }
}
