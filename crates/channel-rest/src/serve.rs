//! [`serve`]: an HTTP/1.1 accept loop for a [`ChannelService`] with graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::ChannelService;

/// Serves `service` on `listener` (HTTP/1.1 with upgrades, `TCP_NODELAY` on accepted
/// sockets, a 30 s header read timeout) until `shutdown` resolves; then stops accepting,
/// closes WebSocket connections ([`ChannelService::close_websockets`]), lets in-flight
/// requests finish (an SSE stream until its turn ends) and closes idle connections. Returns
/// when every connection is done.
///
/// Requests outside [`ChannelService::handles`] get `404 not-found`. Accept errors (such as
/// running out of file descriptors) are logged and retried after a short pause, so this
/// returns `Ok` unless setting up fails.
///
/// hyper-util's `GracefulShutdown` is not used because it cannot watch an HTTP/1
/// connection with upgrades enabled; the same protocol (signal each connection's
/// `graceful_shutdown`, then wait for all) is done here with a watch channel and a `JoinSet`.
pub async fn serve(
    listener: TcpListener,
    service: ChannelService,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new());
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "could not set TCP_NODELAY");
                }
                let svc = service.clone();
                let handler = service_fn(move |req| {
                    let svc = svc.clone();
                    async move { Ok::<_, Infallible>(svc.handle(req).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), handler).with_upgrades();
                let mut stop = stop_rx.clone();
                conns.spawn(async move {
                    let mut conn = std::pin::pin!(conn);
                    tokio::select! {
                        res = conn.as_mut() => log_conn(res),
                        () = until_true(&mut stop) => {
                            conn.as_mut().graceful_shutdown();
                            log_conn(conn.await);
                        }
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    service.close_websockets();
    stop_tx.send_replace(true);
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// Resolves once `rx` holds `true` (or its sender is gone).
pub(crate) async fn until_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

fn log_conn(res: Result<(), hyper::Error>) {
    if let Err(e) = res {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
