//! `conformance`: the shared ARCP conformance suite.
//!
//! Cases are named after the spec section they check (`s6_3_resume_replays_missed_events`)
//! and drive a raw scripted [`Peer`] — frame in, frame expected — so they can test any ARCP
//! runtime: ours in-process ([`Target::InProcess`]) or anything at a `ws://` URL
//! ([`Target::Url`]). [`run`] returns a [`Report`]; `cargo xtask conformance` prints it and
//! `CONFORMANCE.md` is generated from the case list.
//!
//! What a server must provide: a bearer token accepted for one principal, and the agents of
//! the `arcp serve` contract (`echo`, `count`, `sleep`, `chunks`, `delegate`, see `runtime.md`). Cases that need an
//! agent the server does not advertise are reported as skipped, with the reason. A server may
//! also host the fixture [`VERSIONED_FIXTURE`] ([`register_fixtures`]), which lets the §7.5
//! cases check version resolution fully.
//!
//! [`coverage`] lists the requirements that no wire case can check, each with the unit or
//! integration test that checks it or the reason it does not apply; `CONFORMANCE.md` shows
//! both lists.
//!
//! [`channel`] is the second suite: the channel protocol (`sessionId` + single-use
//! `continuationToken`), run by [`channel::run_channel`] against the in-process port, an
//! HTTP server speaking channel-rest's wire (plain JSON or SSE) or its WebSocket endpoint,
//! with a fixture body that forces each turn's outcome. Its results use the same [`Report`].

mod cases;
pub mod channel;
pub mod coverage;

/// The agents of the `arcp serve` contract.
pub fn reference_agents() -> arcp_server::AgentRegistry {
    // Registering fixed, valid names cannot fail; an empty registry would show up as skips.
    arcp_server::builtin::registry().unwrap_or_default()
}

pub use arcp_server::builtin::{VERSIONED_FIXTURE, VERSIONED_FIXTURE_VERSIONS};

/// Registers the conformance fixture agents in `registry`: [`VERSIONED_FIXTURE`] at the
/// versions [`VERSIONED_FIXTURE_VERSIONS`] (the default is the last, not the first
/// registered), each returning `{"version": "<its version>"}`. `arcp serve
/// --conformance-fixtures` hosts the same.
///
/// A server that hosts it gets the full §7.5 resolution cases (default, pinned, listing by
/// `name@version`); without it those cases check what the contract agents allow.
pub fn register_fixtures(registry: &mut arcp_server::AgentRegistry) -> Result<(), arcp_core::Error> {
    arcp_server::builtin::register_versioned_fixture(registry)
}

/// What the in-process targets host: the contract agents ([`reference_agents`]) and the
/// fixtures ([`register_fixtures`]).
pub fn in_process_agents() -> arcp_server::AgentRegistry {
    let mut registry = reference_agents();
    // Fixed, valid names and versions: registering cannot fail; a missing fixture would only
    // narrow the §7.5 cases, which the in-process test would not notice, so check it there.
    let _ = register_fixtures(&mut registry);
    registry
}
mod peer;
mod report;

use std::time::Duration;

use arcp_server::Runtime;

pub use cases::{Case, CaseFn, all_cases};
pub use peer::{FRAME_TIMEOUT, Failure, Peer, check_error_payloads};
pub use report::{Outcome, Report, render_conformance_md};

/// What to test.
#[derive(Clone)]
pub enum Target {
    /// A runtime in this process, reached over in-memory transports. It must accept `token`.
    InProcess {
        /// The runtime.
        runtime: Runtime,
        /// A bearer token it accepts.
        token: String,
        /// A second token for the same principal (for cross-session cases).
        same_principal_token: Option<String>,
    },
    /// A server at a WebSocket URL (e.g. `ws://127.0.0.1:8787/arcp`).
    Url {
        /// The URL.
        url: String,
        /// A bearer token it accepts.
        token: String,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::InProcess { .. } => f.write_str("in-process runtime"),
            Target::Url { url, .. } => write!(f, "{url}"),
        }
    }
}

