//! What [`Client::list_jobs`](crate::Client::list_jobs) returns: a `session.jobs` page (§6.6)
//! read with the tolerance a client owes to runtimes that leave fields out.
//!
//! `arcp-core`'s [`SessionJobs`] is strict (it is also what our runtime sends): every entry
//! has `lease`, `created_at` and `last_event_seq`. A client lists jobs to find them, and the
//! Python reference runtime 1.1.3 sends entries without `lease` and `last_event_seq` and with
//! the acceptance time under `submitted_at` (spec/interop.md P-16). So the client reads a
//! page into [`JobsPage`], whose [`ListedJob`] has `lease` and `last_event_seq` as `Option`
//! and records each tolerated omission in [`ListedJob::deviations`].
//!
//! Only those three omissions are tolerated, and only as *absent* keys: the page is repaired
//! by filling exactly those keys (`created_at` from `submitted_at`, placeholders for the
//! other two) and then decoded by the strict decoder, so everything else is still checked
//! (the envelope, `request_id`, `jobs` being an array of objects, ids, statuses, timestamps,
//! a present-but-invalid `lease`…). A page that is still invalid is a
//! [`ClientError::Protocol`](crate::ClientError::Protocol).

use std::fmt;

use arcp_core::decode::DecodeOptions;
use arcp_core::message::{JobListEntry, JobStatus, LeaseMap, Message, SessionJobs};
use arcp_core::{EventSeq, JobId, MessageId, Timestamp, TraceId};
use serde_json::{Value, json};

/// A field of a `session.jobs` entry the runtime left out (or named differently), which the
/// client tolerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ListingDeviation {
    /// No `created_at`; the acceptance time was read from `submitted_at`.
    SubmittedAtForCreatedAt,
    /// No `lease`: [`ListedJob::lease`] is `None`.
    NoLease,
    /// No `last_event_seq`: [`ListedJob::last_event_seq`] is `None`.
    NoLastEventSeq,
}

impl fmt::Display for ListingDeviation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListingDeviation::SubmittedAtForCreatedAt => "created_at sent as submitted_at",
            ListingDeviation::NoLease => "no lease",
            ListingDeviation::NoLastEventSeq => "no last_event_seq",
        })
    }
}

/// One job of a listing (a `session.jobs` entry, §6.6).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListedJob {
    /// The job.
    pub job_id: JobId,
    /// `name@version`, or the bare name of an unversioned agent.
    pub agent: String,
    /// Its state.
    pub status: JobStatus,
    /// Its effective lease; `None` if the runtime did not send one.
    pub lease: Option<LeaseMap>,
    /// The delegating job, if any.
    pub parent_job_id: Option<JobId>,
    /// When it was accepted (`created_at`, or `submitted_at` from runtimes that use that name).
    pub created_at: Timestamp,
    /// Its trace id, if sent.
    pub trace_id: Option<TraceId>,
    /// Its newest `event_seq` in the submitting session; `None` if the runtime did not send it.
    pub last_event_seq: Option<EventSeq>,
    /// What the runtime left out of this entry (empty for a spec-conformant entry).
    pub deviations: Vec<ListingDeviation>,
}

impl ListedJob {
    fn from_entry(entry: JobListEntry, deviations: Vec<ListingDeviation>) -> ListedJob {
        let missing = |d| deviations.contains(&d);
        ListedJob {
            lease: (!missing(ListingDeviation::NoLease)).then_some(entry.lease),
            last_event_seq: (!missing(ListingDeviation::NoLastEventSeq)).then_some(entry.last_event_seq),
            job_id: entry.job_id,
            agent: entry.agent,
            status: entry.status,
            parent_job_id: entry.parent_job_id,
            created_at: entry.created_at,
            trace_id: entry.trace_id,
            deviations,
        }
    }
}

