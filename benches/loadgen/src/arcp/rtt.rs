//! `arcp rtt`: N sessions, each submitting `echo` jobs back to back; jobs/s and latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use super::conn::{self, Conn};
use super::frames::{self, Head};
use crate::report::{self, Latencies};

/// What one session counted.
#[derive(Debug, Default)]
struct Tally {
    /// Round trips completed in the measured window.
    jobs: u64,
    /// Jobs that ended in `job.error` (in the window).
    errors: u64,
    /// Their latencies.
    latencies: Latencies,
}

/// Runs the workload and prints `{jobs, seconds, jobs_per_sec, p50_us, p99_us, errors}`
/// (and `server_cpu_us_per_job` with `server_pid`).
pub(crate) async fn run(
    url: &str,
    token: &str,
    sessions: usize,
    seconds: f64,
    warmup: f64,
    server_pid: Option<u32>,
) -> Result<()> {
    let addr = conn::resolve(url).await?;
    let mut conns = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        // `ack` (acknowledged every `ACK_EVERY` events) keeps a long run under the server's
        // buffered-event caps, as a real client would; the baseline ignores the acks.
        conns.push(Conn::session(url, addr, None, token, &["ack"]).await?);
    }
    let measuring = Arc::new(AtomicBool::new(warmup <= 0.0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(sessions);
    for (conn, welcome) in conns {
        let (measuring, stop) = (measuring.clone(), stop.clone());
        let ack = welcome.has("ack");
        tasks.push(tokio::spawn(async move { session(conn, welcome.session_id, ack, measuring, stop).await }));
    }
    if warmup > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(warmup)).await;
        measuring.store(true, Ordering::SeqCst);
    }
    let cpu_before = server_pid.map(cpu_ticks).transpose()?;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::SeqCst);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = server_pid.map(cpu_ticks).transpose()?;
    let mut total = Tally::default();
    for task in tasks {
        let tally = task.await.context("a session task panicked")??;
        total.jobs += tally.jobs;
        total.errors += tally.errors;
        total.latencies.merge(tally.latencies);
    }
    let mut result = json!({
        "jobs": total.jobs,
        "seconds": elapsed,
        "jobs_per_sec": total.jobs as f64 / elapsed,
        "p50_us": total.latencies.quantile_us(0.5),
        "p99_us": total.latencies.quantile_us(0.99),
        "errors": total.errors,
        "sessions": sessions,
    });
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        let cpu_us = after.saturating_sub(before) as f64 * 1e6 / CLOCK_TICKS_PER_SEC;
        result["server_cpu_us"] = json!(cpu_us);
        result["server_cpu_us_per_job"] = json!(if total.jobs > 0 { cpu_us / total.jobs as f64 } else { 0.0 });
    }
    report::emit(&result);
    Ok(())
}

/// Acknowledge after this many events (when `ack` is negotiated): below the default
/// back-pressure threshold (1000), so no `back_pressure` status events join the stream.
const ACK_EVERY: u64 = 500;

/// `USER_HZ`, the unit of `/proc/PID/stat` times (100 on every Linux this runs on).
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// User + system CPU time of process `pid` so far, in clock ticks (`/proc/PID/stat` fields 14
/// and 15).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat =
        std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat).with_context(|| format!("unexpected /proc/{pid}/stat: {stat}"))
}

/// utime + stime of a `/proc/PID/stat` line (the fields after the parenthesised name).
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// One session's loop: submit, wait for the terminal frame, repeat until `stop`.
async fn session(
    mut conn: Conn,
    session_id: String,
    ack: bool,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Result<Tally> {
    let input = json!({"hello": "world"});
    let mut tally = Tally::default();
    let (mut last_seq, mut acked) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        conn.send(frames::submit(&session_id, "echo", &input)).await?;
        let ok = wait_terminal(&mut conn, &session_id, &mut last_seq).await?;
        if ack && last_seq >= acked + ACK_EVERY {
            conn.send(frames::ack(&session_id, last_seq)).await?;
            acked = last_seq;
        }
        if measuring.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
            tally.latencies.record(sent.elapsed());
            tally.jobs += 1;
            tally.errors += u64::from(!ok);
        }
    }
    conn.close().await;
    Ok(tally)
}

/// Reads frames until the job's `job.result` (`true`) or `job.error` (`false`); a
/// `session.error` or a closed connection is an error. Pings (heartbeat) are answered.
/// `last_seq` follows the `event_seq`s received.
async fn wait_terminal(conn: &mut Conn, session_id: &str, last_seq: &mut u64) -> Result<bool> {
    loop {
        let frame = conn.expect().await?;
        let head = Head::parse(&frame)?;
        if let Some(seq) = head.event_seq {
            *last_seq = seq;
        }
        match head.kind.as_ref() {
            "job.result" => return Ok(true),
            "job.error" => return Ok(false),
            "session.error" => bail!("session.error: {}", frames::excerpt(&frame)),
            "session.ping" => {
                let v: Value = serde_json::from_str(&frame)?;
                let nonce = v["payload"]["nonce"].as_str().unwrap_or_default();
                conn.send(frames::pong(session_id, nonce)).await?;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_of_a_stat_line() {
        let stat = "1234 (arcp serve) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 100 1000 200";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert!(cpu_ticks(std::process::id()).is_ok());
    }
}
