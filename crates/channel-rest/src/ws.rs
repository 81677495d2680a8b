//! `GET /v1/ws`: the held-connection transport. Each client text frame advances a session;
//! every frame the server sends is a JSON [`ChannelEvent`] (plus `requestId` when the client
//! frame had one).
//!
//! A frame is `{"body": <any JSON>, "sessionId"?: string, "continuationToken"?: string,
//! "requestId"?: <any JSON>}`. The connection remembers the session it is bound to and the
//! last token it was sent:
//!
//! | frame | connection | advance |
//! |---|---|---|
//! | no `sessionId`, no token | unbound | start; the connection binds to the new session |
//! | no `sessionId`, no token | bound | continue the bound session with the last token (or the store's current one) |
//! | `sessionId` + token | any | continue that session (also one started over REST); bind to it |
//! | token, no `sessionId` | bound | continue the bound session with that token |
//! | `sessionId`, no token | bound to it | as the second row |
//! | `sessionId`, no token | other | continue it without a token (`missing-token`) |
//! | token, no `sessionId` | unbound | `invalid-frame` |
//!
//! Frames are handled concurrently (each advance in its own task, which also outlives the
//! connection), so two concurrent advances meet the session's claim: one runs, the other gets
//! an `in-flight` `error` frame. Refusals and frame problems (`malformed-json`,
//! `invalid-frame`, binary frames) are `error` frames; the connection stays open.

use std::sync::Arc;

use channel_core::{ChannelEvent, ContinuationToken, Refusal, SessionId};
use futures_util::{SinkExt, StreamExt};
use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::observe::Hooks;
use crate::reply::{Body, full};
use crate::service::Inner;
use crate::turn::{Advance, TurnJob};
use crate::{ChannelService, Error};

fn header_has_token(headers: &HeaderMap, name: http::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
}

/// Answers an upgrade request: `101` and a task that runs the connection once hyper hands the
/// socket over, or `426` when WebSockets are off or the request is not a valid upgrade.
pub(crate) fn upgrade(
    service: &ChannelService,
    req: Request<Incoming>,
    owner: String,
) -> Result<Response<Body>, Error> {
    let inner = service.inner().clone();
    let hooks = service.hooks.clone();
    if !inner.config.websocket {
        return Err(Error::UpgradeRequired("this server does not offer WebSocket connections"));
    }
    let headers = req.headers();
    let key = headers.get(SEC_WEBSOCKET_KEY).map(HeaderValue::as_bytes).filter(|k| !k.is_empty());
    let valid = header_has_token(headers, CONNECTION, "upgrade")
        && header_has_token(headers, UPGRADE, "websocket")
        && headers.get(SEC_WEBSOCKET_VERSION).is_some_and(|v| v.as_bytes() == b"13");
    let Some(key) = key.filter(|_| valid) else {
        return Err(Error::UpgradeRequired("a WebSocket upgrade request (version 13) is required"));
    };
    let accept = HeaderValue::from_str(&derive_accept_key(key))
        .map_err(|_| Error::UpgradeRequired("invalid Sec-WebSocket-Key"))?;
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .max_message_size(Some(inner.config.max_ws_frame_bytes))
                    .max_frame_size(Some(inner.config.max_ws_frame_bytes));
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
                connection(inner, ws, owner, hooks).await;
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    let mut resp = Response::new(full(bytes::Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(SEC_WEBSOCKET_ACCEPT, accept);
    Ok(resp)
}

/// What a connection remembers.
#[derive(Default)]
struct ConnState {
    /// The session the connection is bound to.
    session: Option<SessionId>,
    /// The last token the connection was sent.
    token: Option<ContinuationToken>,
    /// A start is running and the connection is not bound yet.
    starting: bool,
}

/// One connection's shared context.
#[derive(Clone)]
struct Conn {
    inner: Arc<Inner>,
    owner: String,
    state: Arc<Mutex<ConnState>>,
    out: mpsc::UnboundedSender<Message>,
    /// The service's observer and limiter.
    hooks: Hooks,
}

async fn connection<S>(inner: Arc<Inner>, ws: WebSocketStream<S>, owner: String, hooks: Hooks)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    // Unbounded for the same reason as SSE: a turn's sink is synchronous and must never block
    // or fail; what queues is bounded by what the turns emit, and sends become no-ops once the
    // writer is gone.
    let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
    let (done_tx, mut done_rx) = oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                biased;
                msg = out_rx.recv() => {
                    let Some(msg) = msg else { break };
                    let close = matches!(msg, Message::Close(_));
                    if sink.send(msg).await.is_err() || close {
                        break;
                    }
                }
                _ = &mut done_rx => break,
            }
        }
    });
    let mut closing = inner.closing.subscribe();
    let conn = Conn { inner, owner, state: Arc::default(), out, hooks };
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(text))) => conn.frame(text.as_str()),
                Some(Ok(Message::Binary(_))) => {
                    conn.send_problem("invalid-frame", "binary frames are not supported; send JSON text frames", None);
                }
                // Pings are answered and a close is acknowledged by tungstenite; keep reading
                // until it reports the end of the connection.
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "WebSocket connection ended");
                    break;
                }
                None => break,
            },
            () = crate::serve::until_true(&mut closing) => {
                let frame = CloseFrame { code: CloseCode::Away, reason: Utf8Bytes::from_static("server shutting down") };
                let _ = conn.out.send(Message::Close(Some(frame)));
                break;
            }
        }
    }
    let _ = done_tx.send(());
    let _ = writer.await;
}

