//! The command-line arguments of the client commands (`submit`, `tail`, `jobs`,
//! `conformance`); `cli.rs` names them in its `Command` enum.

use std::num::NonZeroU64;

use arcp_core::message::JobStatus;
use clap::{Args, ValueEnum};

/// The `--url` every client command uses when neither the flag nor `ARCP_URL` is given: what
/// `arcp serve` listens on by default.
pub(crate) const DEFAULT_URL: &str = "ws://127.0.0.1:8787/arcp";

/// Where the runtime is and which key to present (every client command).
#[derive(Debug, Clone, Args)]
pub(crate) struct ConnectArgs {
    /// The runtime's ARCP WebSocket URL: `ws://HOST:PORT/arcp`, or `wss://…` for a runtime
    /// serving TLS (`arcp serve --tls-cert`).
    #[arg(long, env = "ARCP_URL", value_name = "URL", default_value = DEFAULT_URL)]
    pub(crate) url: String,
    /// The API key (bearer token) presented in `session.hello`. Prefer ARCP_KEY: command
    /// lines are visible to other local users.
    #[arg(long, alias = "token", env = "ARCP_KEY", hide_env_values = true, value_name = "KEY")]
    pub(crate) key: Option<String>,
    /// For wss:// URLs: the CA certificates (PEM) that may sign the runtime's certificate, e.g.
    /// the self-signed certificate of a local `arcp serve --tls-cert`. Default: the system's CA
    /// bundle.
    #[arg(long, env = "ARCP_CA_CERT", value_name = "PEM_FILE")]
    pub(crate) ca_cert: Option<std::path::PathBuf>,
}

/// How a client command prints what it receives.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct OutputArgs {
    /// Print NDJSON on stdout: one JSON object per line, one per message received (see the
    /// command's help for the shapes) and nothing else; errors of the client itself still go
    /// to stderr.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `arcp submit`.
#[derive(Debug, Clone, Args)]
pub(crate) struct SubmitArgs {
    /// The agent to run: `name` or `name@version` (e.g. `count`, `echo`).
    #[arg(value_name = "AGENT")]
    pub(crate) agent: String,
    /// The agent's input as JSON (default `null`); `-` reads it from stdin.
    #[arg(value_name = "INPUT_JSON", allow_negative_numbers = true)]
    pub(crate) input: Option<String>,
    /// An idempotency key (§7.2): submitting again with the same key and input returns the same
    /// job (its events and result) without running the agent again, even from another
    /// session; the same key with another input is refused (DUPLICATE_KEY). Without it, a
    /// fresh key is minted, so a submit interrupted by a disconnect is still never run twice.
    #[arg(long, value_name = "KEY")]
    pub(crate) idempotency_key: Option<String>,
    /// The lease to request (§9), as JSON: capability → glob patterns, e.g.
    /// '{"agent.delegate": ["echo"]}'. The runtime grants at most this.
    #[arg(long, value_name = "LEASE_JSON")]
    pub(crate) lease: Option<String>,
    /// Ask the runtime to stop the job after this many seconds (it then ends `timed_out`).
    #[arg(long, value_name = "SECS")]
    pub(crate) max_runtime_sec: Option<NonZeroU64>,
    /// Output.
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// The runtime.
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

/// `arcp tail`.
#[derive(Debug, Clone, Args)]
pub(crate) struct TailArgs {
    /// The job to follow (`job_…`, as `arcp submit` or `arcp jobs` print it).
    #[arg(value_name = "JOB_ID")]
    pub(crate) job_id: String,
    /// Output.
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// The runtime.
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

/// A job state, as `--status` takes it (the wire names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum StatusArg {
    /// Accepted, not yet running.
    Pending,
    /// Running.
    Running,
    /// Finished with a result.
    Success,
    /// Failed.
    Error,
    /// Cancelled.
    Cancelled,
    /// Stopped by its time limit.
    #[value(name = "timed_out", alias = "timed-out")]
    TimedOut,
}

impl From<StatusArg> for JobStatus {
    fn from(s: StatusArg) -> JobStatus {
        match s {
            StatusArg::Pending => JobStatus::Pending,
            StatusArg::Running => JobStatus::Running,
            StatusArg::Success => JobStatus::Success,
            StatusArg::Error => JobStatus::Error,
            StatusArg::Cancelled => JobStatus::Cancelled,
            StatusArg::TimedOut => JobStatus::TimedOut,
        }
    }
}

/// `arcp jobs`.
#[derive(Debug, Clone, Args)]
pub(crate) struct JobsArgs {
    /// Only jobs in this state (repeat the flag for several).
    #[arg(long, value_enum, value_name = "STATUS")]
    pub(crate) status: Vec<StatusArg>,
    /// Only jobs of this agent: a bare name (any version) or `name@version`.
    #[arg(long, value_name = "AGENT")]
    pub(crate) agent: Option<String>,
    /// List at most this many jobs in all (the oldest first); default: every job.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) limit: Option<u32>,
    /// Output.
    #[command(flatten)]
    pub(crate) output: OutputArgs,
    /// The runtime.
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}

/// `arcp conformance`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConformanceArgs {
    /// A key of a second principal, for the cross-principal cases (skipped without it).
    #[arg(long, alias = "other-token", env = "ARCP_OTHER_KEY", hide_env_values = true, value_name = "KEY")]
    pub(crate) other_key: Option<String>,
    /// Run only the cases whose id contains this string (e.g. `s6_3`).
    #[arg(long, value_name = "S")]
    pub(crate) filter: Option<String>,
    /// Also run the channel suite (HTTP, SSE, WebSocket) against this base URL
    /// (`http://HOST:PORT`; serve with --conformance-fixtures), with the same key.
    #[arg(long, value_name = "BASE_URL")]
    pub(crate) channel: Option<String>,
    /// The server's --max-buffered-events, for the §14 cap cases (they skip when the cap is
    /// higher than this). Serve with a small cap to run them against a durable store.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_buffered_events: u64,
    /// The server's --max-buffered-bytes, for the §14 cap cases.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_buffered_bytes: u64,
    /// The runtime.
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
}
