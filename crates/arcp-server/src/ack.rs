//! Acknowledgement and back-pressure (§6.5, feature `ack`): the pure per-session state.
//!
//! [`AckState`] keeps the running maximum of `session.ack.last_processed_seq` and the
//! back-pressure trigger; [`LiveJobs`] remembers, in start order, the jobs of a session that
//! are running, so a back-pressure `status` event can be attached to the most recently
//! started one. Both live inside the session's emit lock (`session.rs`), so they see every
//! sequence-bearing envelope in order and never race with a replay.
//!
//! Rules (see `spec/arcp.md` §6.5):
//! - an ack at or below the running maximum is ignored (acks never go backwards);
//! - an ack above the newest issued `event_seq` is ignored entirely (not clamped): the client
//!   cannot have processed an event that does not exist;
//! - when `newest − acked` exceeds the threshold, one back-pressure event is sent; the trigger
//!   re-arms once an ack brings the lag back to half the threshold or less.

use arcp_core::message::Message;
use arcp_core::{EventSeq, JobId, TraceId};

/// What an inbound ack did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckOutcome {
    /// The running maximum moved to this seq: events at or below it may be freed.
    Advanced(EventSeq),
    /// At or below the running maximum: nothing changes.
    Stale,
    /// Above the newest issued seq: ignored.
    Beyond,
}

/// The acknowledged position of one session and its back-pressure trigger.
#[derive(Debug, Default)]
pub(crate) struct AckState {
    /// The running maximum of the acks (0: nothing acknowledged).
    acked: u64,
    /// Whether a back-pressure event was sent and the lag has not yet fallen back.
    fired: bool,
}

impl AckState {
    /// The highest acknowledged seq (0 if none).
    pub(crate) fn acked(&self) -> u64 {
        self.acked
    }

    /// Records `seq` given the newest issued seq; re-arms back-pressure when the lag fell to
    /// `threshold / 2` or less.
    pub(crate) fn record(&mut self, seq: EventSeq, newest: EventSeq, threshold: u64) -> AckOutcome {
        if seq > newest {
            return AckOutcome::Beyond;
        }
        if seq.get() <= self.acked {
            return AckOutcome::Stale;
        }
        self.acked = seq.get();
        if self.fired && newest.get().saturating_sub(self.acked) <= threshold / 2 {
            self.fired = false;
        }
        AckOutcome::Advanced(seq)
    }

    /// After `newest` was issued: `Some(lag)` if a back-pressure event is due now (the trigger
    /// then stays fired until re-armed). A `threshold` of 0 disables back-pressure.
    pub(crate) fn back_pressure_due(&mut self, newest: EventSeq, threshold: u64) -> Option<u64> {
        let lag = newest.get().saturating_sub(self.acked);
        if threshold == 0 || self.fired || lag <= threshold {
            return None;
        }
        self.fired = true;
        Some(lag)
    }
}

/// At most this many running jobs are remembered per session (far above the concurrency
/// cap; keeps memory bounded even if a terminal envelope could not be persisted).
const MAX_LIVE: usize = 4096;

/// The running jobs of a session, oldest first, as seen in its event stream.
#[derive(Debug, Default)]
pub(crate) struct LiveJobs(Vec<(JobId, Option<TraceId>)>);

impl LiveJobs {
    /// Updates the list with an envelope just persisted for `job_id`: a `status running`
    /// event starts a job, a terminal envelope ends it. Request errors (a `job.error` with
    /// `details.request_id`) do not end the job they name.
    pub(crate) fn observe(&mut self, job_id: &JobId, trace_id: Option<&TraceId>, message: &Message) {
        match message {
            Message::JobEvent(e) => {
                if let arcp_core::event::EventBody::Status(s) = &e.body
                    && s.phase == "running"
                    && !self.0.iter().any(|(j, _)| j == job_id)
                {
                    if self.0.len() >= MAX_LIVE {
                        self.0.remove(0);
                    }
                    self.0.push((job_id.clone(), trace_id.cloned()));
                }
            }
            Message::JobResult(_) => self.end(job_id),
            Message::JobError(e) => {
                let request_error = e.details.as_ref().is_some_and(|d| d.get("request_id").is_some());
                if !request_error {
                    self.end(job_id);
                }
            }
            _ => {}
        }
    }

    fn end(&mut self, job_id: &JobId) {
        self.0.retain(|(j, _)| j != job_id);
    }

    /// The most recently started job that is still running.
    pub(crate) fn newest(&self) -> Option<(JobId, Option<TraceId>)> {
        self.0.last().cloned()
    }

    /// Forgets every job (the session was terminated).
    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(n: u64) -> EventSeq {
        EventSeq::new(n).unwrap_or(EventSeq::ZERO)
    }

    #[test]
    fn acks_keep_the_running_maximum_and_ignore_the_impossible() {
        let mut a = AckState::default();
        assert_eq!(a.record(seq(5), seq(10), 1000), AckOutcome::Advanced(seq(5)));
        assert_eq!(a.record(seq(3), seq(10), 1000), AckOutcome::Stale);
        assert_eq!(a.record(seq(5), seq(10), 1000), AckOutcome::Stale);
        assert_eq!(a.record(seq(11), seq(10), 1000), AckOutcome::Beyond);
        assert_eq!(a.acked(), 5);
        assert_eq!(a.record(seq(10), seq(10), 1000), AckOutcome::Advanced(seq(10)));
    }

    #[test]
    fn back_pressure_fires_once_and_rearms_at_half_the_threshold() {
        let mut a = AckState::default();
        assert_eq!(a.back_pressure_due(seq(10), 10), None);
        assert_eq!(a.back_pressure_due(seq(11), 10), Some(11));
        assert_eq!(a.back_pressure_due(seq(30), 10), None, "sent once");
        a.record(seq(24), seq(30), 10);
        assert_eq!(a.back_pressure_due(seq(41), 10), None, "lag 6 > 5 did not re-arm");
        a.record(seq(36), seq(41), 10);
        assert_eq!(a.back_pressure_due(seq(47), 10), Some(11), "re-armed at lag 5");
        assert_eq!(AckState::default().back_pressure_due(seq(1_000_000), 0), None, "0 disables");
    }
}
