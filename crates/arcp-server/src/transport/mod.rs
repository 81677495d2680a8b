//! The transport abstraction: a connection is a [`FrameSink`] (send a text frame, close) and a
//! [`FrameSource`] (receive frames), obtained by [`Transport::split`].
//!
//! Every ARCP transport carries JSON text frames: WebSocket text messages, stdio lines, or
//! in-memory strings ([`memory::pair`]). The runtime drives the two halves from separate tasks,
//! so a slow writer never blocks reading. This module does no JSON: framing only.

pub mod memory;
pub mod stdio;
pub mod ws;

use std::future::Future;

/// Why a transport failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The peer sent a frame ARCP does not allow (e.g. a WebSocket binary message).
    #[error("unsupported frame: {0}")]
    UnsupportedFrame(String),
    /// The frame exceeds the transport's size limit.
    #[error("frame of {size} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Size received (or at least).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The connection is closed.
    #[error("transport closed")]
    Closed,
    /// An IO or protocol error below ARCP.
    #[error("transport error: {0}")]
    Io(String),
}

/// The sending half of a connection.
pub trait FrameSink: Send + 'static {
    /// Sends one text frame (one JSON envelope, no trailing newline).
    fn send(&mut self, frame: String) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// Closes the connection (best effort; idempotent).
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// The receiving half of a connection.
pub trait FrameSource: Send + 'static {
    /// The next frame; `None` once the peer has closed the connection. An `Err` reports a
    /// frame that could not be received; the connection may still be usable after
    /// [`TransportError::UnsupportedFrame`] or [`TransportError::FrameTooLarge`].
    fn recv(&mut self) -> impl Future<Output = Option<Result<String, TransportError>>> + Send;
}

/// A connection that can be split into its two halves.
pub trait Transport: Send + 'static {
    /// The sending half.
    type Sink: FrameSink;
    /// The receiving half.
    type Source: FrameSource;
    /// Splits the connection.
    fn split(self) -> (Self::Sink, Self::Source);
}
