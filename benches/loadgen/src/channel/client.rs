//! A minimal HTTP/1.1 keep-alive client over one TCP connection (hyper's client `conn` API,
//! `TCP_NODELAY`), and the parsing of `http://host:port/path` URLs.

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The header a channel client presents its continuation token in.
pub(crate) const TOKEN_HEADER: &str = "x-continuation-token";

/// A parsed `http://host:port[/path]` URL.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `host:port`, to connect to and to send as `Host`.
    pub(crate) authority: String,
    /// The path (without a trailing `/`; empty for the root).
    pub(crate) path: String,
}

impl Target {
    /// Parses `url`; only `http` is supported (the benchmarks run on loopback).
    pub(crate) fn parse(url: &str) -> Result<Target> {
        let uri: Uri = url.parse().with_context(|| format!("invalid URL {url:?}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("{url:?}: only http:// URLs are supported");
        }
        let Some(authority) = uri.authority() else { bail!("{url:?} has no host") };
        let authority = if authority.port().is_some() { authority.to_string() } else { format!("{authority}:80") };
        Ok(Target { authority, path: uri.path().trim_end_matches('/').to_owned() })
    }
}

/// One keep-alive connection: requests go one at a time, back to back.
pub(crate) struct Conn {
    send: SendRequest<Full<Bytes>>,
    host: HeaderValue,
    bearer: Option<HeaderValue>,
}

impl Conn {
    /// Connects to `target` (`TCP_NODELAY` on); `bearer` is sent as `Authorization: Bearer`
    /// on every request.
    pub(crate) async fn connect(target: &Target, bearer: Option<&str>) -> Result<Conn> {
        let stream = TcpStream::connect(&target.authority)
            .await
            .with_context(|| format!("connecting to {}", target.authority))?;
        stream.set_nodelay(true).context("setting TCP_NODELAY")?;
        let (send, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.context("HTTP handshake")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let host = HeaderValue::from_str(&target.authority).context("the host is not a header value")?;
        let bearer = bearer
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
            .transpose()
            .context("the token is not a header value")?;
        Ok(Conn { send, host, bearer })
    }

    /// `POST path` with a JSON `body` (and the continuation token header when `token` is
    /// given); returns the status and the whole response body.
    pub(crate) async fn post(&mut self, path: &str, token: Option<&str>, body: Bytes) -> Result<(StatusCode, Bytes)> {
        self.send.ready().await.context("the connection closed")?;
        let mut req = Request::post(path)
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(Full::new(body))
            .context("building the request")?;
        if let Some(bearer) = &self.bearer {
            req.headers_mut().insert(AUTHORIZATION, bearer.clone());
        }
        if let Some(token) = token {
            req.headers_mut()
                .insert(TOKEN_HEADER, HeaderValue::from_str(token).context("a token is not a header value")?);
        }
        let resp = self.send.send_request(req).await.context("sending the request")?;
        let status = resp.status();
        let body = resp.into_body().collect().await.context("reading the response")?.to_bytes();
        Ok((status, body))
    }
}

/// The string value of `"key":"…"` in a compact JSON object (what the channel's replies are),
/// found without parsing the whole body. `None` when absent or not a plain string.
pub(crate) fn string_field<'b>(body: &'b [u8], key: &str) -> Option<&'b str> {
    let needle = format!("\"{key}\":\"");
    let start = find(body, needle.as_bytes())? + needle.len();
    let len = body[start..].iter().position(|&b| b == b'"')?;
    let value = &body[start..start + len];
    if value.contains(&b'\\') {
        return None;
    }
    std::str::from_utf8(value).ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!((t.authority.as_str(), t.path.as_str()), ("127.0.0.1:8080", ""));
        let t = Target::parse("http://localhost/v1").unwrap();
        assert_eq!((t.authority.as_str(), t.path.as_str()), ("localhost:80", "/v1"));
        assert!(Target::parse("https://x:1").is_err());
        assert!(Target::parse("nope").is_err());
    }

    #[test]
    fn fields() {
        let body = br#"{"sessionId":"chs_1","status":"finished","output":"hi","continuationToken":"ct_ab"}"#;
        assert_eq!(string_field(body, "sessionId"), Some("chs_1"));
        assert_eq!(string_field(body, "continuationToken"), Some("ct_ab"));
        assert_eq!(string_field(body, "missing"), None);
        assert_eq!(string_field(br#"{"a":"x\"y"}"#, "a"), None);
    }
}
