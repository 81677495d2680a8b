//! What the client commands print, as pure functions: the NDJSON lines of `--json`, the
//! one-line human descriptions of events, and the reading of a `progress` body into a
//! [`Meter`] (what the progress bar, or the line printed instead of it, shows).

use std::fmt::Write as _;

use arcp_client::ReceivedEvent;
use arcp_core::event::{EventBody, JobEvent, Progress};
use arcp_core::message::{ErrorStatus, JobAccepted, JobError, JobResult, JobSubscribed};
use arcp_core::{ErrorPayload, JobId};
use serde_json::{Value, json};

/// An NDJSON line's object: `{"type", "job_id"?, "event_seq"?, "payload"}`, the wire fields of
/// the envelope that carried `payload` (payload verbatim as the wire JSON).
fn line(ty: &str, job_id: Option<&JobId>, event_seq: Option<u64>, payload: Value) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("type".to_owned(), json!(ty));
    if let Some(job) = job_id {
        out.insert("job_id".to_owned(), json!(job.as_str()));
    }
    if let Some(seq) = event_seq {
        out.insert("event_seq".to_owned(), json!(seq));
    }
    out.insert("payload".to_owned(), payload);
    Value::Object(out)
}

fn to_value(payload: &impl serde::Serialize) -> Value {
    // These payload types serialize to JSON without fail (string keys, no non-finite floats:
    // they came from JSON); a null would still be a valid line.
    serde_json::to_value(payload).unwrap_or(Value::Null)
}

/// `{"type":"job.accepted","job_id",payload}`.
pub(crate) fn json_accepted(accepted: &JobAccepted) -> Value {
    line("job.accepted", Some(&accepted.job_id), None, to_value(accepted))
}

/// `{"type":"job.subscribed","job_id",payload}`.
pub(crate) fn json_subscribed(subscribed: &JobSubscribed) -> Value {
    line("job.subscribed", Some(&subscribed.job_id), None, to_value(subscribed))
}

/// `{"type":"job.event","job_id","event_seq",payload:{kind,ts,body}}`.
pub(crate) fn json_event(job_id: &JobId, event: &ReceivedEvent) -> Value {
    line("job.event", Some(job_id), Some(event.event_seq.get()), to_value(&event.event))
}

/// `{"type":"job.result","job_id",payload}`.
pub(crate) fn json_result(job_id: &JobId, result: &JobResult) -> Value {
    line("job.result", Some(job_id), None, to_value(result))
}

/// `{"type":"job.error","job_id"?,payload:{final_status,code,message,retryable,details?}}`. A
/// refused submit has no `job_id` here (the runtime names a fresh one nobody can use).
pub(crate) fn json_error(job_id: Option<&JobId>, status: ErrorStatus, error: &ErrorPayload) -> Value {
    line("job.error", job_id, None, to_value(&JobError::new(status, error.clone())))
}

/// How far a job is, as one `progress` body says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Meter {
    /// Whole numbers: `current` of `total` (if known) items.
    Count {
        /// How many are done.
        current: u64,
        /// How many in all.
        total: Option<u64>,
    },
    /// A fraction of a known total (non-integer `current` or `total`), in thousandths.
    Permille(u64),
    /// Something a bar cannot show (negative, or fractional without a total): the raw number.
    Raw(String),
}

impl Meter {
    /// Reads `current` and `total`. A `current` beyond `total` is shown as complete.
    pub(crate) fn of(p: &Progress) -> Meter {
        let total = p.total.as_ref();
        // `Some(None)`: no total; `None`: a total that is not a whole number.
        let whole_total = match total {
            None => Some(None),
            Some(t) => t.as_u64().map(Some),
        };
        if let (Some(current), Some(total)) = (p.current.as_u64(), whole_total) {
            return Meter::Count { current: total.map_or(current, |t| current.min(t)), total };
        }
        if let (Some(current), Some(total)) = (p.current.as_f64(), total.and_then(serde_json::Number::as_f64))
            && current >= 0.0
            && total > 0.0
        {
            let fraction = (current / total).clamp(0.0, 1.0);
            // In 0..=1000 after the clamp, so the cast is exact enough and cannot wrap.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            return Meter::Permille((fraction * 1000.0).round() as u64);
        }
        Meter::Raw(p.current.to_string())
    }

