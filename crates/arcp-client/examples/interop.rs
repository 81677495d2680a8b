//! Interop: our client (`arcp-client`) against another ARCP runtime, e.g. the Python reference
//! (`conformance/interop/python_runtime.py`, run by `conformance/interop/run.sh`).
//!
//! ```text
//! cargo run -p arcp-client --example interop -- ws://127.0.0.1:PORT/arcp TOKEN
//! ```
//!
//! The runtime must host the `arcp serve` agents `echo`, `count` and `sleep`. Steps:
//! - hello: the welcome (session id, runtime, features, agents);
//! - submit `echo` → its result is the input (the reference CLI's `{"echoed": input}` is
//!   accepted too, and named);
//! - `count` n=5 → progress events 1..5 streamed, then the result;
//! - cancel a sleeping job → it ends cancelled (`job.error` per the spec, or the reference's
//!   `job.result {final_status: "cancelled"}`; the tap on the wire says which);
//! - a second session subscribes with history to a finished `count` job (§7.6), the client
//!   acks (§6.5), and lists its jobs (§6.6): the `count` job must be on the first page, as
//!   `success`;
//! - resume, through a local TCP proxy in front of the runtime, with `count` n=30 (50 ms
//!   apart), twice on one client: *replay* (after five events the proxy loses everything the
//!   runtime sends until the job's result has gone by, then cuts: the resume must replay the
//!   rest) and *live* (the proxy cuts after five events with the job running: the rest must
//!   arrive on the resumed session). Each time every progress event 1..30 must arrive
//!   exactly once, in order, then the result.
//!
//! Prints one line per step; exits non-zero with a `FAIL` line on the first failure. Every
//! wait is bounded; only loopback addresses are used. Documented deviations of the peer
//! (spec/interop.md) are tolerated only where the wire shows they are the peer's, and are
//! reported as `deviation` in the step's line: a cancel ending in `job.result` (A-3), listing
//! entries without `lease`/`last_event_seq` or with `submitted_at` for `created_at` (P-16,
//! read by `Client::list_jobs` and named in `ListedJob::deviations`), and a live resume after
//! which the runtime sends nothing more of the job (P-11).

use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arcp_client::{Backoff, Client, ClientError, ClientOptions, Connector, JobEvents, ReceivedEvent, SubmitRequest};
use arcp_core::ErrorCode;
use arcp_core::event::EventBody;
use arcp_core::message::ErrorStatus;
use arcp_server::transport::{FrameSource, Transport, TransportError, ws};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

type Fallible<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// The largest frame either way.
const MAX_FRAME: usize = 1 << 20;
/// Bound on one step's single wait (a submit, a result, the next event).
const STEP: Duration = Duration::from_secs(15);
/// How long the resumed stream may stay silent before the step gives up on it.
const STALL: Duration = Duration::from_secs(5);
/// How long a cut connection stays down: the reference runtime refuses a resume that
/// arrives before it has itself noticed the old connection's loss (spec/interop.md P-13).
const OUTAGE: Duration = Duration::from_millis(250);

fn fail(message: impl Into<String>) -> Box<dyn Error + Send + Sync> {
    message.into().into()
}

