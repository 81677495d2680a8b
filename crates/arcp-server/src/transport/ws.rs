//! WebSocket transport (tokio-tungstenite): one JSON envelope per text message, at `/arcp`.
//!
//! [`accept`] performs the server handshake on a TCP connection, [`connect`] opens a client
//! connection and [`WsTransport::new`] wraps a stream that something else (an HTTP server)
//! has already upgraded; [`config`] is the size-limited [`WebSocketConfig`] they all use.
//!
//! # Frames
//!
//! Text messages are frames. A binary message is answered by
//! [`TransportError::UnsupportedFrame`] and the connection stays usable (the runtime decides to
//! answer with an error and close). A Close message, or the peer dropping the connection,
//! ends [`FrameSource::recv`] with `None`.
//!
//! # Size limit
//!
//! `max_frame_bytes` bounds both a single WebSocket frame and a whole (possibly fragmented)
//! message. tungstenite checks a frame's declared length before reading its payload, so an
//! oversize message is refused without buffering it: `recv` returns
//! [`TransportError::FrameTooLarge`] once and `None` afterwards (the read side of a WebSocket
//! cannot resynchronise after a refused frame); the write side still works, so the runtime
//! can send its error and close. Sending a frame larger than the limit is refused locally
//! with [`TransportError::FrameTooLarge`] and nothing is sent.
//!
//! # Pings
//!
//! tungstenite answers a Ping by queueing a Pong, which it writes and flushes at the start of
//! the next read (or with the next write). [`FrameSource::recv`] skips Ping and Pong messages
//! and immediately reads on, so the Pong goes out at once, but only while some task is
//! awaiting `recv`: the runtime keeps a reader task on every connection, which is what keeps
//! the connection answering pings. If the socket cannot take the Pong right away, tungstenite
//! retries on the next read or write and wakes the reading task once the socket is writable.

use std::fmt;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{FrameSink, FrameSource, Transport, TransportError};

/// How long [`accept`] waits for the client's HTTP upgrade request and the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`FrameSink::close`] tries to deliver the Close frame before giving up.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The error text for a binary message.
const BINARY_REFUSED: &str = "binary frames are not allowed: ARCP uses JSON text frames";

/// The WebSocket configuration for a connection whose frames and messages may not exceed
/// `max_frame_bytes` bytes.
///
/// Use it when upgrading a connection elsewhere, e.g.
/// `WebSocketStream::from_raw_socket(io, Role::Server, Some(ws::config(max)))`, then
/// [`WsTransport::new`].
pub fn config(max_frame_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default().max_message_size(Some(max_frame_bytes)).max_frame_size(Some(max_frame_bytes))
}

/// Performs the server side of the WebSocket handshake on an accepted TCP connection.
///
/// Sets `TCP_NODELAY` (a reply of several frames otherwise waits on delayed ACKs), then
/// accepts the upgrade only for the request path `path` (e.g. `/arcp`; the query string is
/// ignored): any other path is answered with HTTP 404 and an error is returned. The handshake
/// must complete within 10 seconds. Frames and messages larger than `max_frame_bytes` are
/// refused (see the [module docs](self)).
pub async fn accept(
    stream: TcpStream,
    path: &str,
    max_frame_bytes: usize,
) -> Result<WsTransport<TcpStream>, TransportError> {
    if let Err(err) = stream.set_nodelay(true) {
        tracing::debug!(%err, "could not set TCP_NODELAY on an accepted connection");
    }
    #[allow(clippy::result_large_err, reason = "the signature tungstenite's `Callback` requires")]
    let check_path = |request: &Request, response: Response| {
        if request.uri().path() == path {
            Ok(response)
        } else {
            tracing::debug!(path = request.uri().path(), "refusing a WebSocket upgrade on an unknown path");
            let mut refusal = ErrorResponse::new(Some("not found".to_owned()));
            *refusal.status_mut() = StatusCode::NOT_FOUND;
            Err(refusal)
        }
    };
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, check_path, Some(config(max_frame_bytes)));
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(ws)) => Ok(WsTransport::new(ws)),
        Ok(Err(err)) => Err(handshake_error(err)),
        Err(_elapsed) => Err(TransportError::Io("WebSocket handshake timed out".to_owned())),
    }
}

/// Opens a client connection to `url` (`ws://host:port/arcp`) and performs the handshake.
///
/// Sets `TCP_NODELAY`. Frames and messages larger than `max_frame_bytes` are refused (see the
/// [module docs](self)). This build has no TLS: a `wss://` URL fails. There is no timeout:
/// wrap the call in one if the peer may not answer. A refused upgrade (e.g. HTTP 404 for a
/// wrong path) is an error.
pub async fn connect(
    url: &str,
    max_frame_bytes: usize,
) -> Result<WsTransport<MaybeTlsStream<TcpStream>>, TransportError> {
    let (ws, _response) = tokio_tungstenite::connect_async_with_config(url, Some(config(max_frame_bytes)), true)
        .await
        .map_err(handshake_error)?;
    Ok(WsTransport::new(ws))
}

