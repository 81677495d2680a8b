//! `http.outbound`: audited outbound HTTP/1.1 for plugins.
//!
//! Every hop (the first request and each redirect, at most [`MAX_REDIRECTS`]):
//! 1. the URL parses; the scheme is `http`/`https` and the host is in manifest ∩ policy
//!    (`Grant::check_outbound`; IP literals are not hostnames and are refused);
//! 2. the host is resolved and **every** A/AAAA record is checked with
//!    [`plugin_api::is_forbidden_address`]: one private, loopback, link-local, metadata or
//!    reserved address refuses the call (`private_address`), unless the policy entry sets the
//!    **test-only** `allowPrivateAddresses`;
//! 3. the TCP connection is made by us to one of the checked addresses (pinned: no second
//!    resolution, so DNS rebinding cannot swap the address);
//! 4. for `https`, TLS runs over that connection ([`super::tls::OutboundTls`]: the system CA
//!    bundle plus the certificates the embedder added); SNI and certificate verification use
//!    the URL's **host name**, never the pinned IP address, so the certificate must name the
//!    host the allowlist admitted (a failure is `tls_failed`, audited);
//! 5. hyper's HTTP/1 client runs over it with the original `Host` header.
//!
//! Redirects are re-checked from step 1. A redirect from `https` to `http` (a downgrade) is
//! refused (`scheme_not_allowed`): the policy cannot say "plain HTTP is fine for this host",
//! so a call that started encrypted never continues in the clear. `http` to `https` is
//! followed.
//!
//! The whole call, redirects and TLS handshakes included, is capped in time
//! ([`DEFAULT_TIMEOUT`], at most [`MAX_TIMEOUT`]) and the response body in size
//! ([`DEFAULT_MAX_BODY`], at most [`MAX_BODY_CAP`]). `Authorization` and `Cookie` headers
//! are dropped on a redirect to another host.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use plugin_api::{Capability, OutboundHostReason, OutboundHostViolation, is_forbidden_address};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use url::Url;

use super::PluginError;
use super::context::PluginContext;
use super::tls::{OutboundTls, server_name};

/// The default time limit of a call (redirects included).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest time limit a plugin may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);
/// The default response body cap.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// The largest response body cap a plugin may ask for.
pub const MAX_BODY_CAP: usize = 5 * 1024 * 1024;
/// The most redirects followed.
pub const MAX_REDIRECTS: usize = 3;
/// The largest request body a plugin may send.
pub const MAX_REQUEST_BODY: usize = 5 * 1024 * 1024;

/// An outbound request.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    /// The method.
    pub method: Method,
    /// The absolute `http://` or `https://` URL.
    pub url: String,
    /// Extra headers (`Host`, `Content-Length`, `Transfer-Encoding`, `Connection` are ours).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// The time limit ([`DEFAULT_TIMEOUT`] if absent; capped at [`MAX_TIMEOUT`]).
    pub timeout: Option<Duration>,
    /// The response body cap ([`DEFAULT_MAX_BODY`] if absent; capped at [`MAX_BODY_CAP`]).
    pub max_body_bytes: Option<usize>,
}

impl OutboundRequest {
    /// A `GET`.
    pub fn get(url: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            url: url.into(),
            headers: Vec::new(),
            body: Bytes::new(),
            timeout: None,
            max_body_bytes: None,
        }
    }

    /// A `POST` of `body`.
    pub fn post(url: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self { method: Method::POST, body: body.into(), ..Self::get(url) }
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the time limit.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// An outbound response.
#[derive(Debug, Clone)]
pub struct OutboundResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body (within the cap).
    pub body: Bytes,
    /// The URL that answered (after redirects).
    pub url: String,
    /// The address the connection was pinned to.
    pub peer: SocketAddr,
}

/// The `http.outbound` surface.
#[derive(Debug)]
pub struct Http<'a> {
    pub(crate) ctx: &'a PluginContext,
}

const OURS: [HeaderName; 4] = [header::HOST, header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::CONNECTION];

