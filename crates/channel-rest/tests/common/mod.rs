//! Shared test fixtures: a turn runner driven by the body, a server on 127.0.0.1:0, and small
//! HTTP, SSE and WebSocket clients.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arcp_core::{OsEntropy, SystemClock};
use async_trait::async_trait;
use bytes::Bytes;
use channel_core::{
    Channel, ChannelConfig, ChannelEvent, EventSink, MemoryTokenStore, RunnerError, Turn, TurnOutcome, TurnRunner,
};
use channel_rest::{Authenticator, ChannelService, RestConfig};
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A runner driven by the body: `body.input.force` is `ok` (default), `park`, `contend`,
/// `abort` or `fail`; `body.input.delay_ms` delays the outcome. It emits one `delta` and one
/// `record` first; a finished turn's output is `body.input`. A body that is not an object is
/// an invalid body.
#[derive(Default)]
pub struct Fixture {
    pub runs: AtomicUsize,
}

#[async_trait]
impl TurnRunner for Fixture {
    async fn run(&self, turn: &Turn, body: Value, emit: &mut dyn EventSink) -> Result<TurnOutcome, RunnerError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let input = body.get("input").cloned().unwrap_or(Value::Null);
        emit.emit(ChannelEvent::Delta { text: "thinking".into() });
        emit.emit(ChannelEvent::Record { record: json!({"first": turn.first}) });
        if let Some(ms) = input.get("delay_ms").and_then(Value::as_u64) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        match input.get("force").and_then(Value::as_str).unwrap_or("ok") {
            "park" => Ok(TurnOutcome::Parked { wait: json!("input") }),
            "contend" => Ok(TurnOutcome::Contended { current: json!("elsewhere") }),
            "abort" => Ok(TurnOutcome::Aborted),
            "fail" => Err(RunnerError::new("the fixture failed on purpose")),
            _ => Ok(TurnOutcome::Finished { output: Some(input) }),
        }
    }

    fn check(&self, body: &Value) -> Result<(), String> {
        if body.is_object() { Ok(()) } else { Err("the body must be a JSON object".into()) }
    }
}

/// `Authorization: Bearer <name>` authenticates as `<name>` for the names `alice` and `bob`.
pub struct Bearer;

#[async_trait]
impl Authenticator for Bearer {
    async fn authenticate(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers.get("authorization")?.to_str().ok()?;
        let name = value.strip_prefix("Bearer ")?;
        matches!(name, "alice" | "bob").then(|| name.to_owned())
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub runner: Arc<Fixture>,
    pub channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub async fn start(config: RestConfig) -> Server {
        Self::start_with(config, false).await
    }

    pub async fn start_with(config: RestConfig, auth: bool) -> Server {
        Self::start_full(config, auth, ChannelConfig::default()).await
    }

    pub async fn start_full(config: RestConfig, auth: bool, channel_config: ChannelConfig) -> Server {
        let channel = Channel::new(
            Arc::new(MemoryTokenStore::default()),
            Arc::new(SystemClock),
            Arc::new(OsEntropy),
            channel_config,
        );
        let runner = Arc::new(Fixture::default());
        let mut service = ChannelService::new(channel.clone(), runner.clone(), config);
        if auth {
            service = service.with_authenticator(Arc::new(Bearer));
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(channel_rest::serve(listener, service, async move {
            let _ = rx.await;
        }));
        Server { addr, runner, channel, shutdown: Some(tx), task: Some(task) }
    }

    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub fn runs(&self) -> usize {
        self.runner.runs.load(Ordering::SeqCst)
    }
}

/// A response read to its end.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    pub fn content_type(&self) -> &str {
        self.headers.get("content-type").map(|v| v.to_str().unwrap()).unwrap_or("")
    }