/// What a case runs against: connects peers and knows the token.
#[derive(Debug, Clone)]
pub struct Ctx {
    target: Target,
    other_principal_token: Option<String>,
    caps: BufferCaps,
}

impl Ctx {
    /// A new, unauthenticated connection.
    pub async fn connect(&self) -> Result<Peer, Failure> {
        match &self.target {
            Target::InProcess { runtime, .. } => {
                let (client, server) = arcp_server::transport::memory::pair();
                runtime.spawn(server);
                Ok(Peer::over(client))
            }
            Target::Url { url, .. } => {
                let t =
                    tokio::time::timeout(Duration::from_secs(10), arcp_server::transport::ws::connect(url, 16 << 20))
                        .await
                        .map_err(|_| format!("connecting to {url} timed out"))?
                        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
                Ok(Peer::over(t))
            }
        }
    }

    /// The bearer token.
    pub fn token(&self) -> &str {
        match &self.target {
            Target::InProcess { token, .. } | Target::Url { token, .. } => token,
        }
    }

    /// A token of a **different** principal, when the run was given one
    /// ([`RunOptions::other_principal_token`]); cross-principal cases skip without it.
    pub fn other_principal_token(&self) -> Option<&str> {
        self.other_principal_token.as_deref()
    }

    /// The target's per-session buffer caps (§14), as the operator configured them.
    pub fn buffer_caps(&self) -> BufferCaps {
        self.caps
    }

    /// A token of the same principal usable for a second session (may be the same token).
    pub fn same_principal_token(&self) -> &str {
        match &self.target {
            Target::InProcess { same_principal_token: Some(t), .. } => t,
            _ => self.token(),
        }
    }
}

/// Extra knobs of a run.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RunOptions {
    /// A bearer token of a second principal (cross-principal cases, §6.6/§7.6); those cases
    /// are skipped without it.
    pub other_principal_token: Option<String>,
    /// The target's per-session buffer caps, which the §14 cap cases drive past. Default: the
    /// in-memory defaults (10 000 events, 16 MiB); a durable store's defaults are disk-sized,
    /// so run the suite against a server configured with small caps and give them here.
    pub buffer_caps: BufferCaps,
}

/// Per-session buffer caps of a target (spec §14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferCaps {
    /// Buffered (unacknowledged) events per session.
    pub events: u64,
    /// Buffered bytes of encoded events per session.
    pub bytes: u64,
}

impl Default for BufferCaps {
    fn default() -> Self {
        BufferCaps { events: 10_000, bytes: 16 << 20 }
    }
}

impl RunOptions {
    /// Sets [`buffer_caps`](Self::buffer_caps).
    pub fn with_buffer_caps(mut self, caps: BufferCaps) -> Self {
        self.buffer_caps = caps;
        self
    }

    /// Sets [`other_principal_token`](Self::other_principal_token).
    pub fn with_other_principal_token(mut self, token: impl Into<String>) -> Self {
        self.other_principal_token = Some(token.into());
        self
    }
}

/// Runs every case (or those whose id contains `filter`) against `target`.
pub async fn run(target: Target, filter: Option<&str>) -> Report {
    run_with(target, filter, RunOptions::default()).await
}

/// [`run`] with [`RunOptions`].
pub async fn run_with(target: Target, filter: Option<&str>, options: RunOptions) -> Report {
    let ctx =
        Ctx { target: target.clone(), other_principal_token: options.other_principal_token, caps: options.buffer_caps };
    let mut report = Report { target: format!("{target:?}"), results: Vec::new() };
    for case in all_cases() {
        if filter.is_some_and(|f| !case.id.contains(f)) {
            continue;
        }
        let outcome = match tokio::time::timeout(Duration::from_secs(60), (case.run)(ctx.clone())).await {
            Ok(Ok(())) => Outcome::Pass,
            Ok(Err(msg)) if msg.starts_with(cases::SKIP) => Outcome::Skip(msg[cases::SKIP.len()..].trim().to_owned()),
            Ok(Err(msg)) => Outcome::Fail(msg),
            Err(_) => Outcome::Fail("the case did not finish within 60 s".into()),
        };
        report.results.push((case, outcome));
    }
    report
}
