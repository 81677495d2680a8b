//! NDJSON transport over any byte stream (stdin/stdout, child-process pipes): one envelope
//! per `\n`-terminated line.
//!
//! Reading accepts `\n` and `\r\n` line ends, skips blank lines and accepts a final line
//! without a line end at end of input. A line longer than `max_frame_bytes` (line end
//! excluded) gives [`TransportError::FrameTooLarge`] and is discarded without being buffered
//! whole; the next line is read normally. A line that is not UTF-8 gives
//! [`TransportError::UnsupportedFrame`], and the next line is read normally too. End of
//! input ends [`FrameSource::recv`] with `None`.
//!
//! Writing puts each frame on its own line and flushes it. A frame containing a raw line
//! break is refused ([`TransportError::UnsupportedFrame`]): it would split into two lines at
//! the peer (serialised JSON never contains one).

use std::fmt;
use std::io;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Decoder, FramedRead, LinesCodec, LinesCodecError};

use super::{FrameSink, FrameSource, Transport, TransportError};

/// How long [`FrameSink::close`] waits for the writer to flush and shut down.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// An NDJSON connection over a reader and a writer.
pub struct StdioTransport<R, W> {
    reader: R,
    writer: W,
    max_frame_bytes: usize,
}

/// The process's own stdin and stdout as an NDJSON transport (for a runtime started as a child
/// process). Frames larger than `max_frame_bytes` are refused both ways.
///
/// tokio reads stdin on a blocking thread; nothing else in the process should read stdin or
/// write to stdout while the transport is in use.
pub fn stdio(max_frame_bytes: usize) -> StdioTransport<tokio::io::Stdin, tokio::io::Stdout> {
    StdioTransport::new(tokio::io::stdin(), tokio::io::stdout(), max_frame_bytes)
}

impl<R, W> StdioTransport<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    /// A transport that reads lines from `reader` and writes lines to `writer`; frames larger
    /// than `max_frame_bytes` are refused both ways.
    pub fn new(reader: R, writer: W, max_frame_bytes: usize) -> Self {
        Self { reader, writer, max_frame_bytes }
    }
}

impl<R, W> fmt::Debug for StdioTransport<R, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StdioTransport").field("max_frame_bytes", &self.max_frame_bytes).finish_non_exhaustive()
    }
}

/// The sending half of a [`StdioTransport`].
pub struct StdioSink<W> {
    /// `None` once closed or after a failed write (which may have left half a line).
    writer: Option<W>,
    max: usize,
}

/// The receiving half of a [`StdioTransport`].
pub struct StdioSource<R> {
    lines: FramedRead<R, NdjsonDecoder>,
    done: bool,
}

impl<W> fmt::Debug for StdioSink<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StdioSink")
            .field("max", &self.max)
            .field("closed", &self.writer.is_none())
            .finish_non_exhaustive()
    }
}

impl<R> fmt::Debug for StdioSource<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StdioSource").field("done", &self.done).finish_non_exhaustive()
    }
}

impl<R, W> Transport for StdioTransport<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Sink = StdioSink<W>;
    type Source = StdioSource<R>;

    fn split(self) -> (StdioSink<W>, StdioSource<R>) {
        let decoder = NdjsonDecoder::new(self.max_frame_bytes);
        (
            StdioSink { writer: Some(self.writer), max: self.max_frame_bytes },
            StdioSource { lines: FramedRead::new(self.reader, decoder), done: false },
        )
    }
}