impl Http<'_> {
    /// Sends `req` (see the module docs for every check).
    pub async fn request(&self, req: OutboundRequest) -> Result<OutboundResponse, PluginError> {
        self.ctx.check(Capability::HttpOutbound)?;
        if req.body.len() > MAX_REQUEST_BODY {
            return Err(PluginError::Invalid(format!("a request body is at most {MAX_REQUEST_BODY} bytes")));
        }
        let limit = req.timeout.unwrap_or(DEFAULT_TIMEOUT).min(MAX_TIMEOUT);
        let max_body = req.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY).min(MAX_BODY_CAP);
        match tokio::time::timeout(limit, self.follow(req, max_body)).await {
            Ok(r) => r,
            Err(_) => Err(PluginError::Outbound(format!("timed out after {limit:?}"))),
        }
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Result<OutboundResponse, PluginError> {
        self.request(OutboundRequest::get(url)).await
    }

    fn violation(&self, reason: OutboundHostReason, target: &str) -> PluginError {
        self.ctx.deny(
            OutboundHostViolation {
                reason,
                plugin: self.ctx.plugin().to_string(),
                target: target.chars().take(256).collect(),
            }
            .into(),
        )
    }

    async fn follow(&self, req: OutboundRequest, max_body: usize) -> Result<OutboundResponse, PluginError> {
        let mut headers = HeaderMap::new();
        for (k, v) in &req.headers {
            let (Ok(name), Ok(value)) = (HeaderName::try_from(k.as_str()), HeaderValue::try_from(v.as_str())) else {
                return Err(PluginError::Invalid(format!("invalid header {k:?}")));
            };
            if !OURS.contains(&name) {
                headers.append(name, value);
            }
        }
        let mut url = Url::parse(&req.url).map_err(|_| self.violation(OutboundHostReason::InvalidUrl, &req.url))?;
        let (mut method, mut body) = (req.method, req.body);
        let mut hop = 0;
        loop {
            let (host, addrs) = self.check(&url).await?;
            let exchange =
                Exchange { host: &host, url: &url, method: &method, headers: &headers, body: body.clone(), max_body };
            let resp = match send(&addrs, &self.ctx.inner.shared.tls, exchange).await {
                Ok(resp) => resp,
                Err(e @ PluginError::Tls(_)) => {
                    // A certificate that does not verify may be an interception: audited.
                    self.ctx.audit("tls_failed", e.to_string());
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            let redirect = matches!(resp.status.as_u16(), 301 | 302 | 303 | 307 | 308);
            if !redirect {
                return Ok(resp);
            }
            let Some(location) = resp.headers.get(header::LOCATION).and_then(|l| l.to_str().ok()) else {
                return Ok(resp);
            };
            if hop >= MAX_REDIRECTS {
                return Err(self.violation(OutboundHostReason::TooManyRedirects, location));
            }
            hop += 1;
            let next = url.join(location).map_err(|_| self.violation(OutboundHostReason::InvalidUrl, location))?;
            if url.scheme() == "https" && next.scheme() != "https" {
                return Err(self.violation(
                    OutboundHostReason::SchemeNotAllowed,
                    &format!("https -> {} redirect to {next}", next.scheme()),
                ));
            }
            let status = resp.status.as_u16();
            if status == 303 || (matches!(status, 301 | 302) && method == Method::POST) {
                method = Method::GET;
                body = Bytes::new();
            }
            if next.host_str() != url.host_str() {
                headers.remove(header::AUTHORIZATION);
                headers.remove(header::COOKIE);
            }
            tracing::debug!(plugin = %self.ctx.plugin(), from = %url, to = %next, "following a redirect");
            url = next;
        }
    }

    /// Allowlist, scheme, resolution and the address check of one hop.
    async fn check(&self, url: &Url) -> Result<(String, Vec<SocketAddr>), PluginError> {
        let host = url.host_str().unwrap_or_default().to_owned();
        if host.is_empty() {
            return Err(self.violation(OutboundHostReason::InvalidUrl, url.as_str()));
        }
        self.ctx.grant().check_outbound(url.scheme(), &host).map_err(|e| self.ctx.deny(e))?;
        let Some(port) = url.port_or_known_default() else {
            return Err(self.violation(OutboundHostReason::InvalidUrl, url.as_str()));
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| PluginError::Outbound(format!("cannot resolve {host}: {e}")))?
            .take(32)
            .collect();
        if addrs.is_empty() {
            return Err(PluginError::Outbound(format!("{host} resolves to no address")));
        }
        if !self.ctx.grant().allow_private_addresses()
            && let Some(bad) = addrs.iter().find(|a| is_forbidden_address(a.ip()))
        {
            return Err(self.violation(OutboundHostReason::PrivateAddress, &format!("{host} -> {}", bad.ip())));
        }
        Ok((host, addrs))
    }
}

/// One request over a connection we open ourselves to one of the checked `addrs` (TLS for
/// `https`, verified against `host`).
async fn send(
    addrs: &[SocketAddr],
    tls: &OutboundTls,
    exchange: Exchange<'_>,
) -> Result<OutboundResponse, PluginError> {
    let (host, url) = (exchange.host, exchange.url);
    let mut last = None;
    let mut connected = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                connected = Some((s, *addr));
                break;
            }
            Err(e) => last = Some(format!("{addr}: {e}")),
        }
    }
    let Some((stream, peer)) = connected else {
        return Err(PluginError::Outbound(format!("cannot connect to {host}: {}", last.unwrap_or_default())));
    };
    let _ = stream.set_nodelay(true);
    if url.scheme() == "https" {
        let connector = tls.connector()?;
        let stream = connector
            .connect(server_name(host)?, stream)
            .await
            .map_err(|e| PluginError::Tls(format!("{host} ({peer}): TLS handshake failed: {e}")))?;
        exchange.run(stream, peer).await
    } else {
        exchange.run(stream, peer).await
    }
}

/// One HTTP/1.1 request and its capped response.
struct Exchange<'a> {
    host: &'a str,
    url: &'a Url,
    method: &'a Method,
    headers: &'a HeaderMap,
    body: Bytes,
    max_body: usize,
}

impl Exchange<'_> {
    async fn run<S>(self, stream: S, peer: SocketAddr) -> Result<OutboundResponse, PluginError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Exchange { host, url, method, headers, body, max_body } = self;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| PluginError::Outbound(format!("{host}: {e}")))?;
        // The connection task ends with the exchange; the cap only guards against a stuck peer.
        tokio::spawn(async move {
            let _ = tokio::time::timeout(MAX_TIMEOUT, conn).await;
        });
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let mut builder = Request::builder().method(method.clone()).uri(target);
        if let Some(h) = builder.headers_mut() {
            h.extend(headers.clone());
            if let Ok(v) = HeaderValue::try_from(authority) {
                h.insert(header::HOST, v);
            }
        }
        let request = builder.body(Full::new(body)).map_err(|e| PluginError::Invalid(e.to_string()))?;
        let response = sender.send_request(request).await.map_err(|e| PluginError::Outbound(format!("{host}: {e}")))?;
        let (parts, incoming) = response.into_parts();
        let body = Limited::new(incoming, max_body)
            .collect()
            .await
            .map_err(|e| PluginError::Outbound(format!("{host}: response body refused: {e} (cap {max_body} bytes)")))?
            .to_bytes();
        Ok(OutboundResponse { status: parts.status, headers: parts.headers, body, url: url.to_string(), peer })
    }
}