/// One page of a listing: the answer to one [`Client::list_jobs`](crate::Client::list_jobs).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobsPage {
    /// The `id` of the `session.list_jobs` envelope this page answers.
    pub request_id: MessageId,
    /// The jobs, oldest first.
    pub jobs: Vec<ListedJob>,
    /// The cursor of the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl JobsPage {
    /// A strictly valid page (nothing tolerated).
    pub(crate) fn strict(page: SessionJobs) -> JobsPage {
        Self::with_deviations(page, Vec::new())
    }

    fn with_deviations(page: SessionJobs, mut deviations: Vec<Vec<ListingDeviation>>) -> JobsPage {
        deviations.resize(page.jobs.len(), Vec::new());
        let jobs = page.jobs.into_iter().zip(deviations).map(|(e, d)| ListedJob::from_entry(e, d)).collect();
        JobsPage { request_id: page.request_id, jobs, next_cursor: page.next_cursor }
    }

    /// Every kind of omission tolerated on this page, each once, in first-seen order (empty
    /// for a spec-conformant page).
    pub fn deviations(&self) -> Vec<ListingDeviation> {
        let mut out: Vec<ListingDeviation> = Vec::new();
        for d in self.jobs.iter().flat_map(|j| &j.deviations) {
            if !out.contains(d) {
                out.push(*d);
            }
        }
        out
    }

    /// Reads a `session.jobs` frame the strict decoder refused, tolerating only the absent
    /// fields of [`ListingDeviation`]. `None` if nothing was tolerable or the repaired frame
    /// is still invalid: the strict decoder's refusal then stands.
    pub(crate) fn tolerant(frame: &Value, options: &DecodeOptions) -> Option<JobsPage> {
        let mut repaired = frame.clone();
        let entries = repaired.get_mut("payload")?.get_mut("jobs")?.as_array_mut()?;
        let mut deviations = Vec::with_capacity(entries.len());
        for entry in entries.iter_mut() {
            let fields = entry.as_object_mut()?;
            let mut found = Vec::new();
            if !fields.contains_key("created_at")
                && let Some(at) = fields.get("submitted_at").cloned()
            {
                fields.insert("created_at".to_owned(), at);
                found.push(ListingDeviation::SubmittedAtForCreatedAt);
            }
            if !fields.contains_key("lease") {
                fields.insert("lease".to_owned(), json!({}));
                found.push(ListingDeviation::NoLease);
            }
            if !fields.contains_key("last_event_seq") {
                fields.insert("last_event_seq".to_owned(), json!(0));
                found.push(ListingDeviation::NoLastEventSeq);
            }
            deviations.push(found);
        }
        if deviations.iter().all(Vec::is_empty) {
            return None;
        }
        let envelope = arcp_core::decode::decode_str(&repaired.to_string(), options).ok()?;
        match envelope.message {
            Message::SessionJobs(page) => Some(Self::with_deviations(page, deviations)),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn frame(jobs: Value) -> Value {
        json!({"arcp": "1.1", "id": "01M84M5JC0NT9HK4XT1A439TTY", "type": "session.jobs", "session_id": "sess_1",
               "payload": {"request_id": "msg_1", "jobs": jobs, "next_cursor": "1"}})
    }

    fn read(jobs: Value) -> Option<JobsPage> {
        JobsPage::tolerant(&frame(jobs), &DecodeOptions::default())
    }

    #[test]
    fn the_python_reference_page_is_read_with_its_deviations() {
        // As sent by agentruntimecontrolprotocol 1.1.3 (spec/interop.md P-16).
        let page = read(json!([{"job_id": "job_01M84M5J2FRYE9GNGRWASZ3TWF", "agent": "echo", "status": "success",
                                "submitted_at": "2026-11-23T16:35:01.327348Z"}]))
        .unwrap();
        assert_eq!(page.request_id.as_str(), "msg_1");
        assert_eq!(page.next_cursor.as_deref(), Some("1"));
        let job = &page.jobs[0];
        assert_eq!(
            (job.job_id.as_str(), job.agent.as_str(), job.status),
            ("job_01M84M5J2FRYE9GNGRWASZ3TWF", "echo", JobStatus::Success)
        );
        assert_eq!(job.created_at, Timestamp::parse("2026-11-23T16:35:01.327348Z").unwrap());
        assert_eq!((job.lease.as_ref(), job.last_event_seq, job.parent_job_id.as_ref()), (None, None, None));
        assert_eq!(
            page.deviations(),
            vec![
                ListingDeviation::SubmittedAtForCreatedAt,
                ListingDeviation::NoLease,
                ListingDeviation::NoLastEventSeq
            ]
        );
    }

    #[test]
    fn only_absent_fields_are_tolerated() {
        let ok = json!({"job_id": "job_1", "agent": "echo", "status": "running", "created_at": "2026-11-23T16:35:01Z",
                        "lease": {"fs.read": ["/tmp/**"]}});
        let page = read(json!([ok])).unwrap();
        assert_eq!(page.jobs[0].deviations, vec![ListingDeviation::NoLastEventSeq]);
        assert!(page.jobs[0].lease.is_some());
        // Still invalid after the repair: the strict refusal stands.
        let bad_entries = [
            json!({"agent": "echo", "status": "success", "submitted_at": "2026-11-23T16:35:01Z"}),
            json!({"job_id": "job_1", "agent": "echo", "status": "finished", "submitted_at": "2026-11-23T16:35:01Z"}),
            json!({"job_id": "job_1", "agent": "echo", "status": "success"}),
            json!({"job_id": "job_1", "agent": "echo", "status": "success", "submitted_at": "yesterday"}),
            json!({"job_id": "job_1", "agent": "echo", "status": "success", "submitted_at": "2026-11-23T16:35:01Z",
                   "lease": "all of it"}),
            json!({"job_id": "job_1", "agent": "echo", "status": "success", "submitted_at": "2026-11-23T16:35:01Z",
                   "last_event_seq": -1}),
            json!("job_1"),
        ];
        for entry in bad_entries {
            assert_eq!(read(json!([entry.clone()])), None, "{entry}");
        }
        // A page that is not one: nothing to tolerate.
        for payload in [json!({"request_id": "msg_1"}), json!({"request_id": "msg_1", "jobs": {}}), json!([])] {
            let mut f = frame(json!([]));
            f["payload"] = payload.clone();
            assert_eq!(JobsPage::tolerant(&f, &DecodeOptions::default()), None, "{payload}");
        }
        // Nothing missing: not this function's business (the strict decoder refused it).
        assert_eq!(
            read(
                json!([{"job_id": "job_1", "agent": "echo", "status": "success", "created_at": "2026-11-23T16:35:01Z",
                         "lease": {}, "last_event_seq": 3, "parent_job_id": 7}])
            ),
            None
        );
    }
}