impl<W> FrameSink for StdioSink<W>
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    /// Writes `frame` and a `\n`, then flushes. Not cancel-safe: a dropped call may leave half
    /// a line written (the sink then refuses further frames only if the write failed).
    async fn send(&mut self, frame: String) -> Result<(), TransportError> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(TransportError::Closed);
        };
        if frame.len() > self.max {
            return Err(TransportError::FrameTooLarge { size: frame.len(), max: self.max });
        }
        if frame.bytes().any(|b| b == b'\n' || b == b'\r') {
            return Err(TransportError::UnsupportedFrame(
                "a frame must not contain a raw line break: NDJSON carries one envelope per line".to_owned(),
            ));
        }
        let mut line = frame.into_bytes();
        line.push(b'\n');
        let written = async {
            writer.write_all(&line).await?;
            writer.flush().await
        }
        .await;
        written.map_err(|err| {
            // A failed write may have left half a line: the stream is no longer framed.
            self.writer = None;
            write_error(&err)
        })
    }

    /// Flushes and shuts the writer down (the peer reads end of input), giving up after 5
    /// seconds, then drops it. Later calls do nothing and later sends fail with
    /// [`TransportError::Closed`].
    async fn close(&mut self) {
        let Some(mut writer) = self.writer.take() else {
            return;
        };
        match tokio::time::timeout(CLOSE_TIMEOUT, writer.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::debug!(%err, "closing the NDJSON writer failed"),
            Err(_elapsed) => tracing::debug!("closing the NDJSON writer timed out"),
        }
    }
}

impl<R> FrameSource for StdioSource<R>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    /// The next non-blank line. See the [module docs](self) for oversize and non-UTF-8 lines.
    /// After end of input or a read error, every call returns `None`. Cancel-safe.
    async fn recv(&mut self) -> Option<Result<String, TransportError>> {
        if self.done {
            return None;
        }
        match self.lines.next().await {
            Some(Ok(frame)) => Some(frame),
            None => {
                self.done = true;
                None
            }
            Some(Err(err)) => {
                self.done = true;
                Some(Err(TransportError::Io(err.to_string())))
            }
        }
    }
}

/// Maps a write error: a vanished reader is [`TransportError::Closed`].
fn write_error(err: &io::Error) -> TransportError {
    match err.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::WriteZero => TransportError::Closed,
        _ => TransportError::Io(err.to_string()),
    }
}

/// [`LinesCodec`] with the per-line errors turned into items.
///
/// `FramedRead` treats a decoder error as the end of a batch: it stops decoding what it has
/// buffered and waits for more input, so a good line already buffered behind an oversize one
/// would not be delivered until more bytes arrived (or be lost at end of input). Returning
/// those errors as items keeps it decoding. Only real read errors reach `FramedRead` as errors.
#[derive(Debug)]
struct NdjsonDecoder {
    lines: LinesCodec,
    max: usize,
}

impl NdjsonDecoder {
    fn new(max: usize) -> Self {
        // One more byte than the frame limit so that a `\r\n` line of exactly `max` bytes
        // passes the codec; the exact limit is checked on the decoded line.
        Self { lines: LinesCodec::new_with_max_length(max.saturating_add(1)), max }
    }

    /// Decodes the next non-blank line with `decode` (`LinesCodec::decode` or `decode_eof`).
    fn next_frame(
        &mut self,
        buf: &mut BytesMut,
        decode: fn(&mut LinesCodec, &mut BytesMut) -> Result<Option<String>, LinesCodecError>,
    ) -> Result<Option<Result<String, TransportError>>, io::Error> {
        loop {
            let buffered = buf.len();
            return match decode(&mut self.lines, buf) {
                Ok(Some(line)) if line.bytes().all(|b| b.is_ascii_whitespace()) => continue,
                Ok(Some(line)) if line.len() > self.max => {
                    Ok(Some(Err(TransportError::FrameTooLarge { size: line.len(), max: self.max })))
                }
                Ok(Some(line)) => Ok(Some(Ok(line))),
                Ok(None) => Ok(None),
                // The codec discards the rest of the line, then resumes at the next one.
                Err(LinesCodecError::MaxLineLengthExceeded) => {
                    Ok(Some(Err(TransportError::FrameTooLarge { size: buffered, max: self.max })))
                }
                // LinesCodec does no IO: its only IO error is a line that is not UTF-8, and it
                // has already consumed that line.
                Err(LinesCodecError::Io(_)) => {
                    Ok(Some(Err(TransportError::UnsupportedFrame("a line is not valid UTF-8".to_owned()))))
                }
            };
        }
    }
}

