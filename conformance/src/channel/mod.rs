//! The channel-port conformance suite: the same cases, named by rule of `channel.md`, run
//! against the in-process port ([`ChannelTarget::Port`]), an HTTP server speaking
//! channel-rest's wire, buffered JSON or SSE ([`ChannelTarget::Http`]), and the same server
//! over WebSocket at `/v1/ws` ([`ChannelTarget::Ws`]). [`run_channel`] returns a
//! [`Report`](crate::Report); `cargo xtask conformance --channel http://HOST:PORT` prints
//! it and `CONFORMANCE.md` lists every case per transport.
//!
//! # The fixture (a public contract)
//!
//! A case forces a turn's outcome with the body
//! `{"agent": "conformance.channel", "input": {"force": F, "delay_ms"?: u64, "value"?: any}}`
//! ([`fixture_body`], [`fixture_body_with_delay`]). A server under test routes it to a turn
//! that emits at least one `delta` or `record` event, sleeps `delay_ms`, then ends by `F`:
//! `ok` → `finished` with `output` = `input.value` (`null` if absent); `park` → `parked`;
//! `contend` → `contended`; `abort` → `aborted`; `fail` → a runner failure. A turn body
//! that is not a JSON object is `invalid-body` (HTTP 400) before anything runs. [`FixtureRunner`]
//! also refuses a missing or unknown `input.force` as `invalid-body` (a server may instead
//! fail such a turn; no case relies on either). [`FixtureRunner`] is that turn for
//! in-process ports and for servers embedding `channel-rest`; the `arcp` runtime hosts an
//! ARCP agent of the same name obeying the same contract.
//!
//! # Transports
//!
//! Each case talks to a driver: start, continue, recover, info, normalised to a reply (with
//! its streamed events), a refusal reason, or another failure. The port driver calls
//! [`channel_core::Channel`] and collects events in a `Vec`. The HTTP driver opens one
//! hyper HTTP/1 connection per request (`POST /v1/session`, `POST /v1/session/{id}/message`
//! with `X-Continuation-Token`, `POST /v1/session/{id}/recover`, `GET /v1/session/{id}`;
//! ids percent-encoded), decodes SSE with `sse-stream`, and checks that every error body is
//! `{"error", "reason"}` with the status of its reason (404 unknown-session, 400
//! missing-token, 409 stale-token and in-flight, 500 turn-failed, …) and that a refusal never
//! arrives as a stream. The WebSocket driver opens a fresh `tokio-tungstenite` connection per
//! request, sending `{body, sessionId?, continuationToken?, requestId}` and reading frames
//! (each must carry the `requestId`) up to `outcome` or `error`; recovery and session info
//! have no WebSocket frame and go over HTTP to the same base URL. Held-connection cases open
//! their own connections. A bearer key, when given, is sent on every request.
//!
//! Cases that make sense on some transports only (held WebSocket connections, SSE refusals,
//! HTTP body errors, plain JSON has no events) declare their transports and are reported as
//! skipped elsewhere, with the reason — never as passed. So are cases that need what a
//! target does not provide: the expiry case (rule 6) needs the port's
//! [`ManualClock`](arcp_core::ManualClock) ([`ChannelTarget::with_clock`]); the two-node
//! case (rule 5) needs a second port over the same store ([`ChannelTarget::with_second_port`]);
//! the 401 case needs a bearer key. Every network wait is bounded; a case that does not
//! finish in 30 s fails.
//!
//! TODO: with the SQLite and PostgreSQL token stores, rule 5 gains "a token survives a
//! runtime restart" and "two nodes on one PostgreSQL honour single use" across processes.

mod cases;
mod client;
mod driver;
mod fixture;
mod http;
mod port;
mod render;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use arcp_core::ManualClock;
use channel_core::{Channel, TurnRunner};

pub use cases::{ChannelCase, all_channel_cases};
pub use fixture::{FIXTURE_AGENT, FORCES, FixtureRunner, MAX_DELAY_MS, fixture_body, fixture_body_with_delay};
pub use render::{render_channel_md, render_channel_text};

