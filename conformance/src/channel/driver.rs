//! The driver seam: what a case asks of a transport ([`ChannelDriver`]) and the normalised
//! answer every transport gives back ([`Answer`]).

use async_trait::async_trait;
use channel_core::{ChannelEvent, Refusal, TurnReply};
use serde_json::Value;

use crate::Failure;

/// How a transport answered a start, continue or recovery, normalised across transports.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// The turn ran (or was recovered): its reply and the events streamed with it (empty for
    /// plain JSON replies).
    Reply {
        /// The reply (`outcome`).
        reply: TurnReply,
        /// Every event of the turn, the `outcome` included (streaming transports only).
        events: Vec<ChannelEvent>,
    },
    /// Refused before anything ran, with one of the four reasons (or a non-conforming one,
    /// which a case reports).
    Refused(String),
    /// Anything else the server reported: a runner failure (`turn-failed`, or an `error`
    /// event without a reason), `invalid-body`, `nothing-to-recover`, ...
    Failed {
        /// The reason, when the transport gives one (HTTP error bodies do; a streamed
        /// `error` event after a runner failure does not).
        reason: Option<String>,
        /// The human message.
        message: String,
        /// The events streamed before the failure (the `error` event last), if any.
        events: Vec<ChannelEvent>,
    },
}

impl Answer {
    /// A short description for failure messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Answer::Reply { reply, .. } => format!("a `{}` reply", reply.outcome.status()),
            Answer::Refused(r) => format!("a `{r}` refusal"),
            Answer::Failed { reason, message, .. } => {
                format!("a failure ({}: {message})", reason.as_deref().unwrap_or("no reason"))
            }
        }
    }
}

/// The four refusal reasons.
pub(crate) fn is_refusal(reason: &str) -> bool {
    Refusal::ALL.iter().any(|r| r.reason() == reason)
}

/// What a case asks of a transport. Each call is one request of a fresh client (a fresh
/// connection for HTTP and WebSocket); held-connection behaviour is tested with the
/// transports' own clients.
#[async_trait]
pub(crate) trait ChannelDriver: Send + Sync {
    /// Starts a conversation with `body`.
    async fn start(&self, body: Value) -> Result<Answer, Failure>;

    /// Continues `session` presenting `token` (`None`: no token at all).
    async fn advance(&self, session: &str, token: Option<&str>, body: Value) -> Result<Answer, Failure>;

    /// Recovers the last completed turn of `session` presenting `token`.
    async fn recover(&self, session: &str, token: Option<&str>) -> Result<Answer, Failure>;

    /// The token-free status of `session` as JSON (`None`: unknown session).
    async fn info(&self, session: &str) -> Result<Option<Value>, Failure>;
}

/// Splits the events of a streamed turn: the `outcome` must be the last event and the only
/// terminal one; an `error` event (last, the only terminal one) makes a failure or a refusal.
pub(crate) fn answer_from_events(events: Vec<ChannelEvent>, reasons: Vec<Option<String>>) -> Result<Answer, Failure> {
    let terminals =
        events.iter().filter(|e| matches!(e, ChannelEvent::Outcome(_) | ChannelEvent::Error { .. })).count();
    match events.last() {
        Some(ChannelEvent::Outcome(reply)) if terminals == 1 => {
            let reply = reply.clone();
            Ok(Answer::Reply { reply, events })
        }
        Some(ChannelEvent::Error { message, .. }) if terminals == 1 => {
            let reason = reasons.last().cloned().flatten();
            if let Some(r) = reason.as_deref().filter(|r| is_refusal(r)) {
                if events.len() > 1 {
                    return Err(format!("the `{r}` refusal came after {} streamed event(s)", events.len() - 1));
                }
                return Ok(Answer::Refused(r.to_owned()));
            }
            let message = message.clone();
            Ok(Answer::Failed { reason, message, events })
        }
        Some(_) if terminals > 1 => Err(format!("the turn streamed {terminals} terminal events: {events:?}")),
        Some(_) => Err(format!("the turn's events do not end with `outcome` or `error`: {events:?}")),
        None => Err("the turn streamed no event at all".into()),
    }
}

/// Parses one streamed event (a `ChannelEvent` JSON object). An `error` event's `reason` is
/// kept as a string (a server may name reasons other than the four refusals there).
pub(crate) fn parse_event(v: &Value) -> Result<(ChannelEvent, Option<String>), Failure> {
    if v["type"] == "error" {
        let message = v["message"].as_str().ok_or_else(|| format!("an `error` event without a message: {v}"))?;
        let reason = match &v["reason"] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => return Err(format!("an `error` event with a non-string reason {other}")),
        };
        let event = ChannelEvent::Error { message: message.to_owned(), reason: None };
        return Ok((event, reason));
    }
    let event: ChannelEvent =
        serde_json::from_value(v.clone()).map_err(|e| format!("not a channel event ({e}): {v}"))?;
    Ok((event, None))
}
