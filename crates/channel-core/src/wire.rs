//! The channel's wire shapes: [`TurnOutcome`], [`TurnReply`] and [`ChannelEvent`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ContinuationToken, SessionId};

/// How a turn ended, as a runner reports it (serialised with a `status` tag:
/// `finished|parked|contended|aborted`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum TurnOutcome {
    /// The turn completed. Commits: the token rotates.
    Finished {
        /// The turn's output, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<Value>,
    },
    /// The turn is waiting for something (user input, an approval). Commits: the token rotates.
    Parked {
        /// What the turn waits for.
        wait: Value,
    },
    /// The session's state is held elsewhere; nothing was committed. The token stays valid.
    Contended {
        /// Who or what currently holds the state.
        current: Value,
    },
    /// The turn lost its lease or hit a sequence conflict; nothing was committed. The token
    /// stays valid (the reason stays server-side).
    Aborted,
}

impl TurnOutcome {
    /// Whether this outcome commits the turn (and so rotates the token).
    pub fn commits(&self) -> bool {
        matches!(self, TurnOutcome::Finished { .. } | TurnOutcome::Parked { .. })
    }

    /// The status string: `finished`, `parked`, `contended` or `aborted`.
    pub fn status(&self) -> &'static str {
        match self {
            TurnOutcome::Finished { .. } => "finished",
            TurnOutcome::Parked { .. } => "parked",
            TurnOutcome::Contended { .. } => "contended",
            TurnOutcome::Aborted => "aborted",
        }
    }
}

/// The result of a turn as a client sees it: `{sessionId, status, output?, wait?, current?,
/// continuationToken?}`. `continuationToken` is the token to present next (fresh after a
/// start or a committed turn, the presented one after a contended or aborted turn).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnReply {
    /// The conversation.
    pub session_id: SessionId,
    /// How the turn ended.
    #[serde(flatten)]
    pub outcome: TurnOutcome,
    /// The token to present for the next turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<ContinuationToken>,
}

/// An event streamed while a turn runs (serialised with a `type` tag:
/// `record|delta|outcome|error`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ChannelEvent {
    /// A journal entry of the turn.
    Record {
        /// The entry.
        record: Value,
    },
    /// A streamed text fragment.
    Delta {
        /// The fragment.
        text: String,
    },
    /// The turn's result; always the last event of a successful turn.
    Outcome(TurnReply),
    /// A failure after streaming began (the last event of a failed turn), or, on a
    /// connection-bound transport, a refusal (then `reason` names it).
    Error {
        /// What went wrong.
        message: String,
        /// The refusal, when this error is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<crate::Refusal>,
    },
}

impl ChannelEvent {
    /// The `error` event of a failure (no refusal reason).
    pub fn failure(message: impl Into<String>) -> Self {
        ChannelEvent::Error { message: message.into(), reason: None }
    }

    /// The `error` event of a refusal: its message and its reason.
    pub fn refused(refusal: crate::Refusal) -> Self {
        ChannelEvent::Error { message: refusal.message().to_owned(), reason: Some(refusal) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcome_event_shape() {
        let ev = ChannelEvent::Outcome(TurnReply {
            session_id: SessionId::presented("chs_1"),
            outcome: TurnOutcome::Finished { output: Some(json!({"a": 1})) },
            continuation_token: ContinuationToken::presented(Some("ct_x")),
        });
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(
            v,
            json!({"type": "outcome", "sessionId": "chs_1", "status": "finished", "output": {"a": 1}, "continuationToken": "ct_x"})
        );
        assert_eq!(serde_json::from_value::<ChannelEvent>(v).unwrap(), ev);
    }

    #[test]
    fn other_shapes() {
        let cases = [
            (TurnOutcome::Finished { output: None }, json!({"status": "finished"})),
            (TurnOutcome::Parked { wait: json!("input") }, json!({"status": "parked", "wait": "input"})),
            (TurnOutcome::Contended { current: json!("n2") }, json!({"status": "contended", "current": "n2"})),
            (TurnOutcome::Aborted, json!({"status": "aborted"})),
        ];
        for (o, v) in cases {
            assert_eq!(serde_json::to_value(&o).unwrap(), v);
            assert_eq!(serde_json::from_value::<TurnOutcome>(v).unwrap(), o);
        }
        let reply = TurnReply {
            session_id: SessionId::presented("s"),
            outcome: TurnOutcome::Aborted,
            continuation_token: None,
        };
        assert_eq!(serde_json::to_value(&reply).unwrap(), json!({"sessionId": "s", "status": "aborted"}));
        assert_eq!(
            serde_json::to_value(ChannelEvent::Delta { text: "hi".into() }).unwrap(),
            json!({"type": "delta", "text": "hi"})
        );
        assert_eq!(
            serde_json::to_value(ChannelEvent::Record { record: json!(1) }).unwrap(),
            json!({"type": "record", "record": 1})
        );
        assert_eq!(
            serde_json::to_value(ChannelEvent::Error { message: "x".into(), reason: None }).unwrap(),
            json!({"type": "error", "message": "x"})
        );
        assert_eq!(
            serde_json::to_value(ChannelEvent::refused(crate::Refusal::InFlight)).unwrap(),
            json!({"type": "error", "message": crate::Refusal::InFlight.message(), "reason": "in-flight"})
        );
    }
}
