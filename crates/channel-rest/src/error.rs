//! The crate's [`Error`]: every way a request can fail, with its HTTP status and stable reason.

use channel_core::Refusal;
use http::StatusCode;

/// Why a request was not answered with `200`. Each variant maps to one status code and one
/// stable machine-readable reason ([`Error::status`], [`Error::reason`]); the response body is
/// always `{"error": "<human message>", "reason": "<reason>"}`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The channel refused or failed the request: refusals (`unknown-session` 404,
    /// `missing-token` 400, `stale-token` 409, `in-flight` 409), `invalid-body` 400,
    /// `turn-failed` 500, `store-failure` 503, `entropy-unavailable` 500.
    #[error(transparent)]
    Channel(#[from] channel_core::Error),
    /// The request body is not JSON (`400 malformed-json`).
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// The request body could not be read (the client went away or sent a broken body;
    /// `400 unreadable-body`).
    #[error("the request body could not be read")]
    UnreadableBody,
    /// The request body is not `application/json` (`415 unsupported-media-type`).
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// The request body is over [`RestConfig::max_body_bytes`](crate::RestConfig) (`413
    /// body-too-large`).
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// No or failed authentication (`401 unauthorized`).
    #[error("authentication required")]
    Unauthorized,
    /// No such route (`404 not-found`).
    #[error("no such route")]
    NotFound,
    /// The route exists but not for this method (`405 method-not-allowed`, with `Allow`).
    #[error("method not allowed; allowed: {allow}")]
    MethodNotAllowed {
        /// The methods the route answers.
        allow: &'static str,
    },
    /// `GET /v1/ws` without WebSocket support or without a valid upgrade request (`426
    /// upgrade-required`, with `Upgrade: websocket`).
    #[error("{0}")]
    UpgradeRequired(&'static str),
    /// A recovery found no completed turn (`404 nothing-to-recover`).
    #[error("the session has no completed turn to recover")]
    NothingToRecover,
    /// The task running the turn ended without a result (it panicked; `500 turn-failed`).
    #[error("the turn ended without a result")]
    TurnLost,
    /// The owner is over its request rate limit (`429 rate-limited`, with `Retry-After`).
    #[error("rate limit exceeded; retry after {retry_after_secs} s")]
    RateLimited {
        /// Whole seconds until a retry can be admitted (`Retry-After`).
        retry_after_secs: u64,
    },
}

impl Error {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Channel(e) => channel_status(e),
            Error::MalformedJson(_) | Error::UnreadableBody => StatusCode::BAD_REQUEST,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::NotFound | Error::NothingToRecover => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::UpgradeRequired(_) => StatusCode::UPGRADE_REQUIRED,
            Error::TurnLost => StatusCode::INTERNAL_SERVER_ERROR,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The stable machine-readable reason (the `reason` field of the error body).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Channel(e) => e.code(),
            Error::MalformedJson(_) => "malformed-json",
            Error::UnreadableBody => "unreadable-body",
            Error::UnsupportedMediaType => "unsupported-media-type",
            Error::BodyTooLarge { .. } => "body-too-large",
            Error::Unauthorized => "unauthorized",
            Error::NotFound => "not-found",
            Error::MethodNotAllowed { .. } => "method-not-allowed",
            Error::UpgradeRequired(_) => "upgrade-required",
            Error::NothingToRecover => "nothing-to-recover",
            Error::TurnLost => "turn-failed",
            Error::RateLimited { .. } => "rate-limited",
        }
    }

    /// The human message shown to the client (the `error` field). Server-side details (a
    /// store backend's message, an entropy failure) are not shown; they are logged.
    pub fn message(&self) -> String {
        match self {
            Error::Channel(e) => channel_message(e),
            other => other.to_string(),
        }
    }
}

fn channel_status(e: &channel_core::Error) -> StatusCode {
    use channel_core::Error as E;
    match e {
        E::Refused(Refusal::UnknownSession) => StatusCode::NOT_FOUND,
        E::Refused(Refusal::MissingToken) | E::InvalidBody(_) => StatusCode::BAD_REQUEST,
        E::Refused(Refusal::StaleToken | Refusal::InFlight) => StatusCode::CONFLICT,
        E::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The client-facing message of a channel error (also the `message` of the in-band `error`
/// event a transport sends when the port did not send one itself).
pub(crate) fn channel_message(e: &channel_core::Error) -> String {
    use channel_core::Error as E;
    match e {
        E::Refused(r) => r.message().to_owned(),
        E::InvalidBody(_) => e.to_string(),
        E::Runner(r) => r.message.clone(),
        E::Store(_) => "the session store is unavailable; try again".to_owned(),
        E::Entropy(_) => "the server could not generate a secure identifier; try again".to_owned(),
    }
}
