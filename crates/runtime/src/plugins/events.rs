//! `session.events`: the job lifecycle feed (`arcp_server::Runtime::lifecycle`) forwarded
//! into the plugin host's own bounded broadcast channel (so plugins can subscribe during
//! `init`, before the runtime exists), and the [`SessionEvents`] surface handing out
//! [`EventStream`]s that end when the context is revoked.

use arcp_server::JobLifecycle;
use plugin_api::Capability;
use tokio::sync::broadcast;

use super::PluginError;
use super::context::PluginContext;

/// Why [`EventStream::recv`] returned no event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventsError {
    /// The subscriber fell behind and lost this many events (the stream continues).
    #[error("lagged: {0} lifecycle events were lost")]
    Lagged(u64),
    /// The context was revoked or the feed closed: the stream is over.
    #[error("the lifecycle stream ended")]
    Ended,
}

/// The `session.events` surface.
#[derive(Debug)]
pub struct SessionEvents<'a> {
    pub(crate) ctx: &'a PluginContext,
}

impl SessionEvents<'_> {
    /// A stream of the lifecycle events sent from now on.
    pub fn subscribe(&self) -> Result<EventStream, PluginError> {
        self.ctx.check(Capability::SessionEvents)?;
        Ok(EventStream { rx: self.ctx.inner.shared.lifecycle.subscribe(), ctx: self.ctx.clone() })
    }
}

/// A plugin's subscription to the lifecycle feed.
#[derive(Debug)]
pub struct EventStream {
    rx: broadcast::Receiver<JobLifecycle>,
    ctx: PluginContext,
}

impl EventStream {
    /// The next event; [`EventsError::Ended`] once the context is revoked.
    pub async fn recv(&mut self) -> Result<JobLifecycle, EventsError> {
        if self.ctx.is_revoked() {
            return Err(EventsError::Ended);
        }
        tokio::select! {
            () = self.ctx.inner.revoked.cancelled() => Err(EventsError::Ended),
            r = self.rx.recv() => match r {
                Ok(e) => Ok(e),
                Err(broadcast::error::RecvError::Lagged(n)) => Err(EventsError::Lagged(n)),
                Err(broadcast::error::RecvError::Closed) => Err(EventsError::Ended),
            },
        }
    }
}
