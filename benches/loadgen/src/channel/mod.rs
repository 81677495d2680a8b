//! `arcp-loadgen channel …`: HTTP channel workloads and the bare hyper baseline.
//!
//! - `baseline --listen ADDR`: the bare hyper hello-world server ([`baseline`]);
//! - `hello --url URL --connections N --seconds S`: its load, requests/s and latency;
//! - `turns --url BASE --token T --sessions N --seconds S`: buffered channel turns with
//!   token rotation, turns/s and latency;
//! - `idle --url BASE --token T --sessions N`: creates idle channel sessions.
//!
//! `BASE` is the server's root (`http://host:port`): the channel lives at `BASE/v1/session`.

mod baseline;
mod client;
mod load;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};

/// HTTP channel workloads and the bare hyper baseline.
#[derive(Debug, Parser)]
#[command(name = "arcp-loadgen channel")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The bare hyper 1 server (HTTP/1.1, keep-alive, TCP_NODELAY) answering every request
    /// `200 hello world`; prints `listening on http://ADDR`, runs until killed.
    Baseline {
        /// Where to listen (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// The baseline's load: N keep-alive connections posting a turn-sized body back to back.
    /// Result: {requests, seconds, requests_per_sec, p50_us, p99_us, errors}.
    Hello {
        /// The URL to post to (`http://host:port[/path]`).
        #[arg(long)]
        url: String,
        /// How many connections.
        #[arg(long, default_value_t = 8)]
        connections: usize,
        #[command(flatten)]
        time: Time,
    },
    /// N channel sessions, each on its own keep-alive connection, running buffered turns back
    /// to back with token rotation. Result: {turns, seconds, turns_per_sec, p50_us, p99_us,
    /// errors}.
    Turns {
        #[command(flatten)]
        server: ServerArgs,
        /// How many concurrent sessions (one connection each).
        #[arg(long, default_value_t = 8)]
        sessions: usize,
        #[command(flatten)]
        time: Time,
    },
    /// Creates N channel sessions as fast as it can and leaves them idle in the token store.
    /// Result: {sessions (created), seconds, errors}.
    Idle {
        #[command(flatten)]
        server: ServerArgs,
        /// How many sessions to create.
        #[arg(long)]
        sessions: u64,
        /// Over how many concurrent connections.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Stop creating after this many seconds (the result says how many were created).
        #[arg(long)]
        max_seconds: Option<f64>,
    },
}

/// The channel server and its key.
#[derive(Debug, Args)]
struct ServerArgs {
    /// The server's root, `http://host:port` (the channel is at `/v1/session`).
    #[arg(long)]
    url: String,
    /// The bearer key (`Authorization: Bearer T`).
    #[arg(long)]
    token: String,
}

/// How long a measurement runs.
#[derive(Debug, Args)]
struct Time {
    /// How long the measured window lasts, in seconds.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// How long the load runs before the window opens, in seconds.
    #[arg(long, default_value_t = 1.0)]
    warmup_seconds: f64,
}

/// Entry point of the `channel` group (`args` excludes the group name).
pub(crate) fn main(args: &[String]) -> Result<()> {
    let cli = Cli::parse_from(std::iter::once("arcp-loadgen channel".to_owned()).chain(args.iter().cloned()));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    rt.block_on(async move {
        let result = match cli.command {
            Command::Baseline { listen } => return baseline::serve(&listen).await,
            Command::Hello { url, connections, time } => {
                load::hello(&url, connections, time.seconds, time.warmup_seconds).await?
            }
            Command::Turns { server, sessions, time } => {
                load::turns(&server.url, &server.token, sessions, time.seconds, time.warmup_seconds).await?
            }
            Command::Idle { server, sessions, connections, max_seconds } => {
                load::idle(&server.url, &server.token, sessions, connections, max_seconds).await?
            }
        };
        crate::report::emit(&result);
        Ok(())
    })
}
