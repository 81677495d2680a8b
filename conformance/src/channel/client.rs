//! The HTTP client of the channel drivers: one hyper HTTP/1 connection per request, the
//! response read whole (an SSE stream decoded with `sse-stream` to its end), every wait
//! bounded by [`REQUEST_TIMEOUT`].

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, Request, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use crate::Failure;

/// How long one request may take, SSE stream included.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest response body read.
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// How long a request sent with `Expect: 100-continue` holds its body back for an early
/// answer (a server refusing from the headers alone) before sending it anyway.
const CONTINUE_WAIT: Duration = Duration::from_millis(500);

/// Percent-encodes every byte outside RFC 3986 `unreserved` (so any id is one path segment).
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The HTTP status a conforming server answers with each reason.
pub(crate) fn status_of(reason: &str) -> Option<u16> {
    Some(match reason {
        "unknown-session" | "nothing-to-recover" => 404,
        "missing-token" | "invalid-body" | "malformed-json" => 400,
        "stale-token" | "in-flight" => 409,
        "unauthorized" => 401,
        "body-too-large" => 413,
        "unsupported-media-type" => 415,
        "turn-failed" => 500,
        _ => return None,
    })
}

/// Where a server is: `host:port` and the path prefix of its base URL.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    authority: String,
    prefix: String,
    bearer: Option<String>,
}

/// One request to send.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
    auth: bool,
    expect_continue: bool,
}

impl Req {
    /// `POST path` with a JSON body.
    pub(crate) fn post_json(path: impl Into<String>, body: &Value) -> Req {
        Req::post_raw(path, Some("application/json"), Bytes::from(body.to_string()))
    }

    /// `POST path` with these bytes and content type.
    pub(crate) fn post_raw(path: impl Into<String>, content_type: Option<&str>, body: Bytes) -> Req {
        let mut headers = vec![("accept", "application/json".to_owned())];
        if let Some(ct) = content_type {
            headers.push(("content-type", ct.to_owned()));
        }
        Req { method: Method::POST, path: path.into(), headers, body, auth: true, expect_continue: false }
    }

    /// `GET path`.
    pub(crate) fn get(path: impl Into<String>) -> Req {
        Req {
            method: Method::GET,
            path: path.into(),
            headers: vec![("accept", "application/json".to_owned())],
            body: Bytes::new(),
            auth: true,
            expect_continue: false,
        }
    }

    /// Sets a header (replacing one of the same name).
    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Req {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.into()));
        self
    }

    /// Asks for an SSE stream.
    pub(crate) fn sse(self) -> Req {
        self.header("accept", "text/event-stream")
    }

    /// Sends `Expect: 100-continue` and an explicit `Content-Length`, and holds the body back
    /// for [`CONTINUE_WAIT`] (unless the answer comes first): a server that refuses from the
    /// headers alone (an oversized `Content-Length`) answers before any body byte is sent,
    /// so closing the connection cannot reset the answer away.
    pub(crate) fn expect_continue(mut self) -> Req {
        self.expect_continue = true;
        self
    }

    /// Leaves the bearer key out.
    pub(crate) fn without_auth(mut self) -> Req {
        self.auth = false;
        self
    }
}

/// A response: its status, content type and either its bytes or its SSE events.
#[derive(Debug)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) body: RespBody,
}

/// A response body.
#[derive(Debug)]
pub(crate) enum RespBody {
    /// A buffered body.
    Bytes(Bytes),
    /// An SSE stream read to its end: `(event name, data)` per event block.
    Events(Vec<(Option<String>, String)>),
}

impl Resp {
    /// The body as JSON.
    pub(crate) fn json(&self) -> Result<Value, Failure> {
        match &self.body {
            RespBody::Bytes(b) => serde_json::from_slice(b).map_err(|e| {
                format!(
                    "HTTP {} ({}) body is not JSON ({e}): {}",
                    self.status,
                    self.content_type,
                    String::from_utf8_lossy(&b[..b.len().min(200)])
                )
            }),
            RespBody::Events(_) => Err(format!("HTTP {} is an SSE stream, expected a JSON body", self.status)),
        }
    }

    /// Whether the response is an SSE stream.
    pub(crate) fn is_stream(&self) -> bool {
        matches!(self.body, RespBody::Events(_)) || self.content_type.starts_with("text/event-stream")
    }

    /// Checks an error body `{"error": "<msg>", "reason": "<reason>"}` whose status matches
    /// its reason; returns `(reason, message)`.
    pub(crate) fn error_body(&self) -> Result<(String, String), Failure> {
        let v = self.json()?;
        let reason =
            v["reason"].as_str().ok_or_else(|| format!("HTTP {} error body without a reason: {v}", self.status))?;
        let message =
            v["error"].as_str().ok_or_else(|| format!("HTTP {} error body without an error: {v}", self.status))?;
        if let Some(expected) = status_of(reason).filter(|s| *s != self.status) {
            return Err(format!("reason `{reason}` must be HTTP {expected}, got HTTP {}", self.status));
        }
        Ok((reason.to_owned(), message.to_owned()))
    }
}

