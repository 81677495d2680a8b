//! The WebSocket driver: `tokio-tungstenite` clients of `/v1/ws`, one connection per client
//! (so held-connection cases can hold one), every wait bounded by [`FRAME_TIMEOUT`].

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::client::HttpClient;
use super::driver::{Answer, ChannelDriver, answer_from_events, parse_event};
use super::http::HttpDriver;
use crate::Failure;

/// How long a case waits for one frame.
pub(crate) const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// How a WebSocket upgrade went.
pub(crate) enum Upgrade {
    /// Connected.
    Open(Box<WsConn>),
    /// The server answered the upgrade with this HTTP status.
    Refused(u16),
}

/// One client connection to `/v1/ws`.
pub(crate) struct WsConn {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl WsConn {
    /// Opens a connection (with the bearer key when `auth` and the client has one).
    pub(crate) async fn upgrade(client: &HttpClient, auth: bool) -> Result<Upgrade, Failure> {
        let url = format!("ws://{}{}/v1/ws", client.authority(), client.prefix());
        let mut request = url.as_str().into_client_request().map_err(|e| format!("bad WebSocket URL {url}: {e}"))?;
        if let (true, Some(key)) = (auth, client.bearer()) {
            let value = format!("Bearer {key}").parse().map_err(|e| format!("bad bearer key: {e}"))?;
            request.headers_mut().insert(http::header::AUTHORIZATION, value);
        }
        match tokio::time::timeout(FRAME_TIMEOUT, tokio_tungstenite::connect_async(request)).await {
            Err(_) => Err(format!("connecting to {url} timed out")),
            Ok(Ok((ws, _))) => Ok(Upgrade::Open(Box::new(WsConn { ws, next_id: 0 }))),
            Ok(Err(WsError::Http(resp))) => Ok(Upgrade::Refused(resp.status().as_u16())),
            Ok(Err(e)) => Err(format!("cannot connect to {url}: {e}")),
        }
    }

    /// Opens a connection with the bearer key; an upgrade refusal is a failure.
    pub(crate) async fn connect(client: &HttpClient) -> Result<WsConn, Failure> {
        match WsConn::upgrade(client, true).await? {
            Upgrade::Open(c) => Ok(*c),
            Upgrade::Refused(s) => Err(format!("the WebSocket upgrade was refused with HTTP {s}")),
        }
    }

    /// A fresh request id.
    pub(crate) fn request_id(&mut self) -> String {
        self.next_id += 1;
        format!("conf-{}", self.next_id)
    }

    /// Sends `{body, sessionId?, continuationToken?, requestId}`; returns the request id.
    pub(crate) async fn send_turn(
        &mut self,
        body: Value,
        session: Option<&str>,
        token: Option<&str>,
    ) -> Result<String, Failure> {
        let id = self.request_id();
        let mut frame = json!({ "body": body, "requestId": id });
        if let Some(s) = session {
            frame["sessionId"] = json!(s);
        }
        if let Some(t) = token {
            frame["continuationToken"] = json!(t);
        }
        self.send(&frame).await?;
        Ok(id)
    }

    /// Sends one text frame.
    pub(crate) async fn send(&mut self, frame: &Value) -> Result<(), Failure> {
        tokio::time::timeout(FRAME_TIMEOUT, self.ws.send(Message::text(frame.to_string())))
            .await
            .map_err(|_| "sending a frame timed out".to_owned())?
            .map_err(|e| format!("sending a frame failed: {e}"))
    }

    /// The next text frame, as JSON.
    pub(crate) async fn recv(&mut self) -> Result<Value, Failure> {
        loop {
            let msg = tokio::time::timeout(FRAME_TIMEOUT, self.ws.next())
                .await
                .map_err(|_| format!("no frame within {} s", FRAME_TIMEOUT.as_secs()))?;
            match msg {
                None => return Err("the server closed the connection".into()),
                Some(Err(e)) => return Err(format!("the connection failed: {e}")),
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(t.as_str())
                        .map_err(|e| format!("a frame that is not JSON ({e}): {t}"));
                }
                Some(Ok(Message::Close(c))) => return Err(format!("the server closed the connection: {c:?}")),
                Some(Ok(Message::Binary(_))) => return Err("the server sent a binary frame".into()),
                Some(Ok(_)) => {}
            }
        }
    }

    /// Reads frames until every request in `ids` has ended (`outcome` or `error`); answers
    /// per request id. Every frame must carry one of the ids.
    pub(crate) async fn collect(&mut self, ids: &[String]) -> Result<BTreeMap<String, Answer>, Failure> {
        let mut pending: BTreeMap<&str, (Vec<channel_core::ChannelEvent>, Vec<Option<String>>)> =
            ids.iter().map(|id| (id.as_str(), (Vec::new(), Vec::new()))).collect();
        let mut done = BTreeMap::new();
        while !pending.is_empty() {
            let v = self.recv().await?;
            let id = v["requestId"].as_str().ok_or_else(|| format!("a frame without our requestId: {v}"))?;
            let Some((events, reasons)) = pending.get_mut(id) else {
                return Err(format!("a frame for request {id:?}, which is not pending: {v}"));
            };
            let (event, reason) = parse_event(&v)?;
            let terminal =
                matches!(event, channel_core::ChannelEvent::Outcome(_) | channel_core::ChannelEvent::Error { .. });
            events.push(event);
            reasons.push(reason);
            if terminal {
                let id = id.to_owned();
                if let Some((events, reasons)) = pending.remove(id.as_str()) {
                    done.insert(id, answer_from_events(events, reasons)?);
                }
            }
        }
        Ok(done)
    }

    /// Sends one turn frame and reads its answer.
    pub(crate) async fn turn(
        &mut self,
        body: Value,
        session: Option<&str>,
        token: Option<&str>,
    ) -> Result<Answer, Failure> {
        let id = self.send_turn(body, session, token).await?;
        let mut answers = self.collect(std::slice::from_ref(&id)).await?;
        answers.remove(&id).ok_or_else(|| "the request got no answer".to_owned())
    }

    /// Closes the connection politely (bounded; errors ignored).
    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.ws.close(None)).await;
    }
}

/// The WebSocket driver: each call is a fresh connection; recovery and session info have no
/// WebSocket frame and go over HTTP to the same base URL.
pub(crate) struct WsDriver {
    pub(crate) http: HttpDriver,
}

impl WsDriver {
    /// A driver for `base_url` (`http://` or `ws://`).
    pub(crate) fn new(base_url: &str, bearer: Option<String>) -> Result<WsDriver, Failure> {
        Ok(WsDriver { http: HttpDriver::new(base_url, bearer, false)? })
    }

    async fn one(&self, body: Value, session: Option<&str>, token: Option<&str>) -> Result<Answer, Failure> {
        let mut conn = WsConn::connect(&self.http.client).await?;
        let answer = conn.turn(body, session, token).await;
        conn.close().await;
        answer
    }
}

#[async_trait]
impl ChannelDriver for WsDriver {
    async fn start(&self, body: Value) -> Result<Answer, Failure> {
        self.one(body, None, None).await
    }

    async fn advance(&self, session: &str, token: Option<&str>, body: Value) -> Result<Answer, Failure> {
        self.one(body, Some(session), token).await
    }

    async fn recover(&self, session: &str, token: Option<&str>) -> Result<Answer, Failure> {
        self.http.recover(session, token).await
    }

    async fn info(&self, session: &str) -> Result<Option<Value>, Failure> {
        self.http.info(session).await
    }
}
