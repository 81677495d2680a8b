//! The port: [`Channel`] validates, claims, runs a [`TurnRunner`] and rotates the token.

use std::sync::Arc;
use std::time::Duration;

use arcp_core::{Clock, Entropy};
use async_trait::async_trait;
use serde_json::Value;

use crate::{
    ChannelEvent, Claim, ContinuationToken, Error, RunnerError, SessionId, SessionInfo, StoreError, TokenStore,
    TurnLog, TurnOutcome, TurnReply, TurnSummary,
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

/// Who and what a turn is for, as the port tells a [`TurnRunner`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Turn {
    /// The conversation.
    pub session: SessionId,
    /// The principal the conversation belongs to (`""` when the transport has no notion of
    /// principals).
    pub owner: String,
    /// Whether this is the conversation's first turn (a start).
    pub first: bool,
}

/// Runs one turn of a conversation. The runner emits `record` and `delta` events only; the
/// port emits the final `outcome` (or `error`) event itself.
#[async_trait]
pub trait TurnRunner: Send + Sync {
    /// Runs `turn` on `body`, streaming events to `emit`.
    async fn run(&self, turn: &Turn, body: Value, emit: &mut dyn EventSink) -> Result<TurnOutcome, RunnerError>;

    /// Checks a body before anything is claimed or run; an `Err` is a client error
    /// ([`Error::InvalidBody`], HTTP `400`) and leaves the session untouched. The default
    /// accepts every body.
    fn check(&self, body: &Value) -> Result<(), String> {
        let _ = body;
        Ok(())
    }
}

/// Policy of a [`Channel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelConfig {
    /// How long a session lives without a turn before it is `unknown-session`.
    pub idle_ttl: Duration,
    /// How long a turn may hold its session. A turn still running after this loses its claim
    /// (another continue may take the session over and the late turn's commit fails), so a
    /// crashed node or a dropped turn cannot lock a conversation forever.
    pub claim_ttl: Duration,
    /// How many bytes of `record`/`delta` events a turn's recording keeps for
    /// [`Channel::recover`]; beyond it they are dropped and the recording is marked truncated
    /// (the `outcome` is always kept).
    pub max_recorded_bytes: usize,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            idle_ttl: Duration::from_secs(24 * 60 * 60),
            claim_ttl: Duration::from_secs(10 * 60),
            max_recorded_bytes: 256 * 1024,
        }
    }
}

/// A recovered turn: its events (the `outcome` last, carrying the token to present next) and
/// whether the recording was truncated.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveredTurn {
    /// The turn's events as they were streamed (the `outcome` token filled in).
    pub events: Vec<ChannelEvent>,
    /// Whether some `record`/`delta` events were dropped by the recording cap.
    pub truncated: bool,
    /// The turn's reply (the `outcome` event's content).
    pub reply: TurnReply,
}

/// The channel port over a [`TokenStore`]. Cheap to clone; share one per store.
///
/// Rules it keeps (channel rules 1–4, 6): a body the runner's [`TurnRunner::check`] rejects
/// is [`Error::InvalidBody`] before anything else; refusals (in the order `unknown-session`,
/// `missing-token`, `stale-token`, `in-flight`) are returned before anything runs; the token
/// check and the in-flight claim are one store step; `start` always issues a fresh token;
/// `finished` and `parked` rotate the token, `contended` and `aborted` keep the presented one
/// valid; a runner failure keeps the token valid, releases the claim, emits an `error` event
/// and returns [`Error::Runner`]. On success the last event is `outcome`, carrying the token
/// to present next. A session belongs to the `owner` that started it; to anyone else it is
/// `unknown-session`.
///
/// Every completed turn is recorded (without its token) so a client that lost the response
/// can [`recover`](Channel::recover) it instead of running the turn again.
///
/// **Drive turns to completion.** The claim is released when `start`/`continue_turn`
/// returns; a future dropped mid-turn leaves its session `in-flight` until the claim times
/// out ([`ChannelConfig::claim_ttl`]). Transports should run each turn in its own task so a
/// client that disconnects does not cancel it.
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

/// A turn whose session is claimed and which has not run yet (from
/// [`Channel::claim_start`] or [`Channel::claim_continue`]). **Run it**: until
/// [`ClaimedTurn::run`] settles it, the session stays in flight (until
/// [`ChannelConfig::claim_ttl`] if it is dropped).
#[must_use = "the session stays in flight until the turn runs"]
pub struct ClaimedTurn {
    channel: Channel,
    claim: Claim,
    turn: Turn,
    current: ContinuationToken,
    body: Value,
}

impl std::fmt::Debug for ClaimedTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimedTurn").field("turn", &self.turn).finish_non_exhaustive()
    }
}

impl ClaimedTurn {
    /// The turn (session, owner, whether it is the first).
    pub fn turn(&self) -> &Turn {
        &self.turn
    }

