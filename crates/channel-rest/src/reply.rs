//! Building responses: the [`Body`] type, JSON replies and the `{"error", "reason"}` bodies.

use std::convert::Infallible;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER, UPGRADE, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use serde::Serialize;

use crate::Error;

/// The body of every response this crate builds: a boxed body that cannot fail.
///
/// `UnsyncBoxBody` (not `BoxBody`) because an SSE stream is `Send` but not `Sync`; its frames
/// are produced by a task, so a broken stream simply ends (it has no error to report: the
/// client sees the stream end without an `outcome`).
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A complete body holding `bytes`.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A response with `status`, `content-type` and `body`.
pub(crate) fn response(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A JSON response (`application/json`) of `value`.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => response(status, "application/json", full(bytes)),
        // Our reply types are plain data and always serialise; never panic if one does not.
        Err(e) => {
            tracing::error!(error = %e, "could not serialise a reply");
            error_body(StatusCode::INTERNAL_SERVER_ERROR, "the reply could not be encoded", "internal")
        }
    }
}

fn error_body(status: StatusCode, message: &str, reason: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": message, "reason": reason });
    response(status, "application/json", full(body.to_string()))
}

impl Error {
    /// This error as a response: its status, `{"error": .., "reason": ..}` as
    /// `application/json`, and the headers its status calls for (`Allow` on 405,
    /// `WWW-Authenticate: Bearer` on 401, `Upgrade: websocket` on 426, `Retry-After` on 429).
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(error = %self, reason = self.reason(), "channel request failed");
        }
        let mut resp = error_body(status, &self.message(), self.reason());
        let headers = resp.headers_mut();
        match self {
            Error::MethodNotAllowed { allow } => {
                headers.insert(ALLOW, HeaderValue::from_static(allow));
            }
            Error::Unauthorized => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Error::UpgradeRequired(_) => {
                headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
                headers.insert("sec-websocket-version", HeaderValue::from_static("13"));
            }
            Error::RateLimited { retry_after_secs } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            _ => {}
        }
        resp
    }
}
