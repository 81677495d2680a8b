//! The load generators: `hello` (the baseline's load), `turns` (buffered channel turns with
//! token rotation) and `idle` (idle channel sessions).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use super::client::{Conn, Target, string_field};
use crate::report::Latencies;

/// The body of every turn (and of every baseline request, so both carry the same bytes).
const TURN_BODY: &str = r#"{"input":"hello"}"#;

/// A stand-in continuation token for the baseline's requests (`ct_` and 64 hex digits, the
/// size of a real one), so its requests are as large as a turn's.
const FAKE_TOKEN: &str = "ct_0000000000000000000000000000000000000000000000000000000000000000";

/// A stand-in bearer key for the baseline's requests (the size of the benchmark's key).
const FAKE_BEARER: &str = "bench-token";

/// When the measured window opens and closes.
#[derive(Debug, Clone, Copy)]
struct Window {
    from: Instant,
    to: Instant,
}

impl Window {
    fn new(warmup: f64, seconds: f64) -> Result<Window> {
        if !(seconds.is_finite() && seconds > 0.0 && warmup.is_finite() && warmup >= 0.0) {
            bail!("--seconds must be > 0 and --warmup-seconds >= 0");
        }
        let from = Instant::now() + Duration::from_secs_f64(warmup);
        Ok(Window { from, to: from + Duration::from_secs_f64(seconds) })
    }

    /// Whether a request that started at `start` and ended at `end` counts.
    fn counts(&self, start: Instant, end: Instant) -> bool {
        start >= self.from && end <= self.to
    }
}

/// What one worker counted: one latency per successful request in the window.
#[derive(Debug, Default)]
struct Tally {
    latencies: Latencies,
}

impl Tally {
    /// How many requests succeeded in the window.
    fn ok(&self) -> u64 {
        self.latencies.len() as u64
    }
}

/// Errors of a run: counted, and the first one printed to stderr.
#[derive(Debug, Default)]
struct Errors {
    count: AtomicU64,
    printed: AtomicBool,
}

impl Errors {
    fn record(&self, what: impl FnOnce() -> String) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if !self.printed.swap(true, Ordering::Relaxed) {
            eprintln!("first error: {}", what());
        }
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// How long a worker waits before reconnecting after a transport error (so a dead server
/// does not turn into a busy loop).
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

/// Sums the workers' tallies into the result fields shared by `hello` and `turns`.
async fn collect(workers: Vec<tokio::task::JoinHandle<Tally>>) -> Result<Tally> {
    let mut all = Tally::default();
    for w in workers {
        let t = w.await.context("a worker panicked")?;
        all.latencies.merge(t.latencies);
    }
    Ok(all)
}

// ---------------------------------------------------------------------------------------
// hello

/// `channel hello`: `connections` keep-alive connections, each posting a turn-sized body back
/// to back to `url`.
pub(crate) async fn hello(url: &str, connections: usize, seconds: f64, warmup: f64) -> Result<Value> {
    let target = Target::parse(url)?;
    let path = if target.path.is_empty() { "/".to_owned() } else { target.path.clone() };
    let window = Window::new(warmup, seconds)?;
    let errors = Arc::new(Errors::default());
    let mut workers = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (target, path, errors) = (target.clone(), path.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut conn: Option<Conn> = None;
            while Instant::now() < window.to {
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => match Conn::connect(&target, Some(FAKE_BEARER)).await {
                        Ok(c) => conn.insert(c),
                        Err(e) => {
                            errors.record(|| format!("{e:#}"));
                            tokio::time::sleep(RECONNECT_PAUSE).await;
                            continue;
                        }
                    },
                };
                let start = Instant::now();
                let res = c.post(&path, Some(FAKE_TOKEN), Bytes::from_static(TURN_BODY.as_bytes())).await;
                let end = Instant::now();
                match res {
                    Ok((status, _)) if status.is_success() => {
                        if window.counts(start, end) {
                            tally.latencies.record(end - start);
                        }
                    }
                    Ok((status, body)) => errors.record(|| http_error(status, &body)),
                    Err(e) => {
                        errors.record(|| format!("{e:#}"));
                        conn = None;
                    }
                }
            }
            tally
        }));
    }
    let mut all = collect(workers).await?;
    Ok(json!({
        "requests": all.ok(),
        "seconds": seconds,
        "requests_per_sec": all.ok() as f64 / seconds,
        "p50_us": all.latencies.quantile_us(0.50),
        "p99_us": all.latencies.quantile_us(0.99),
        "errors": errors.count(),
    }))
}

