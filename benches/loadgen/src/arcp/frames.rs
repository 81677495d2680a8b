//! The ARCP frames the load generators send, and the cheap look at the frames they receive.
//!
//! Outbound frames are built as JSON text directly (`serde_json::json!`, then `to_string`);
//! inbound frames are classified by [`Head`], which borrows the envelope fields it needs and
//! skips the payload without allocating, whatever the key order or whitespace (the Python
//! reference runtime writes `": "` and its own order).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

/// The protocol version the load generators speak.
pub(crate) const VERSION: &str = "1.1";

/// A process-wide counter making message ids unique.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Crockford's base 32 alphabet (ULIDs).
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A fresh message id, `msg_` + a ULID-shaped 26-character string: 48 bits of milliseconds,
/// then the process id and a counter (unique within the process, distinct across processes).
pub(crate) fn msg_id() -> String {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) as u128;
    let pid = u128::from(std::process::id());
    let value = ((millis & 0xFFFF_FFFF_FFFF) << 80) | ((pid & 0xFFFF) << 64) | n;
    format!("msg_{}", ulid_text(value))
}

/// A 128-bit value in Crockford base 32, 26 characters (the ULID text form).
fn ulid_text(value: u128) -> String {
    (0..26).rev().map(|i| char::from(CROCKFORD[((value >> (i * 5)) & 0x1F) as usize])).collect()
}

/// `session.hello` with a bearer token, asking for `features` (none: a v1.0-style hello
/// without `capabilities`, so nothing optional is negotiated, heartbeats included).
pub(crate) fn hello(token: &str, features: &[&str]) -> String {
    let mut payload = json!({
        "client": {"name": "arcp-loadgen", "version": env!("CARGO_PKG_VERSION")},
        "auth": {"scheme": "bearer", "token": token},
    });
    if !features.is_empty() {
        payload["capabilities"] = json!({ "features": features });
    }
    json!({"arcp": VERSION, "id": msg_id(), "type": "session.hello", "payload": payload}).to_string()
}

/// `session.resume` of `session_id` with `resume_token`, from `last_event_seq` (the v1.1
/// prose's message); `as_hello` sends the same as `session.hello` with `payload.resume` (what
/// the TS SDK does).
pub(crate) fn resume(
    token: &str,
    features: &[&str],
    session_id: &str,
    resume_token: &str,
    last_event_seq: u64,
    as_hello: bool,
) -> String {
    let kind = if as_hello { "session.hello" } else { "session.resume" };
    let mut payload = json!({
        "client": {"name": "arcp-loadgen", "version": env!("CARGO_PKG_VERSION")},
        "auth": {"scheme": "bearer", "token": token},
        "resume": {"session_id": session_id, "resume_token": resume_token, "last_event_seq": last_event_seq},
    });
    if !features.is_empty() {
        payload["capabilities"] = json!({ "features": features });
    }
    json!({"arcp": VERSION, "id": msg_id(), "type": kind, "payload": payload}).to_string()
}

/// `job.submit` of `agent` with `input` in `session_id`.
pub(crate) fn submit(session_id: &str, agent: &str, input: &Value) -> String {
    json!({
        "arcp": VERSION, "id": msg_id(), "type": "job.submit", "session_id": session_id,
        "payload": {"agent": agent, "input": input},
    })
    .to_string()
}

/// `session.ack` up to `seq`.
pub(crate) fn ack(session_id: &str, seq: u64) -> String {
    json!({
        "arcp": VERSION, "id": msg_id(), "type": "session.ack", "session_id": session_id,
        "payload": {"last_processed_seq": seq},
    })
    .to_string()
}

/// `session.list_jobs`: one page of up to 100 jobs, no filter, from `cursor`.
pub(crate) fn list_jobs(session_id: &str, cursor: Option<&str>) -> String {
    let mut payload = json!({"limit": 100});
    if let Some(cursor) = cursor {
        payload["cursor"] = json!(cursor);
    }
    json!({"arcp": VERSION, "id": msg_id(), "type": "session.list_jobs", "session_id": session_id, "payload": payload})
        .to_string()
}

/// `session.pong` answering a `session.ping` with `nonce`.
pub(crate) fn pong(session_id: &str, nonce: &str) -> String {
    json!({
        "arcp": VERSION, "id": msg_id(), "type": "session.pong", "session_id": session_id,
        "payload": {"ping_nonce": nonce, "received_at": "1970-01-01T00:00:00Z"},
    })
    .to_string()
}

/// The envelope fields of an inbound frame the workloads look at; the payload is skipped.
#[derive(Debug, Deserialize)]
pub(crate) struct Head<'a> {
    /// The message type.
    #[serde(rename = "type", borrow)]
    pub(crate) kind: std::borrow::Cow<'a, str>,
    /// `event_seq`, on events and terminal frames.
    #[serde(default)]
    pub(crate) event_seq: Option<u64>,
    /// Skipped without allocating.
    #[serde(default)]
    #[allow(dead_code, reason = "only there to be skipped")]
    payload: Option<IgnoredAny>,
}

