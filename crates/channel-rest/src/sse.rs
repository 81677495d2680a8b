//! SSE responses: each [`ChannelEvent`] becomes one event (`event: <type>`, `data: <the
//! event as compact JSON>`), with keep-alive comments while the turn runs. Encoding is the
//! `sse-stream` crate's.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use channel_core::ChannelEvent;
use http::header::CACHE_CONTROL;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame};
use sse_stream::{KeepAlive, Sse, SseBody};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::reply::{Body, response};

/// The SSE event of a channel event.
pub(crate) fn to_sse(event: &ChannelEvent) -> Sse {
    let kind = match event {
        ChannelEvent::Record { .. } => "record",
        ChannelEvent::Delta { .. } => "delta",
        ChannelEvent::Outcome(_) => "outcome",
        ChannelEvent::Error { .. } => "error",
    };
    // Plain data: serialising cannot fail; an empty object keeps the stream well-formed if it did.
    let data = serde_json::to_string(event).unwrap_or_else(|_| String::from("{}"));
    Sse::default().event(kind).data(data)
}

/// A `200 text/event-stream` response streaming the events `rx` yields; it ends when every
/// sender is gone (the turn finished). Keep-alive comments every `keep_alive` while idle
/// (none when it is zero).
pub(crate) fn stream(mut rx: UnboundedReceiver<ChannelEvent>, keep_alive: Duration) -> Response<Body> {
    let events = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|ev| ev.map(|ev| Ok::<_, Infallible>(to_sse(&ev))))
    });
    let body = if keep_alive.is_zero() {
        EndOnError::new(SseBody::new(events)).boxed_unsync()
    } else {
        let sse: SseBody<_, TokioTimer> = SseBody::new_keep_alive(events, KeepAlive::new().interval(keep_alive));
        EndOnError::new(sse).boxed_unsync()
    };
    let mut resp = response(StatusCode::OK, "text/event-stream", body);
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// A tokio sleep as `sse-stream`'s keep-alive timer.
struct TokioTimer(Pin<Box<tokio::time::Sleep>>);

impl Future for TokioTimer {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

impl sse_stream::Timer for TokioTimer {
    fn reset(mut self: Pin<&mut Self>, instant: std::time::Instant) {
        self.0.as_mut().reset(tokio::time::Instant::from_std(instant));
    }

    fn from_duration(duration: Duration) -> Self {
        TokioTimer(Box::pin(tokio::time::sleep(duration)))
    }
}

/// Turns a fallible body into an infallible one that ends at its first error (an SSE body
/// only fails on an unencodable event, which ours never are).
struct EndOnError<B> {
    inner: Pin<Box<B>>,
    done: bool,
}

impl<B> EndOnError<B> {
    fn new(inner: B) -> Self {
        EndOnError { inner: Box::pin(inner), done: false }
    }
}

impl<B> HttpBody for EndOnError<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match ready!(self.inner.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => Poll::Ready(Some(Ok(frame))),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "SSE stream ended by an encoding error");
                self.done = true;
                Poll::Ready(None)
            }
            None => {
                self.done = true;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}
