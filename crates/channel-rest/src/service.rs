//! [`ChannelService`]: the routes of one channel and their handlers.

use std::sync::Arc;

use channel_core::{Channel, ChannelEvent, SessionId, TurnRunner};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use tokio::sync::{mpsc, watch};

use crate::observe::Hooks;
use crate::reply::{Body, json};
use crate::request::{json_body, presented_token, wants_sse};
use crate::turn::{Advance, TurnJob};
use crate::{Authenticator, ChannelObserver, Error, RequestLimiter, RestConfig, sse, ws};

/// The HTTP face of one channel: `POST /v1/session`, `POST /v1/session/{id}/message`,
/// `POST /v1/session/{id}/recover`, `GET /v1/session/{id}` and `GET /v1/ws`. Cheap to clone
/// (`Arc` inside).
///
/// Every turn runs in its own task, so a client that disconnects mid-turn does not cancel it
/// (the session would otherwise stay claimed until the claim's TTL).
#[derive(Clone)]
pub struct ChannelService {
    inner: Arc<Inner>,
    auth: Option<Arc<dyn Authenticator>>,
    pub(crate) hooks: Hooks,
}

pub(crate) struct Inner {
    pub(crate) channel: Channel,
    pub(crate) runner: Arc<dyn TurnRunner>,
    pub(crate) config: RestConfig,
    /// Set to `true` to close every WebSocket connection of this service.
    pub(crate) closing: watch::Sender<bool>,
}

impl std::fmt::Debug for ChannelService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelService")
            .field("channel", &self.inner.channel)
            .field("config", &self.inner.config)
            .field("authenticated", &self.auth.is_some())
            .finish_non_exhaustive()
    }
}

/// A route of the service, parsed from the path.
enum Route {
    Start,
    Info(SessionId),
    Message(SessionId),
    Recover(SessionId),
    Ws,
    NotFound,
}

fn route(path: &str) -> Route {
    if path == "/v1/ws" {
        return Route::Ws;
    }
    let Some(rest) = path.strip_prefix("/v1/session") else { return Route::NotFound };
    if rest.is_empty() {
        return Route::Start;
    }
    let Some(rest) = rest.strip_prefix('/') else { return Route::NotFound };
    let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
    // An id that is not UTF-8 once decoded cannot name a session; keep it as presented.
    let id = percent_decode_str(id).decode_utf8().map_or_else(|_| id.to_owned(), |s| s.into_owned());
    if id.is_empty() {
        return Route::NotFound;
    }
    let id = SessionId::presented(id);
    match action {
        "" => Route::Info(id),
        "message" => Route::Message(id),
        "recover" => Route::Recover(id),
        _ => Route::NotFound,
    }
}

fn only(method: &Method, allowed: Method, allow: &'static str) -> Result<(), Error> {
    if *method == allowed { Ok(()) } else { Err(Error::MethodNotAllowed { allow }) }
}

impl ChannelService {
    /// The service of `channel`, running turns with `runner`. Without
    /// [`with_authenticator`](Self::with_authenticator) every request's owner is `""`.
    pub fn new(channel: Channel, runner: Arc<dyn TurnRunner>, config: RestConfig) -> Self {
        let (closing, _) = watch::channel(false);
        ChannelService {
            inner: Arc::new(Inner { channel, runner, config, closing }),
            auth: None,
            hooks: Hooks::default(),
        }
    }

    /// Requires authentication on every route: `auth` maps each request to its owner, and a
    /// request it does not authenticate is `401 unauthorized` (without it every request's
    /// owner is `""`).
    pub fn with_authenticator(mut self, auth: Arc<dyn Authenticator>) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Tells `observer` how turns end and which errors are answered (for metrics).
    pub fn with_observer(mut self, observer: Arc<dyn ChannelObserver>) -> Self {
        self.hooks.observer = observer;
        self
    }

