//! Test support: an in-process `arcp_server::Runtime` with test agents (adapted from
//! arcp-server's test support), a connector over `memory::pair()` whose current connection
//! the test can cut, and a bound on every wait.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arcp_client::{Backoff, Client, ClientOptions, Connector, JobEvents, ReceivedEvent};
use arcp_server::transport::memory::{MemorySink, MemorySource, MemoryTransport, pair};
use arcp_server::transport::{FrameSink, FrameSource, Transport, TransportError};
use arcp_server::{AgentError, AgentRegistry, JobContext, Runtime, RuntimeConfig, StaticBearerVerifier};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "tok-alice";
pub const OTHER_TOKEN: &str = "tok-bob";

/// Bounds a wait: panics after 10 s.
pub async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f).await.expect("finished within 10 s")
}

pub fn registry() -> AgentRegistry {
    let mut reg = AgentRegistry::new();
    reg.register("echo", |ctx: JobContext, input: Value| async move {
        ctx.info("echo").await?;
        Ok(input)
    })
    .unwrap();
    reg.register("count", |ctx: JobContext, input: Value| async move {
        let n = input["n"].as_u64().unwrap_or(3);
        let delay = input["delay_ms"].as_u64().unwrap_or(0);
        for i in 1..=n {
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            ctx.progress(i, Some(n), None).await?;
        }
        Ok(json!({ "count": n }))
    })
    .unwrap();
    reg.register("sleep", |ctx: JobContext, input: Value| async move {
        match input["ms"].as_u64() {
            Some(ms) => tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(json!({ "slept_ms": ms })),
                () = ctx.cancelled() => Err(AgentError::new(arcp_core::ErrorCode::CANCELLED, "cancelled")),
            },
            None => {
                ctx.cancelled().await;
                Err(AgentError::new(arcp_core::ErrorCode::CANCELLED, "cancelled"))
            }
        }
    })
    .unwrap();
    reg.register("fail", |_ctx: JobContext, _input: Value| async move {
        Err(AgentError::new(arcp_core::ErrorCode::PERMISSION_DENIED, "nope").with_details(json!({ "why": "test" })))
    })
    .unwrap();
    reg
}

pub fn runtime_with(config: RuntimeConfig) -> Runtime {
    let verifier = StaticBearerVerifier::new().with_token(TOKEN, "alice").with_token(OTHER_TOKEN, "bob");
    Runtime::builder(verifier).config(config).agents(registry()).build()
}

pub fn runtime() -> Runtime {
    runtime_with(RuntimeConfig::default())
}

pub fn options() -> ClientOptions {
    ClientOptions::default().with_token(TOKEN).with_backoff(Backoff {
        max_attempts: 5,
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
    })
}

/// Faults a [`MemConnector`] can inject.
#[derive(Debug, Default)]
pub struct Faults {
    /// Cut the connection instead of delivering the next `job.accepted` to the client.
    pub cut_on_accepted: AtomicBool,
    /// Refuse new connections.
    pub refuse_connections: AtomicBool,
}

/// Opens a new in-memory connection to `rt` per call (`rt.spawn(server_end)`); the test can
/// cut the current one at any time.
#[derive(Clone)]
pub struct MemConnector {
    rt: Arc<Mutex<Runtime>>,
    current: Arc<Mutex<CancellationToken>>,
    connects: Arc<AtomicUsize>,
    attempts: Arc<AtomicUsize>,
    pub faults: Arc<Faults>,
}

impl MemConnector {
    pub fn new(rt: &Runtime) -> Self {
        MemConnector {
            rt: Arc::new(Mutex::new(rt.clone())),
            current: Arc::new(Mutex::new(CancellationToken::new())),
            connects: Arc::new(AtomicUsize::new(0)),
            attempts: Arc::new(AtomicUsize::new(0)),
            faults: Arc::new(Faults::default()),
        }
    }

    /// Cuts the current connection (both directions, as a network failure would).
    pub fn cut(&self) {
        self.current.lock().unwrap().cancel();
    }

    /// Sends later connections to another runtime.
    pub fn redirect(&self, rt: &Runtime) {
        *self.rt.lock().unwrap() = rt.clone();
    }

    /// How many connections were asked for (opened or refused).
    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    /// How many connections were opened.
    pub fn connects(&self) -> usize {
        self.connects.load(Ordering::SeqCst)
    }
}

impl Connector for MemConnector {
    type Transport = CuttableTransport;

    async fn connect(&self) -> Result<CuttableTransport, TransportError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.faults.refuse_connections.load(Ordering::SeqCst) {
            return Err(TransportError::Io("connection refused".into()));
        }
        let (client, server) = pair();
        self.rt.lock().unwrap().clone().spawn(server);
        let cut = CancellationToken::new();
        *self.current.lock().unwrap() = cut.clone();
        self.connects.fetch_add(1, Ordering::SeqCst);
        Ok(CuttableTransport { inner: client, cut, faults: self.faults.clone() })
    }
}

/// A memory transport that stops dead when its token is cancelled.
pub struct CuttableTransport {
    inner: MemoryTransport,
    cut: CancellationToken,
    faults: Arc<Faults>,
}

pub struct CutSink {
    inner: MemorySink,
    cut: CancellationToken,
}

pub struct CutSource {
    inner: MemorySource,
    cut: CancellationToken,
    faults: Arc<Faults>,
}

impl Transport for CuttableTransport {
    type Sink = CutSink;
    type Source = CutSource;

    fn split(self) -> (CutSink, CutSource) {
        let (sink, source) = self.inner.split();
        (
            CutSink { inner: sink, cut: self.cut.clone() },
            CutSource { inner: source, cut: self.cut, faults: self.faults },
        )
    }
}

impl FrameSink for CutSink {
    async fn send(&mut self, frame: String) -> Result<(), TransportError> {
        if self.cut.is_cancelled() {
            self.inner.close().await;
            return Err(TransportError::Closed);
        }
        self.inner.send(frame).await
    }

    async fn close(&mut self) {
        self.inner.close().await;
    }
}

impl FrameSource for CutSource {
    async fn recv(&mut self) -> Option<Result<String, TransportError>> {
        let frame = tokio::select! {
            biased;
            () = self.cut.cancelled() => return None,
            frame = self.inner.recv() => frame,
        };
        if let Some(Ok(text)) = &frame
            && text.contains(r#""type":"job.accepted""#)
            && self.faults.cut_on_accepted.swap(false, Ordering::SeqCst)
        {
            self.cut.cancel();
            return None;
        }
        frame
    }
}

/// Connects a client to `rt` with [`options`].
pub async fn connect(rt: &Runtime) -> (Client, MemConnector) {
    let connector = MemConnector::new(rt);
    let client = within(Client::connect_with(connector.clone(), options())).await.expect("connected");
    (client, connector)
}

/// Reads a stream to its end (bounded).
pub async fn drain(events: &mut JobEvents) -> Vec<ReceivedEvent> {
    let mut out = Vec::new();
    while let Some(item) = within(events.next()).await {
        out.push(item.expect("no stream error"));
    }
    out
}

/// `progress.current` of a progress event.
pub fn progress_current(e: &ReceivedEvent) -> Option<u64> {
    match &e.event.body {
        arcp_core::event::EventBody::Progress(p) => p.current.as_u64(),
        _ => None,
    }
}
