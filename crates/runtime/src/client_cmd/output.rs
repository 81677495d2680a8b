//! [`Printer`]: where a client command's output goes. With `--json`, NDJSON on stdout and
//! nothing else there; otherwise one human line per event on stdout and, when stderr is a
//! terminal, a live progress bar on stderr for `progress` events (suspended while a line is
//! printed, so lines and bar never overwrite each other).

use std::io::{self, Write};
use std::time::Duration;

use arcp_client::ReceivedEvent;
use arcp_core::event::EventBody;
use arcp_core::message::{ErrorStatus, JobAccepted, JobResult, JobStatus, JobSubscribed};
use arcp_core::{ErrorPayload, JobId};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::render::{self, Meter};

/// Writes what a client command received, in the chosen mode.
pub(crate) struct Printer<W: Write> {
    out: W,
    json: bool,
    /// Where bars for `progress` events are drawn (human mode on a terminal); `None`: the
    /// events are printed as lines.
    bars: Option<fn() -> ProgressDrawTarget>,
    bar: Option<Bar>,
}

impl Printer<io::Stdout> {
    /// Prints to stdout; draws bars only in human mode when stderr is a terminal.
    pub(crate) fn stdout(json: bool) -> Self {
        use std::io::IsTerminal as _;
        let bars = !json && io::stderr().is_terminal();
        Printer::new(io::stdout(), json, bars.then_some(ProgressDrawTarget::stderr as fn() -> ProgressDrawTarget))
    }
}

impl<W: Write> Printer<W> {
    /// A printer writing to `out`.
    pub(crate) fn new(out: W, json: bool, bars: Option<fn() -> ProgressDrawTarget>) -> Self {
        Printer { out, json, bars, bar: None }
    }

    /// Whether this printer writes NDJSON.
    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    /// One NDJSON line.
    fn json_line(&mut self, value: &Value) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    /// One human line on stdout (the bar, if any, is hidden meanwhile).
    pub(crate) fn say(&mut self, text: &str) -> io::Result<()> {
        let out = &mut self.out;
        let mut write = || {
            writeln!(out, "{text}")?;
            out.flush()
        };
        match &self.bar {
            Some(bar) => bar.bar.suspend(write),
            None => write(),
        }
    }

    /// A remark about the client itself (a resumed connection…) on stderr, in either mode.
    pub(crate) fn note(&self, text: &str) {
        let write = || eprintln!("arcp: {text}");
        match &self.bar {
            Some(bar) => bar.bar.suspend(write),
            None => write(),
        }
    }

    /// The job was accepted.
    pub(crate) fn accepted(&mut self, accepted: &JobAccepted) -> io::Result<()> {
        if self.json {
            return self.json_line(&render::json_accepted(accepted));
        }
        let agent = accepted.agent.as_deref().map(render::clean).unwrap_or_default();
        self.say(&format!("job {} accepted ({agent})", accepted.job_id))
    }

    /// A subscription was established.
    pub(crate) fn subscribed(&mut self, subscribed: &JobSubscribed) -> io::Result<()> {
        if self.json {
            return self.json_line(&render::json_subscribed(subscribed));
        }
        let history = if subscribed.replayed { ", its events so far first" } else { "" };
        let text = format!(
            "following job {} ({}, {}{history})",
            subscribed.job_id,
            render::clean(&subscribed.agent),
            status_name(subscribed.current_status)
        );
        self.say(&text)
    }

    /// One event of the job.
    pub(crate) fn event(&mut self, job_id: &JobId, event: &ReceivedEvent) -> io::Result<()> {
        if self.json {
            return self.json_line(&render::json_event(job_id, event));
        }
        if let Some(target) = self.bars
            && let EventBody::Progress(p) = &event.event.body
        {
            let bar = self.bar.get_or_insert_with(|| Bar::new(target()));
            bar.show(&Meter::of(p), render::progress_label(p));
            return Ok(());
        }
        self.say(&render::describe(&event.event))
    }

    /// The job succeeded: the result, last.
    pub(crate) fn result(&mut self, job_id: &JobId, result: &JobResult) -> io::Result<()> {
        self.finish_bar();
        if self.json {
            return self.json_line(&render::json_result(job_id, result));
        }
        self.say(&render::describe_result(result))
    }

    /// The job ended without success (`job_id` present), or the request was refused (absent).
    pub(crate) fn job_error(
        &mut self,
        job_id: Option<&JobId>,
        status: ErrorStatus,
        error: &ErrorPayload,
    ) -> io::Result<()> {
        self.finish_bar();
        if self.json {
            return self.json_line(&render::json_error(job_id, status, error));
        }
        let what = match (job_id, status) {
            (None, _) => "refused".to_owned(),
            (Some(job), ErrorStatus::Error) => format!("job {job} failed"),
            (Some(job), ErrorStatus::Cancelled) => format!("job {job} was cancelled"),
            (Some(job), ErrorStatus::TimedOut) => format!("job {job} timed out"),
        };
        self.note(&format!("{what}: {}", render::describe_error(error)));
        Ok(())
    }

    /// Leaves the bar, if any, where it stopped.
    pub(crate) fn finish_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.bar.abandon();
        }
    }
}

/// A job state's wire name.
pub(crate) fn status_name(status: JobStatus) -> String {
    serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "?".to_owned())
}

/// How the bar is drawn, by what the last `progress` event allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `current` of a known whole `total`.
    Counted,
    /// A fraction of a known total, in thousandths.
    Fraction,
    /// Whole items with no known total: a spinner and a count.
    Open,
    /// A number the bar cannot scale: a spinner and the text.
    Text,
}

