//! The port: [`Channel`] validates, claims, runs a [`TurnRunner`] and rotates the token.

use std::sync::Arc;
use std::time::Duration;

use arcp_core::{Clock, Entropy};
use async_trait::async_trait;
use serde_json::Value;

use crate::{
    ChannelEvent, Claim, ContinuationToken, Error, RunnerError, SessionId, StoreError, TokenStore, TurnOutcome,
    TurnReply,
};

/// Where a turn's [`ChannelEvent`]s go while it runs. Synchronous and infallible on purpose: a
/// transport forwards into its own queue (an SSE body, a WebSocket writer, a `Vec` for a
/// plain JSON reply) and a slow or gone client never stalls or fails the turn. Any
/// `FnMut(ChannelEvent) + Send` closure and `Vec<ChannelEvent>` are sinks.
pub trait EventSink: Send {
    /// Delivers one event.
    fn emit(&mut self, event: ChannelEvent);
}

impl<F: FnMut(ChannelEvent) + Send> EventSink for F {
    fn emit(&mut self, event: ChannelEvent) {
        self(event);
    }
}

impl EventSink for Vec<ChannelEvent> {
    fn emit(&mut self, event: ChannelEvent) {
        self.push(event);
    }
}

/// Runs one turn of a conversation. The runner emits `record` and `delta` events only; the
/// port emits the final `outcome` (or `error`) event itself.
#[async_trait]
pub trait TurnRunner: Send + Sync {
    /// Runs a turn of `session` on `body`, streaming events to `emit`.
    async fn run(&self, session: &SessionId, body: Value, emit: &mut dyn EventSink)
    -> Result<TurnOutcome, RunnerError>;
}

/// Policy of a [`Channel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelConfig {
    /// How long a session lives without a turn before it is `unknown-session`.
    pub idle_ttl: Duration,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig { idle_ttl: Duration::from_secs(24 * 60 * 60) }
    }
}

/// The channel port over a [`TokenStore`]. Cheap to clone; share one per store.
///
/// Rules it keeps (channel rules 1–4, 6): refusals (in the order `unknown-session`,
/// `missing-token`, `stale-token`, `in-flight`) are returned before anything runs; the token
/// check and the in-flight claim are one store step; `start` always issues a fresh token;
/// `finished` and `parked` rotate the token, `contended` and `aborted` keep the presented one
/// valid; a runner failure keeps the token valid, releases the claim, emits an `error` event
/// and returns [`Error::Runner`]. On success the last event is `outcome`, carrying the token
/// to present next.
///
/// **Drive turns to completion.** The claim is released when `start`/`continue_turn`
/// returns; a future dropped mid-turn leaves its session `in-flight` (a sans-IO crate cannot
/// release from `Drop`). Transports should run each turn in its own task so a client that
/// disconnects does not cancel it.
#[derive(Clone)]
pub struct Channel {
    store: Arc<dyn TokenStore>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    config: ChannelConfig,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Channel {
    /// A port over `store`, taking time from `clock` and randomness from `entropy` (use a
    /// CSPRNG such as [`OsEntropy`](arcp_core::OsEntropy) outside tests).
    pub fn new(
        store: Arc<dyn TokenStore>,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
        config: ChannelConfig,
    ) -> Self {
        Channel { store, clock, entropy, config }
    }

    /// The store behind this port.
    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.store
    }

    /// Mints a fresh session id (for connection-bound transports).
    pub fn new_session_id(&self) -> Result<SessionId, Error> {
        SessionId::mint(self.clock.as_ref(), self.entropy.as_ref())
    }

    fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    fn expires_at(&self) -> u64 {
        let ttl = u64::try_from(self.config.idle_ttl.as_millis()).unwrap_or(u64::MAX);
        self.now().saturating_add(ttl)
    }