    /// The numbers as text: `3/50 (6%)`, `3`, `37.5%`, or the raw number.
    pub(crate) fn text(&self) -> String {
        match self {
            Meter::Count { current, total: Some(total) } => {
                let percent = if *total == 0 { 100 } else { current.saturating_mul(100) / total };
                format!("{current}/{total} ({percent}%)")
            }
            Meter::Count { current, total: None } => current.to_string(),
            Meter::Permille(p) => format!("{}.{}%", p / 10, p % 10),
            Meter::Raw(raw) => raw.clone(),
        }
    }
}

/// The words that go with a `progress` meter: its units and its message.
pub(crate) fn progress_label(p: &Progress) -> String {
    let parts: Vec<String> = [p.units.as_deref(), p.message.as_deref()].into_iter().flatten().map(clean).collect();
    parts.join(" ")
}

/// The line printed for a `progress` event when no bar is drawn: `3/50 (6%) items working`.
pub(crate) fn progress_line(p: &Progress) -> String {
    let label = progress_label(p);
    let meter = Meter::of(p).text();
    if label.is_empty() { meter } else { format!("{meter} {label}") }
}

/// The width of the kind column of event lines.
const KIND_WIDTH: usize = 11;

/// One event as one human line: the kind, then what it says. Text from the runtime is
/// [`clean`]ed, so an agent cannot drive the terminal.
pub(crate) fn describe(event: &JobEvent) -> String {
    let kind = clean(event.body.kind());
    let what = match &event.body {
        EventBody::Log(log) => {
            let level = to_value(&log.level);
            let mut s = format!("{}: {}", level.as_str().unwrap_or("?"), clean(&log.message));
            if let Some(attributes) = &log.attributes {
                let _ = write!(s, " {}", compact(&Value::Object(attributes.clone())));
            }
            s
        }
        EventBody::Thought(t) => clean(&t.text),
        EventBody::ToolCall(call) => {
            let mut s = format!("{} [{}]", clean(&call.tool), clean(&call.call_id));
            if let Some(args) = &call.args {
                let _ = write!(s, " {}", compact(args));
            }
            s
        }
        EventBody::ToolResult(r) => match (&r.error, &r.result) {
            (Some(e), _) => {
                format!("[{}] failed: {}: {}", clean(&r.call_id), clean(e.code.as_str()), clean(&e.message))
            }
            (None, Some(v)) => format!("[{}] {}", clean(&r.call_id), compact(v)),
            (None, None) => format!("[{}] done", clean(&r.call_id)),
        },
        EventBody::Status(s) => match &s.message {
            Some(m) => format!("{}: {}", clean(&s.phase), clean(m)),
            None => clean(&s.phase),
        },
        EventBody::Metric(m) => {
            let mut s = format!("{} = {}", clean(&m.name), m.value);
            if let Some(unit) = &m.unit {
                let _ = write!(s, " {}", clean(unit));
            }
            if let Some(d) = &m.dimensions {
                let _ = write!(s, " {}", compact(&Value::Object(d.clone())));
            }
            s
        }
        EventBody::ArtifactRef(a) => {
            let mut s = format!("{} ({}", clean(&a.uri), clean(&a.content_type));
            if let Some(n) = a.byte_size {
                let _ = write!(s, ", {n} bytes");
            }
            s.push(')');
            s
        }
        EventBody::Delegate(d) => format!("[{}] to {} {}", clean(&d.delegate_id), clean(&d.agent), compact(&d.input)),
        EventBody::Progress(p) => progress_line(p),
        EventBody::ResultChunk(c) => format!(
            "{} #{} ({} chars{})",
            clean(&c.result_id),
            c.chunk_seq,
            c.data.len(),
            if c.more { ", more follow" } else { ", last" }
        ),
        EventBody::Vendor { body, .. } | EventBody::Unknown { body, .. } => compact(body),
        // A kind added to arcp-core later: its wire JSON.
        #[allow(unreachable_patterns)]
        _ => compact(&to_value(event).get("body").cloned().unwrap_or(Value::Null)),
    };
    format!("{kind:<KIND_WIDTH$} {what}")
}

