//! Reading a request: the JSON body (size cap, content type), the presented token, `Accept`.

use std::time::Duration;

use http::HeaderMap;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde_json::Value;

use crate::Error;

/// The header a client may present its continuation token in (instead of the body's
/// `continuationToken`; the header wins when both are present).
pub(crate) const TOKEN_HEADER: &str = "x-continuation-token";

/// Whether the client asked for an SSE stream (`Accept` mentions `text/event-stream`).
pub(crate) fn wants_sse(headers: &HeaderMap) -> bool {
    headers.get_all(ACCEPT).iter().any(|v| {
        v.to_str().is_ok_and(|s| s.split(',').any(|part| media_type(part).eq_ignore_ascii_case("text/event-stream")))
    })
}

/// The media type of a `Content-Type`/`Accept` item, without parameters.
fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or_default().trim()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| media_type(v).eq_ignore_ascii_case("application/json"))
}

/// How long a refused request's body is drained at most (see [`drain`]).
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Reads a JSON request body. The size cap is checked from `Content-Length` first (413
/// without reading the body into memory) and enforced while reading; then the body must be
/// `application/json` (415) and valid JSON (400). With `required` unset, an empty body is
/// `None` (no content type needed).
///
/// A body refused for its size is drained (read and discarded, up to twice the cap in all and
/// for at most [`DRAIN_TIME`]) before the answer, so a client still sending it reads the `413` instead of
/// a connection reset.
pub(crate) async fn json_body(
    headers: &HeaderMap,
    mut body: Incoming,
    limit: usize,
    required: bool,
) -> Result<Option<Value>, Error> {
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
        drain(&mut body, limit.saturating_mul(2)).await;
        return Err(Error::BodyTooLarge { limit });
    }
    let bytes = match Limited::new(&mut body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            drain(&mut body, limit).await;
            return Err(Error::BodyTooLarge { limit });
        }
        Err(_) => return Err(Error::UnreadableBody),
    };
    if !required && bytes.is_empty() {
        return Ok(None);
    }
    if !is_json(headers) {
        return Err(Error::UnsupportedMediaType);
    }
    serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::MalformedJson(e.to_string()))
}

/// Reads and discards up to `budget` bytes of `body` (for at most [`DRAIN_TIME`]). Bodies
/// larger than that are left unread: hyper then closes the connection.
async fn drain(body: &mut Incoming, budget: usize) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut left = budget;
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else { continue };
            match left.checked_sub(data.len()) {
                Some(rest) => left = rest,
                None => break,
            }
        }
    })
    .await;
}

/// The presented token: the `X-Continuation-Token` header when present and non-empty, else
/// the body's `continuationToken` when it is a string. `None` is `missing-token` for the port.
pub(crate) fn presented_token(headers: &HeaderMap, body: Option<&Value>) -> Option<String> {
    let header = headers
        .get(TOKEN_HEADER)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        .filter(|s| !s.is_empty());
    header.or_else(|| body?.get("continuationToken")?.as_str().map(str::to_owned))
}
