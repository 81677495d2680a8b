//! `arcp baseline`: a bare tokio-tungstenite server that keeps no state. It answers
//! `session.hello` with a canned `session.welcome` and each `job.submit` with the frames
//! `arcp serve` sends for the `echo` agent, in the same shapes: `job.accepted`, `job.event`
//! `status running`, `job.event` `log`, `job.result` with the input. Each frame is sent (and
//! flushed) on its own, as `arcp serve`'s writer does. The only per-connection state is the
//! `event_seq` counter; nothing is persisted, nothing is shared between connections.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use super::frames::{self, VERSION};

/// Listens on `listen`, prints `listening on ws://ADDR/arcp`, serves until killed.
pub(crate) async fn run(listen: &str) -> Result<()> {
    let listener = TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr().context("the bound address")?;
    println!("listening on ws://{addr}/arcp");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("baseline: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            if let Err(e) = serve(stream).await {
                eprintln!("baseline: connection: {e:#}");
            }
        });
    }
}

/// Serves one connection.
async fn serve(stream: TcpStream) -> Result<()> {
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    let mut ws = tokio_tungstenite::accept_async(stream).await.context("WebSocket handshake")?;
    let session_id = format!("sess_{}", &frames::msg_id()[4..]);
    let mut seq = 0u64;
    while let Some(msg) = ws.next().await {
        let text = match msg {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let Ok(request) = serde_json::from_str::<Value>(text.as_str()) else { continue };
        match request["type"].as_str() {
            Some("session.hello") => ws.send(Message::text(welcome(&session_id))).await?,
            Some("job.submit") => {
                let input = request["payload"]["input"].clone();
                for frame in echo_frames(&session_id, &mut seq, &input) {
                    ws.send(Message::text(frame)).await?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The canned welcome (the shape of `arcp serve`'s for a client asking for no features).
/// Captured from `arcp serve` for `echo` (input `{"hello":"world"}`): welcome 424 bytes,
/// accepted 364, status running 340, log 353, result 350.
fn welcome(session_id: &str) -> String {
    json!({
        "arcp": VERSION, "id": frames::msg_id(), "type": "session.welcome", "session_id": session_id,
        "payload": {
            "runtime": {"name": "arcp-rs", "version": env!("CARGO_PKG_VERSION")},
            "resume_token": format!("rt_{}", "0".repeat(64)),
            "resume_window_sec": 600,
            "capabilities": {"encodings": ["json"], "agents": ["echo", "count", "chunks", "delegate", "sleep"]},
            "session_id": session_id,
            "accepted_at": now(),
        },
    })
    .to_string()
}

/// What `arcp serve` sends for one `echo` job, `event_seq` continuing from `seq`.
fn echo_frames(session_id: &str, seq: &mut u64, input: &Value) -> [String; 4] {
    let job_id = format!("job_{}", &frames::msg_id()[4..]);
    let trace_id = trace_id();
    let ts = now();
    let mut next = || {
        *seq += 1;
        *seq
    };
    let accepted = json!({
        "arcp": VERSION, "id": frames::msg_id(), "type": "job.accepted", "session_id": session_id,
        "trace_id": trace_id, "job_id": job_id,
        "payload": {"job_id": job_id, "agent": "echo", "lease": {}, "accepted_at": ts, "trace_id": trace_id},
    });
    let running = json!({
        "arcp": VERSION, "id": frames::msg_id(), "type": "job.event", "session_id": session_id,
        "trace_id": trace_id, "job_id": job_id, "event_seq": next(),
        "payload": {"kind": "status", "ts": ts, "body": {"phase": "running"}},
    });
    let log = json!({
        "arcp": VERSION, "id": frames::msg_id(), "type": "job.event", "session_id": session_id,
        "trace_id": trace_id, "job_id": job_id, "event_seq": next(),
        "payload": {"kind": "log", "ts": ts, "body": {"level": "info", "message": "echo"}},
    });
    let result = json!({
        "arcp": VERSION, "id": frames::msg_id(), "type": "job.result", "session_id": session_id,
        "trace_id": trace_id, "job_id": job_id, "event_seq": next(),
        "payload": {"final_status": "success", "result": input, "completed_at": ts},
    });
    [accepted.to_string(), running.to_string(), log.to_string(), result.to_string()]
}

/// A W3C trace id (32 lowercase hex) from the clock and a message id counter.
fn trace_id() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{:032x}", nanos ^ (u128::from(std::process::id()) << 96))
}

/// Now as RFC 3339 UTC with milliseconds (`2026-11-23T18:48:06.123Z`).
fn now() -> String {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis()) as u64;
    rfc3339(millis)
}

/// `millis` since the epoch as RFC 3339 UTC with milliseconds.
fn rfc3339(millis: u64) -> String {
    let (secs, ms) = (millis / 1000, millis % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_709_164_800_123), "2024-02-29T00:00:00.123Z");
    }

    #[test]
    fn echo_frames_have_the_shapes_of_arcp_serve() {
        let mut seq = 0;
        let frames = echo_frames("sess_1", &mut seq, &json!({"a": 1}));
        let v: Vec<Value> = frames.iter().map(|f| serde_json::from_str(f).unwrap()).collect();
        let kinds: Vec<&str> = v.iter().map(|f| f["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["job.accepted", "job.event", "job.event", "job.result"]);
        assert_eq!(v[3]["payload"]["result"], json!({"a": 1}));
        assert_eq!((v[1]["event_seq"].as_u64(), v[3]["event_seq"].as_u64()), (Some(1), Some(3)));
        assert_eq!(seq, 3);
        assert_eq!(trace_id().len(), 32);
    }
}