    /// Admits every request (after authentication, keyed by its owner) and every WebSocket
    /// frame that advances a session through `limiter`; a refused request is `429
    /// rate-limited` with `Retry-After` (whole seconds), a refused frame an in-band `error`
    /// frame with `reason: "rate-limited"` and `retryAfter` (seconds).
    pub fn with_limiter(mut self, limiter: Arc<dyn RequestLimiter>) -> Self {
        self.hooks.limiter = Some(limiter);
        self
    }

    /// Whether this service answers `path`: `/v1/session`, anything under `/v1/session/`, and
    /// exactly `/v1/ws`.
    pub fn handles(path: &str) -> bool {
        path == "/v1/session" || path.starts_with("/v1/session/") || path == "/v1/ws"
    }

    /// The configuration.
    pub fn config(&self) -> &RestConfig {
        &self.inner.config
    }

    /// Closes every WebSocket connection of this service (and its clones) with `1001 going
    /// away`, now and for any upgrade still to come. [`serve`](crate::serve) calls it when
    /// shutting down; call it yourself when you serve [`handle`](Self::handle) from your own
    /// accept loop. Turns already running finish.
    pub fn close_websockets(&self) {
        self.inner.closing.send_replace(true);
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Answers one request. Call it from any hyper service; a WebSocket upgrade works when the
    /// connection is served with upgrades enabled (`http1::Builder::serve_connection(..)
    /// .with_upgrades()`, as [`serve`](crate::serve) does). Never panics; every failure is a
    /// status with a `{"error", "reason"}` body.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        self.dispatch(req).await.unwrap_or_else(|e| {
            self.hooks.observer.error_answered(e.reason());
            e.into_response()
        })
    }

    async fn owner(&self, headers: &http::HeaderMap) -> Result<String, Error> {
        match &self.auth {
            None => Ok(String::new()),
            Some(auth) => auth.authenticate(headers).await.ok_or(Error::Unauthorized),
        }
    }

    async fn dispatch(&self, req: Request<Incoming>) -> Result<Response<Body>, Error> {
        let owner = self.owner(req.headers()).await?;
        self.hooks.admit(&owner).map_err(|retry_after_secs| Error::RateLimited { retry_after_secs })?;
        let method = req.method().clone();
        match route(req.uri().path()) {
            Route::Start => {
                only(&method, Method::POST, "POST")?;
                self.start(req, owner).await
            }
            Route::Message(id) => {
                only(&method, Method::POST, "POST")?;
                self.message(req, owner, id).await
            }
            Route::Recover(id) => {
                only(&method, Method::POST, "POST")?;
                self.recover(req, owner, id).await
            }
            Route::Info(id) => {
                only(&method, Method::GET, "GET")?;
                self.info(owner, id).await
            }
            Route::Ws => {
                only(&method, Method::GET, "GET")?;
                ws::upgrade(self, req, owner)
            }
            Route::NotFound => Err(Error::NotFound),
        }
    }

    fn job(&self, owner: String, advance: Advance, body: serde_json::Value) -> TurnJob {
        TurnJob {
            channel: self.inner.channel.clone(),
            runner: self.inner.runner.clone(),
            owner,
            advance,
            body,
            observer: self.hooks.observer.clone(),
        }
    }

    /// Runs `job` in its own task and answers with its reply as JSON.
    async fn buffered(job: TurnJob) -> Result<Response<Body>, Error> {
        let reply = tokio::spawn(job.run(|_| {})).await.map_err(|_| Error::TurnLost)??;
        Ok(json(StatusCode::OK, &reply))
    }

    /// Claims and runs `job` in its own task and streams its events as SSE. A refusal (or an
    /// invalid body) comes back as an error before the stream opens: a refusal is always a
    /// status, never a half-open stream, even when a concurrent continue wins the race.
    async fn streamed(&self, job: TurnJob) -> Result<Response<Body>, Error> {
        // Unbounded on purpose: `EventSink::emit` is synchronous, so there is no backpressure
        // to apply, and dropping events for a slow-but-connected client would corrupt its
        // stream (a lost delta, or the outcome). What queues is bounded by what the turn
        // itself emits; once the client is gone the receiver is dropped and sends are no-ops.
        let (tx, rx) = mpsc::unbounded_channel::<ChannelEvent>();
        let claimed = job.spawn_claimed(move |ev| {
            let _ = tx.send(ev);
        });
        claimed.await.map_err(|_| Error::TurnLost)??;
        Ok(sse::stream(rx, self.inner.config.keep_alive))
    }

    async fn start(&self, req: Request<Incoming>, owner: String) -> Result<Response<Body>, Error> {
        let (parts, body) = req.into_parts();
        let body = json_body(&parts.headers, body, self.inner.config.max_body_bytes, true).await?.unwrap_or_default();
        let job = self.job(owner, Advance::Start, body);
        if wants_sse(&parts.headers) { self.streamed(job).await } else { Self::buffered(job).await }
    }

    async fn message(
        &self,
        req: Request<Incoming>,
        owner: String,
        session: SessionId,
    ) -> Result<Response<Body>, Error> {
        let (parts, body) = req.into_parts();
        let body = json_body(&parts.headers, body, self.inner.config.max_body_bytes, true).await?.unwrap_or_default();
        let token = presented_token(&parts.headers, Some(&body));
        if wants_sse(&parts.headers) {
            self.streamed(self.job(owner, Advance::Continue { session, token }, body)).await
        } else {
            Self::buffered(self.job(owner, Advance::Continue { session, token }, body)).await
        }
    }

    async fn recover(
        &self,
        req: Request<Incoming>,
        owner: String,
        session: SessionId,
    ) -> Result<Response<Body>, Error> {
        let (parts, body) = req.into_parts();
        let body = json_body(&parts.headers, body, self.inner.config.max_body_bytes, false).await?;
        let token = presented_token(&parts.headers, body.as_ref());
        let channel = self.inner.channel.clone();
        // A recovery may reissue the token: let it complete even if the client goes away.
        let recovered = tokio::spawn(async move { channel.recover(&session, &owner, token.as_deref()).await })
            .await
            .map_err(|_| Error::TurnLost)??
            .ok_or(Error::NothingToRecover)?;
        let mut resp = if wants_sse(&parts.headers) {
            let (tx, rx) = mpsc::unbounded_channel();
            for ev in recovered.events {
                let _ = tx.send(ev);
            }
            drop(tx);
            sse::stream(rx, self.inner.config.keep_alive)
        } else {
            json(StatusCode::OK, &recovered.reply)
        };
        if recovered.truncated {
            resp.headers_mut().insert("x-recording-truncated", HeaderValue::from_static("true"));
        }
        Ok(resp)
    }

    async fn info(&self, owner: String, session: SessionId) -> Result<Response<Body>, Error> {
        let info = self
            .inner
            .channel
            .info(&session, &owner)
            .await?
            .ok_or(channel_core::Error::Refused(channel_core::Refusal::UnknownSession))?;
        Ok(json(StatusCode::OK, &info))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert!(matches!(route("/v1/session"), Route::Start));
        assert!(matches!(route("/v1/ws"), Route::Ws));
        assert!(matches!(route("/v1/session/chs_1"), Route::Info(id) if id.as_str() == "chs_1"));
        assert!(matches!(route("/v1/session/chs_1/message"), Route::Message(_)));
        assert!(matches!(route("/v1/session/chs_1/recover"), Route::Recover(_)));
        assert!(
            matches!(route("/v1/session/..%2F..%2Fweird%3A%3Aid%0A/message"), Route::Message(id) if id.as_str() == "../../weird::id\n")
        );
        for p in ["/", "/v1", "/v1/sessions", "/v1/session/", "/v1/session//message", "/v1/session/x/other", "/v1/ws/x"]
        {
            assert!(matches!(route(p), Route::NotFound), "{p}");
        }
        assert!(ChannelService::handles("/v1/session"));
        assert!(ChannelService::handles("/v1/session/x/y"));
        assert!(ChannelService::handles("/v1/ws"));
        assert!(!ChannelService::handles("/v1/sessions"));
        assert!(!ChannelService::handles("/v1/ws/x"));
        assert!(!ChannelService::handles("/arcp"));
    }
}
