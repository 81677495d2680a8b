//! What a store keeps besides the token: the last turn's events ([`TurnLog`], for recovery)
//! and a session's token-free status ([`SessionInfo`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{ChannelEvent, SessionId, TurnOutcome};

/// The events of a session's last completed turn, kept so a client that lost the response can
/// recover it without running the turn again (see [`Channel::recover`](crate::Channel::recover)).
///
/// Stored as one JSON object `{"events": [...], "truncated": bool}`, so a store keeps it as
/// text. **It never holds a token**: the port strips `continuationToken` from the `outcome`
/// event before recording and puts the right token back when it replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnLog {
    json: Arc<str>,
}

#[derive(Serialize, Deserialize)]
struct TurnLogBody {
    events: Vec<ChannelEvent>,
    #[serde(default)]
    truncated: bool,
}

impl TurnLog {
    /// A log of `events`; `truncated` says the turn's `record`/`delta` events outgrew the
    /// recording cap and were dropped (the `outcome` is always kept).
    pub fn new(events: &[ChannelEvent], truncated: bool) -> Self {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            events: &'a [ChannelEvent],
            truncated: bool,
        }
        // Serialising plain data (no maps with non-string keys) cannot fail.
        let json = serde_json::to_string(&Borrowed { events, truncated }).unwrap_or_else(|_| "{\"events\":[]}".into());
        TurnLog { json: json.into() }
    }

    /// A log as a store read it back (the text [`TurnLog::as_json`] gave it). Not checked
    /// here; [`TurnLog::events`] reports a corrupt log.
    pub fn from_json(json: impl Into<Arc<str>>) -> Self {
        TurnLog { json: json.into() }
    }

    /// The stored text.
    pub fn as_json(&self) -> &str {
        &self.json
    }

    /// The recorded events and whether the recording was truncated.
    pub fn events(&self) -> Result<(Vec<ChannelEvent>, bool), serde_json::Error> {
        let body: TurnLogBody = serde_json::from_str(&self.json)?;
        Ok((body.events, body.truncated))
    }
}

/// What a store answers to a recovery ([`TokenStore::recover`](crate::TokenStore::recover)).
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    /// The last completed turn's log, if one was recorded.
    pub log: Option<TurnLog>,
    /// `true` when the presented token was the one the last (committed) turn consumed: the
    /// store replaced the session's current token with the reissued one. `false` when the
    /// presented token is still current.
    pub reissued: bool,
}

/// A session's status without its token (what `GET /v1/session/{id}` shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// The conversation.
    pub session_id: SessionId,
    /// Whether a turn is running.
    pub in_flight: bool,
    /// When the session was started (milliseconds since the Unix epoch).
    pub created_at_ms: u64,
    /// When the session expires if no turn comes (milliseconds since the Unix epoch).
    pub expires_at_ms: u64,
    /// How many turns completed (any outcome; failed turns are not counted).
    pub turns: u64,
    /// The status of the last completed turn (`finished`, `parked`, `contended`, `aborted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<String>,
}

/// Summary of a completed turn for a store: its status and its log.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnSummary {
    /// The outcome's status string.
    pub status: &'static str,
    /// The recorded events.
    pub log: TurnLog,
}

impl TurnSummary {
    /// A summary of a turn that ended with `outcome` and recorded `log`.
    pub fn new(outcome: &TurnOutcome, log: TurnLog) -> Self {
        TurnSummary { status: outcome.status(), log }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn turn_log_round_trips_and_reports_corruption() {
        let events = vec![ChannelEvent::Delta { text: "hi".into() }, ChannelEvent::Record { record: json!({"a": 1}) }];
        let log = TurnLog::new(&events, true);
        assert_eq!(log.events().unwrap(), (events, true));
        let again = TurnLog::from_json(log.as_json().to_owned());
        assert_eq!(again, log);
        assert!(TurnLog::from_json("{not json").events().is_err());
        assert_eq!(TurnLog::from_json(r#"{"events":[]}"#).events().unwrap(), (vec![], false));
    }
}
