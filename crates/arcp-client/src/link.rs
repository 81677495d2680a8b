//! One live connection: a reader task and a writer task around a split [`Transport`], so the
//! client's driver never awaits a transport directly (it only awaits channels, which are
//! cancel-safe, and a slow write never stops reading).

use arcp_server::transport::{FrameSink, FrameSource, Transport, TransportError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Frames the reader hands to the driver (bounded: reading waits for the driver).
const INBOUND_QUEUE: usize = 256;

/// What a connection reports to the driver.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// One text frame.
    Frame(String),
    /// A frame that could not be received; the connection may still be usable.
    Unreadable(TransportError),
    /// The connection is gone (the peer closed it, or a read or write failed).
    Closed(Option<TransportError>),
}

/// A live connection. Dropping it closes the connection: queued frames are still written,
/// then the sink is closed; the reader stops at once.
#[derive(Debug)]
pub(crate) struct Link {
    out: mpsc::UnboundedSender<String>,
    inbound: mpsc::Receiver<Inbound>,
    reader: JoinHandle<()>,
}

impl Link {
    /// Splits `transport` and starts its reader and writer tasks.
    pub(crate) fn start<T: Transport>(transport: T) -> Link {
        let (sink, source) = transport.split();
        let (in_tx, inbound) = mpsc::channel(INBOUND_QUEUE);
        let (out, out_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_loop(source, in_tx.clone()));
        tokio::spawn(write_loop(sink, out_rx, in_tx));
        Link { out, inbound, reader }
    }

    /// Queues one frame for sending; `false` if the writer has stopped.
    pub(crate) fn send(&self, frame: String) -> bool {
        self.out.send(frame).is_ok()
    }

    /// The next report from the connection (cancel-safe). `Closed` once it is gone.
    pub(crate) async fn recv(&mut self) -> Inbound {
        self.inbound.recv().await.unwrap_or(Inbound::Closed(None))
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_loop<S: FrameSource>(mut source: S, tx: mpsc::Sender<Inbound>) {
    loop {
        let report = match source.recv().await {
            Some(Ok(frame)) => Inbound::Frame(frame),
            Some(Err(e @ (TransportError::UnsupportedFrame(_) | TransportError::FrameTooLarge { .. }))) => {
                Inbound::Unreadable(e)
            }
            Some(Err(e)) => Inbound::Closed(Some(e)),
            None => Inbound::Closed(None),
        };
        let closed = matches!(report, Inbound::Closed(_));
        if tx.send(report).await.is_err() || closed {
            return;
        }
    }
}

async fn write_loop<S: FrameSink>(mut sink: S, mut rx: mpsc::UnboundedReceiver<String>, tx: mpsc::Sender<Inbound>) {
    while let Some(frame) = rx.recv().await {
        match sink.send(frame).await {
            Ok(()) => {}
            // Refused locally, nothing was written: the connection is still fine.
            Err(e @ (TransportError::FrameTooLarge { .. } | TransportError::UnsupportedFrame(_))) => {
                tracing::warn!(error = %e, "a frame could not be sent");
            }
            Err(e) => {
                let _ = tx.send(Inbound::Closed(Some(e))).await;
                return;
            }
        }
    }
    sink.close().await;
}
