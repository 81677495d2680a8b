//! The client commands of the `arcp` binary: `arcp submit`, `arcp tail`, `arcp jobs` and
//! `arcp conformance`, built on `arcp-client`.
//!
//! Every one takes `--url` (`ARCP_URL`, default [`DEFAULT_URL`]) and `--key` (`ARCP_KEY`).
//! Output is for humans by default (events one per line, a progress bar on a terminal) and
//! NDJSON with `--json`: one JSON object per line on stdout,
//! `{"type", "job_id"?, "event_seq"?, "payload"}`, where `type` and `payload` are the wire
//! type and payload of the message received (`job.accepted`, `job.subscribed`, `job.event`,
//! then the terminal `job.result` or `job.error`), each event exactly once and in order even
//! when the connection dropped and the session was resumed meanwhile.
//!
//! Exit status (documented in `arcp --help` too):
//!
//! | status | meaning |
//! |---|---|
//! | 0 | the job succeeded (`job.result`); `jobs` listed; every conformance case passed |
//! | 1 | the client failed: cannot connect, refused session (bad key), session lost for good, cannot write the output |
//! | 2 | usage error: bad flags, invalid input JSON, invalid job id or URL |
//! | 3 | the job failed (`job.error`, `final_status: "error"`), or the request was refused (unknown agent, `DUPLICATE_KEY`, `JOB_NOT_FOUND`…); a conformance case failed |
//! | 4 | the job was cancelled |
//! | 5 | the job timed out |
//!
//! A command that stops (Ctrl-C, a lost session) does not stop the job: jobs outlive their
//! sessions, and `arcp tail JOB_ID` follows one again.

mod args;
mod conformance;
mod jobs;
mod output;
mod render;
mod submit;
mod tail;
mod tls;

use std::future::Future;
use std::time::Duration;

use anyhow::anyhow;
use arcp_client::{Backoff, Client, ClientError, ClientOptions, JobEvents, JobOutcome};
use arcp_core::message::{ErrorStatus, JobStatus, ResultStatus};
use arcp_core::{ErrorCode, JobId};
use futures_util::StreamExt as _;

pub(crate) use self::args::{ConformanceArgs, JobsArgs, SubmitArgs, TailArgs};
use self::args::{ConnectArgs, DEFAULT_URL};
pub(crate) use self::conformance::run as conformance;
pub(crate) use self::jobs::run as jobs;
use self::output::Printer;
pub(crate) use self::submit::run as submit;
pub(crate) use self::tail::run as tail;
use crate::Failure;

/// Exit status: the job failed, or the request was refused.
pub(crate) const EXIT_FAILED: u8 = 3;
/// Exit status: the job was cancelled.
pub(crate) const EXIT_CANCELLED: u8 = 4;
/// Exit status: the job timed out.
pub(crate) const EXIT_TIMED_OUT: u8 = 5;

/// What `arcp --help` says about the client commands' exit statuses.
pub(crate) const EXIT_HELP: &str = "Client commands (submit, tail, jobs, conformance) exit with 0 when the job succeeded, \
     1 when the client failed (cannot connect, bad key, session lost), 2 for a usage error, 3 when the job failed \
     or the request was refused (or a conformance case failed), 4 when the job was cancelled, 5 when it timed out.";

/// Unread events a job's stream may hold before it overflows: far more than a terminal can
/// fall behind by, so a burst of events is printed, not dropped.
const EVENT_BUFFER: usize = 1 << 16;

/// Reconnect attempts while following a job: about two minutes, enough for a runtime restart.
const BACKOFF: Backoff =
    Backoff { max_attempts: 30, initial_delay: Duration::from_millis(200), max_delay: Duration::from_secs(5) };

/// How often a follower checks whether the session was resumed (to say so).
const RESUME_CHECK: Duration = Duration::from_millis(500);

/// Whether `command` is a client command (its logs default to `warn`: its stderr is the
/// user's terminal).
pub(crate) fn is_client(command: &crate::cli::Command) -> bool {
    use crate::cli::Command;
    matches!(command, Command::Submit(_) | Command::Tail(_) | Command::Jobs(_) | Command::Conformance(_))
}

/// The `--url`, checked: a `ws://` or `wss://` URL with a host. `Ok(true)` for `wss://`.
fn check_url(url: &str) -> Result<bool, Failure> {
    let parsed = url::Url::parse(url).map_err(|e| Failure::Usage(format!("invalid --url {url:?}: {e}")))?;
    match parsed.scheme() {
        "ws" | "wss" if parsed.host_str().is_some_and(|h| !h.is_empty()) => Ok(parsed.scheme() == "wss"),
        _ => Err(Failure::Usage(format!("--url {url:?} is not a ws:// or wss:// URL (e.g. {DEFAULT_URL})"))),
    }
}

