//! `arcp idle` (N idle sessions over WebSocket, held open) and `arcp idle-inproc` (N idle
//! sessions on an in-process runtime, its RSS measured from inside).

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures_util::StreamExt as _;
use serde_json::json;
use tokio::io::AsyncReadExt as _;

use super::conn::{self, Conn};
use super::frames::{self, Welcome};
use crate::report;

/// How many sessions are opened at once.
const OPENING_CONCURRENCY: usize = 64;

/// Opens `sessions` idle sessions (no features, so no heartbeat), spread over source addresses
/// 127.0.0.1 ..= 127.0.0.`source_ips`, prints `idle sessions open: N`, and holds them until
/// killed, `SIGTERM`/`SIGINT`, or stdin closes (a stdin that is `/dev/null` is not watched).
pub(crate) async fn hold(url: &str, token: &str, sessions: usize, source_ips: u8) -> Result<()> {
    let addr = conn::resolve(url).await?;
    let started = Instant::now();
    let sources = source_ips.max(1);
    let opened: Vec<Result<(Conn, Welcome)>> = futures_util::stream::iter(0..sessions)
        .map(|i| {
            let source =
                (sources > 1).then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % usize::from(sources)) as u8)));
            async move { Conn::session(url, addr, source, token, &[]).await }
        })
        .buffer_unordered(OPENING_CONCURRENCY)
        .collect()
        .await;
    let mut held = Vec::with_capacity(sessions);
    for result in opened {
        held.push(result.context("opening an idle session")?.0);
    }
    eprintln!("idle: {} sessions opened in {:.2} s", held.len(), started.elapsed().as_secs_f64());
    println!("idle sessions open: {}", held.len());
    wait_for_the_end().await;
    drop(held);
    Ok(())
}

/// Returns on `SIGTERM`, `SIGINT`, or stdin closing (unless stdin is `/dev/null`).
async fn wait_for_the_end() {
    let stdin_is_null = std::fs::read_link("/proc/self/fd/0").is_ok_and(|p| p == std::path::Path::new("/dev/null"));
    let stdin = async {
        if stdin_is_null {
            std::future::pending::<()>().await;
        }
        let mut buf = [0u8; 256];
        let mut stdin = tokio::io::stdin();
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = stdin => {}
        () = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// How long detached sessions stay resumable in `idle-inproc`, so the sweep can drop them.
const INPROC_RESUME_WINDOW: Duration = Duration::from_secs(1);

/// Runs a memory-store `arcp_server::Runtime` in this process, opens `sessions` idle sessions
/// over its in-memory transport, closes them, lets their resume window pass and sweeps.
/// Prints `{sessions, rss_before_kib, rss_open_kib, rss_closed_kib, rss_after_kib,
/// kib_per_session, returned_pct, seconds_to_open}`.
pub(crate) async fn inproc(sessions: usize) -> Result<()> {
    use arcp_server::{Runtime, RuntimeConfig, StaticBearerVerifier};

    const TOKEN: &str = "inproc-token";
    let config = RuntimeConfig {
        max_sessions_per_principal: sessions + 16,
        resume_window: INPROC_RESUME_WINDOW,
        ..RuntimeConfig::default()
    };
    let rt = Runtime::builder(StaticBearerVerifier::new().with_token(TOKEN, "bench"))
        .config(config)
        .agents(arcp_server::builtin::registry().context("the built-in agents")?)
        .build();

    // Warm up: the allocator's arenas, the runtime's tables and the tokio workers.
    let warm = open_inproc(&rt, TOKEN, 256.min(sessions)).await?;
    drop(warm);
    settle(&rt).await;

    let before = rss_kib()?;
    let started = Instant::now();
    let clients = open_inproc(&rt, TOKEN, sessions).await?;
    let seconds_to_open = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let open = rss_kib()?;
    eprintln!("idle-inproc: {sessions} sessions open in {seconds_to_open:.2} s; RSS {before} KiB → {open} KiB");
    drop(clients);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let closed = rss_kib()?;
    settle(&rt).await;
    let after = rss_kib()?;
    let grown = open.saturating_sub(before);
    report::emit(&json!({
        "sessions": sessions,
        "rss_before_kib": before,
        "rss_open_kib": open,
        "rss_closed_kib": closed,
        "rss_after_kib": after,
        "kib_per_session": grown as f64 / sessions.max(1) as f64,
        "returned_pct": if grown > 0 { 100.0 * open.saturating_sub(after) as f64 / grown as f64 } else { 0.0 },
        "seconds_to_open": seconds_to_open,
    }));
    Ok(())
}

/// Opens `n` sessions on `rt` over in-memory transports; returns the client ends.
async fn open_inproc(
    rt: &arcp_server::Runtime,
    token: &str,
    n: usize,
) -> Result<Vec<arcp_server::transport::memory::MemoryTransport>> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let (mut client, server) = arcp_server::transport::memory::pair();
        drop(rt.spawn(server));
        client.send(frames::hello(token, &[])).context("sending the hello")?;
        let Some(frame) = client.recv().await else { bail!("the in-process runtime closed a connection") };
        Welcome::parse(&frame)?;
        clients.push(client);
    }
    Ok(clients)
}

/// Waits out the resume window of detached sessions and sweeps them away.
async fn settle(rt: &arcp_server::Runtime) {
    tokio::time::sleep(INPROC_RESUME_WINDOW + Duration::from_millis(200)).await;
    for _ in 0..4 {
        rt.sweep().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// This process's resident set size, in KiB (`VmRSS` of `/proc/self/status`).
fn rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/self/status")
}