/// `value` as one line of JSON, [`clean`]ed.
fn compact(value: &Value) -> String {
    clean(&value.to_string())
}

/// `s` with every control character (escape sequences, carriage returns, newlines…) written
/// as a visible escape, so what the runtime sends cannot move the cursor or recolour the
/// terminal.
pub(crate) fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The result of a successful job for humans: the inline result as indented JSON, or where a
/// streamed result went. Control characters inside strings are escaped by the JSON encoding.
pub(crate) fn describe_result(result: &JobResult) -> String {
    let mut out = String::new();
    if let Some(summary) = &result.summary {
        let _ = writeln!(out, "summary: {}", clean(summary));
    }
    match (&result.result, &result.result_id) {
        (Some(v), _) => out.push_str(&serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())),
        (None, Some(id)) => {
            let _ = write!(out, "(streamed as result_chunk events of result {}", clean(id));
            if let Some(n) = result.result_size {
                let _ = write!(out, ", {n} bytes");
            }
            out.push(')');
        }
        (None, None) => out.push_str("(no result)"),
    }
    out
}

/// A job error for humans: `CODE: message`, then its details as indented JSON.
pub(crate) fn describe_error(error: &ErrorPayload) -> String {
    let mut out = format!("{}: {}", clean(error.code.as_str()), clean(&error.message));
    if let Some(details) = &error.details {
        let pretty = serde_json::to_string_pretty(details).unwrap_or_else(|_| details.to_string());
        let _ = write!(out, "\ndetails: {pretty}");
    }
    out
}

#[cfg(test)]
mod tests {
    use arcp_core::event::{Log, LogLevel, Status};
    use arcp_core::{EventSeq, Timestamp};

    use super::*;

