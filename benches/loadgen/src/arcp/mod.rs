//! `arcp-loadgen arcp …`: ARCP over WebSocket workloads and the bare tokio-tungstenite baseline.
//!
//! - `baseline --listen ADDR`: the stateless baseline server ([`baseline`]);
//! - `rtt`: N sessions submitting `echo` back to back ([`rtt`]);
//! - `stream`: one session counting the events of `count {n}` ([`stream`]);
//! - `replay`: the same stream live, then replayed by a resume ([`stream`]);
//! - `idle`: N idle sessions held open ([`idle`]);
//! - `idle-inproc`: N idle sessions on an in-process runtime, RSS per session ([`idle`]);
//! - `pgdb`: creates or drops a scratch PostgreSQL database for a run ([`pgdb`]).
//!
//! Each command builds its own tokio runtime; a measurement prints one JSON object as the last
//! line of stdout, diagnostics go to stderr.

mod baseline;
mod conn;
mod frames;
mod idle;
mod pgdb;
mod rtt;
mod stream;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};

/// ARCP over WebSocket workloads and the bare tokio-tungstenite baseline.
#[derive(Debug, Parser)]
#[command(name = "arcp-loadgen arcp")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The server to drive.
#[derive(Debug, clap::Args)]
struct Target {
    /// The server's WebSocket URL (`ws://host:port/arcp`).
    #[arg(long)]
    url: String,
    /// The bearer token.
    #[arg(long)]
    token: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A bare tokio-tungstenite server keeping no state: a canned `session.welcome` for every
    /// `session.hello`, and for every `job.submit` the frames `arcp serve` sends for `echo`.
    /// Prints `listening on ws://ADDR/arcp`, runs until killed.
    Baseline {
        /// Where to listen (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// N sessions (one connection each), each submitting `echo` jobs back to back. Result:
    /// {jobs, seconds, jobs_per_sec, p50_us, p99_us, errors}.
    Rtt {
        #[command(flatten)]
        target: Target,
        /// How many concurrent sessions.
        #[arg(long, default_value_t = 8)]
        sessions: usize,
        /// How long to measure.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// How long to run before measuring.
        #[arg(long, default_value_t = 1.0)]
        warmup_seconds: f64,
        /// The server's process id (same machine): adds `server_cpu_us_per_job`, its CPU time
        /// (user + system, from `/proc/PID/stat`) over the measured window per job.
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// One session submits `count {n: N}` and counts its `job.event`s until `job.result`
    /// (acking every 1000 events when `ack` is offered). Result: {events, seconds,
    /// events_per_sec}.
    Stream {
        #[command(flatten)]
        target: Target,
        /// How many events.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
    },
    /// The stream live, then again replayed: a session submits `count`, drops the connection
    /// after `job.accepted`, waits for the job to finish and resumes from `event_seq` 0.
    /// Result: {events, live_events_per_sec, replay_events_per_sec}.
    Replay {
        #[command(flatten)]
        target: Target,
        /// How many events.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
    },
    /// Opens N sessions (hello, welcome, then nothing), prints `idle sessions open: N`, and
    /// holds them until killed or stdin closes.
    Idle {
        #[command(flatten)]
        target: Target,
        /// How many sessions.
        #[arg(long)]
        sessions: usize,
        /// Spread the connections over source addresses 127.0.0.1 ..= 127.0.0.K.
        #[arg(long, default_value_t = 1)]
        source_ips: u8,
    },
    /// Runs an `arcp_server::Runtime` (memory store) in this process, opens N idle sessions
    /// over its in-memory transport, and reports the RSS growth per session and how much
    /// came back after closing them. Result: {sessions, rss_before_kib, rss_open_kib,
    /// rss_after_kib, kib_per_session, returned_pct}.
    IdleInproc {
        /// How many sessions.
        #[arg(long)]
        sessions: usize,
    },
    /// A scratch PostgreSQL database for one run.
    Pgdb {
        #[command(subcommand)]
        action: pgdb::Action,
    },
}

/// Entry point of the `arcp` group (`args` excludes the group name).
pub(crate) fn main(args: &[String]) -> Result<()> {
    let cli = Cli::try_parse_from(std::iter::once("arcp-loadgen arcp".to_owned()).chain(args.iter().cloned()))
        .unwrap_or_else(|e| e.exit());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("building the tokio runtime")?;
    rt.block_on(async move {
        match cli.command {
            Command::Baseline { listen } => baseline::run(&listen).await,
            Command::Rtt { target, sessions, seconds, warmup_seconds, server_pid } => {
                rtt::run(&target.url, &target.token, sessions, seconds, warmup_seconds, server_pid).await
            }
            Command::Stream { target, events } => stream::stream(&target.url, &target.token, events).await,
            Command::Replay { target, events } => stream::replay(&target.url, &target.token, events).await,
            Command::Idle { target, sessions, source_ips } => {
                idle::hold(&target.url, &target.token, sessions, source_ips).await
            }
            Command::IdleInproc { sessions } => idle::inproc(sessions).await,
            Command::Pgdb { action } => pgdb::run(action).await,
        }
    })
}
