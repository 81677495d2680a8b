//! The listening connection: `LISTEN <channel>` on a dedicated connection, notifications
//! fanned out as [`AppendNotice`]s, reconnection with backoff and a [`AppendNotice::Resync`]
//! after every reconnection.

use std::time::Duration;

use arcp_core::{EventSeq, SessionId};
use futures_util::StreamExt as _;
use tokio::sync::{broadcast, mpsc};
use tokio_postgres::{AsyncMessage, Client, Config, Notification};

use crate::store::AppendNotice;

/// The first retry delay after a lost listening connection.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often an idle listening connection is checked (a half-open TCP connection would
/// otherwise go unnoticed).
const PING_EVERY: Duration = Duration::from_secs(15);
/// How long a check may take before the connection is given up.
const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Notifications buffered between the connection task and the fan-out.
const FORWARD_BUFFER: usize = 1024;

/// A connection that is listening: the client (kept alive) and its notifications.
pub(super) struct Listening {
    client: Client,
    notifications: mpsc::Receiver<Notification>,
}

impl Listening {
    /// Connects with `config` and runs `LISTEN "<channel>"`.
    pub(super) async fn open(config: &Config, channel: &str) -> Result<Listening, tokio_postgres::Error> {
        let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
        let (tx, notifications) = mpsc::channel(FORWARD_BUFFER);
        // Drives the connection and forwards its notifications; ends with the connection
        // (dropped client, server gone) or when nobody receives any more.
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if tx.send(n).await.is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %super::describe(&e), "PostgreSQL listening connection failed");
                        break;
                    }
                }
            }
        });
        // The channel name is ours (a fixed prefix plus a checked schema name or a hex
        // digest), so quoting it is enough.
        client.batch_execute(&format!("LISTEN \"{channel}\"")).await?;
        Ok(Listening { client, notifications })
    }

    /// Forwards notifications until the connection is lost.
    async fn pump(mut self, channel: &str, notices: &broadcast::Sender<AppendNotice>) {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            tokio::select! {
                n = self.notifications.recv() => match n {
                    Some(n) if n.channel() == channel => match parse(n.payload()) {
                        // No receiver is not an error: nobody follows appends right now.
                        Some(notice) => { let _ = notices.send(notice); }
                        None => tracing::warn!(payload = n.payload(), "ignoring a malformed append notification"),
                    },
                    Some(_) => {}
                    None => return,
                },
                _ = ping.tick() => {
                    match tokio::time::timeout(PING_TIMEOUT, self.client.simple_query("SELECT 1")).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::warn!(error = %super::describe(&e), "PostgreSQL listening connection check failed");
                            return;
                        }
                        Err(_) => {
                            tracing::warn!("PostgreSQL listening connection check timed out");
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// The listening task: pumps `first`, then reconnects forever (with backoff), sending
/// [`AppendNotice::Resync`] after each reconnection. Aborted when the store is dropped.
pub(super) async fn run(config: Config, channel: String, notices: broadcast::Sender<AppendNotice>, first: Listening) {
    let mut current = Some(first);
    let mut backoff = BACKOFF_MIN;
    loop {
        let listening = match current.take() {
            Some(l) => l,
            None => match Listening::open(&config, &channel).await {
                Ok(l) => {
                    tracing::info!(channel, "PostgreSQL listening connection restored");
                    backoff = BACKOFF_MIN;
                    let _ = notices.send(AppendNotice::Resync);
                    l
                }
                Err(e) => {
                    tracing::warn!(error = %super::describe(&e), ?backoff, "cannot reopen the PostgreSQL listening connection");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        listening.pump(&channel, &notices).await;
        tracing::warn!(channel, "PostgreSQL listening connection lost; reconnecting");
    }
}

/// Parses `'<session_id> <seq>'` (a session id may contain spaces; the seq never does).
fn parse(payload: &str) -> Option<AppendNotice> {
    let (session, seq) = payload.rsplit_once(' ')?;
    let session = SessionId::parse(session).ok()?;
    let seq = EventSeq::new(seq.parse().ok()?)?;
    Some(AppendNotice::Appended { session, seq })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse() {
        assert_eq!(
            parse("sess a 42"),
            Some(AppendNotice::Appended {
                session: SessionId::parse("sess a").unwrap(),
                seq: EventSeq::new(42).unwrap()
            })
        );
        for bad in ["", "nospace", "s -1", "s x", " 3", "s 99999999999999999999"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
