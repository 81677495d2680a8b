//! The channel cases, by rule, plus the small helpers they share.

mod atomic;
mod recover;
mod refusals;
mod rest;
mod rotation;
mod stores;
mod ws;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use channel_core::{ChannelEvent, TurnReply};
use serde_json::{Value, json};

use super::client::HttpClient;
use super::driver::{Answer, ChannelDriver};
use super::{ChannelOptions, ChannelTarget, ChannelTransport, fixture_body, fixture_body_with_delay};
use crate::Failure;
pub(crate) use crate::cases::ensure;

/// What a case runs against.
#[derive(Clone)]
pub(crate) struct ChannelCtx {
    pub(crate) target: ChannelTarget,
    pub(crate) driver: Arc<dyn ChannelDriver>,
    /// The HTTP client of an `Http` or `Ws` target.
    pub(crate) http: Option<HttpClient>,
    pub(crate) options: ChannelOptions,
}

/// A case's body.
pub(crate) type ChannelCaseFn = fn(ChannelCtx) -> Pin<Box<dyn Future<Output = Result<(), Failure>> + Send>>;

/// One channel conformance case.
#[derive(Clone, Copy)]
pub struct ChannelCase {
    /// `rule<N>_<behaviour>` (or `rest_`, `ws_`, `recover_`, `info_`, `body_`).
    pub id: &'static str,
    /// The rule of `channel.md` it checks (`1` … `6`), or the transport section (`rest`,
    /// `ws`) or feature (`recover`, `info`, `body`).
    pub section: &'static str,
    /// The requirement checked, in one line.
    pub requirement: &'static str,
    /// The transports it applies to; on the others it is reported as skipped.
    pub transports: &'static [ChannelTransport],
    pub(crate) run: ChannelCaseFn,
}

impl std::fmt::Debug for ChannelCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelCase")
            .field("id", &self.id)
            .field("section", &self.section)
            .field("transports", &self.transports)
            .finish()
    }
}

/// Every transport.
pub(crate) const ALL: &[ChannelTransport] =
    &[ChannelTransport::Port, ChannelTransport::Http, ChannelTransport::Sse, ChannelTransport::Ws];
/// The transports that stream events.
pub(crate) const STREAMING: &[ChannelTransport] =
    &[ChannelTransport::Port, ChannelTransport::Sse, ChannelTransport::Ws];
/// HTTP, plain or SSE.
pub(crate) const HTTP: &[ChannelTransport] = &[ChannelTransport::Http, ChannelTransport::Sse];
/// The network transports.
pub(crate) const NETWORK: &[ChannelTransport] = &[ChannelTransport::Http, ChannelTransport::Sse, ChannelTransport::Ws];

macro_rules! case {
    ($id:ident, $section:literal, $transports:expr, $req:literal) => {
        crate::channel::cases::ChannelCase {
            id: stringify!($id),
            section: $section,
            requirement: $req,
            transports: $transports,
            run: |ctx| Box::pin($id(ctx)),
        }
    };
}
pub(crate) use case;

/// Every channel case, in rule order.
pub fn all_channel_cases() -> Vec<ChannelCase> {
    let mut cases = Vec::new();
    cases.extend(refusals::cases());
    cases.extend(atomic::cases());
    cases.extend(rotation::cases());
    cases.extend(stores::cases());
    cases.extend(recover::cases());
    cases.extend(rest::cases());
    cases.extend(ws::cases());
    cases
}

/// A skip with its reason.
pub(crate) fn skip(why: impl std::fmt::Display) -> Failure {
    format!("{} {why}", crate::cases::SKIP)
}

/// A token no server minted.
pub(crate) const FORGED: &str = "ct_0000000000000000000000000000000000000000000000000000000000000000";

/// A session id no server minted.
pub(crate) const UNKNOWN_SESSION: &str = "chs_00000000000000000000000000";

/// An `ok` fixture body finishing with `value`.
pub(crate) fn ok(value: Value) -> Value {
    fixture_body("ok", value)
}

/// A fixture body forcing `force`, taking the options' overlap delay.
pub(crate) fn slow(ctx: &ChannelCtx, force: &str, value: Value) -> Value {
    fixture_body_with_delay(force, value, ctx.options.overlap_ms)
}