impl Shape {
    fn template(self) -> &'static str {
        match self {
            Shape::Counted => "{spinner} [{elapsed_precise}] [{wide_bar}] {pos}/{len} ({percent}%) {msg}",
            Shape::Fraction => "{spinner} [{elapsed_precise}] [{wide_bar}] {percent}% {msg}",
            Shape::Open => "{spinner} [{elapsed_precise}] {pos} {msg}",
            Shape::Text => "{spinner} [{elapsed_precise}] {msg}",
        }
    }
}

/// The live bar on stderr.
struct Bar {
    bar: ProgressBar,
    shape: Option<Shape>,
}

impl Bar {
    fn new(target: ProgressDrawTarget) -> Bar {
        let bar = ProgressBar::with_draw_target(None, target);
        // The spinner and the elapsed time move even while the agent is quiet.
        bar.enable_steady_tick(Duration::from_millis(120));
        Bar { bar, shape: None }
    }

    fn shape(&mut self, shape: Shape) {
        if self.shape != Some(shape) {
            // The templates are constants that parse; should one not, the default style
            // still shows the position.
            let style = ProgressStyle::with_template(shape.template())
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            self.bar.set_style(style);
            self.shape = Some(shape);
        }
    }

    fn show(&mut self, meter: &Meter, label: String) {
        match meter {
            Meter::Count { current, total: Some(total) } => {
                self.shape(Shape::Counted);
                self.bar.set_length(*total);
                self.bar.set_position(*current);
                self.bar.set_message(label);
            }
            Meter::Count { current, total: None } => {
                self.shape(Shape::Open);
                self.bar.unset_length();
                self.bar.set_position(*current);
                self.bar.set_message(label);
            }
            Meter::Permille(p) => {
                self.shape(Shape::Fraction);
                self.bar.set_length(1000);
                self.bar.set_position(*p);
                self.bar.set_message(label);
            }
            Meter::Raw(raw) => {
                self.shape(Shape::Text);
                self.bar.set_message(if label.is_empty() { raw.clone() } else { format!("{raw} {label}") });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use arcp_core::event::{JobEvent, Progress};
    use arcp_core::{EventSeq, Timestamp};
    use serde_json::json;

    use super::*;

    fn progress_event(seq: u64, current: u64, total: u64) -> ReceivedEvent {
        let body: Progress = serde_json::from_value(json!({"current": current, "total": total})).unwrap();
        ReceivedEvent {
            event_seq: EventSeq::new(seq).unwrap(),
            event: JobEvent { ts: Timestamp::parse("2026-01-02T03:04:05Z").unwrap(), body: body.into() },
        }
    }

    #[test]
    fn without_a_terminal_progress_is_printed_as_lines() {
        let job = JobId::parse("job_1").unwrap();
        let mut p = Printer::new(Vec::new(), false, None);
        p.event(&job, &progress_event(1, 1, 2)).unwrap();
        p.event(&job, &progress_event(2, 2, 2)).unwrap();
        let r: JobResult = serde_json::from_value(json!({"final_status": "success", "result": {"count": 2}})).unwrap();
        p.result(&job, &r).unwrap();
        let text = String::from_utf8(p.out).unwrap();
        assert_eq!(text, "progress    1/2 (50%)\nprogress    2/2 (100%)\n{\n  \"count\": 2\n}\n");
    }

    #[test]
    fn json_mode_writes_one_object_per_line() {
        let job = JobId::parse("job_1").unwrap();
        let mut p = Printer::new(Vec::new(), true, None);
        p.event(&job, &progress_event(4, 1, 2)).unwrap();
        let r: JobResult = serde_json::from_value(json!({"final_status": "success", "result": null})).unwrap();
        p.result(&job, &r).unwrap();
        let text = String::from_utf8(p.out).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!((&lines[0]["type"], &lines[0]["event_seq"]), (&json!("job.event"), &json!(4)));
        assert_eq!(
            lines[1],
            json!({"type": "job.result", "job_id": "job_1",
                                    "payload": {"final_status": "success", "result": null}})
        );
    }

    #[test]
    fn a_bar_takes_progress_events_off_stdout() {
        // A bar on a hidden target: the same code path as on a terminal, minus the drawing.
        let job = JobId::parse("job_1").unwrap();
        let mut p = Printer::new(Vec::new(), false, Some(ProgressDrawTarget::hidden));
        p.event(&job, &progress_event(1, 1, 4)).unwrap();
        let bar = p.bar.as_ref().unwrap();
        assert_eq!((bar.bar.position(), bar.bar.length(), bar.shape), (1, Some(4), Some(Shape::Counted)));
        p.event(&job, &progress_event(2, 3, 4)).unwrap();
        assert_eq!(p.bar.as_ref().unwrap().bar.position(), 3);
        p.finish_bar();
        assert!(p.bar.is_none());
        assert_eq!(String::from_utf8(p.out).unwrap(), "");
    }

    #[test]
    fn bar_shapes_follow_the_meter() {
        let mut bar = Bar::new(ProgressDrawTarget::hidden());
        bar.show(&Meter::Permille(375), String::new());
        assert_eq!((bar.shape, bar.bar.position(), bar.bar.length()), (Some(Shape::Fraction), 375, Some(1000)));
        bar.show(&Meter::Count { current: 9, total: None }, "files".to_owned());
        assert_eq!((bar.shape, bar.bar.position(), bar.bar.length()), (Some(Shape::Open), 9, None));
        assert_eq!(bar.bar.message(), "files");
        bar.show(&Meter::Raw("-1".to_owned()), "x".to_owned());
        assert_eq!((bar.shape, bar.bar.message()), (Some(Shape::Text), "-1 x".to_owned()));
    }

    #[test]
    fn status_names_are_the_wire_names() {
        assert_eq!(status_name(JobStatus::TimedOut), "timed_out");
        assert_eq!(status_name(JobStatus::Success), "success");
    }
}