fn http_error(status: StatusCode, body: &[u8]) -> String {
    format!("HTTP {status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]))
}

// ---------------------------------------------------------------------------------------
// turns

/// A channel session as its client holds it.
struct Session {
    /// `/v1/session/{id}/message`.
    message_path: String,
    token: String,
}

/// `POST /v1/session`: starts a session (its first turn runs) and returns it.
async fn start(conn: &mut Conn, base: &Target) -> Result<Session> {
    let (status, body) =
        conn.post(&format!("{}/v1/session", base.path), None, Bytes::from_static(TURN_BODY.as_bytes())).await?;
    if !status.is_success() {
        bail!("starting a session: {}", http_error(status, &body));
    }
    let reply: Value = serde_json::from_slice(&body).context("the start reply is not JSON")?;
    let (Some(id), Some(token)) =
        (reply.get("sessionId").and_then(Value::as_str), reply.get("continuationToken").and_then(Value::as_str))
    else {
        bail!("the start reply has no sessionId/continuationToken: {reply}");
    };
    Ok(Session { message_path: format!("{}/v1/session/{id}/message", base.path), token: token.to_owned() })
}

/// `channel turns`: `sessions` sessions, each on its own keep-alive connection, running
/// buffered turns back to back; each turn presents the token the previous reply gave.
pub(crate) async fn turns(url: &str, bearer: &str, sessions: usize, seconds: f64, warmup: f64) -> Result<Value> {
    let base = Arc::new(Target::parse(url)?);
    let bearer: Arc<str> = bearer.into();
    let window = Window::new(warmup, seconds)?;
    let errors = Arc::new(Errors::default());
    let mut workers = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        let (base, bearer, errors) = (base.clone(), bearer.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut conn: Option<Conn> = None;
            let mut session: Option<Session> = None;
            while Instant::now() < window.to {
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => match Conn::connect(&base, Some(&bearer)).await {
                        Ok(c) => conn.insert(c),
                        Err(e) => {
                            errors.record(|| format!("{e:#}"));
                            tokio::time::sleep(RECONNECT_PAUSE).await;
                            continue;
                        }
                    },
                };
                let s = match session.as_mut() {
                    Some(s) => s,
                    None => match start(c, &base).await {
                        Ok(s) => session.insert(s),
                        Err(e) => {
                            errors.record(|| format!("{e:#}"));
                            conn = None;
                            tokio::time::sleep(RECONNECT_PAUSE).await;
                            continue;
                        }
                    },
                };
                let begin = Instant::now();
                let res = c.post(&s.message_path, Some(&s.token), Bytes::from_static(TURN_BODY.as_bytes())).await;
                let end = Instant::now();
                match res {
                    Ok((status, body)) if status.is_success() => match string_field(&body, "continuationToken") {
                        Some(token) => {
                            token.clone_into(&mut s.token);
                            if window.counts(begin, end) {
                                tally.latencies.record(end - begin);
                            }
                        }
                        None => {
                            errors.record(|| {
                                format!("a turn reply without a continuationToken: {}", http_error(status, &body))
                            });
                            session = None;
                        }
                    },
                    // A refused turn keeps the presented token valid: go on with it.
                    Ok((status, body)) => errors.record(|| http_error(status, &body)),
                    Err(e) => {
                        errors.record(|| format!("{e:#}"));
                        conn = None;
                    }
                }
            }
            tally
        }));
    }
    let mut all = collect(workers).await?;
    Ok(json!({
        "turns": all.ok(),
        "seconds": seconds,
        "turns_per_sec": all.ok() as f64 / seconds,
        "p50_us": all.latencies.quantile_us(0.50),
        "p99_us": all.latencies.quantile_us(0.99),
        "errors": errors.count(),
    }))
}

// ---------------------------------------------------------------------------------------
// idle

/// `channel idle`: creates `sessions` sessions over `connections` keep-alive connections as
/// fast as it can and leaves them (no connection is kept: they live in the token store).
/// With `max_seconds` it stops creating once that much time has passed (a slow store).
pub(crate) async fn idle(
    url: &str,
    bearer: &str,
    sessions: u64,
    connections: usize,
    max_seconds: Option<f64>,
) -> Result<Value> {
    let base = Arc::new(Target::parse(url)?);
    let bearer: Arc<str> = bearer.into();
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Errors::default());
    let began = Instant::now();
    let deadline = max_seconds.map(|s| began + Duration::from_secs_f64(s.max(0.0)));
    let mut workers = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        let (base, bearer, next, errors) = (base.clone(), bearer.clone(), next.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            let mut created = 0u64;
            let mut conn: Option<Conn> = None;
            // Gives up after this many errors in a row (a server that refuses every start).
            let mut failures_in_a_row = 0u32;
            while deadline.is_none_or(|d| Instant::now() < d)
                && failures_in_a_row < 100
                && next.fetch_add(1, Ordering::Relaxed) < sessions
            {
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => match Conn::connect(&base, Some(&bearer)).await {
                        Ok(c) => conn.insert(c),
                        Err(e) => {
                            errors.record(|| format!("{e:#}"));
                            failures_in_a_row += 1;
                            tokio::time::sleep(RECONNECT_PAUSE).await;
                            continue;
                        }
                    },
                };
                match start(c, &base).await {
                    Ok(_) => {
                        created += 1;
                        failures_in_a_row = 0;
                    }
                    Err(e) => {
                        errors.record(|| format!("{e:#}"));
                        failures_in_a_row += 1;
                        conn = None;
                    }
                }
            }
            created
        }));
    }
    let mut created = 0;
    for w in workers {
        created += w.await.context("a worker panicked")?;
    }
    Ok(json!({
        "sessions": created,
        "seconds": began.elapsed().as_secs_f64(),
        "errors": errors.count(),
    }))
}
