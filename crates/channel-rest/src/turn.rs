//! Running one channel call (start, continue) and making sure its stream ends with a
//! terminal event.

use std::sync::Arc;

use channel_core::{Channel, ChannelEvent, EventSink, SessionId, TurnReply, TurnRunner};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::error::channel_message;
use crate::observe::{ChannelObserver, TurnEnd};

/// What a turn does to its session.
#[derive(Debug)]
pub(crate) enum Advance {
    /// A new conversation.
    Start,
    /// The next turn of `session`, presenting `token`.
    Continue {
        /// The conversation.
        session: SessionId,
        /// The presented token (`None`: `missing-token`).
        token: Option<String>,
    },
}

/// Everything a turn needs, owned, so it can run in its own task.
pub(crate) struct TurnJob {
    pub(crate) channel: Channel,
    pub(crate) runner: Arc<dyn TurnRunner>,
    pub(crate) owner: String,
    pub(crate) advance: Advance,
    pub(crate) body: Value,
    /// Told how the turn ended (and about an in-band error of a streamed turn).
    pub(crate) observer: Arc<dyn ChannelObserver>,
}

/// Forwards events and remembers whether a terminal one (`outcome` or `error`) went through.
struct Tracked<F> {
    emit: F,
    terminal: bool,
}

impl<F: FnMut(ChannelEvent) + Send> EventSink for Tracked<F> {
    fn emit(&mut self, event: ChannelEvent) {
        self.terminal |= matches!(event, ChannelEvent::Outcome(_) | ChannelEvent::Error { .. });
        (self.emit)(event);
    }
}

/// The in-band event for an error the port reported without emitting one (a refusal, an
/// invalid body, a store or entropy failure before the turn ran).
pub(crate) fn error_event(e: &channel_core::Error) -> ChannelEvent {
    match e {
        channel_core::Error::Refused(r) => ChannelEvent::refused(*r),
        other => ChannelEvent::failure(channel_message(other)),
    }
}

impl TurnJob {
    /// Runs the call, streaming its events to `emit`. The last event `emit` sees is always the
    /// `outcome` or an `error` (the port's own, or [`error_event`] when the port failed before
    /// emitting one). Run it in its own task (`tokio::spawn`): a dropped future would leave
    /// the session claimed until the claim times out.
    pub(crate) async fn run(self, emit: impl FnMut(ChannelEvent) + Send) -> Result<TurnReply, channel_core::Error> {
        let TurnJob { channel, runner, owner, advance, body, observer } = self;
        let mut sink = Tracked { emit, terminal: false };
        let result = match advance {
            Advance::Start => channel.start(&owner, body, runner.as_ref(), &mut sink).await,
            Advance::Continue { session, token } => {
                channel.continue_turn(&session, &owner, token.as_deref(), body, runner.as_ref(), &mut sink).await
            }
        };
        observer.turn_ended(TurnEnd::of(&result, |reply| reply.outcome.status()));
        if let Err(e) = &result
            && !sink.terminal
        {
            (sink.emit)(error_event(e));
        }
        result
    }

    /// Claims the session (every refusal happens here), then runs the turn, all in a task of
    /// its own; the returned receiver says whether the claim succeeded before anything is
    /// streamed. Once claimed, the turn runs to completion even if the caller goes away, and
    /// `emit` sees every event ending with the `outcome` or an `error`. On a refusal `emit`
    /// sees nothing.
    pub(crate) fn spawn_claimed(
        self,
        emit: impl FnMut(ChannelEvent) + Send + 'static,
    ) -> oneshot::Receiver<Result<(), channel_core::Error>> {
        let (claimed_tx, claimed_rx) = oneshot::channel();
        tokio::spawn(async move {
            let TurnJob { channel, runner, owner, advance, body, observer } = self;
            let claimed = match advance {
                Advance::Start => channel.claim_start(&owner, body, runner.as_ref()).await,
                Advance::Continue { session, token } => {
                    channel.claim_continue(&session, &owner, token.as_deref(), body, runner.as_ref()).await
                }
            };
            let claimed = match claimed {
                Ok(c) => c,
                Err(e) => {
                    observer.turn_ended(TurnEnd::of_error(&e));
                    let _ = claimed_tx.send(Err(e));
                    return;
                }
            };
            let _ = claimed_tx.send(Ok(()));
            let mut sink = Tracked { emit, terminal: false };
            let result = claimed.run(runner.as_ref(), &mut sink).await;
            observer.turn_ended(TurnEnd::of(&result, |reply| reply.outcome.status()));
            if let Err(e) = result {
                // The stream is open: the error is answered in-band.
                observer.error_answered(e.code());
                if !sink.terminal {
                    (sink.emit)(error_event(&e));
                }
            }
        });
        claimed_rx
    }
}