impl HttpClient {
    /// A client for the server at `base_url` (`http://host:port[/prefix]`; `ws://` is read as
    /// `http://`). TLS is not supported.
    pub(crate) fn new(base_url: &str, bearer: Option<String>) -> Result<HttpClient, Failure> {
        let uri: http::Uri = base_url.parse().map_err(|e| format!("bad base URL {base_url:?}: {e}"))?;
        match uri.scheme_str() {
            Some("http" | "ws") => {}
            Some(other) => return Err(format!("the conformance client speaks plain http only, not {other}://")),
            None => return Err(format!("base URL {base_url:?} has no scheme")),
        }
        let host = uri.host().ok_or_else(|| format!("base URL {base_url:?} has no host"))?;
        let authority = format!("{host}:{}", uri.port_u16().unwrap_or(80));
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Ok(HttpClient { authority, prefix, bearer })
    }

    /// `host:port`.
    pub(crate) fn authority(&self) -> &str {
        &self.authority
    }

    /// The base URL's path prefix (no trailing `/`).
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The bearer key, if any.
    pub(crate) fn bearer(&self) -> Option<&str> {
        self.bearer.as_deref()
    }

    /// Sends `req` on a fresh connection and reads the whole response (an SSE stream to its
    /// end), within [`REQUEST_TIMEOUT`].
    pub(crate) async fn send(&self, req: Req) -> Result<Resp, Failure> {
        let what = format!("{} {}", req.method, req.path);
        tokio::time::timeout(REQUEST_TIMEOUT, self.send_inner(req))
            .await
            .map_err(|_| format!("{what}: no complete response within {} s", REQUEST_TIMEOUT.as_secs()))?
            .map_err(|e| format!("{what}: {e}"))
    }

    async fn send_inner(&self, req: Req) -> Result<Resp, Failure> {
        let tcp = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.authority))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, BoxBody<Bytes, Infallible>>(TokioIo::new(tcp))
                .await
                .map_err(|e| format!("HTTP handshake failed: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut builder = Request::builder()
            .method(req.method)
            .uri(format!("{}{}", self.prefix, req.path))
            .header(header::HOST, &self.authority);
        for (name, value) in &req.headers {
            builder = builder.header(*name, value);
        }
        if let (true, Some(key)) = (req.auth, &self.bearer) {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let body = if req.expect_continue {
            builder = builder.header(header::EXPECT, "100-continue").header(header::CONTENT_LENGTH, req.body.len());
            let data = req.body;
            let delayed = futures_util::stream::once(async move {
                tokio::time::sleep(CONTINUE_WAIT).await;
                Ok::<_, Infallible>(Frame::data(data))
            });
            BodyExt::boxed(StreamBody::new(delayed))
        } else {
            Full::new(req.body).boxed()
        };
        let request = builder.body(body).map_err(|e| format!("cannot build the request: {e}"))?;
        let response = sender.send_request(request).await.map_err(|e| format!("request failed: {e}"))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let body = if content_type.starts_with("text/event-stream") {
            let mut stream = sse_stream::SseStream::new(response.into_body());
            let mut events = Vec::new();
            while let Some(item) = stream.next().await {
                let sse = item.map_err(|e| format!("SSE stream broke after {} event(s): {e}", events.len()))?;
                if let Some(data) = sse.data {
                    events.push((sse.event, data));
                } else if sse.event.is_some() {
                    return Err(format!("SSE event {:?} without data", sse.event));
                }
            }
            RespBody::Events(events)
        } else {
            let limited = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES);
            let bytes = limited.collect().await.map_err(|e| format!("reading the body failed: {e}"))?.to_bytes();
            RespBody::Bytes(bytes)
        };
        Ok(Resp { status, content_type, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_fully_encoded() {
        assert_eq!(encode_segment("../../weird::id\n"), "..%2F..%2Fweird%3A%3Aid%0A");
        assert_eq!(encode_segment("chs_01AZ-~."), "chs_01AZ-~.");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }

    #[test]
    fn base_urls() {
        let c = HttpClient::new("http://127.0.0.1:8080/api/", None);
        assert!(matches!(&c, Ok(c) if c.authority() == "127.0.0.1:8080" && c.prefix() == "/api"));
        assert!(HttpClient::new("https://x", None).is_err());
        assert!(matches!(HttpClient::new("ws://h", None), Ok(c) if c.authority() == "h:80" && c.prefix().is_empty()));
    }
}
