//! The one listener of `arcp serve`: HTTP/1.1 with upgrades, routing `GET /arcp` (WebSocket)
//! to the ARCP runtime, `/v1/session…` and `GET /v1/ws` to the channel (`channel-rest`), and
//! `GET /healthz`, `GET /readyz` to health answers, `GET /metrics` to the Prometheus metrics
//! (OpenMetrics text, `metrics.rs`), `/plugins/<name>/…` to the routes plugins
//! registered (a JSON `404` for an unknown one). Anything else is a JSON `404`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arcp_server::transport::ws::{self, WsTransport};
use arcp_server::{BearerVerifier, Runtime};
use async_trait::async_trait;
use bytes::Bytes;
use channel_rest::ChannelService;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use runtime::plugins::Plugins;
use runtime::plugins::routes::{MAX_ROUTE_BODY, RouteRequest};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The path ARCP is served at over WebSocket.
pub(crate) const ARCP_PATH: &str = "/arcp";

/// How long a stopping server waits for in-flight HTTP requests (channel turns) to finish.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to pause after a failed `accept` (e.g. out of file descriptors) before retrying.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Everything the listener routes to.
pub(crate) struct Front {
    /// The ARCP runtime (`/arcp`).
    pub(crate) runtime: Runtime,
    /// The channel (`/v1/…`).
    pub(crate) channel: ChannelService,
    /// The ARCP frame cap.
    pub(crate) max_frame_bytes: usize,
    /// The loaded plugins (`/plugins/<name>/…`).
    pub(crate) plugins: Arc<Plugins>,
    /// What `/readyz` checks: the store answers.
    pub(crate) health: crate::store_choice::Health,
    /// What `/metrics` shows.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// The store's process lock, held while serving.
    pub(crate) _lock: Option<std::fs::File>,
}

/// The channel's authentication: `Authorization: Bearer <key>`, checked by the same verifier
/// as ARCP's `session.hello`.
pub(crate) struct BearerAuth<V>(pub(crate) V);

#[async_trait]
impl<V: BearerVerifier> channel_rest::Authenticator for BearerAuth<V> {
    async fn authenticate(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, key) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
            return None;
        }
        self.0.verify(key.trim()).await.ok().map(|identity| identity.principal)
    }
}

/// Serves `front` on `listener` until `shutdown` resolves; then stops accepting, closes the
/// channel's WebSocket connections, asks every HTTP connection to finish its request in flight
/// and gives them up to [`DRAIN_DEADLINE`]. ARCP sessions are closed by the caller's
/// `shutdown` future (`Runtime::shutdown` says `session.bye` to each).
///
/// (hyper-util's `GracefulShutdown` cannot watch HTTP/1 connections with upgrades enabled,
/// so the same protocol is done here with a watch channel and a `JoinSet`.)
pub(crate) async fn serve(
    listener: TcpListener,
    front: Arc<Front>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let service_front = front.clone();
        let service = service_fn(move |req| {
            let front = service_front.clone();
            async move { Ok::<_, Infallible>(route(&front, req, peer).await) }
        });
        let stop = stop_rx.clone();
        let builder = builder.clone();
        let tls = tls.clone();
        conns.spawn(async move {
            // The TLS handshake runs on the connection's own task, never in the accept loop.
            match tls {
                None => serve_connection(&builder, TokioIo::new(stream), service, stop, peer).await,
                Some(acceptor) => match tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => serve_connection(&builder, TokioIo::new(stream), service, stop, peer).await,
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
        });
    }
    drop(listener);
    front.channel.close_websockets();
    stop_tx.send_replace(true);
    let drained = tokio::time::timeout(DRAIN_DEADLINE, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("some HTTP requests were still running at the shutdown deadline");
    }
}