/// A WebSocket connection carrying ARCP frames as text messages.
pub struct WsTransport<S> {
    ws: WebSocketStream<S>,
}

impl<S> WsTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Wraps an already-upgraded WebSocket stream. The size limit is the stream's own
    /// `max_message_size` (create it with [`config`]).
    pub fn new(ws: WebSocketStream<S>) -> Self {
        Self { ws }
    }
}

impl<S> fmt::Debug for WsTransport<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsTransport").finish_non_exhaustive()
    }
}

/// The sending half of a [`WsTransport`].
pub struct WsSink<S> {
    sink: SplitSink<WebSocketStream<S>, Message>,
    max: Option<usize>,
    closed: bool,
}

/// The receiving half of a [`WsTransport`].
pub struct WsSource<S> {
    stream: SplitStream<WebSocketStream<S>>,
    done: bool,
}

impl<S> fmt::Debug for WsSink<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsSink").field("max", &self.max).field("closed", &self.closed).finish_non_exhaustive()
    }
}

impl<S> fmt::Debug for WsSource<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsSource").field("done", &self.done).finish_non_exhaustive()
    }
}

impl<S> Transport for WsTransport<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Sink = WsSink<S>;
    type Source = WsSource<S>;

    fn split(self) -> (WsSink<S>, WsSource<S>) {
        let max = self.ws.get_config().max_message_size;
        let (sink, stream) = self.ws.split();
        (WsSink { sink, max, closed: false }, WsSource { stream, done: false })
    }
}

impl<S> FrameSink for WsSink<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Sends `frame` as one text message and flushes it (with any pending Pong). Not
    /// cancel-safe: a dropped call may leave the message unsent or half-written.
    async fn send(&mut self, frame: String) -> Result<(), TransportError> {
        if self.closed {
            return Err(TransportError::Closed);
        }
        if let Some(max) = self.max
            && frame.len() > max
        {
            return Err(TransportError::FrameTooLarge { size: frame.len(), max });
        }
        self.sink.send(Message::text(frame)).await.map_err(send_error)
    }

    /// Sends a Close frame (code 1000) and flushes it, giving up after 5 seconds; errors are
    /// logged, not returned. Later calls do nothing and later sends fail with
    /// [`TransportError::Closed`].
    async fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        let close = async {
            let frame = CloseFrame { code: CloseCode::Normal, reason: "".into() };
            self.sink.send(Message::Close(Some(frame))).await?;
            self.sink.close().await
        };
        match tokio::time::timeout(CLOSE_TIMEOUT, close).await {
            Ok(Ok(())) | Ok(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {}
            Ok(Err(err)) => tracing::debug!(%err, "WebSocket close failed"),
            Err(_elapsed) => tracing::debug!("WebSocket close timed out"),
        }
    }
}

impl<S> FrameSource for WsSource<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// The next text message. Binary messages give [`TransportError::UnsupportedFrame`];
    /// Ping and Pong are skipped (tungstenite answers pings, see the [module docs](self)); a
    /// Close message or the end of the connection gives `None`, as does every call after an
    /// error other than `UnsupportedFrame`. Cancel-safe: no message is lost if the future is
    /// dropped.
    async fn recv(&mut self) -> Option<Result<String, TransportError>> {
        if self.done {
            return None;
        }
        loop {
            let message = match self.stream.next().await {
                Some(Ok(message)) => message,
                None => {
                    self.done = true;
                    return None;
                }
                Some(Err(err)) => {
                    // tokio-tungstenite ends the stream after any error.
                    self.done = true;
                    return match err {
                        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                            tracing::debug!("WebSocket peer went away without a Close frame");
                            None
                        }
                        err => Some(Err(recv_error(err))),
                    };
                }
            };
            match message {
                Message::Text(text) => return Some(Ok(text.as_str().to_owned())),
                Message::Binary(_) => return Some(Err(TransportError::UnsupportedFrame(BINARY_REFUSED.to_owned()))),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                Message::Close(_) => {
                    self.done = true;
                    // tungstenite has queued the Close reply; one more read flushes it without
                    // waiting (a server then sees the connection as closed). Best effort.
                    let _ = self.stream.next().now_or_never();
                    return None;
                }
            }
        }
    }
}

/// Maps a handshake failure.
fn handshake_error(err: WsError) -> TransportError {
    match err {
        WsError::Http(response) => {
            TransportError::Io(format!("WebSocket upgrade refused with HTTP {}", response.status()))
        }
        err => TransportError::Io(format!("WebSocket handshake failed: {err}")),
    }
}