/// `fut`, or an error naming `what` after `limit`.
async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> Fallible<T> {
    tokio::time::timeout(limit, fut).await.map_err(|_| fail(format!("timed out after {limit:?}: {what}")))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ----- a wire tap: what the runtime actually sent -----

/// One inbound frame, as far as the checks care.
#[derive(Debug, Clone)]
struct Seen {
    /// Which connection (1 = first) it arrived on.
    conn: usize,
    ty: String,
    job_id: Option<String>,
    event_seq: Option<u64>,
    final_status: Option<String>,
    code: Option<String>,
}

/// Records every inbound frame of every connection a connector opens.
#[derive(Clone, Default)]
struct Tap {
    frames: Arc<Mutex<Vec<Seen>>>,
    conns: Arc<AtomicUsize>,
}

impl Tap {
    fn record(&self, conn: usize, frame: &str) {
        let Ok(v) = serde_json::from_str::<Value>(frame) else { return };
        let s = |v: &Value| v.as_str().map(str::to_owned);
        lock(&self.frames).push(Seen {
            conn,
            ty: s(&v["type"]).unwrap_or_default(),
            job_id: s(&v["job_id"]),
            event_seq: v["event_seq"].as_u64(),
            final_status: s(&v["payload"]["final_status"]),
            code: s(&v["payload"]["code"]),
        });
    }

    fn frames(&self) -> Vec<Seen> {
        lock(&self.frames).clone()
    }

    /// The terminal envelope (`job.result` / `job.error`) recorded for `job_id`.
    fn terminal(&self, job_id: &str) -> Option<Seen> {
        self.frames()
            .into_iter()
            .find(|f| f.job_id.as_deref() == Some(job_id) && matches!(f.ty.as_str(), "job.result" | "job.error"))
    }

    /// A connector opening a WebSocket to `url` whose inbound frames this tap records.
    fn connector(&self, url: String) -> impl Connector {
        let tap = self.clone();
        move || {
            let (url, tap) = (url.clone(), tap.clone());
            async move {
                let inner = ws::connect(&url, MAX_FRAME).await?;
                let conn = tap.conns.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(Tapped { inner, tap, conn })
            }
        }
    }
}

struct Tapped<T> {
    inner: T,
    tap: Tap,
    conn: usize,
}

struct TappedSource<S> {
    inner: S,
    tap: Tap,
    conn: usize,
}

impl<T: Transport> Transport for Tapped<T> {
    type Sink = T::Sink;
    type Source = TappedSource<T::Source>;

    fn split(self) -> (T::Sink, TappedSource<T::Source>) {
        let (sink, source) = self.inner.split();
        (sink, TappedSource { inner: source, tap: self.tap, conn: self.conn })
    }
}

impl<S: FrameSource> FrameSource for TappedSource<S> {
    async fn recv(&mut self) -> Option<Result<String, TransportError>> {
        let frame = self.inner.recv().await;
        if let Some(Ok(text)) = &frame {
            self.tap.record(self.conn, text);
        }
        frame
    }
}

// ----- a TCP proxy whose connections can be cut -----

/// A TCP proxy on 127.0.0.1 (port 0) to `upstream`. [`cut`](Self::cut) drops every live
/// connection at once, as a network failure would. [`black_hole`](Self::black_hole) makes
/// it read and discard what the runtime sends (the runtime's writes still succeed, the bytes
/// never reach the client: a network that loses them), remembering whether a `job.result`
/// went by. After a cut, the outage lasts [`OUTAGE`]: new connections are held that long
/// before they reach the runtime (spec/interop.md P-13).
#[derive(Clone, Default)]
struct Proxy {
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accepted: Arc<AtomicUsize>,
    hole: Arc<Hole>,
}

#[derive(Default)]
struct Hole {
    on: AtomicBool,
    swallowed: Mutex<Vec<u8>>,
    cut_at: Mutex<Option<tokio::time::Instant>>,
}

impl Hole {
    fn swallow(&self, bytes: &[u8]) {
        lock(&self.swallowed).extend_from_slice(bytes);
    }

    /// Whether a `job.result` frame was discarded. WebSocket frames from a server are not
    /// masked and our client negotiates no compression, so the JSON text is visible.
    fn saw(&self, needle: &str) -> bool {
        let bytes = lock(&self.swallowed);
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    }
}

impl Proxy {
    async fn start(&self, upstream: SocketAddr) -> Fallible<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (conns, accepted, hole) = (self.conns.clone(), self.accepted.clone(), self.hole.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let task = tokio::spawn(pipe(inbound, upstream, hole.clone()));
                lock(&conns).push(task);
            }
        });
        Ok(addr)
    }

    fn black_hole(&self) {
        self.hole.on.store(true, Ordering::SeqCst);
    }

    fn cut(&self) {
        for task in lock(&self.conns).drain(..) {
            task.abort();
        }
        self.hole.on.store(false, Ordering::SeqCst);
        lock(&self.hole.swallowed).clear();
        *lock(&self.hole.cut_at) = Some(tokio::time::Instant::now());
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// One proxied connection; ends (dropping both sockets) when either side ends.
async fn pipe(inbound: TcpStream, upstream: SocketAddr, hole: Arc<Hole>) {
    let cut_at = *lock(&hole.cut_at);
    if let Some(cut_at) = cut_at {
        tokio::time::sleep_until(cut_at + OUTAGE).await;
    }
    let Ok(outbound) = TcpStream::connect(upstream).await else { return };
    let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
    let (mut client_rx, mut client_tx) = inbound.into_split();
    let (mut runtime_rx, mut runtime_tx) = outbound.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut client_rx, &mut runtime_tx).await;
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match runtime_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let Some(bytes) = buf.get(..n) else { return };
            if hole.on.load(Ordering::SeqCst) {
                hole.swallow(bytes);
            } else if client_tx.write_all(bytes).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

// ----- helpers -----

/// `ws://HOST:PORT/PATH` → the socket address and the path; HOST must be a loopback IP (or
/// `localhost`).
fn loopback_target(url: &str) -> Fallible<(SocketAddr, String)> {
    let rest = url.strip_prefix("ws://").ok_or_else(|| fail(format!("not a ws:// URL: {url}")))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let authority = authority.replace("localhost:", "127.0.0.1:");
    let addr: SocketAddr =
        authority.parse().map_err(|e| fail(format!("{url}: host:port is not an IP address ({e})")))?;
    if !addr.ip().is_loopback() {
        return Err(fail(format!("{url}: only loopback addresses are allowed")));
    }
    Ok((addr, format!("/{path}")))
}

fn options(token: &str) -> ClientOptions {
    ClientOptions::default()
        .with_token(token)
        .with_client("arcp-rs-interop", env!("CARGO_PKG_VERSION"))
        .with_max_frame_bytes(MAX_FRAME)
        .with_connect_timeout(Duration::from_secs(5))
        .with_backoff(Backoff {
            max_attempts: 6,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        })
}

/// `progress.current` of a progress event.
fn progress_current(e: &ReceivedEvent) -> Option<u64> {
    match &e.event.body {
        EventBody::Progress(p) => p.current.as_u64(),
        _ => None,
    }
}

/// Reads `events` to its end (each item bounded by `limit`); a stream error fails.
async fn drain(events: &mut JobEvents, limit: Duration, what: &str) -> Fallible<Vec<ReceivedEvent>> {
    let mut out = Vec::new();
    while let Some(item) = within(limit, what, events.next()).await? {
        out.push(item.map_err(|e| fail(format!("{what}: the event stream failed: {e}")))?);
    }
    Ok(out)
}

// ----- the steps -----

async fn hello(url: &str, token: &str, tap: &Tap) -> Fallible<Client> {
    let client = within(STEP, "hello → welcome", Client::connect_with(tap.connector(url.to_owned()), options(token)))
        .await?
        .map_err(|e| fail(format!("hello: {e}")))?;
    let runtime = client.runtime_info();
    let features: Vec<String> = client.features().iter().map(ToString::to_string).collect();
    let agents: Vec<String> =
        client.agents().map(|a| a.normalize().into_iter().map(|e| e.name).collect()).unwrap_or_default();
    if client.session_id().as_str().is_empty() {
        return Err(fail("hello: the welcome has an empty session_id"));
    }
    for needed in ["echo", "count", "sleep"] {
        if !agents.is_empty() && !agents.iter().any(|a| a == needed) {
            return Err(fail(format!("hello: the runtime does not list agent {needed:?} (agents: {agents:?})")));
        }
    }
    println!(
        "hello ok: session {} with {} {}; features [{}]; agents [{}]; resume window {:?}",
        client.session_id(),
        runtime.name,
        runtime.version,
        features.join(", "),
        agents.join(", "),
        client.resume_window(),
    );
    Ok(client)
}

async fn echo(client: &Client) -> Fallible<()> {
    let input = json!({"hello": [1, 2, 3], "nested": {"ok": true}});
    let job = within(STEP, "submit echo", client.submit(SubmitRequest::new("echo", input.clone())))
        .await?
        .map_err(|e| fail(format!("submit echo: {e}")))?;
    let outcome =
        within(STEP, "echo's result", job.result()).await?.map_err(|e| fail(format!("echo's result: {e}")))?;
    let shape = match outcome.result {
        Some(r) if r == input => "the input unchanged (arcp serve contract)",
        Some(r) if r == json!({ "echoed": input }) => "{\"echoed\": input} (the reference CLI's echo shape)",
        other => return Err(fail(format!("echo: expected the input back, got {other:?}"))),
    };
    println!("submit/result ok: echo job {} returned {shape}", job.job_id());
    Ok(())
}

async fn stream(client: &Client) -> Fallible<()> {
    let mut job = within(STEP, "submit count n=5", client.submit(SubmitRequest::new("count", json!({"n": 5}))))
        .await?
        .map_err(|e| fail(format!("submit count: {e}")))?;
    let events = drain(&mut job.events(), STEP, "count n=5 events").await?;
    let counts: Vec<u64> = events.iter().filter_map(progress_current).collect();
    if counts != [1, 2, 3, 4, 5] {
        let kinds: Vec<&str> = events.iter().map(ReceivedEvent::kind).collect();
        return Err(fail(format!("stream: expected progress 1..5, got {counts:?} (kinds {kinds:?})")));
    }
    let outcome =
        within(STEP, "count's result", job.result()).await?.map_err(|e| fail(format!("count's result: {e}")))?;
    if outcome.result != Some(json!({"count": 5})) {
        return Err(fail(format!("stream: expected {{\"count\": 5}}, got {:?}", outcome.result)));
    }
    println!("stream ok: {} events, progress 1..5, then result {{\"count\": 5}}", events.len());
    Ok(())
}

async fn cancel(client: &Client, tap: &Tap) -> Fallible<()> {
    let job = within(STEP, "submit sleep", client.submit(SubmitRequest::new("sleep", json!({}))))
        .await?
        .map_err(|e| fail(format!("submit sleep: {e}")))?;
    // Let the agent start (the reference sends no `status running` event, P-10).
    tokio::time::sleep(Duration::from_millis(200)).await;
    if job.is_finished() {
        return Err(fail("cancel: the sleep job ended before it was cancelled"));
    }
    // A reason is sent: the reference refuses `job.cancel` without one (P-4).
    within(STEP, "cancel acknowledged or job ended", job.cancel(Some("interop: cancel step".to_owned())))
        .await?
        .map_err(|e| fail(format!("cancel: {e}")))?;
    let ended = within(STEP, "the cancelled job's end", job.result()).await?;
    match ended {
        Err(ClientError::Job { final_status: ErrorStatus::Cancelled, ref payload })
            if payload.code == ErrorCode::CANCELLED => {}
        other => return Err(fail(format!("cancel: expected the job to end cancelled, got {other:?}"))),
    }
    let wire = tap.terminal(job.job_id().as_str());
    let how = match wire {
        Some(Seen { ref ty, final_status: Some(ref fs), .. }) if ty == "job.result" && fs == "cancelled" => {
            "job.result {final_status: \"cancelled\"} (deviation, spec/interop.md A-3)".to_owned()
        }
        Some(Seen { ref ty, final_status: Some(ref fs), code: Some(ref code), .. })
            if ty == "job.error" && fs == "cancelled" =>
        {
            format!("job.error {{final_status: \"cancelled\", code: {code}}} (spec §7.4)")
        }
        other => return Err(fail(format!("cancel: unexpected terminal envelope on the wire: {other:?}"))),
    };
    let acked =
        tap.frames().iter().any(|f| f.ty == "job.cancelled" && f.job_id.as_deref() == Some(job.job_id().as_str()));
    let ack = if acked { "job.cancelled, then " } else { "no job.cancelled (deviation, spec/interop.md P-14), only " };
    println!("cancel ok: job {} ended cancelled; on the wire: {ack}{how}", job.job_id());
    Ok(())
}

/// How a resume step ended.
enum Resumed {
    /// Every progress event 1..n exactly once, in order, then the result.
    Complete,
    /// The runtime sent nothing of the job after the resume (spec/interop.md P-11).
    JobLostByRuntime(String),
}

/// Resume, two ways, through a proxy in front of the runtime, on one client:
/// 1. *replay*: after a few events the proxy discards everything the runtime sends until
///    the runtime has sent the job's result, then cuts; the resume must replay the rest;
/// 2. *live*: the proxy cuts after a few events with the job still running; the rest must
///    arrive live on the resumed session (spec §6.3, decisions 4 and 15).
async fn resume(url: &str, token: &str) -> Fallible<()> {
    let (upstream, path) = loopback_target(url)?;
    let proxy = Proxy::default();
    let front = proxy.start(upstream).await?;
    let tap = Tap::default();
    let client = within(
        STEP,
        "hello through the proxy",
        Client::connect_with(tap.connector(format!("ws://{front}{path}")), options(token)),
    )
    .await?
    .map_err(|e| fail(format!("resume: hello through the proxy: {e}")))?;

    match resume_once(&client, &proxy, &tap, true).await? {
        Resumed::Complete => {}
        Resumed::JobLostByRuntime(why) => {
            return Err(fail(format!("resume (replay): the runtime lost the job's events: {why}")));
        }
    }
    match resume_once(&client, &proxy, &tap, false).await? {
        Resumed::Complete => {}
        Resumed::JobLostByRuntime(why) => println!(
            "resume (live) deviation: the reference does not re-attach a running job to the resumed \
             session; its later events and result never arrive (spec/interop.md P-11): {why}"
        ),
    }
    let _ = within(STEP, "close", client.close_with(Some("interop done".to_owned()))).await;
    Ok(())
}

async fn resume_once(client: &Client, proxy: &Proxy, tap: &Tap, replay: bool) -> Fallible<Resumed> {
    let step = if replay { "resume (replay)" } else { "resume (live)" };
    let session = client.session_id().clone();
    let resumes_before = client.resumes();
    let conns_before = proxy.connections();
    let n = 30u64;
    let request = SubmitRequest::new("count", json!({"n": n, "delay_ms": 50}));
    let mut job = within(STEP, "submit count n=30", client.submit(request))
        .await?
        .map_err(|e| fail(format!("{step}: submit count n=30: {e}")))?;
    let job_id = job.job_id().as_str().to_owned();
    let mut events = job.events();
    let mut got: Vec<ReceivedEvent> = Vec::new();
    let mut cut_after = None;
    let mut stalled = false;
    loop {
        let Ok(next) = tokio::time::timeout(STALL, events.next()).await else {
            stalled = true;
            break;
        };
        let Some(item) = next else { break };
        got.push(item.map_err(|e| fail(format!("{step}: the event stream failed: {e}")))?);
        if got.len() == 5 && cut_after.is_none() {
            if replay {
                proxy.black_hole();
                within(STEP, "the runtime sending the job's result into the black hole", async {
                    while !proxy.hole.saw(r#""type":"job.result""#) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
                .await?;
            }
            proxy.cut();
            cut_after = Some(got.len());
        }
    }
    let counts: Vec<u64> = got.iter().filter_map(progress_current).collect();
    let in_order = counts.iter().zip(1u64..).all(|(c, i)| *c == i);
    let seqs_ok = got.windows(2).all(|w| w[1].event_seq > w[0].event_seq);
    let summary = format!(
        "{} events (progress {}..{}), {} resume(s), cursor {}",
        got.len(),
        counts.first().copied().unwrap_or_default(),
        counts.last().copied().unwrap_or_default(),
        client.resumes() - resumes_before,
        client.last_event_seq(),
    );
    let Some(cut_after) = cut_after else {
        return Err(fail(format!("{step}: the job ended before the cut: {summary}")));
    };
    if client.resumes() == resumes_before || proxy.connections() <= conns_before {
        return Err(fail(format!("{step}: the client did not resume through the proxy: {summary}")));
    }
    if client.session_id() != &session {
        return Err(fail(format!("{step}: the session id changed")));
    }
    if !in_order || !seqs_ok {
        return Err(fail(format!("{step}: events repeated, missing or out of order: {counts:?}")));
    }
    if stalled {
        // Tolerated only if the runtime sent nothing of this job after the resume: the tap
        // sees the wire, so a client that dropped what it was sent still fails here.
        let last_conn = tap.conns.load(Ordering::SeqCst);
        let after_resume: Vec<Seen> = tap
            .frames()
            .into_iter()
            .filter(|f| f.conn == last_conn && f.job_id.as_deref() == Some(job_id.as_str()))
            .collect();
        let wire = describe(tap, &job_id);
        if !after_resume.is_empty() || counts.len() as u64 >= n {
            return Err(fail(format!(
                "{step}: the runtime sent {} envelope(s) of the job after the resume but the stream \
                 stalled at {summary}; frames: {wire}",
                after_resume.len()
            )));
        }
        return Ok(Resumed::JobLostByRuntime(format!(
            "cut after {cut_after} events; {summary}; nothing of the job on the new connection for \
             {STALL:?}; frames: {wire}"
        )));
    }
    if counts.len() as u64 != n {
        return Err(fail(format!("{step}: expected progress 1..{n}, got {counts:?}")));
    }
    let outcome = within(STEP, "the resumed job's result", job.result())
        .await?
        .map_err(|e| fail(format!("{step}: the job's result: {e}")))?;
    if outcome.result != Some(json!({"count": n})) {
        return Err(fail(format!("{step}: expected {{\"count\": {n}}}, got {:?}", outcome.result)));
    }
    println!("{step} ok: cut after {cut_after} events; {summary}; progress 1..{n} exactly once, then the result");
    Ok(Resumed::Complete)
}

/// The job's frames per connection, for a failure message.
fn describe(tap: &Tap, job_id: &str) -> String {
    let mut out = Vec::new();
    for f in tap.frames() {
        if f.job_id.as_deref() == Some(job_id) || f.ty.starts_with("session.") {
            let seq = f.event_seq.map(|s| format!("#{s}")).unwrap_or_default();
            out.push(format!("c{}:{}{}", f.conn, f.ty, seq));
        }
    }
    out.join(" ")
}

/// Subscription with history from a second session (§7.6), acks (§6.5) and a listing
/// (§6.6). Peer deviations found on the wire are reported, not failed: P-16 (listing entries
/// without `lease`/`last_event_seq`, `created_at` sent as `submitted_at`: the client reads
/// them and says so), history not replayed to the subscriber.
async fn subscribe_list_ack(client: &Client, url: &str, token: &str, tap: &Tap) -> Fallible<()> {
    let job = within(STEP, "submit count n=3", client.submit(SubmitRequest::new("count", json!({"n": 3}))))
        .await?
        .map_err(|e| fail(format!("submit count: {e}")))?;
    within(STEP, "count's result", job.result()).await?.map_err(|e| fail(format!("count's result: {e}")))?;
    let owner_events = tap
        .frames()
        .iter()
        .filter(|s| s.job_id.as_deref() == Some(job.job_id().as_str()) && s.event_seq.is_some())
        .count();

    let watcher = hello(url, token, tap).await?;
    let mut sub = within(STEP, "job.subscribe (history)", watcher.subscribe(job.job_id().clone(), true, None))
        .await?
        .map_err(|e| fail(format!("subscribe with history: {e}")))?;
    let replayed = drain(&mut sub.events(), STEP, "the replayed history").await?;
    let outcome = within(STEP, "the subscription's outcome", sub.result()).await?;
    let d = sub.subscribed();
    let history = if outcome.is_ok() && !replayed.is_empty() {
        format!(
            "{} events and the result replayed (the owner saw {owner_events} seq-bearing envelopes)",
            replayed.len()
        )
    } else {
        format!(
            "history not delivered: {} events, outcome {:?} (deviation, spec/interop.md P-17)",
            replayed.len(),
            outcome.map(|o| o.result)
        )
    };
    println!(
        "subscribe (history) ok: job.subscribed {{current_status: {:?}, replayed: {}, subscribed_from: {}}}; {history}",
        d.current_status, d.replayed, d.subscribed_from
    );

    let acked = if client.has_feature(&arcp_core::negotiate::Feature::ACK) {
        format!("negotiated; the client acknowledged up to event_seq {}", client.last_event_seq())
    } else {
        "not negotiated by the runtime".to_owned()
    };
    // Let an ack tick go by, then prove the session still answers.
    tokio::time::sleep(Duration::from_millis(300)).await;
    within(STEP, "ping after acks", client.ping()).await?.map_err(|e| fail(format!("ping after acks: {e}")))?;
    println!("ack ok: {acked}; the session carries on");

    let page = within(STEP, "session.list_jobs", client.list_jobs(Default::default()))
        .await?
        .map_err(|e| fail(format!("list_jobs: {e}")))?;
    let Some(entry) = page.jobs.iter().find(|j| &j.job_id == job.job_id()) else {
        return Err(fail(format!("list_jobs: job {} not listed: {page:?}", job.job_id())));
    };
    if entry.status != arcp_core::message::JobStatus::Success || !entry.agent.starts_with("count") {
        return Err(fail(format!("list_jobs: job {} listed as {entry:?}", job.job_id())));
    }
    let deviations = page.deviations();
    let tolerated = if deviations.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = deviations.iter().map(ToString::to_string).collect();
        format!("; tolerated in its entries: {} (deviation, spec/interop.md P-16)", list.join(", "))
    };
    println!(
        "list_jobs ok: {} jobs on the first page, the count job listed as {:?}{tolerated}",
        page.jobs.len(),
        entry.status
    );
    let _ = within(STEP, "close", watcher.close_with(Some("interop: done".to_owned()))).await;
    Ok(())
}

async fn run(url: &str, token: &str) -> Fallible<()> {
    loopback_target(url)?;
    let tap = Tap::default();
    let client = hello(url, token, &tap).await?;
    echo(&client).await?;
    stream(&client).await?;
    cancel(&client, &tap).await?;
    subscribe_list_ack(&client, url, token, &tap).await?;
    let _ = within(STEP, "close", client.close_with(Some("interop: next step".to_owned()))).await;
    resume(url, token).await?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, token] = args.as_slice() else {
        eprintln!("usage: interop <ws://127.0.0.1:PORT/arcp> <token>");
        return std::process::ExitCode::from(2);
    };
    match within(Duration::from_secs(120), "the whole interop run", run(url, token)).await.and_then(|r| r) {
        Ok(()) => {
            println!("arcp-rs client: all interop checks passed against {url}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            println!("FAIL: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