    /// Runs the turn with `runner`, streaming to `emit`, and settles it: rotates the token if
    /// it committed, keeps it otherwise, releases the claim. On success the last event is
    /// `outcome`; a runner failure emits `error` and returns [`Error::Runner`].
    pub async fn run(self, runner: &dyn TurnRunner, emit: &mut dyn EventSink) -> Result<TurnReply, Error> {
        let ClaimedTurn { channel, claim, turn, current, body } = self;
        let mut rec = channel.recorder(emit);
        let result = run_guarded(runner, &turn, body, &mut rec).await;
        channel.settle(claim, result, current, turn.first, &mut rec).await
    }
}

/// Forwards events to the transport's sink and records them (bounded) for recovery.
struct Recorder<'a> {
    inner: &'a mut dyn EventSink,
    events: Vec<ChannelEvent>,
    bytes: usize,
    max_bytes: usize,
    truncated: bool,
}

impl EventSink for Recorder<'_> {
    fn emit(&mut self, event: ChannelEvent) {
        if !self.truncated {
            let size = serde_json::to_vec(&event).map_or(usize::MAX, |v| v.len());
            if self.bytes.saturating_add(size) <= self.max_bytes {
                self.bytes += size;
                self.events.push(event.clone());
            } else {
                self.truncated = true;
            }
        }
        self.inner.emit(event);
    }
}

impl Recorder<'_> {
    /// The recording of a turn that ended with `reply` (its token left out).
    fn log(&self, reply: &TurnReply) -> TurnLog {
        let mut events = self.events.clone();
        events.push(ChannelEvent::Outcome(TurnReply { continuation_token: None, ..reply.clone() }));
        TurnLog::new(&events, self.truncated)
    }
}

