//! Crash recovery (issue 6): jobs that were running when this node died are ended with a
//! durable terminal `job.error {final_status:"error", code:"INTERNAL_ERROR", retryable:true}`
//! appended after every event written before the crash, so a resuming client receives
//! everything and then that error, never a job that stays "running" forever.
//!
//! A job whose terminal envelope reached the log before the crash (but whose record was not
//! updated) is not ended twice: the log is read first and the record is corrected from it.

use std::sync::Arc;

use arcp_core::decode::{DecodeOptions, decode_str};
use arcp_core::message::{ErrorStatus, JobError, JobStatus, Message};
use arcp_core::{Envelope, ErrorCode, ErrorPayload, EventSeq, JobId, ProtocolVersion, SessionId};

use crate::Error;
use crate::runtime::Inner;
use crate::store::{JobRecord, JobUpdate, StoredEvent};

/// What [`Runtime::recover`](crate::Runtime::recover) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Jobs ended with the restart error (they were running when the node died).
    pub orphaned: Vec<JobId>,
    /// Jobs whose terminal envelope was already in the log; only their records were corrected.
    pub already_ended: Vec<JobId>,
}

/// The message a resuming client reads on an orphaned job.
pub(crate) const RESTART_MESSAGE: &str =
    "the runtime restarted while this job was running; every event written before the restart was kept";

/// Ends every unfinished job of `node` (see the module doc).
pub(crate) async fn recover(rt: &Arc<Inner>, node: &str) -> Result<RecoveryReport, Error> {
    let mut report = RecoveryReport::default();
    for record in rt.job_store.unfinished(node).await? {
        if rt.job(&record.job_id).is_some() {
            // Running here and now (recover called on a live runtime): not an orphan.
            continue;
        }
        match find_terminal(rt, &record).await? {
            Some((seq, status, ended)) => {
                let update = JobUpdate { status, last_event_seq: seq, ended_at_millis: Some(ended) };
                rt.job_store.update(&record.job_id, update).await?;
                report.already_ended.push(record.job_id);
            }
            None => {
                end_orphan(rt, &record).await?;
                tracing::warn!(job = %record.job_id, session = %record.session_id, "ended a job orphaned by a restart");
                report.orphaned.push(record.job_id);
            }
        }
    }
    Ok(report)
}

/// Reads `record`'s session log, from the record's last known event on, for the job's
/// terminal envelope: its `event_seq` and message (`job.result` or `job.error`).
pub(crate) async fn terminal_of(rt: &Inner, record: &JobRecord) -> Result<Option<(EventSeq, Message)>, Error> {
    let mut after = EventSeq::new(record.last_event_seq.get().saturating_sub(1)).unwrap_or(EventSeq::ZERO);
    let batch = rt.config.replay_batch.max(1);
    loop {
        let events = rt.events.read_since(&record.session_id, after, batch).await?;
        let Some(last) = events.last() else { return Ok(None) };
        after = last.seq;
        for event in &events {
            if event.job_id != record.job_id {
                continue;
            }
            let Ok(envelope) = decode_str(&event.frame, &DecodeOptions::default()) else { continue };
            if let Message::JobResult(_) | Message::JobError(_) = &envelope.message {
                return Ok(Some((event.seq, envelope.message)));
            }
        }
        if events.len() < batch {
            return Ok(None);
        }
    }
}

/// The record update for a job whose terminal envelope is `message`.
async fn find_terminal(rt: &Inner, record: &JobRecord) -> Result<Option<(EventSeq, JobStatus, u64)>, Error> {
    let now = rt.now_millis();
    Ok(terminal_of(rt, record).await?.map(|(seq, message)| match message {
        Message::JobError(e) => {
            let status = match e.final_status {
                ErrorStatus::Cancelled => JobStatus::Cancelled,
                ErrorStatus::TimedOut => JobStatus::TimedOut,
                _ => JobStatus::Error,
            };
            (seq, status, e.completed_at.map_or(now, |t| millis(&t)))
        }
        Message::JobResult(r) => (seq, JobStatus::Success, r.completed_at.map_or(now, |t| millis(&t))),
        _ => (seq, JobStatus::Error, now),
    }))
}

/// The protocol literal the session's client used, read off its newest event (`"1.1"` when
/// the log is empty).
async fn session_version(rt: &Inner, session: &SessionId, newest: EventSeq) -> ProtocolVersion {
    let before = EventSeq::new(newest.get().saturating_sub(1)).unwrap_or(EventSeq::ZERO);
    match rt.events.read_since(session, before, 1).await {
        Ok(events) => events
            .first()
            .and_then(|e| serde_json::from_str::<serde_json::Value>(&e.frame).ok())
            .and_then(|v| v.get("arcp").and_then(|a| a.as_str()).and_then(|a| ProtocolVersion::parse(a).ok()))
            .unwrap_or(ProtocolVersion::V1_1),
        Err(_) => ProtocolVersion::V1_1,
    }
}

/// Appends the restart error after the newest event of the job's session (retrying on a
/// sequence conflict: on a shared store another node may append meanwhile) and marks the
/// record ended.
async fn end_orphan(rt: &Inner, record: &JobRecord) -> Result<(), Error> {
    let now = rt.now_millis();
    let mut attempts = 0;
    loop {
        let newest = rt.events.bounds(&record.session_id).await?.map_or(EventSeq::ZERO, |b| b.newest);
        let seq =
            newest.next().ok_or_else(|| Error::refused(ErrorCode::INTERNAL_ERROR, "event_seq space exhausted"))?;
        let version = session_version(rt, &record.session_id, newest).await;
        let error = ErrorPayload::new(ErrorCode::INTERNAL_ERROR, RESTART_MESSAGE)
            .with_details(serde_json::json!({ "reason": "runtime_restarted", "node": record.node }));
        let message = Message::JobError(JobError::new(ErrorStatus::Error, error).completed_at(rt.now_timestamp()));
        let mut envelope = Envelope::new(version, rt.mint_message_id()?, message)
            .with_session(record.session_id.clone())
            .with_job(record.job_id.clone());
        envelope.trace_id = record.trace_id.clone();
        envelope.event_seq = Some(seq);
        let frame: Arc<str> = Arc::from(envelope.to_json());
        let stored = StoredEvent { seq, job_id: record.job_id.clone(), frame };
        match rt.events.append(&record.session_id, stored).await {
            Ok(()) => {
                let update = JobUpdate { status: JobStatus::Error, last_event_seq: seq, ended_at_millis: Some(now) };
                rt.job_store.update(&record.job_id, update).await?;
                return Ok(());
            }
            Err(crate::store::StoreError::Conflict(_)) if attempts < 8 => attempts += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

fn millis(t: &arcp_core::Timestamp) -> u64 {
    u64::try_from(t.unix_millis()).unwrap_or(0)
}
