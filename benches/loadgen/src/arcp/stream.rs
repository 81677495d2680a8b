//! `arcp stream` and `arcp replay`: the events of one `count {n}` job, live and replayed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use super::conn::{self, Conn};
use super::frames::{self, Head, Welcome};
use crate::report;

/// Acknowledge after this many events (when `ack` is negotiated), so buffer caps never bite.
const ACK_EVERY: u64 = 1000;

/// How long `replay` waits for the dropped job to finish.
const FINISH_TIMEOUT: Duration = Duration::from_secs(300);

/// What one stream counted.
#[derive(Debug, Clone, Copy)]
struct Counted {
    /// `job.event` frames up to the terminal frame.
    events: u64,
    /// Seconds from the first frame sent (submit or resume) to `job.result`.
    seconds: f64,
}

/// Runs `stream` and prints `{events, seconds, events_per_sec}`.
pub(crate) async fn stream(url: &str, token: &str, n: u64) -> Result<()> {
    let addr = conn::resolve(url).await?;
    let live = live(url, addr, token, n).await?;
    report::emit(&json!({
        "events": live.events,
        "seconds": live.seconds,
        "events_per_sec": live.events as f64 / live.seconds,
    }));
    Ok(())
}

/// Runs `replay` and prints `{events, live_events_per_sec, replay_events_per_sec}`.
pub(crate) async fn replay(url: &str, token: &str, n: u64) -> Result<()> {
    let addr = conn::resolve(url).await?;
    let live = live(url, addr, token, n).await?;
    eprintln!("replay: live {} events in {:.3} s", live.events, live.seconds);
    let replayed = replayed(url, addr, token, n, live.seconds).await?;
    eprintln!("replay: replayed {} events in {:.3} s", replayed.events, replayed.seconds);
    if replayed.events != live.events {
        eprintln!("replay: note: {} events live but {} replayed", live.events, replayed.events);
    }
    report::emit(&json!({
        "events": replayed.events,
        "live_events": live.events,
        "live_seconds": live.seconds,
        "replay_seconds": replayed.seconds,
        "live_events_per_sec": live.events as f64 / live.seconds,
        "replay_events_per_sec": replayed.events as f64 / replayed.seconds,
    }));
    Ok(())
}

/// A fresh session streams `count {n}` live (acking as it goes).
async fn live(url: &str, addr: SocketAddr, token: &str, n: u64) -> Result<Counted> {
    let (mut conn, welcome) = Conn::session(url, addr, None, token, &["ack", "progress"]).await?;
    let started = Instant::now();
    conn.send(frames::submit(&welcome.session_id, "count", &json!({ "n": n }))).await?;
    let events = count_until_result(&mut conn, &welcome, welcome.has("ack")).await?;
    let seconds = started.elapsed().as_secs_f64();
    conn.close().await;
    Ok(Counted { events, seconds })
}

/// Reads frames until `job.result`, counting `job.event`s and acking every [`ACK_EVERY`]
/// when `ack`; `job.error`, `session.error` and a closed connection are errors.
async fn count_until_result(conn: &mut Conn, welcome: &Welcome, ack: bool) -> Result<u64> {
    let (mut events, mut unacked, mut last_seq) = (0u64, 0u64, 0u64);
    loop {
        let frame = conn.expect().await?;
        let head = Head::parse(&frame)?;
        match head.kind.as_ref() {
            "job.event" => {
                events += 1;
                unacked += 1;
                last_seq = head.event_seq.unwrap_or(last_seq);
                if ack && unacked >= ACK_EVERY {
                    conn.send(frames::ack(&welcome.session_id, last_seq)).await?;
                    unacked = 0;
                }
            }
            "job.result" => return Ok(events),
            "job.error" | "session.error" => bail!("the stream ended with {}", frames::excerpt(&frame)),
            "session.ping" => {
                let v: Value = serde_json::from_str(&frame)?;
                conn.send(frames::pong(&welcome.session_id, v["payload"]["nonce"].as_str().unwrap_or_default()))
                    .await?;
            }
            _ => {}
        }
    }
}