/// The text of a server frame: `value` with `requestId` added when there is one.
fn frame_text(mut value: Value, request_id: Option<&Value>) -> Message {
    if let (Some(rid), Some(obj)) = (request_id, value.as_object_mut()) {
        obj.insert("requestId".into(), rid.clone());
    }
    Message::text(value.to_string())
}

fn event_value(event: &ChannelEvent) -> Value {
    serde_json::to_value(event).unwrap_or(Value::Null)
}

/// What a frame asks for, decided against the connection's state.
enum Plan {
    Start,
    Continue { session: SessionId, token: Option<String>, lookup: bool },
    Refuse(Refusal),
    Invalid(&'static str),
}

fn string_field(map: &mut Map<String, Value>, name: &str) -> Result<Option<String>, ()> {
    match map.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(()),
    }
}

impl Conn {
    fn send_problem(&self, reason: &str, message: &str, request_id: Option<&Value>) {
        self.hooks.observer.error_answered(reason);
        let value = serde_json::json!({ "type": "error", "message": message, "reason": reason });
        let _ = self.out.send(frame_text(value, request_id));
    }

    fn send_event(&self, event: &ChannelEvent, request_id: Option<&Value>) {
        let _ = self.out.send(frame_text(event_value(event), request_id));
    }

    fn frame(&self, text: &str) {
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return self.send_problem("malformed-json", &format!("the frame is not valid JSON: {e}"), None),
        };
        let Value::Object(mut map) = value else {
            return self.send_problem("invalid-frame", "a frame must be a JSON object", None);
        };
        let request_id = map.remove("requestId");
        let rid = request_id.as_ref();
        let Ok(session) = string_field(&mut map, "sessionId") else {
            return self.send_problem("invalid-frame", "sessionId must be a string", rid);
        };
        let Ok(token) = string_field(&mut map, "continuationToken") else {
            return self.send_problem("invalid-frame", "continuationToken must be a string", rid);
        };
        let Some(body) = map.remove("body") else {
            return self.send_problem("invalid-frame", "a frame needs a body", rid);
        };
        if let Err(secs) = self.hooks.admit(&self.owner) {
            self.hooks.observer.error_answered("rate-limited");
            let value = serde_json::json!({
                "type": "error",
                "message": format!("rate limit exceeded; retry after {secs} s"),
                "reason": "rate-limited",
                "retryAfter": secs,
            });
            let _ = self.out.send(frame_text(value, rid));
            return;
        }
        let plan = self.plan(session, token);
        let advance = match plan {
            Plan::Invalid(message) => return self.send_problem("invalid-frame", message, rid),
            Plan::Refuse(r) => {
                self.hooks.observer.error_answered(r.reason());
                return self.send_event(&ChannelEvent::refused(r), rid);
            }
            Plan::Start => (Advance::Start, false),
            Plan::Continue { session, token, lookup } => (Advance::Continue { session, token }, lookup),
        };
        let conn = self.clone();
        tokio::spawn(conn.advance(advance, body, request_id));
    }

    fn plan(&self, session: Option<String>, token: Option<String>) -> Plan {
        let mut st = self.state.lock();
        let bound_token = |st: &ConnState| st.token.as_ref().map(|t| t.expose().to_owned());
        match (session, token, st.session.clone()) {
            (None, None, None) if st.starting => Plan::Refuse(Refusal::InFlight),
            (None, None, None) => {
                st.starting = true;
                Plan::Start
            }
            (Some(s), Some(t), _) => Plan::Continue { session: SessionId::presented(s), token: Some(t), lookup: false },
            (None, Some(t), Some(b)) => Plan::Continue { session: b, token: Some(t), lookup: false },
            (None, Some(_), None) => {
                Plan::Invalid("a continuationToken needs a sessionId: this connection has no session")
            }
            (None, None, Some(b)) => {
                let token = bound_token(&st);
                Plan::Continue { session: b, lookup: token.is_none(), token }
            }
            (Some(s), None, Some(b)) if s == b.as_str() => {
                let token = bound_token(&st);
                Plan::Continue { session: b, lookup: token.is_none(), token }
            }
            (Some(s), None, _) => Plan::Continue { session: SessionId::presented(s), token: None, lookup: false },
        }
    }

    async fn advance(self, (advance, lookup): (Advance, bool), body: Value, request_id: Option<Value>) {
        let start = matches!(advance, Advance::Start);
        let advance = match advance {
            Advance::Continue { session, token: None } if lookup => {
                let token = self.inner.channel.current_token(&session).await.ok().flatten();
                Advance::Continue { session, token: token.map(|t| t.expose().to_owned()) }
            }
            other => other,
        };
        // A turn that commits nothing (contended, aborted) keeps the presented token valid and
        // its outcome carries none: the connection keeps presenting it (durable token stores
        // keep only digests, so the store cannot hand it back).
        let presented = match &advance {
            Advance::Continue { token: Some(t), .. } => ContinuationToken::presented(Some(t.as_str())),
            _ => None,
        };
        let job = TurnJob {
            channel: self.inner.channel.clone(),
            runner: self.inner.runner.clone(),
            owner: self.owner.clone(),
            advance,
            body,
            observer: self.hooks.observer.clone(),
        };
        let state = self.state.clone();
        let out = self.out.clone();
        let rid = request_id.clone();
        // The connection's state changes before the outcome frame is queued, so a frame the
        // client sends on seeing it already finds the new token.
        let result = job
            .run(move |ev| {
                match &ev {
                    ChannelEvent::Outcome(reply) => {
                        let mut st = state.lock();
                        if st.session.as_ref() != Some(&reply.session_id) {
                            st.token = None;
                        }
                        st.session = Some(reply.session_id.clone());
                        st.token = reply.continuation_token.clone().or_else(|| presented.clone()).or(st.token.take());
                        if start {
                            st.starting = false;
                        }
                    }
                    ChannelEvent::Error { .. } if start => state.lock().starting = false,
                    _ => {}
                }
                let _ = out.send(frame_text(event_value(&ev), rid.as_ref()));
            })
            .await;
        if let Err(e) = result {
            self.hooks.observer.error_answered(e.code());
        }
        if start {
            self.state.lock().starting = false;
        }
    }
}