/// Runs a turn, turning a panicking runner into a failed turn (so its claim is released and
/// its token stays valid, instead of the session staying in flight until the claim times out).
async fn run_guarded(
    runner: &dyn TurnRunner,
    turn: &Turn,
    body: Value,
    emit: &mut dyn EventSink,
) -> Result<TurnOutcome, RunnerError> {
    use futures_util::FutureExt as _;
    match std::panic::AssertUnwindSafe(runner.run(turn, body, emit)).catch_unwind().await {
        Ok(result) => result,
        Err(_) => Err(RunnerError::new("the turn failed unexpectedly")),
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

    /// The port's policy.
    pub fn config(&self) -> &ChannelConfig {
        &self.config
    }

    /// Mints a fresh session id (for connection-bound transports).
    pub fn new_session_id(&self) -> Result<SessionId, Error> {
        SessionId::mint(self.clock.as_ref(), self.entropy.as_ref())
    }

    fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    fn after(&self, d: Duration) -> u64 {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.now().saturating_add(ms)
    }

    fn expires_at(&self) -> u64 {
        self.after(self.config.idle_ttl)
    }

    fn claim_until(&self) -> u64 {
        self.after(self.config.claim_ttl)
    }

    fn recorder<'a>(&self, emit: &'a mut dyn EventSink) -> Recorder<'a> {
        Recorder {
            inner: emit,
            events: Vec::new(),
            bytes: 0,
            max_bytes: self.config.max_recorded_bytes,
            truncated: false,
        }
    }

    /// Starts a conversation for `owner`: mints a session id and a fresh token, runs the first
    /// turn and returns its reply, which always carries the new token (unless the runner
    /// failed).
    pub async fn start(
        &self,
        owner: &str,
        body: Value,
        runner: &dyn TurnRunner,
        emit: &mut dyn EventSink,
    ) -> Result<TurnReply, Error> {
        self.claim_start(owner, body, runner).await?.run(runner, emit).await
    }

    /// The first half of [`start`](Self::start): checks the body and creates the session,
    /// claimed for its first turn, without running anything. Run the turn with
    /// [`ClaimedTurn::run`].
    pub async fn claim_start(&self, owner: &str, body: Value, runner: &dyn TurnRunner) -> Result<ClaimedTurn, Error> {
        runner.check(&body).map_err(Error::InvalidBody)?;
        let session = self.new_session_id()?;
        let token = ContinuationToken::mint(self.entropy.as_ref())?;
        let claim = match self.store.create(&session, owner, &token, self.now(), self.claim_until()).await {
            Err(StoreError::Full { .. }) => {
                self.store.purge_expired(self.now()).await?;
                self.store.create(&session, owner, &token, self.now(), self.claim_until()).await?
            }
            other => other?,
        };
        let turn = Turn { session, owner: owner.to_owned(), first: true };
        Ok(ClaimedTurn { channel: self.clone(), claim, turn, current: token, body })
    }

    /// Continues `session` as `owner` with the presented token (`None` or `""` is
    /// `missing-token`): validates and claims in one step, runs the turn, and rotates the
    /// token if it committed.
    pub async fn continue_turn(
        &self,
        session: &SessionId,
        owner: &str,
        presented: Option<&str>,
        body: Value,
        runner: &dyn TurnRunner,
        emit: &mut dyn EventSink,
    ) -> Result<TurnReply, Error> {
        self.claim_continue(session, owner, presented, body, runner).await?.run(runner, emit).await
    }

    /// The first half of [`continue_turn`](Self::continue_turn): checks the body, then
    /// validates and claims in one step, without running anything. Every refusal comes from
    /// here, so a transport can answer it before it commits to a response (an SSE stream).
    /// Run the turn with [`ClaimedTurn::run`].
    pub async fn claim_continue(
        &self,
        session: &SessionId,
        owner: &str,
        presented: Option<&str>,
        body: Value,
        runner: &dyn TurnRunner,
    ) -> Result<ClaimedTurn, Error> {
        runner.check(&body).map_err(Error::InvalidBody)?;
        let presented = ContinuationToken::presented(presented);
        let claim = self.store.claim(session, owner, presented.as_ref(), self.now(), self.claim_until()).await?;
        // A store that granted a claim without a token broke its contract: refuse, run nothing.
        let Some(current) = presented else {
            let _ = self.store.release(claim, self.expires_at(), None).await;
            return Err(Error::Refused(crate::Refusal::MissingToken));
        };
        let turn = Turn { session: session.clone(), owner: owner.to_owned(), first: false };
        Ok(ClaimedTurn { channel: self.clone(), claim, turn, current, body })
    }

    async fn settle(
        &self,
        claim: Claim,
        result: Result<TurnOutcome, RunnerError>,
        current: ContinuationToken,
        fresh: bool,
        rec: &mut Recorder<'_>,
    ) -> Result<TurnReply, Error> {
        let session = claim.session().clone();
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                // Keep the token; a failed release (claim lost) changes nothing for the client.
                let _ = self.store.release(claim, self.expires_at(), None).await;
                rec.inner.emit(ChannelEvent::failure(e.message.clone()));
                return Err(Error::Runner(e));
            }
        };
        let mut reply = TurnReply { session_id: session, outcome, continuation_token: None };
        let summary = TurnSummary::new(&reply.outcome, rec.log(&reply));
        let next = if reply.outcome.commits() && !fresh {
            let next = match ContinuationToken::mint(self.entropy.as_ref()) {
                Ok(t) => t,
                Err(e) => {
                    let _ = self.store.release(claim, self.expires_at(), None).await;
                    rec.inner.emit(ChannelEvent::failure(e.to_string()));
                    return Err(e);
                }
            };
            self.store.commit(claim, &next, self.expires_at(), &summary).await.map(|()| next)
        } else {
            self.store.release(claim, self.expires_at(), Some(&summary)).await.map(|()| current)
        };
        match next {
            Ok(token) => {
                reply.continuation_token = Some(token);
                rec.inner.emit(ChannelEvent::Outcome(reply.clone()));
                Ok(reply)
            }
            Err(e) => {
                rec.inner.emit(ChannelEvent::failure(e.to_string()));
                Err(e.into())
            }
        }
    }

    /// Checks a continue without running or claiming (so a transport can refuse before it
    /// opens a stream). The answer can change before the actual continue.
    pub async fn validate(&self, session: &SessionId, owner: &str, presented: Option<&str>) -> Result<(), Error> {
        let presented = ContinuationToken::presented(presented);
        Ok(self.store.validate(session, owner, presented.as_ref(), self.now()).await?)
    }

    /// Recovers the last completed turn for a client that lost its response, without running
    /// anything. Present either the session's current token (the recording comes back with
    /// that token) or the token the last turn consumed when it committed (the token that turn
    /// issued is replaced by a fresh one, which the recording carries: the lost token is
    /// dead). Refusals as for a continue; `Ok(None)` when no turn completed yet.
    pub async fn recover(
        &self,
        session: &SessionId,
        owner: &str,
        presented: Option<&str>,
    ) -> Result<Option<RecoveredTurn>, Error> {
        let presented = ContinuationToken::presented(presented);
        let reissue = ContinuationToken::mint(self.entropy.as_ref())?;
        let got = self.store.recover(session, owner, presented.as_ref(), &reissue, self.now()).await?;
        let Some(log) = got.log else { return Ok(None) };
        let token = if got.reissued { reissue } else { presented.ok_or(crate::Refusal::MissingToken)? };
        let (mut events, truncated) =
            log.events().map_err(|e| StoreError::Backend(format!("corrupt turn recording: {e}")))?;
        let reply = match events.last_mut() {
            Some(ChannelEvent::Outcome(reply)) => {
                reply.continuation_token = Some(token);
                reply.clone()
            }
            _ => return Err(StoreError::Backend("turn recording without an outcome".into()).into()),
        };
        Ok(Some(RecoveredTurn { events, truncated, reply }))
    }

    /// The token-free status of `session` as `owner` sees it (`None`: unknown to them).
    pub async fn info(&self, session: &SessionId, owner: &str) -> Result<Option<SessionInfo>, Error> {
        Ok(self.store.info(session, owner, self.now()).await?)
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