/// Serves one HTTP/1.1 connection (upgrades enabled) until it ends or, once `stop` turns
/// true, gracefully.
async fn serve_connection<I, S>(
    builder: &http1::Builder,
    io: TokioIo<I>,
    service: S,
    mut stop: watch::Receiver<bool>,
    peer: SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = channel_rest::Body> + Send,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = builder.serve_connection(io, service).with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let res = tokio::select! {
        res = conn.as_mut() => res,
        () = async { let _ = stop.wait_for(|stopping| *stopping).await; } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = res {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
}

async fn route(front: &Front, req: Request<Incoming>, peer: SocketAddr) -> Response<channel_rest::Body> {
    let path = req.uri().path();
    if path == ARCP_PATH {
        return arcp_upgrade(front, req, peer);
    }
    if ChannelService::handles(path) {
        return front.channel.handle(req).await;
    }
    if front.plugins.handles(path) {
        return plugin_route(front, req).await;
    }
    match (req.method(), path) {
        (&Method::GET | &Method::HEAD, "/healthz") => json(StatusCode::OK, r#"{"status":"ok"}"#),
        (&Method::GET | &Method::HEAD, "/metrics") => match front.metrics.encode() {
            Ok(text) => {
                let mut res =
                    Response::new(Full::new(Bytes::from(text)).map_err(|never| match never {}).boxed_unsync());
                res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(crate::metrics::CONTENT_TYPE));
                res
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not encode the metrics");
                json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    r#"{"error":"the metrics could not be encoded","reason":"internal"}"#,
                )
            }
        },
        (&Method::GET | &Method::HEAD, "/readyz") => match front.health.check().await {
            Ok(()) => json(StatusCode::OK, r#"{"status":"ok"}"#),
            Err(why) => {
                tracing::warn!(error = %why, "not ready: the store does not answer");
                let body = serde_json::json!({ "status": "unavailable", "reason": "store-unavailable", "error": why });
                json_owned(StatusCode::SERVICE_UNAVAILABLE, body.to_string())
            }
        },
        _ => json(StatusCode::NOT_FOUND, r#"{"error":"not found","reason":"not-found"}"#),
    }
}

/// `GET /arcp`: the WebSocket upgrade, then the ARCP session on its own task.
fn arcp_upgrade(front: &Front, mut req: Request<Incoming>, peer: SocketAddr) -> Response<channel_rest::Body> {
    let headers = req.headers();
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    let is_upgrade = req.method() == Method::GET
        && has_token(header::CONNECTION, "upgrade")
        && has_token(header::UPGRADE, "websocket")
        && headers.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    let key = headers.get(header::SEC_WEBSOCKET_KEY).map(|k| derive_accept_key(k.as_bytes()));
    let (true, Some(accept)) = (is_upgrade, key) else {
        let mut res = json(
            StatusCode::UPGRADE_REQUIRED,
            r#"{"error":"ARCP is served over WebSocket at this path","reason":"upgrade-required"}"#,
        );
        res.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return res;
    };
    let runtime = front.runtime.clone();
    let max = front.max_frame_bytes;
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(ws::config(max))).await;
                tracing::debug!(%peer, "ARCP connection opened");
                runtime.serve(WsTransport::new(ws)).await;
                tracing::debug!(%peer, "ARCP connection closed");
            }
            Err(e) => tracing::info!(%peer, error = %e, "WebSocket upgrade failed"),
        }
    });
    let mut res = Response::new(empty());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}

/// `/plugins/<name>/…`: the body read within its cap, then the plugin's route.
async fn plugin_route(front: &Front, req: Request<Incoming>) -> Response<channel_rest::Body> {
    let (parts, body) = req.into_parts();
    let Ok(body) = http_body_util::Limited::new(body, MAX_ROUTE_BODY).collect().await.map(|b| b.to_bytes()) else {
        return json(StatusCode::PAYLOAD_TOO_LARGE, r#"{"error":"request body too large","reason":"too-large"}"#);
    };
    let request = RouteRequest {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    let answer = front.plugins.dispatch(request).await;
    let body = if parts.method == Method::HEAD { Bytes::new() } else { answer.body };
    let mut res = Response::new(Full::new(body).map_err(|never| match never {}).boxed_unsync());
    *res.status_mut() = answer.status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(answer.content_type));
    res
}

fn empty() -> channel_rest::Body {
    Full::new(Bytes::new()).map_err(|never| match never {}).boxed_unsync()
}

fn json(status: StatusCode, body: &'static str) -> Response<channel_rest::Body> {
    let mut res =
        Response::new(Full::new(Bytes::from_static(body.as_bytes())).map_err(|never| match never {}).boxed_unsync());
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// A JSON response with an owned body.
fn json_owned(status: StatusCode, body: String) -> Response<channel_rest::Body> {
    let mut res = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed_unsync());
    *res.status_mut() = status;
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}
