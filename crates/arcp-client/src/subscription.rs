//! [`Subscription`]: a job observed through `job.subscribe` (§7.6): its authority descriptor,
//! its event stream (history first, then live) and its outcome. Observation only: a
//! subscription cannot cancel the job.

use std::sync::Arc;

use arcp_core::JobId;
use arcp_core::message::JobSubscribed;
use tokio::sync::{mpsc, watch};

use crate::client::Shared;
use crate::driver::{Command, SubscriptionParts};
use crate::error::ClientError;
use crate::job::{JobEvents, JobOutcome, ResultCell, wait_result};

/// A subscription to a job (see [`Client::subscribe`](crate::Client::subscribe)).
pub struct Subscription {
    subscribed: JobSubscribed,
    events: Option<JobEvents>,
    result: watch::Receiver<ResultCell>,
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("job_id", &self.subscribed.job_id).finish_non_exhaustive()
    }
}

impl Subscription {
    pub(crate) fn new(parts: SubscriptionParts, commands: mpsc::UnboundedSender<Command>, shared: Arc<Shared>) -> Self {
        Subscription {
            subscribed: parts.subscribed,
            events: Some(parts.events),
            result: parts.result,
            commands,
            shared,
        }
    }

    /// The job's id.
    pub fn job_id(&self) -> &JobId {
        &self.subscribed.job_id
    }

    /// The `job.subscribed` descriptor: status, agent, lease, current budget, where live
    /// events start (`subscribed_from`) and whether history was replayed.
    pub fn subscribed(&self) -> &JobSubscribed {
        &self.subscribed
    }

    /// The job's events: the replayed history, then live events, ending after the terminal
    /// envelope (or with an `Err` if the subscription or the session ended). Taken once.
    pub fn events(&mut self) -> JobEvents {
        self.events.take().unwrap_or_else(JobEvents::empty)
    }

    /// Waits for the job's end as this subscription saw it (as [`JobHandle::result`](crate::JobHandle::result)).
    /// After [`unsubscribe`](Self::unsubscribe) it is [`ClientError::Closed`].
    pub async fn result(&self) -> Result<JobOutcome, ClientError> {
        wait_result(&self.result, &self.shared).await
    }

    /// Ends the subscription (`job.unsubscribe`); the job goes on.
    pub fn unsubscribe(&self) -> Result<(), ClientError> {
        self.commands
            .send(Command::Unsubscribe { job_id: self.subscribed.job_id.clone() })
            .map_err(|_| self.shared.failure())
    }
}