    /// Asserts an error reply: `status`, JSON content type, body exactly `{error, reason}`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, reason: &str) {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert!(self.content_type().starts_with("application/json"), "{self:?}");
        let body = self.json();
        let obj = body.as_object().unwrap();
        assert_eq!(obj.len(), 2, "{body}");
        assert_eq!(obj["reason"], reason, "{body}");
        assert!(obj["error"].as_str().is_some_and(|s| !s.is_empty()), "{body}");
    }

    pub fn token(&self) -> String {
        self.json()["continuationToken"].as_str().unwrap().to_owned()
    }

    pub fn session(&self) -> String {
        self.json()["sessionId"].as_str().unwrap().to_owned()
    }
}

/// Sends one request on a fresh connection and returns the response head and body stream.
pub async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Bytes>,
) -> hyper::Response<Incoming> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = Request::builder().method(method).uri(path).header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body.unwrap_or_default())).unwrap();
    sender.send_request(req).await.unwrap()
}

/// Sends one request and reads the whole response.
pub async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Bytes>,
) -> Resp {
    let resp = send(addr, method, path, headers, body).await;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Resp { status: parts.status, headers: parts.headers, text: String::from_utf8(bytes.to_vec()).unwrap() }
}

/// `POST` `body` as `application/json` with extra `headers`.
pub async fn post(addr: SocketAddr, path: &str, body: &Value, headers: &[(&str, &str)]) -> Resp {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    request(addr, Method::POST, path, &h, Some(Bytes::from(body.to_string()))).await
}

pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    request(addr, Method::GET, path, headers, None).await
}

/// Starts a session (forcing `ok`); returns `(sessionId, token)`.
pub async fn start_session(addr: SocketAddr, headers: &[(&str, &str)]) -> (String, String) {
    let r = post(addr, "/v1/session", &json!({"input": {"hello": 1}}), headers).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    (r.session(), r.token())
}

pub fn message_path(session: &str) -> String {
    format!("/v1/session/{session}/message")
}

/// One SSE block: its event type, its data, and whether it was a comment.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Comment,
    Event { event: String, data: Value },
}

/// Parses SSE text into blocks (comment blocks included).
pub fn parse_sse(text: &str) -> Vec<Block> {
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            if block.lines().all(|l| l.starts_with(':')) {
                return Block::Comment;
            }
            let mut event = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            Block::Event { event, data: serde_json::from_str(&data).unwrap() }
        })
        .collect()
}

/// The events (comments left out) of SSE text.
pub fn sse_events(text: &str) -> Vec<(String, Value)> {
    parse_sse(text)
        .into_iter()
        .filter_map(|b| match b {
            Block::Event { event, data } => Some((event, data)),
            Block::Comment => None,
        })
        .collect()
}

pub const SSE: (&str, &str) = ("accept", "text/event-stream");

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens `/v1/ws` with extra `headers`; `Err` carries the refusing status.
pub async fn ws_connect(addr: SocketAddr, headers: &[(&str, &str)]) -> Result<Ws, StatusCode> {
    let mut req = format!("ws://{addr}/v1/ws").into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status()),
        Err(e) => panic!("unexpected WebSocket error: {e}"),
    }
}

pub async fn ws_send(ws: &mut Ws, frame: &Value) {
    ws.send(Message::text(frame.to_string())).await.unwrap();
}

/// The next JSON text frame (5 s at most).
pub async fn ws_recv(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("no frame within 5 s")
            .expect("connection ended")
            .unwrap();
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Frames up to and including the first `outcome` or `error`.
pub async fn ws_turn(ws: &mut Ws) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let f = ws_recv(ws).await;
        let end = matches!(f["type"].as_str(), Some("outcome" | "error"));
        frames.push(f);
        if end {
            return frames;
        }
    }
}

/// Waits (2 s at most) until the session's `inFlight` is `want`.
pub async fn wait_in_flight(addr: SocketAddr, session: &str, want: bool) {
    let path = format!("/v1/session/{session}");
    for _ in 0..200 {
        let r = get(addr, &path, &[]).await;
        if r.json()["inFlight"] == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("session {session} never became inFlight={want}");
}