impl Decoder for NdjsonDecoder {
    type Item = Result<String, TransportError>;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, io::Error> {
        self.next_frame(buf, Decoder::decode)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, io::Error> {
        self.next_frame(buf, Decoder::decode_eof)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader, DuplexStream, duplex};

    use super::*;

    const MAX: usize = 32;
    const WAIT: Duration = Duration::from_secs(5);

    /// A transport reading what the test writes to the first stream and writing what the
    /// test reads from the second.
    fn harness(max: usize) -> (StdioTransport<DuplexStream, DuplexStream>, DuplexStream, DuplexStream) {
        let (input, transport_in) = duplex(64 * 1024);
        let (transport_out, output) = duplex(64 * 1024);
        (StdioTransport::new(transport_in, transport_out, max), input, output)
    }

    async fn recv<T: FrameSource>(source: &mut T) -> Option<Result<String, TransportError>> {
        tokio::time::timeout(WAIT, source.recv()).await.expect("recv timed out")
    }

    fn ok(s: &str) -> Option<Result<String, TransportError>> {
        Some(Ok(s.to_owned()))
    }

    #[tokio::test]
    async fn reads_lines_skipping_blank_ones() {
        let (transport, mut input, _output) = harness(MAX);
        let (_sink, mut source) = transport.split();
        input.write_all(b"{\"a\":1}\n{\"b\":2}\r\n\n\r\n  \t \n{\"c\":3}\n{\"d\":4}").await.unwrap();
        input.shutdown().await.unwrap();
        assert_eq!(recv(&mut source).await, ok(r#"{"a":1}"#));
        assert_eq!(recv(&mut source).await, ok(r#"{"b":2}"#));
        assert_eq!(recv(&mut source).await, ok(r#"{"c":3}"#));
        // A last line without a line end still counts.
        assert_eq!(recv(&mut source).await, ok(r#"{"d":4}"#));
        assert_eq!(recv(&mut source).await, None);
        assert_eq!(recv(&mut source).await, None);
    }

    #[tokio::test]
    async fn reads_lines_split_across_writes() {
        let (transport, mut input, _output) = harness(MAX);
        let (_sink, mut source) = transport.split();
        let reader = tokio::spawn(async move { (recv(&mut source).await, recv(&mut source).await) });
        input.write_all(b"{\"par").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        input.write_all(b"tial\":true}\r").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        input.write_all(b"\n").await.unwrap();
        drop(input);
        assert_eq!(reader.await.unwrap(), (ok(r#"{"partial":true}"#), None));
    }

    #[tokio::test]
    async fn writes_one_line_per_frame() {
        let (transport, _input, output) = harness(MAX);
        let (mut sink, _source) = transport.split();
        sink.send(r#"{"n":1}"#.to_owned()).await.unwrap();
        sink.send(r#"{"n":2}"#.to_owned()).await.unwrap();
        let err = sink.send("{\"n\":\n3}".to_owned()).await.unwrap_err();
        assert!(matches!(err, TransportError::UnsupportedFrame(_)), "{err:?}");
        let err = sink.send("{\"n\":3}\r".to_owned()).await.unwrap_err();
        assert!(matches!(err, TransportError::UnsupportedFrame(_)), "{err:?}");
        let err = sink.send("x".repeat(MAX + 1)).await.unwrap_err();
        assert_eq!(err, TransportError::FrameTooLarge { size: MAX + 1, max: MAX });
        sink.send("x".repeat(MAX)).await.unwrap();
        sink.close().await;

        let mut lines = BufReader::new(output).lines();
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some(r#"{"n":1}"#));
        assert_eq!(lines.next_line().await.unwrap().as_deref(), Some(r#"{"n":2}"#));
        assert_eq!(lines.next_line().await.unwrap(), Some("x".repeat(MAX)));
        assert_eq!(lines.next_line().await.unwrap(), None);
    }

    #[tokio::test]
    async fn oversize_line_is_refused_and_the_next_line_arrives() {
        let (transport, mut input, _output) = harness(MAX);
        let (_sink, mut source) = transport.split();
        // Both lines in one write: the good line is already buffered behind the long one.
        let long = "L".repeat(10 * MAX);
        input.write_all(format!("{long}\n{{\"ok\":1}}\n").as_bytes()).await.unwrap();
        match recv(&mut source).await {
            Some(Err(TransportError::FrameTooLarge { size, max: MAX })) => assert!(size > MAX),
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
        assert_eq!(recv(&mut source).await, ok(r#"{"ok":1}"#));

        // A long line arriving in pieces, its end together with the next line.
        input.write_all(long.as_bytes()).await.unwrap();
        let first = recv(&mut source).await;
        assert!(matches!(first, Some(Err(TransportError::FrameTooLarge { .. }))), "{first:?}");
        input.write_all(format!("{long}\n{{\"ok\":2}}\n").as_bytes()).await.unwrap();
        assert_eq!(recv(&mut source).await, ok(r#"{"ok":2}"#));

        // Just over the limit, delivered whole, and a long last line at end of input.
        input.write_all(format!("{}\n{}\r\n{long}", "m".repeat(MAX + 1), "e".repeat(MAX)).as_bytes()).await.unwrap();
        input.shutdown().await.unwrap();
        assert_eq!(recv(&mut source).await, Some(Err(TransportError::FrameTooLarge { size: MAX + 1, max: MAX })));
        // Exactly the limit with `\r\n` is fine.
        assert_eq!(recv(&mut source).await, Some(Ok("e".repeat(MAX))));
        assert!(matches!(recv(&mut source).await, Some(Err(TransportError::FrameTooLarge { .. }))));
        assert_eq!(recv(&mut source).await, None);
    }

    #[tokio::test]
    async fn non_utf8_line_is_refused_and_the_next_line_arrives() {
        let (transport, mut input, _output) = harness(MAX);
        let (_sink, mut source) = transport.split();
        input.write_all(b"{\"bad\":\"\xff\xfe\"}\n{\"good\":1}\n").await.unwrap();
        assert!(matches!(recv(&mut source).await, Some(Err(TransportError::UnsupportedFrame(_)))));
        assert_eq!(recv(&mut source).await, ok(r#"{"good":1}"#));
    }

    #[tokio::test]
    async fn close_ends_the_peer() {
        // Two transports back to back, as a runtime and its child process.
        let (a_out, b_in) = duplex(1024);
        let (b_out, a_in) = duplex(1024);
        let (mut a_tx, mut a_rx) = StdioTransport::new(a_in, a_out, MAX).split();
        let (mut b_tx, mut b_rx) = StdioTransport::new(b_in, b_out, MAX).split();

        a_tx.send("ping".to_owned()).await.unwrap();
        assert_eq!(recv(&mut b_rx).await, ok("ping"));
        b_tx.send("pong".to_owned()).await.unwrap();
        assert_eq!(recv(&mut a_rx).await, ok("pong"));

        a_tx.close().await;
        a_tx.close().await; // idempotent
        assert_eq!(a_tx.send("late".to_owned()).await, Err(TransportError::Closed));
        assert_eq!(recv(&mut b_rx).await, None);

        b_tx.close().await;
        assert_eq!(recv(&mut a_rx).await, None);
    }

    #[tokio::test]
    async fn vanished_reader_is_closed() {
        let (transport, _input, output) = harness(MAX);
        let (mut sink, _source) = transport.split();
        drop(output);
        assert_eq!(sink.send("x".to_owned()).await, Err(TransportError::Closed));
        assert_eq!(sink.send("x".to_owned()).await, Err(TransportError::Closed));
    }
}
