//! `arcp-loadgen`: the load generators and bare baseline servers of `cargo xtask bench`.
//!
//! It runs as its own process, apart from the server it measures. Each group parses its own
//! arguments:
//!
//! - `arcp-loadgen arcp …`: ARCP over WebSocket (round trips, event streaming, resume
//!   replay, idle sessions) and the bare tokio-tungstenite baseline server;
//! - `arcp-loadgen channel …`: the HTTP channel (buffered turns with token rotation, idle
//!   channel sessions) and the bare hyper baseline server.
//!
//! Output contract (what `xtask/src/bench/` relies on): a measurement prints exactly one JSON
//! object as the last line of stdout; a server prints `listening on ADDR` as its first line
//! of stdout and runs until killed; diagnostics go to stderr.

mod arcp;
mod channel;
mod report;

use std::process::ExitCode;

const USAGE: &str = "usage: arcp-loadgen arcp …  |  arcp-loadgen channel …  (each with --help)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("arcp") => arcp::main(&args[1..]),
        Some("channel") => channel::main(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arcp-loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}