    fn progress(current: Value, total: Option<Value>) -> Progress {
        let mut body = json!({"current": current});
        if let Some(t) = total {
            body["total"] = t;
        }
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn whole_numbers_are_counts() {
        let m = Meter::of(&progress(json!(3), Some(json!(50))));
        assert_eq!(m, Meter::Count { current: 3, total: Some(50) });
        assert_eq!(m.text(), "3/50 (6%)");
        assert_eq!(Meter::of(&progress(json!(50), Some(json!(50)))).text(), "50/50 (100%)");
        assert_eq!(Meter::of(&progress(json!(7), None)), Meter::Count { current: 7, total: None });
        assert_eq!(Meter::of(&progress(json!(7), None)).text(), "7");
        // Beyond the total: shown complete, never more than 100 %.
        assert_eq!(Meter::of(&progress(json!(60), Some(json!(50)))).text(), "50/50 (100%)");
        assert_eq!(Meter::of(&progress(json!(0), Some(json!(0)))).text(), "0/0 (100%)");
    }

    #[test]
    fn fractions_are_permille() {
        assert_eq!(Meter::of(&progress(json!(0.375), Some(json!(1.0)))), Meter::Permille(375));
        assert_eq!(Meter::of(&progress(json!(0.375), Some(json!(1.0)))).text(), "37.5%");
        assert_eq!(Meter::of(&progress(json!(1), Some(json!(3.0)))), Meter::Permille(333));
        assert_eq!(Meter::of(&progress(json!(5.5), Some(json!(2)))), Meter::Permille(1000));
    }

    #[test]
    fn what_a_bar_cannot_show_is_raw() {
        assert_eq!(Meter::of(&progress(json!(0.5), None)), Meter::Raw("0.5".to_owned()));
        assert_eq!(Meter::of(&progress(json!(0.5), Some(json!(0.0)))), Meter::Raw("0.5".to_owned()));
        // The decoder refuses negative numbers; a body built in code is read safely anyway.
        let negative = |current: i64, total: i64| Progress {
            current: current.into(),
            total: Some(total.into()),
            units: None,
            message: None,
        };
        assert_eq!(Meter::of(&negative(-3, 10)), Meter::Raw("-3".to_owned()));
        assert_eq!(Meter::of(&negative(1, -1)), Meter::Raw("1".to_owned()));
    }

    #[test]
    fn progress_lines_carry_units_and_message() {
        let mut p = progress(json!(2), Some(json!(4)));
        assert_eq!(progress_line(&p), "2/4 (50%)");
        p.units = Some("files".to_owned());
        p.message = Some("copying\x1b[2J".to_owned());
        assert_eq!(progress_line(&p), "2/4 (50%) files copying\\u{1b}[2J");
    }

    fn event(body: impl Into<EventBody>) -> JobEvent {
        JobEvent { ts: Timestamp::parse("2026-01-02T03:04:05Z").unwrap(), body: body.into() }
    }

    #[test]
    fn events_are_one_clean_line() {
        let log = Log { level: LogLevel::Warn, message: "disk\nfull\r".to_owned(), attributes: None };
        assert_eq!(describe(&event(log)), "log         warn: disk\\nfull\\r");
        let status = Status { phase: "running".to_owned(), message: None, extra: Default::default() };
        assert_eq!(describe(&event(status)), "status      running");
        let vendor = JobEvent {
            ts: Timestamp::parse("2026-01-02T03:04:05Z").unwrap(),
            body: EventBody::Vendor { kind: "x-vendor.acme.ping".to_owned(), body: json!({"a": "\u{7}"}) },
        };
        assert_eq!(describe(&vendor), r#"x-vendor.acme.ping {"a":"\u0007"}"#);
        let p = progress(json!(1), Some(json!(2)));
        assert_eq!(describe(&event(p)), "progress    1/2 (50%)");
    }

    #[test]
    fn ndjson_lines_carry_the_wire_payloads() {
        let job = JobId::parse("job_1").unwrap();
        let received = ReceivedEvent { event_seq: EventSeq::new(7).unwrap(), event: event(progress(json!(1), None)) };
        assert_eq!(
            json_event(&job, &received),
            json!({"type": "job.event", "job_id": "job_1", "event_seq": 7,
                   "payload": {"kind": "progress", "ts": "2026-01-02T03:04:05Z", "body": {"current": 1}}})
        );
        let error = ErrorPayload::new(arcp_core::ErrorCode::AGENT_NOT_AVAILABLE, "no such agent");
        let refused = json_error(None, ErrorStatus::Error, &error);
        assert_eq!(refused["type"], "job.error");
        assert!(refused.get("job_id").is_none());
        assert_eq!(refused["payload"]["final_status"], "error");
        assert_eq!(refused["payload"]["code"], "AGENT_NOT_AVAILABLE");
        assert_eq!(refused["payload"]["retryable"], false);
    }

    #[test]
    fn results_and_errors_for_humans() {
        let r: JobResult = serde_json::from_value(json!({"final_status": "success", "result": {"count": 2}})).unwrap();
        assert_eq!(describe_result(&r), "{\n  \"count\": 2\n}");
        let r: JobResult =
            serde_json::from_value(json!({"final_status": "success", "result_id": "r1", "result_size": 9})).unwrap();
        assert_eq!(describe_result(&r), "(streamed as result_chunk events of result r1, 9 bytes)");
        let e = ErrorPayload::new(arcp_core::ErrorCode::INVALID_REQUEST, "bad").with_details(json!({"field": "n"}));
        assert_eq!(describe_error(&e), "INVALID_REQUEST: bad\ndetails: {\n  \"field\": \"n\"\n}");
    }
}