    /// Starts a conversation: mints a session id and a fresh token, runs the first turn and
    /// returns its reply, which always carries the new token (unless the runner failed).
    pub async fn start(
        &self,
        body: Value,
        runner: &dyn TurnRunner,
        emit: &mut dyn EventSink,
    ) -> Result<TurnReply, Error> {
        let session = self.new_session_id()?;
        let token = ContinuationToken::mint(self.entropy.as_ref())?;
        let claim = match self.store.create(&session, &token, self.expires_at()).await {
            Err(StoreError::Full { .. }) => {
                self.store.purge_expired(self.now()).await?;
                self.store.create(&session, &token, self.expires_at()).await?
            }
            other => other?,
        };
        let result = runner.run(&session, body, emit).await;
        self.settle(claim, result, token, true, emit).await
    }

    /// Continues `session` with the presented token (`None` or `""` is `missing-token`):
    /// validates and claims in one step, runs the turn, and rotates the token if it committed.
    pub async fn continue_turn(
        &self,
        session: &SessionId,
        presented: Option<&str>,
        body: Value,
        runner: &dyn TurnRunner,
        emit: &mut dyn EventSink,
    ) -> Result<TurnReply, Error> {
        let presented = ContinuationToken::presented(presented);
        let claim = self.store.claim(session, presented.as_ref(), self.now()).await?;
        // A store that granted a claim without a token broke its contract: refuse, run nothing.
        let Some(current) = presented else {
            let _ = self.store.release(claim, self.expires_at()).await;
            return Err(Error::Refused(crate::Refusal::MissingToken));
        };
        let result = runner.run(session, body, emit).await;
        self.settle(claim, result, current, false, emit).await
    }

    async fn settle(
        &self,
        claim: Claim,
        result: Result<TurnOutcome, RunnerError>,
        current: ContinuationToken,
        fresh: bool,
        emit: &mut dyn EventSink,
    ) -> Result<TurnReply, Error> {
        let session = claim.session().clone();
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                // Keep the token; a failed release (claim lost) changes nothing for the client.
                let _ = self.store.release(claim, self.expires_at()).await;
                emit.emit(ChannelEvent::Error { message: e.message.clone() });
                return Err(Error::Runner(e));
            }
        };
        let next = if outcome.commits() && !fresh {
            let next = match ContinuationToken::mint(self.entropy.as_ref()) {
                Ok(t) => t,
                Err(e) => {
                    let _ = self.store.release(claim, self.expires_at()).await;
                    emit.emit(ChannelEvent::Error { message: e.to_string() });
                    return Err(e);
                }
            };
            self.store.commit(claim, &next, self.expires_at()).await.map(|()| next)
        } else {
            self.store.release(claim, self.expires_at()).await.map(|()| current)
        };
        match next {
            Ok(token) => {
                let reply = TurnReply { session_id: session, outcome, continuation_token: Some(token) };
                emit.emit(ChannelEvent::Outcome(reply.clone()));
                Ok(reply)
            }
            Err(e) => {
                emit.emit(ChannelEvent::Error { message: e.to_string() });
                Err(e.into())
            }
        }
    }

    /// Checks a continue without running or claiming (so a transport can refuse before it
    /// opens a stream). The answer can change before the actual continue.
    pub async fn validate(&self, session: &SessionId, presented: Option<&str>) -> Result<(), Error> {
        let presented = ContinuationToken::presented(presented);
        Ok(self.store.validate(session, presented.as_ref(), self.now()).await?)
    }

    /// Whether a turn is running for `session`.
    pub async fn in_flight(&self, session: &SessionId) -> Result<bool, Error> {
        Ok(self.store.in_flight(session, self.now()).await?)
    }

    /// The session's current token (for connection-bound transports), if the store knows it.
    pub async fn current_token(&self, session: &SessionId) -> Result<Option<ContinuationToken>, Error> {
        Ok(self.store.current_token(session, self.now()).await?)
    }

    /// Extends a session's idle expiry by the configured idle time from now; `false` if it is
    /// unknown or expired.
    pub async fn touch(&self, session: &SessionId) -> Result<bool, Error> {
        Ok(self.store.touch(session, self.expires_at(), self.now()).await?)
    }

    /// Deletes expired sessions from the store; returns how many.
    pub async fn purge_expired(&self) -> Result<usize, Error> {
        Ok(self.store.purge_expired(self.now()).await?)
    }
}