/// Maps an error while sending.
fn send_error(err: WsError) -> TransportError {
    match err {
        WsError::ConnectionClosed | WsError::AlreadyClosed | WsError::Protocol(ProtocolError::SendAfterClosing) => {
            TransportError::Closed
        }
        WsError::Io(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            ) =>
        {
            TransportError::Closed
        }
        err => TransportError::Io(err.to_string()),
    }
}

/// Maps an error while receiving.
fn recv_error(err: WsError) -> TransportError {
    match err {
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            TransportError::FrameTooLarge { size, max: max_size }
        }
        WsError::Utf8(_) => TransportError::UnsupportedFrame("text message is not valid UTF-8".to_owned()),
        WsError::ConnectionClosed | WsError::AlreadyClosed => TransportError::Closed,
        err => TransportError::Io(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    use super::*;

    const MAX: usize = 1024;
    const PATH: &str = "/arcp";
    const WAIT: Duration = Duration::from_secs(5);

    /// Binds a loopback listener and spawns a task accepting one connection with [`accept`].
    async fn server(max: usize) -> (String, tokio::task::JoinHandle<Result<WsTransport<TcpStream>, TransportError>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            accept(stream, PATH, max).await
        });
        (format!("ws://{addr}"), task)
    }

    /// A connected pair through [`accept`] and [`connect`] (with a query string on the URL).
    async fn pair(max: usize) -> (WsTransport<TcpStream>, WsTransport<MaybeTlsStream<TcpStream>>) {
        let (base, task) = server(max).await;
        let client = connect(&format!("{base}{PATH}?token=abc"), max).await.unwrap();
        let server = task.await.unwrap().unwrap();
        (server, client)
    }

    /// A plain tokio-tungstenite client (no size limit) and the accepted server transport.
    async fn raw_pair(max: usize) -> (WsTransport<TcpStream>, WebSocketStream<MaybeTlsStream<TcpStream>>) {
        let (base, task) = server(max).await;
        let (client, _) = tokio_tungstenite::connect_async(format!("{base}{PATH}")).await.unwrap();
        let server = task.await.unwrap().unwrap();
        (server, client)
    }

    async fn recv<T: FrameSource>(source: &mut T) -> Option<Result<String, TransportError>> {
        tokio::time::timeout(WAIT, source.recv()).await.expect("recv timed out")
    }

    #[tokio::test]
    async fn frames_round_trip_both_ways() {
        let (server, client) = pair(MAX).await;
        let (mut server_tx, mut server_rx) = server.split();
        let (mut client_tx, mut client_rx) = client.split();

        for i in 0..3 {
            server_tx.send(format!(r#"{{"n":{i}}}"#)).await.unwrap();
        }
        for i in 0..3 {
            assert_eq!(recv(&mut client_rx).await, Some(Ok(format!(r#"{{"n":{i}}}"#))));
        }
        client_tx.send(r#"{"type":"session.hello"}"#.to_owned()).await.unwrap();
        assert_eq!(recv(&mut server_rx).await, Some(Ok(r#"{"type":"session.hello"}"#.to_owned())));
        // Exactly at the limit is allowed.
        let full = "x".repeat(MAX);
        client_tx.send(full.clone()).await.unwrap();
        assert_eq!(recv(&mut server_rx).await, Some(Ok(full)));
    }

    #[tokio::test]
    async fn binary_is_refused_and_the_connection_survives() {
        let (server, mut client) = raw_pair(MAX).await;
        let (mut server_tx, mut server_rx) = server.split();

        client.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
        client.send(Message::text("after")).await.unwrap();
        assert_eq!(recv(&mut server_rx).await, Some(Err(TransportError::UnsupportedFrame(BINARY_REFUSED.to_owned()))));
        assert_eq!(recv(&mut server_rx).await, Some(Ok("after".to_owned())));

        server_tx.send("reply".to_owned()).await.unwrap();
        let reply = tokio::time::timeout(WAIT, client.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(reply, Message::text("reply"));
    }

    #[tokio::test]
    async fn oversize_message_is_refused_without_hanging() {
        let (server, mut client) = raw_pair(MAX).await;
        let (mut server_tx, mut server_rx) = server.split();

        client.send(Message::text("y".repeat(4 * MAX))).await.unwrap();
        assert_eq!(recv(&mut server_rx).await, Some(Err(TransportError::FrameTooLarge { size: 4 * MAX, max: MAX })));
        assert_eq!(recv(&mut server_rx).await, None);

        // The write side still works: the runtime can answer and close.
        server_tx.send("error".to_owned()).await.unwrap();
        server_tx.close().await;
        let next = tokio::time::timeout(WAIT, client.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(next, Message::text("error"));
        let next = tokio::time::timeout(WAIT, client.next()).await.unwrap().unwrap().unwrap();
        assert!(matches!(next, Message::Close(Some(CloseFrame { code: CloseCode::Normal, .. }))), "{next:?}");
    }

    #[tokio::test]
    async fn oversize_fragmented_message_is_refused() {
        let (server, mut client) = raw_pair(MAX).await;
        let (_server_tx, mut server_rx) = server.split();

        // Three fragments, each under the limit, together over it.
        let part = "z".repeat(MAX / 2 + 100);
        client.feed(Message::Frame(Frame::message(part.clone(), OpCode::Data(Data::Text), false))).await.unwrap();
        client.feed(Message::Frame(Frame::message(part.clone(), OpCode::Data(Data::Continue), false))).await.unwrap();
        client.feed(Message::Frame(Frame::message(part, OpCode::Data(Data::Continue), true))).await.unwrap();
        client.flush().await.unwrap();
        match recv(&mut server_rx).await {
            Some(Err(TransportError::FrameTooLarge { size, max: MAX })) => assert!(size > MAX),
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
        assert_eq!(recv(&mut server_rx).await, None);
    }

    #[tokio::test]
    async fn oversize_send_is_refused_locally() {
        let (server, client) = pair(MAX).await;
        let (mut server_tx, _server_rx) = server.split();
        let (_client_tx, mut client_rx) = client.split();

        let err = server_tx.send("w".repeat(MAX + 1)).await.unwrap_err();
        assert_eq!(err, TransportError::FrameTooLarge { size: MAX + 1, max: MAX });
        server_tx.send("small".to_owned()).await.unwrap();
        assert_eq!(recv(&mut client_rx).await, Some(Ok("small".to_owned())));
    }

    #[tokio::test]
    async fn wrong_path_is_refused() {
        let (base, task) = server(MAX).await;
        // Spawned: the client handshake future is `Send`, as the runtime needs.
        let client = tokio::spawn(async move { connect(&format!("{base}/elsewhere"), MAX).await });
        let err = client.await.unwrap().unwrap_err();
        assert!(matches!(&err, TransportError::Io(text) if text.contains("404")), "{err:?}");
        assert!(task.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn server_close_ends_the_client() {
        let (server, client) = pair(MAX).await;
        let (mut server_tx, mut server_rx) = server.split();
        let (mut client_tx, mut client_rx) = client.split();

        server_tx.send("last".to_owned()).await.unwrap();
        server_tx.close().await;
        server_tx.close().await; // idempotent
        assert_eq!(server_tx.send("late".to_owned()).await, Err(TransportError::Closed));
        assert_eq!(recv(&mut client_rx).await, Some(Ok("last".to_owned())));
        assert_eq!(recv(&mut client_rx).await, None);
        assert_eq!(recv(&mut client_rx).await, None);
        // The client's Close reply ends the server's reading side too.
        assert_eq!(recv(&mut server_rx).await, None);
        assert_eq!(client_tx.send("late".to_owned()).await, Err(TransportError::Closed));
    }

    #[tokio::test]
    async fn client_close_ends_the_server() {
        let (server, client) = pair(MAX).await;
        let (_server_tx, mut server_rx) = server.split();
        let (mut client_tx, mut client_rx) = client.split();

        client_tx.send("bye".to_owned()).await.unwrap();
        client_tx.close().await;
        client_tx.close().await;
        assert_eq!(recv(&mut server_rx).await, Some(Ok("bye".to_owned())));
        assert_eq!(recv(&mut server_rx).await, None);
        assert_eq!(recv(&mut client_rx).await, None);
    }

    #[tokio::test]
    async fn dropped_peer_ends_recv() {
        let (server, client) = pair(MAX).await;
        let (_server_tx, mut server_rx) = server.split();
        drop(client);
        assert_eq!(recv(&mut server_rx).await, None);
    }

    #[tokio::test]
    async fn ping_is_answered_with_pong() {
        let (server, mut client) = raw_pair(MAX).await;
        let (_server_tx, mut server_rx) = server.split();
        // The runtime keeps a task reading; that is what answers pings.
        let reader = tokio::spawn(async move { server_rx.recv().await });

        client.send(Message::Ping("are you there".into())).await.unwrap();
        let reply = tokio::time::timeout(WAIT, client.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(reply, Message::Pong("are you there".into()));

        // Pings are not frames: the reader is still waiting for a text message.
        client.send(Message::text("frame")).await.unwrap();
        assert_eq!(tokio::time::timeout(WAIT, reader).await.unwrap().unwrap(), Some(Ok("frame".to_owned())));
    }
}
