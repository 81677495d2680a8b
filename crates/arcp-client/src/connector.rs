//! [`Connector`]: something that can open a fresh [`Transport`] to the runtime, as often as
//! needed. The client holds a connector rather than a transport because resuming a session
//! needs a *new* connection (§6.3).

use std::future::Future;

use arcp_server::transport::{Transport, TransportError};

/// Opens a new connection to the runtime each time it is called.
///
/// Implemented for any `Fn() -> impl Future<Output = Result<T, TransportError>>` where `T` is
/// a [`Transport`], so a closure is usually enough:
///
/// ```no_run
/// # async fn demo() -> Result<(), arcp_client::ClientError> {
/// use arcp_client::{Client, ClientOptions};
/// use arcp_server::transport::ws;
///
/// let url = "ws://127.0.0.1:7777/arcp".to_owned();
/// let client = Client::connect_with(
///     move || {
///         let url = url.clone();
///         async move { ws::connect(&url, 16 * 1024 * 1024).await }
///     },
///     ClientOptions::default().with_token("my-token"),
/// )
/// .await?;
/// # let _ = client; Ok(()) }
/// ```
pub trait Connector: Send + Sync + 'static {
    /// The transport it opens.
    type Transport: Transport;

    /// Opens a new connection. The client bounds the call with
    /// [`ClientOptions::connect_timeout`](crate::ClientOptions::connect_timeout).
    fn connect(&self) -> impl Future<Output = Result<Self::Transport, TransportError>> + Send;
}

impl<F, Fut, T> Connector for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, TransportError>> + Send,
    T: Transport,
{
    type Transport = T;

    fn connect(&self) -> impl Future<Output = Result<T, TransportError>> + Send {
        self()
    }
}