/// A fresh session submits `count {n}`, drops its connection after `job.accepted`, waits for
/// the job to finish, and resumes from `event_seq` 0: timed from the resume to the replayed
/// `job.result`.
async fn replayed(url: &str, addr: SocketAddr, token: &str, n: u64, live_seconds: f64) -> Result<Counted> {
    // `progress` must be negotiated (again on resume) or `count` emits nothing.
    let (mut conn, welcome) = Conn::session(url, addr, None, token, &["progress"]).await?;
    conn.send(frames::submit(&welcome.session_id, "count", &json!({ "n": n }))).await?;
    let job_id = loop {
        let frame = conn.expect().await?;
        let v: Value = serde_json::from_str(&frame).context("a frame is not JSON")?;
        match v["type"].as_str() {
            Some("job.accepted") => {
                break v["payload"]["job_id"].as_str().or(v["job_id"].as_str()).unwrap_or_default().to_owned();
            }
            Some("job.error" | "session.error") => bail!("the submit was refused: {}", frames::excerpt(&frame)),
            _ => {}
        }
    };
    drop(conn);
    wait_finished(url, addr, token, &job_id, live_seconds).await?;

    // `session.resume` (v1.1 prose); a runtime that refuses it gets `session.hello` + `resume`.
    for as_hello in [false, true] {
        let mut conn = Conn::open(url, addr, None).await?;
        let started = Instant::now();
        conn.send(frames::resume(token, &["progress"], &welcome.session_id, &welcome.resume_token, 0, as_hello))
            .await?;
        let Some(frame) = conn.recv().await? else {
            eprintln!(
                "replay: the server closed the connection on {}",
                if as_hello { "hello+resume" } else { "session.resume" }
            );
            continue;
        };
        let resumed = match Welcome::parse(&frame) {
            Ok(w) => w,
            Err(e) if !as_hello => {
                eprintln!("replay: session.resume refused ({e:#}); trying session.hello with resume");
                continue;
            }
            Err(e) => return Err(e),
        };
        let events = count_until_result(&mut conn, &resumed, false).await?;
        let seconds = started.elapsed().as_secs_f64();
        conn.close().await;
        return Ok(Counted { events, seconds });
    }
    bail!("the server accepted neither session.resume nor session.hello with resume")
}

/// Waits until `job_id` finished: polled with `session.list_jobs` from another session when
/// the server offers `list_jobs`, else a sleep of twice the live stream's time plus a second.
async fn wait_finished(url: &str, addr: SocketAddr, token: &str, job_id: &str, live_seconds: f64) -> Result<()> {
    let (mut conn, welcome) = Conn::session(url, addr, None, token, &["list_jobs"]).await?;
    if !welcome.has("list_jobs") {
        conn.close().await;
        let wait = Duration::from_secs_f64((2.0 * live_seconds + 1.0).min(FINISH_TIMEOUT.as_secs_f64()));
        eprintln!("replay: the server does not offer list_jobs; waiting {wait:?} for the job to finish");
        tokio::time::sleep(wait).await;
        return Ok(());
    }
    let deadline = Instant::now() + FINISH_TIMEOUT;
    loop {
        let status = job_status(&mut conn, &welcome.session_id, job_id).await?;
        if status.as_deref().is_some_and(is_terminal) {
            conn.close().await;
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("job {job_id} did not finish within {FINISH_TIMEOUT:?} (status {status:?})");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The listed status of `job_id` (paging through `session.list_jobs`); `None` if not listed.
async fn job_status(conn: &mut Conn, session_id: &str, job_id: &str) -> Result<Option<String>> {
    let mut cursor: Option<String> = None;
    loop {
        conn.send(frames::list_jobs(session_id, cursor.as_deref())).await?;
        let page = loop {
            let frame = conn.expect().await?;
            let v: Value = serde_json::from_str(&frame).context("a frame is not JSON")?;
            match v["type"].as_str() {
                Some("session.jobs") => break v,
                Some("session.error") => bail!("list_jobs failed: {}", frames::excerpt(&frame)),
                _ => {}
            }
        };
        let jobs = page["payload"]["jobs"].as_array();
        if let Some(job) = jobs.and_then(|jobs| jobs.iter().find(|j| j["job_id"] == job_id)) {
            return Ok(job["status"].as_str().map(str::to_owned));
        }
        match page["payload"]["next_cursor"].as_str() {
            Some(next) if jobs.is_some_and(|j| !j.is_empty()) => cursor = Some(next.to_owned()),
            _ => return Ok(None),
        }
    }
}

/// Whether a listed job status is final.
fn is_terminal(status: &str) -> bool {
    !matches!(status, "pending" | "queued" | "accepted" | "running")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_statuses() {
        assert!(is_terminal("success") && is_terminal("error") && is_terminal("cancelled"));
        assert!(!is_terminal("running") && !is_terminal("pending"));
    }
}
