//! The cases, by spec section, plus the small helpers they share.

mod ack;
mod budget;
mod caps;
mod chunks;
mod delegation;
mod errors;
mod extensions;
mod handshake;
mod heartbeat;
mod idempotency;
mod jobs;
mod leases;
mod listing;
mod malformed;
mod resume;
mod subscribe;
mod versions;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{Ctx, Failure, Peer};

/// A case's body.
pub type CaseFn = fn(Ctx) -> Pin<Box<dyn Future<Output = Result<(), Failure>> + Send>>;

/// Prefix of a failure message that means "skipped".
pub(crate) const SKIP: &str = "SKIP:";

/// One conformance case.
#[derive(Clone, Copy)]
pub struct Case {
    /// `s<section>_<behaviour>`.
    pub id: &'static str,
    /// The spec section, e.g. `6.3`.
    pub section: &'static str,
    /// The requirement checked, in one line.
    pub requirement: &'static str,
    /// The body.
    pub run: CaseFn,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("id", &self.id).field("section", &self.section).finish()
    }
}

macro_rules! case {
    ($id:ident, $section:literal, $req:literal) => {
        crate::cases::Case { id: stringify!($id), section: $section, requirement: $req, run: |ctx| Box::pin($id(ctx)) }
    };
}
pub(crate) use case;

/// Every case, in section order.
pub fn all_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(malformed::cases());
    cases.extend(handshake::cases());
    cases.extend(resume::cases());
    cases.extend(jobs::cases());
    cases.extend(idempotency::cases());
    cases.extend(heartbeat::cases());
    cases.extend(ack::cases());
    cases.extend(caps::cases());
    cases.extend(extensions::cases());
    cases.extend(leases::cases());
    cases.extend(budget::cases());
    cases.extend(delegation::cases());
    cases.extend(chunks::cases());
    cases.extend(listing::cases());
    cases.extend(subscribe::cases());
    cases.extend(versions::cases());
    cases.extend(errors::cases());
    cases.sort_by_key(|c| section_key(c.section));
    cases
}

fn section_key(s: &str) -> Vec<u32> {
    s.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// Fails with `msg` unless `cond`.
pub(crate) fn ensure(cond: bool, msg: impl Into<String>) -> Result<(), Failure> {
    if cond { Ok(()) } else { Err(msg.into()) }
}

/// The features the cases ask for.
pub(crate) const FEATURES: &[&str] = &[
    "heartbeat",
    "ack",
    "list_jobs",
    "subscribe",
    "lease_expires_at",
    "cost.budget",
    "progress",
    "result_chunk",
    "agent_versions",
];

pub(crate) fn hello_payload(token: &str, resume: Option<Value>) -> Value {
    let mut p = json!({
        "client": { "name": "arcp-conformance", "version": env!("CARGO_PKG_VERSION") },
        "auth": { "scheme": "bearer", "token": token },
        "capabilities": { "features": FEATURES, "encodings": ["json"] },
    });
    if let Some(r) = resume {
        p["resume"] = r;
    }
    p
}

/// Connects and completes the handshake; returns the peer and the welcome.
pub(crate) async fn open(ctx: &Ctx) -> Result<(Peer, Value), Failure> {
    open_with(ctx, ctx.token()).await
}

pub(crate) async fn open_with(ctx: &Ctx, token: &str) -> Result<(Peer, Value), Failure> {
    let mut peer = ctx.connect().await?;
    peer.send("session.hello", hello_payload(token, None), json!({}))?;
    let welcome = peer.recv().await?;
    ensure(welcome["type"] == "session.welcome", format!("expected session.welcome, got {welcome}"))?;
    adopt_welcome(&mut peer, &welcome)?;
    Ok((peer, welcome))
}

pub(crate) fn adopt_welcome(peer: &mut Peer, welcome: &Value) -> Result<(), Failure> {
    peer.session_id = Some(welcome["session_id"].as_str().ok_or("welcome without session_id")?.to_owned());
    peer.resume_token =
        Some(welcome["payload"]["resume_token"].as_str().ok_or("welcome without resume_token")?.to_owned());
    Ok(())
}

/// Skips unless the welcome advertises `agent`.
pub(crate) fn require_agent(welcome: &Value, agent: &str) -> Result<(), Failure> {
    let agents = &welcome["payload"]["capabilities"]["agents"];
    let known = agents
        .as_array()
        .is_some_and(|list| list.iter().any(|a| a.as_str() == Some(agent) || a["name"].as_str() == Some(agent)));
    if known { Ok(()) } else { Err(format!("{SKIP} the server does not advertise the `{agent}` agent")) }
}

/// Submits and returns `(request id, job.accepted frame)`.
pub(crate) async fn submit(peer: &mut Peer, payload: Value) -> Result<(String, Value), Failure> {
    let id = peer.send("job.submit", payload, json!({}))?;
    let reply = peer.recv().await?;
    ensure(reply["type"] == "job.accepted", format!("expected job.accepted, got {reply}"))?;
    Ok((id, reply))
}

/// Opens a new connection resuming `session` with `token` from `last`; returns the peer and
/// the answer (a `session.welcome`, adopted by the peer, or whatever else came).
pub(crate) async fn resume(ctx: &Ctx, session: &str, token: &str, last: u64) -> Result<(Peer, Value), Failure> {
    let mut peer = ctx.connect().await?;
    peer.last_seq = last;
    let r = json!({"session_id": session, "resume_token": token, "last_event_seq": last});
    peer.send("session.hello", hello_payload(ctx.token(), Some(r)), json!({}))?;
    let welcome = peer.recv().await?;
    if welcome["type"] == "session.welcome" {
        adopt_welcome(&mut peer, &welcome)?;
    }
    Ok((peer, welcome))
}

/// Reads frames until the terminal envelope of `job_id`; returns that job's frames.
pub(crate) async fn until_terminal(peer: &mut Peer, job_id: &str) -> Result<Vec<Value>, Failure> {
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let v = peer.recv().await?;
        if v["job_id"] == job_id {
            let terminal = v["type"] == "job.result" || v["type"] == "job.error";
            out.push(v);
            if terminal {
                return Ok(out);
            }
        }
    }
    Err(format!("job {job_id} did not end"))
}

/// Expects `session.error` with `code`, then the transport closing (decision 9).
pub(crate) async fn expect_session_error(peer: &mut Peer, code: &str) -> Result<(), Failure> {
    let v = peer.recv_type("session.error").await?;
    ensure(v["payload"]["code"] == code, format!("expected session.error {code}, got {v}"))?;
    ensure(v["payload"]["retryable"].is_boolean(), format!("session.error without a boolean retryable: {v}"))?;
    ensure(peer.closes_within(Duration::from_secs(5)).await, "session.error must close the transport")
}

pub(crate) fn job_id(accepted: &Value) -> Result<String, Failure> {
    accepted["payload"]["job_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("job.accepted without job_id: {accepted}"))
}