use crate::{Outcome, Report};
use cases::ChannelCtx;
use driver::ChannelDriver;

/// How a case reaches the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChannelTransport {
    /// The in-process port.
    Port,
    /// HTTP with buffered JSON replies.
    Http,
    /// HTTP with `Accept: text/event-stream`.
    Sse,
    /// WebSocket at `/v1/ws`.
    Ws,
}

impl ChannelTransport {
    /// Every transport, in report order.
    pub const ALL: [ChannelTransport; 4] =
        [ChannelTransport::Port, ChannelTransport::Http, ChannelTransport::Sse, ChannelTransport::Ws];

    /// `port`, `http`, `sse` or `ws`.
    pub fn label(self) -> &'static str {
        match self {
            ChannelTransport::Port => "port",
            ChannelTransport::Http => "http",
            ChannelTransport::Sse => "sse",
            ChannelTransport::Ws => "ws",
        }
    }
}

/// What to test.
#[derive(Clone)]
pub enum ChannelTarget {
    /// The in-process port.
    Port {
        /// The port (over whatever store the caller chose).
        channel: Channel,
        /// The turn runner; it must obey the fixture contract ([`FixtureRunner`] does).
        runner: Arc<dyn TurnRunner>,
        /// The principal the cases act as.
        owner: String,
        /// The port's manual clock, if it has one (the expiry case needs it).
        clock: Option<Arc<ManualClock>>,
        /// A second port over the same store — a second node (the rule-5 case needs it).
        second: Option<Channel>,
    },
    /// An HTTP server: buffered JSON requests, or SSE when `sse` is true.
    Http {
        /// `http://host:port[/prefix]`.
        base_url: String,
        /// The bearer key to send, if the server wants one.
        bearer: Option<String>,
        /// Whether to ask for `text/event-stream`.
        sse: bool,
    },
    /// The same server over WebSocket at `/v1/ws`.
    Ws {
        /// `http://host:port[/prefix]` (or `ws://…`).
        base_url: String,
        /// The bearer key to send, if the server wants one.
        bearer: Option<String>,
    },
}

impl std::fmt::Debug for ChannelTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelTarget::Port { .. } => f.write_str("in-process channel port"),
            ChannelTarget::Http { base_url, sse: false, .. } => write!(f, "{base_url} (HTTP, JSON)"),
            ChannelTarget::Http { base_url, sse: true, .. } => write!(f, "{base_url} (HTTP, SSE)"),
            ChannelTarget::Ws { base_url, .. } => write!(f, "{base_url} (WebSocket /v1/ws)"),
        }
    }
}

impl ChannelTarget {
    /// The in-process port with `runner`, acting as `owner` (no clock, no second port).
    pub fn port(channel: Channel, runner: Arc<dyn TurnRunner>, owner: impl Into<String>) -> Self {
        ChannelTarget::Port { channel, runner, owner: owner.into(), clock: None, second: None }
    }

    /// Gives a `Port` target its manual clock (the one its channel reads); no-op otherwise.
    pub fn with_clock(mut self, manual: Arc<ManualClock>) -> Self {
        if let ChannelTarget::Port { clock, .. } = &mut self {
            *clock = Some(manual);
        }
        self
    }

    /// Gives a `Port` target a second port over the same store; no-op otherwise.
    pub fn with_second_port(mut self, channel: Channel) -> Self {
        if let ChannelTarget::Port { second, .. } = &mut self {
            *second = Some(channel);
        }
        self
    }

    /// The transport this target is reached by.
    pub fn transport(&self) -> ChannelTransport {
        match self {
            ChannelTarget::Port { .. } => ChannelTransport::Port,
            ChannelTarget::Http { sse: false, .. } => ChannelTransport::Http,
            ChannelTarget::Http { sse: true, .. } => ChannelTransport::Sse,
            ChannelTarget::Ws { .. } => ChannelTransport::Ws,
        }
    }

