//! One client WebSocket connection: `TCP_NODELAY`, optionally bound to a chosen source
//! address (to spread many connections over 127.0.0.x), text frames in and out.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context as _, Result, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::frames::{self, Welcome};

/// A client connection carrying ARCP frames as WebSocket text messages.
pub(crate) struct Conn {
    ws: WebSocketStream<TcpStream>,
}

/// `host:port` of a `ws://host:port/path` URL.
pub(crate) fn authority(url: &str) -> Result<&str> {
    let rest = url.strip_prefix("ws://").with_context(|| format!("{url:?}: only ws:// URLs are supported"))?;
    Ok(rest.split(['/', '?']).next().unwrap_or(rest))
}

/// Resolves the server address of `url` once (every connection of a run reuses it).
pub(crate) async fn resolve(url: &str) -> Result<SocketAddr> {
    let authority = authority(url)?;
    tokio::net::lookup_host(authority)
        .await
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to no address"))
}

impl Conn {
    /// Opens a WebSocket to `url` (at `addr`), from `source` when given (port chosen by the
    /// kernel), with `TCP_NODELAY`.
    pub(crate) async fn open(url: &str, addr: SocketAddr, source: Option<IpAddr>) -> Result<Conn> {
        let socket =
            if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.context("creating a socket")?;
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0)).with_context(|| format!("binding to {ip}"))?;
        }
        let stream = socket.connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true).context("setting TCP_NODELAY")?;
        let config = WebSocketConfig::default().max_message_size(Some(64 << 20)).max_frame_size(Some(64 << 20));
        let (ws, _response) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
            .await
            .with_context(|| format!("WebSocket handshake with {url}"))?;
        Ok(Conn { ws })
    }

    /// Sends one frame (flushed).
    pub(crate) async fn send(&mut self, frame: String) -> Result<()> {
        self.ws.send(Message::text(frame)).await.context("sending a frame")
    }

    /// The next text frame; `None` once the server closed the connection. Pings are answered
    /// by tungstenite itself; binary messages are an error.
    pub(crate) async fn recv(&mut self) -> Result<Option<String>> {
        loop {
            match self.ws.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(Message::Text(text))) => return Ok(Some(text.as_str().to_owned())),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Binary(_))) => bail!("the server sent a binary message"),
                Some(Err(e)) => return Err(e).context("receiving a frame"),
            }
        }
    }

    /// The next text frame, or an error saying the server closed the connection.
    pub(crate) async fn expect(&mut self) -> Result<String> {
        self.recv().await?.context("the server closed the connection")
    }

    /// Sends `hello` and reads the welcome (any other answer is an error).
    pub(crate) async fn handshake(&mut self, hello: String) -> Result<Welcome> {
        self.send(hello).await?;
        let frame = self.expect().await?;
        Welcome::parse(&frame)
    }

    /// Opens a session: a connection and `session.hello` asking for `features`.
    pub(crate) async fn session(
        url: &str,
        addr: SocketAddr,
        source: Option<IpAddr>,
        token: &str,
        features: &[&str],
    ) -> Result<(Conn, Welcome)> {
        let mut conn = Conn::open(url, addr, source).await?;
        let welcome = conn.handshake(frames::hello(token, features)).await?;
        Ok((conn, welcome))
    }

    /// Closes the connection (a WebSocket Close, without waiting long for the answer).
    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.ws.close(None)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        assert_eq!(authority("ws://127.0.0.1:8787/arcp").unwrap(), "127.0.0.1:8787");
        assert_eq!(authority("ws://localhost:1").unwrap(), "localhost:1");
        assert_eq!(authority("ws://h:2?x=1").unwrap(), "h:2");
        assert!(authority("http://h:1/arcp").is_err());
    }
}