/// The `--key`; an empty one counts as none.
fn key(args: &ConnectArgs) -> Option<&str> {
    args.key.as_deref().filter(|k| !k.is_empty())
}

/// Opens a session at `--url` with `--key`. Every failure is a one-line [`Failure::Fatal`]
/// (exit status 1) naming the URL.
async fn connect(args: &ConnectArgs) -> Result<Client, Failure> {
    let wss = check_url(&args.url)?;
    let mut options = ClientOptions::default()
        .with_client("arcp-cli", env!("CARGO_PKG_VERSION"))
        .with_event_buffer(EVENT_BUFFER)
        .with_backoff(BACKOFF);
    if let Some(key) = key(args) {
        options = options.with_token(key);
    }
    let connected = if wss {
        let target = tls::WssTarget::new(&args.url, args.ca_cert.as_deref(), options.max_frame_bytes)
            .map_err(|e| Failure::Usage(format!("--url {}: {e:#}", args.url)))?;
        let connector = move || {
            let target = target.clone();
            async move { target.connect().await }
        };
        Client::connect_with(connector, options).await
    } else {
        Client::connect_ws(args.url.clone(), options).await
    };
    connected.map_err(|e| {
        let hint = match e.code() {
            Some(code) if code == ErrorCode::UNAUTHENTICATED && key(args).is_none() => {
                " (no key given: pass --key or set ARCP_KEY)"
            }
            Some(code) if code == ErrorCode::UNAUTHENTICATED => " (check --key / ARCP_KEY)",
            _ if wss && args.ca_cert.is_none() && e.to_string().contains("invalid peer certificate") => {
                " (to trust the runtime's own certificate, pass it with --ca-cert FILE)"
            }
            _ => "",
        };
        Failure::Fatal(anyhow!("cannot open a session at {}: {e}{hint}", args.url))
    })
}

/// The exit status for a job that ended with `job.error`.
fn error_exit(status: ErrorStatus) -> u8 {
    match status {
        ErrorStatus::Error => EXIT_FAILED,
        ErrorStatus::Cancelled => EXIT_CANCELLED,
        ErrorStatus::TimedOut => EXIT_TIMED_OUT,
    }
}

/// The exit status for a job that ended with `job.result` (runtimes like the Python reference
/// end cancelled and timed-out jobs that way).
fn result_exit(status: ResultStatus) -> u8 {
    match status {
        ResultStatus::Success => 0,
        ResultStatus::Cancelled => EXIT_CANCELLED,
        ResultStatus::TimedOut => EXIT_TIMED_OUT,
    }
}

/// The exit status for a job known only by its final state.
fn status_exit(status: JobStatus) -> u8 {
    match status {
        JobStatus::Success | JobStatus::Pending | JobStatus::Running => 0,
        JobStatus::Cancelled => EXIT_CANCELLED,
        JobStatus::TimedOut => EXIT_TIMED_OUT,
        _ => EXIT_FAILED,
    }
}

/// `Ok` for status 0, else [`Failure::Status`].
fn exit(status: u8) -> Result<(), Failure> {
    if status == 0 { Ok(()) } else { Err(Failure::Status(status)) }
}

/// A failed write to stdout. A closed pipe (`arcp jobs | head`) ends the command quietly,
/// with status 1: whoever reads the output stopped reading.
fn output_failed(e: std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return Failure::Status(1);
    }
    Failure::Fatal(anyhow!("cannot write the output: {e}"))
}

