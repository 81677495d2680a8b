//! The in-process driver: calls [`Channel`] directly and collects the events in a `Vec`.

use std::sync::Arc;

use async_trait::async_trait;
use channel_core::{Channel, ChannelEvent, Error, SessionId, TurnReply, TurnRunner};
use serde_json::Value;

use super::driver::{Answer, ChannelDriver};
use crate::Failure;

/// Drives a [`Channel`] with a runner, as `owner`.
pub(crate) struct PortDriver {
    pub(crate) channel: Channel,
    pub(crate) runner: Arc<dyn TurnRunner>,
    pub(crate) owner: String,
}

/// Normalises what the port returned: a refusal must come before any event.
fn answer(result: Result<TurnReply, Error>, events: Vec<ChannelEvent>) -> Result<Answer, Failure> {
    match result {
        Ok(reply) => Ok(Answer::Reply { reply, events }),
        Err(Error::Refused(r)) if events.is_empty() => Ok(Answer::Refused(r.reason().to_owned())),
        Err(Error::Refused(r)) => Err(format!("the `{}` refusal came after {} event(s)", r.reason(), events.len())),
        Err(e) => Ok(Answer::Failed { reason: Some(e.code().to_owned()), message: e.to_string(), events }),
    }
}

#[async_trait]
impl ChannelDriver for PortDriver {
    async fn start(&self, body: Value) -> Result<Answer, Failure> {
        let mut events = Vec::new();
        let result = self.channel.start(&self.owner, body, self.runner.as_ref(), &mut events).await;
        answer(result, events)
    }

    async fn advance(&self, session: &str, token: Option<&str>, body: Value) -> Result<Answer, Failure> {
        let mut events = Vec::new();
        let session = SessionId::presented(session);
        let result =
            self.channel.continue_turn(&session, &self.owner, token, body, self.runner.as_ref(), &mut events).await;
        answer(result, events)
    }

    async fn recover(&self, session: &str, token: Option<&str>) -> Result<Answer, Failure> {
        match self.channel.recover(&SessionId::presented(session), &self.owner, token).await {
            Ok(Some(turn)) => Ok(Answer::Reply { reply: turn.reply, events: turn.events }),
            Ok(None) => Ok(Answer::Failed {
                reason: Some("nothing-to-recover".into()),
                message: "no turn completed yet".into(),
                events: Vec::new(),
            }),
            Err(e) => answer(Err(e), Vec::new()),
        }
    }

    async fn info(&self, session: &str) -> Result<Option<Value>, Failure> {
        match self.channel.info(&SessionId::presented(session), &self.owner).await {
            Ok(Some(info)) => serde_json::to_value(info).map(Some).map_err(|e| format!("cannot serialise info: {e}")),
            Ok(None) => Ok(None),
            Err(e) => Err(format!("info failed: {e}")),
        }
    }
}
