//! [`Authenticator`]: who is calling.

use async_trait::async_trait;

/// Who is calling: maps a request's headers to its owner (the principal its channel sessions
/// belong to). `None` refuses the request with `401 unauthorized` (and
/// `WWW-Authenticate: Bearer`). For a WebSocket it runs on the upgrade request, so a refused
/// client never gets a socket.
#[async_trait]
pub trait Authenticator: Send + Sync + 'static {
    /// The principal behind `headers`, or `None` when they do not authenticate one.
    async fn authenticate(&self, headers: &http::HeaderMap) -> Option<String>;
}
