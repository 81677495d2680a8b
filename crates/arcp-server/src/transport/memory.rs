//! In-memory transports for tests and embedding: [`pair`] returns two connected ends.

use tokio::sync::mpsc;

use super::{FrameSink, FrameSource, Transport, TransportError};

/// One end of an in-memory connection.
#[derive(Debug)]
pub struct MemoryTransport {
    tx: mpsc::UnboundedSender<String>,
    rx: mpsc::UnboundedReceiver<String>,
}

/// Two connected in-memory transports: what one sends, the other receives.
pub fn pair() -> (MemoryTransport, MemoryTransport) {
    let (a_tx, b_rx) = mpsc::unbounded_channel();
    let (b_tx, a_rx) = mpsc::unbounded_channel();
    (MemoryTransport { tx: a_tx, rx: a_rx }, MemoryTransport { tx: b_tx, rx: b_rx })
}

/// The sending half of a [`MemoryTransport`].
#[derive(Debug)]
pub struct MemorySink(Option<mpsc::UnboundedSender<String>>);

/// The receiving half of a [`MemoryTransport`].
#[derive(Debug)]
pub struct MemorySource(mpsc::UnboundedReceiver<String>);

impl Transport for MemoryTransport {
    type Sink = MemorySink;
    type Source = MemorySource;

    fn split(self) -> (MemorySink, MemorySource) {
        (MemorySink(Some(self.tx)), MemorySource(self.rx))
    }
}

impl FrameSink for MemorySink {
    async fn send(&mut self, frame: String) -> Result<(), TransportError> {
        match &self.0 {
            Some(tx) => tx.send(frame).map_err(|_| TransportError::Closed),
            None => Err(TransportError::Closed),
        }
    }

    async fn close(&mut self) {
        self.0 = None;
    }
}

impl FrameSource for MemorySource {
    async fn recv(&mut self) -> Option<Result<String, TransportError>> {
        self.0.recv().await.map(Ok)
    }
}

impl MemoryTransport {
    /// Sends a frame (test convenience).
    pub fn send(&self, frame: impl Into<String>) -> Result<(), TransportError> {
        self.tx.send(frame.into()).map_err(|_| TransportError::Closed)
    }

    /// Receives the next frame, or `None` once the other end is gone (test convenience).
    pub async fn recv(&mut self) -> Option<String> {
        self.rx.recv().await
    }

    /// Closes this end: the other end's `recv` returns `None` once drained.
    pub fn close(self) {}
}