/// The reply of `answer`, or a failure naming `what`.
pub(crate) fn expect_reply(answer: Answer, what: &str) -> Result<(TurnReply, Vec<ChannelEvent>), Failure> {
    match answer {
        Answer::Reply { reply, events } => Ok((reply, events)),
        other => Err(format!("{what}: expected a reply, got {}", other.describe())),
    }
}

/// Expects a refusal with `reason`.
pub(crate) fn expect_refused(answer: &Answer, reason: &str, what: &str) -> Result<(), Failure> {
    match answer {
        Answer::Refused(r) if r == reason => Ok(()),
        other => Err(format!("{what}: expected a `{reason}` refusal, got {}", other.describe())),
    }
}

/// The reply's token (present and non-empty).
pub(crate) fn token_of(reply: &TurnReply, what: &str) -> Result<String, Failure> {
    match &reply.continuation_token {
        Some(t) if !t.expose().is_empty() => Ok(t.expose().to_owned()),
        _ => Err(format!("{what}: the reply carries no continuation token")),
    }
}

/// The reply's output (`null` when absent).
pub(crate) fn output_of(reply: &TurnReply) -> Value {
    match &reply.outcome {
        channel_core::TurnOutcome::Finished { output } => output.clone().unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// Expects a `finished` reply with `value` as output; returns it and its token.
pub(crate) fn expect_finished(answer: Answer, value: &Value, what: &str) -> Result<(TurnReply, String), Failure> {
    let (reply, _) = expect_reply(answer, what)?;
    ensure(
        reply.outcome.status() == "finished",
        format!("{what}: expected `finished`, got `{}`", reply.outcome.status()),
    )?;
    ensure(
        output_of(&reply) == *value,
        format!("{what}: output {} is not the input value {value}", output_of(&reply)),
    )?;
    let token = token_of(&reply, what)?;
    Ok((reply, token))
}

/// Starts a session with an `ok` turn; returns `(session id, token)`.
pub(crate) async fn start(ctx: &ChannelCtx) -> Result<(String, String), Failure> {
    let value = json!({ "start": true });
    let (reply, token) = expect_finished(ctx.driver.start(ok(value.clone())).await?, &value, "start")?;
    let session = reply.session_id.as_str().to_owned();
    ensure(!session.is_empty(), "start: empty sessionId")?;
    Ok((session, token))
}

/// Continues with an `ok` turn that must finish and rotate; returns the new token.
pub(crate) async fn advance_ok(ctx: &ChannelCtx, session: &str, token: &str, what: &str) -> Result<String, Failure> {
    let value = json!({ "step": what });
    let (reply, next) =
        expect_finished(ctx.driver.advance(session, Some(token), ok(value.clone())).await?, &value, what)?;
    ensure(reply.session_id.as_str() == session, format!("{what}: the reply names session {}", reply.session_id))?;
    ensure(next != token, format!("{what}: a committed turn must rotate the token"))?;
    Ok(next)
}

/// Expects `token` to be refused as stale on `session`.
pub(crate) async fn expect_stale(ctx: &ChannelCtx, session: &str, token: &str, what: &str) -> Result<(), Failure> {
    let a = ctx.driver.advance(session, Some(token), ok(json!("stale?"))).await?;
    expect_refused(&a, "stale-token", what)
}

/// Waits (bounded) until `session` shows `inFlight: true` in its info.
pub(crate) async fn wait_in_flight(ctx: &ChannelCtx, session: &str) -> Result<(), Failure> {
    for _ in 0..500 {
        if ctx.driver.info(session).await?.is_some_and(|i| i["inFlight"] == true) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err("the session never showed `inFlight: true` while a slow turn ran".into())
}

/// How many turns the session's info counts.
pub(crate) async fn turns(ctx: &ChannelCtx, session: &str) -> Result<u64, Failure> {
    let info = ctx.driver.info(session).await?.ok_or("info: the session is unknown")?;
    info["turns"].as_u64().ok_or_else(|| format!("info without a numeric `turns`: {info}"))
}