/// Prints a job's events until its terminal envelope, then its outcome; says on stderr when
/// the session was resumed meanwhile. `Ok` when the job succeeded, [`Failure::Status`] with
/// the job's exit status when it did not, [`Failure::Fatal`] when the session was lost.
async fn follow<W: std::io::Write>(
    client: &Client,
    job_id: &JobId,
    mut events: JobEvents,
    outcome: impl Future<Output = Result<JobOutcome, ClientError>>,
    printer: &mut Printer<W>,
) -> Result<(), Failure> {
    let mut resumes = client.resumes();
    let mut tick = tokio::time::interval(RESUME_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            item = events.next() => match item {
                Some(Ok(event)) => printer.event(job_id, &event).map_err(output_failed)?,
                Some(Err(ClientError::Lagged { capacity })) => printer.note(&format!(
                    "more than {capacity} events were waiting to be printed; the rest are skipped until the outcome"
                )),
                // The session was lost: the outcome says why.
                Some(Err(_)) | None => break,
            },
            _ = tick.tick() => {}
        }
        let now = client.resumes();
        if now != resumes {
            resumes = now;
            printer.note("the connection dropped; the session was resumed and the events continue where they stopped");
        }
    }
    match outcome.await {
        Ok(result) => {
            printer.result(job_id, &result).map_err(output_failed)?;
            exit(result_exit(result.final_status))
        }
        Err(ClientError::Job { final_status, payload }) => {
            printer.job_error(Some(job_id), final_status, &payload).map_err(output_failed)?;
            exit(error_exit(final_status))
        }
        Err(e) => {
            printer.finish_bar();
            Err(Failure::Fatal(anyhow!(
                "lost the session before job {job_id} ended: {e}. The job goes on on the runtime; `arcp tail {job_id}` \
                 follows it again"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn urls_must_be_ws() {
        assert!(!check_url("ws://127.0.0.1:8787/arcp").unwrap());
        assert!(!check_url("ws://example.com/arcp").unwrap());
        assert!(check_url("wss://example.com/arcp").unwrap());
        assert!(check_url("wss://[::1]:8787/arcp").unwrap());
        for bad in ["", "127.0.0.1:8787", "http://127.0.0.1:8787/arcp", "https://example.com/arcp", "ws://"] {
            assert!(matches!(check_url(bad), Err(Failure::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn exit_statuses() {
        assert_eq!(
            [ErrorStatus::Error, ErrorStatus::Cancelled, ErrorStatus::TimedOut].map(error_exit),
            [EXIT_FAILED, EXIT_CANCELLED, EXIT_TIMED_OUT]
        );
        assert_eq!(
            [ResultStatus::Success, ResultStatus::Cancelled, ResultStatus::TimedOut].map(result_exit),
            [0, EXIT_CANCELLED, EXIT_TIMED_OUT]
        );
        assert_eq!(
            [JobStatus::Success, JobStatus::Error, JobStatus::Cancelled, JobStatus::TimedOut].map(status_exit),
            [0, EXIT_FAILED, EXIT_CANCELLED, EXIT_TIMED_OUT]
        );
    }

    fn parse(args: &[&str]) -> Command {
        let mut all = vec!["arcp"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap_or_else(|e| panic!("{args:?}: {e}")).command
    }

    #[test]
    fn client_commands_parse() {
        let Command::Submit(s) = parse(&["submit", "count", r#"{"n":50}"#, "--json", "--idempotency-key", "k"]) else {
            panic!()
        };
        assert_eq!((s.agent.as_str(), s.input.as_deref()), ("count", Some(r#"{"n":50}"#)));
        assert!(s.output.json);
        assert_eq!(s.idempotency_key.as_deref(), Some("k"));
        let Command::Submit(s) = parse(&["submit", "echo", "-5", "--url", "ws://h:1/arcp", "--key", "k"]) else {
            panic!()
        };
        assert_eq!(
            (s.input.as_deref(), s.connect.url.as_str(), s.connect.key.as_deref()),
            (Some("-5"), "ws://h:1/arcp", Some("k"))
        );
        let Command::Tail(t) = parse(&["tail", "job_1", "--token", "k"]) else { panic!() };
        assert_eq!((t.job_id.as_str(), t.connect.key.as_deref()), ("job_1", Some("k")));
        let Command::Jobs(j) =
            parse(&["jobs", "--status", "running", "--status", "timed_out", "--agent", "count", "--limit", "3"])
        else {
            panic!()
        };
        assert_eq!(j.status.len(), 2);
        assert_eq!((j.agent.as_deref(), j.limit), (Some("count"), Some(3)));
        let Command::Conformance(c) = parse(&["conformance", "--other-token", "o", "--filter", "s6"]) else { panic!() };
        assert_eq!((c.other_key.as_deref(), c.filter.as_deref()), (Some("o"), Some("s6")));
        for bad in [&["jobs", "--limit", "0"][..], &["jobs", "--status", "done"], &["submit"], &["tail"]] {
            let mut all = vec!["arcp"];
            all.extend_from_slice(bad);
            assert!(Cli::try_parse_from(all).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_default_url_is_what_serve_listens_on() {
        assert_eq!(DEFAULT_URL, format!("ws://{}/arcp", crate::cli::DEFAULT_LISTEN));
    }
}