impl<'a> Head<'a> {
    /// Reads the head of `frame`.
    pub(crate) fn parse(frame: &'a str) -> Result<Head<'a>> {
        serde_json::from_str(frame).with_context(|| format!("an inbound frame is not an envelope: {}", excerpt(frame)))
    }
}

/// The start of a frame, for error messages.
pub(crate) fn excerpt(frame: &str) -> String {
    let end = frame.char_indices().nth(300).map_or(frame.len(), |(i, _)| i);
    frame[..end].to_owned()
}

/// What a `session.welcome` says that the workloads need.
#[derive(Debug, Clone)]
pub(crate) struct Welcome {
    /// The session id (envelope, else payload).
    pub(crate) session_id: String,
    /// The resume token.
    pub(crate) resume_token: String,
    /// The negotiated features.
    pub(crate) features: Vec<String>,
}

impl Welcome {
    /// Reads a `session.welcome` frame; any other frame is an error naming it.
    pub(crate) fn parse(frame: &str) -> Result<Welcome> {
        let v: Value = serde_json::from_str(frame).context("the welcome is not JSON")?;
        if v["type"] != "session.welcome" {
            anyhow::bail!("expected session.welcome, got {}", excerpt(frame));
        }
        let session_id = v["session_id"]
            .as_str()
            .or_else(|| v["payload"]["session_id"].as_str())
            .context("session.welcome without session_id")?
            .to_owned();
        let resume_token = v["payload"]["resume_token"].as_str().unwrap_or_default().to_owned();
        let features = v["payload"]["capabilities"]["features"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        Ok(Welcome { session_id, resume_token, features })
    }

    /// Whether `feature` was negotiated.
    pub(crate) fn has(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_ulid_shaped_and_unique() {
        let (a, b) = (msg_id(), msg_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 26);
        assert!(a[4..].bytes().all(|c| CROCKFORD.contains(&c)));
        assert_eq!(ulid_text(0), "0".repeat(26));
        assert_eq!(ulid_text(u128::MAX), format!("7{}", "Z".repeat(25)));
    }

    #[test]
    fn outbound_frames() {
        let h: Value = serde_json::from_str(&hello("t", &[])).unwrap();
        assert_eq!(h["type"], "session.hello");
        assert_eq!(h["payload"]["auth"]["token"], "t");
        assert!(h["payload"].get("capabilities").is_none());
        let h: Value = serde_json::from_str(&hello("t", &["ack"])).unwrap();
        assert_eq!(h["payload"]["capabilities"]["features"][0], "ack");
        let s: Value = serde_json::from_str(&submit("sess_1", "count", &json!({"n": 3}))).unwrap();
        assert_eq!(s["session_id"], "sess_1");
        assert_eq!(s["payload"]["input"]["n"], 3);
        let r: Value = serde_json::from_str(&resume("t", &[], "sess_1", "rt_x", 0, false)).unwrap();
        assert_eq!(r["type"], "session.resume");
        assert_eq!(r["payload"]["resume"]["last_event_seq"], 0);
        let r: Value = serde_json::from_str(&resume("t", &[], "sess_1", "rt_x", 3, true)).unwrap();
        assert_eq!(
            (r["type"].as_str(), r["payload"]["resume"]["last_event_seq"].as_u64()),
            (Some("session.hello"), Some(3))
        );
        let a: Value = serde_json::from_str(&ack("sess_1", 7)).unwrap();
        assert_eq!(a["payload"]["last_processed_seq"], 7);
    }

    #[test]
    fn heads_in_any_layout() {
        let ours = r#"{"arcp":"1.1","id":"m","type":"job.event","session_id":"s","job_id":"j","event_seq":5,"payload":{"kind":"log","type":"x"}}"#;
        let h = Head::parse(ours).unwrap();
        assert_eq!((h.kind.as_ref(), h.event_seq), ("job.event", Some(5)));
        let python = r#"{"payload": {"type": "x"}, "event_seq": 9, "type": "job.result", "arcp": "1.1"}"#;
        let h = Head::parse(python).unwrap();
        assert_eq!((h.kind.as_ref(), h.event_seq), ("job.result", Some(9)));
        assert!(Head::parse("nope").is_err());
    }

    #[test]
    fn welcomes() {
        let w = Welcome::parse(
            r#"{"arcp":"1.1","id":"m","type":"session.welcome","session_id":"s1","payload":{"resume_token":"rt_1","capabilities":{"features":["ack","progress"]}}}"#,
        )
        .unwrap();
        assert_eq!(w.session_id, "s1");
        assert_eq!(w.resume_token, "rt_1");
        assert!(w.has("ack") && !w.has("heartbeat"));
        assert!(Welcome::parse(r#"{"type":"session.error","payload":{}}"#).is_err());
    }
}