    /// The three network targets (HTTP JSON, HTTP SSE, WebSocket) of one server.
    pub fn network(base_url: &str, bearer: Option<String>) -> [ChannelTarget; 3] {
        [
            ChannelTarget::Http { base_url: base_url.to_owned(), bearer: bearer.clone(), sse: false },
            ChannelTarget::Http { base_url: base_url.to_owned(), bearer: bearer.clone(), sse: true },
            ChannelTarget::Ws { base_url: base_url.to_owned(), bearer },
        ]
    }
}

/// Parameters of the cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelOptions {
    /// The server's request-body cap; the 413 case sends one byte more. Default 1 MiB.
    pub body_limit: usize,
    /// How long (ms) a turn that others must overlap runs (`delay_ms`). Default 300.
    pub overlap_ms: u64,
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions { body_limit: 1 << 20, overlap_ms: 300 }
    }
}

/// How long one case may take.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(30);

fn driver_for(target: &ChannelTarget) -> Result<(Arc<dyn ChannelDriver>, Option<client::HttpClient>), crate::Failure> {
    Ok(match target {
        ChannelTarget::Port { channel, runner, owner, .. } => {
            let d = port::PortDriver { channel: channel.clone(), runner: runner.clone(), owner: owner.clone() };
            (Arc::new(d), None)
        }
        ChannelTarget::Http { base_url, bearer, sse } => {
            let d = http::HttpDriver::new(base_url, bearer.clone(), *sse)?;
            let c = d.client.clone();
            (Arc::new(d), Some(c))
        }
        ChannelTarget::Ws { base_url, bearer } => {
            let d = ws::WsDriver::new(base_url, bearer.clone())?;
            let c = d.http.client.clone();
            (Arc::new(d), Some(c))
        }
    })
}

/// A channel case as a [`crate::Case`] row of a [`Report`]; its `run` is not an ARCP case
/// (it reports a skip) — run channel cases with [`run_channel`].
fn as_report_case(case: &ChannelCase) -> crate::Case {
    crate::Case {
        id: case.id,
        section: case.section,
        requirement: case.requirement,
        run: |_| Box::pin(async { Err(format!("{} a channel case: run it with run_channel", crate::cases::SKIP)) }),
    }
}

/// Runs every channel case (or those whose id contains `filter`) against `target` with the
/// default [`ChannelOptions`].
pub async fn run_channel(target: &ChannelTarget, filter: Option<&str>) -> Report {
    run_channel_with(target, filter, ChannelOptions::default()).await
}

/// [`run_channel`] with explicit options.
pub async fn run_channel_with(target: &ChannelTarget, filter: Option<&str>, options: ChannelOptions) -> Report {
    let mut report = Report { target: format!("{target:?}"), results: Vec::new() };
    let transport = target.transport();
    let ctx = driver_for(target).map(|(driver, http)| ChannelCtx { target: target.clone(), driver, http, options });
    for case in all_channel_cases() {
        if filter.is_some_and(|f| !case.id.contains(f)) {
            continue;
        }
        let outcome = match &ctx {
            Err(e) => Outcome::Fail(format!("cannot reach the target: {e}")),
            Ok(_) if !case.transports.contains(&transport) => {
                let on: Vec<&str> = case.transports.iter().map(|t| t.label()).collect();
                Outcome::Skip(format!("not applicable to {}: applies to {}", transport.label(), on.join(", ")))
            }
            Ok(ctx) => match tokio::time::timeout(CASE_TIMEOUT, (case.run)(ctx.clone())).await {
                Ok(Ok(())) => Outcome::Pass,
                Ok(Err(msg)) if msg.starts_with(crate::cases::SKIP) => {
                    Outcome::Skip(msg[crate::cases::SKIP.len()..].trim().to_owned())
                }
                Ok(Err(msg)) => Outcome::Fail(msg),
                Err(_) => Outcome::Fail(format!("the case did not finish within {} s", CASE_TIMEOUT.as_secs())),
            },
        };
        report.results.push((as_report_case(&case), outcome));
    }
    report
}
