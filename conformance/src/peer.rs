//! The raw scripted peer: sends JSON frames exactly as written and reads frames back as JSON,
//! so cases can test any server, including what a well-behaved client would never send.

use std::time::Duration;

use arcp_server::transport::{FrameSink, FrameSource, Transport};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// How long a case waits for one frame before failing.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed expectation.
pub type Failure = String;

/// Checks every error object in a received frame (§12.1, decision 10): the payload of
/// `session.error` and `job.error` and the `error` of a `tool_result` event must carry a
/// string `code`, a string `message` and a boolean `retryable`, and a canonical code with a
/// pinned value (`INTERNAL_ERROR` true; `LEASE_EXPIRED`, `BUDGET_EXHAUSTED`,
/// `AGENT_VERSION_NOT_AVAILABLE` false) must carry that value. [`Peer::recv`] applies it to
/// every frame, so any case that receives an error checks it.
pub fn check_error_payloads(frame: &Value) -> Result<(), Failure> {
    let error = match frame["type"].as_str() {
        Some("session.error" | "job.error") => &frame["payload"],
        Some("job.event") if frame["payload"]["kind"] == "tool_result" => match frame["payload"]["body"].get("error") {
            Some(error) => error,
            None => return Ok(()),
        },
        _ => return Ok(()),
    };
    let code = error["code"].as_str().ok_or("an error object without a string `code`")?;
    if !error["message"].is_string() {
        return Err(format!("error {code} without a string `message` (§12.1)"));
    }
    let retryable = error["retryable"]
        .as_bool()
        .ok_or_else(|| format!("error {code} without a boolean `retryable` (decision 10)"))?;
    if let Some(arcp_core::Retryable::Pinned(pinned)) =
        arcp_core::ErrorCode::parse(code).ok().map(|c| c.retryable_rule())
        && retryable != pinned
    {
        return Err(format!("error {code} must always carry retryable: {pinned} (decision 10)"));
    }
    Ok(())
}

/// A connection driven frame by frame.
pub struct Peer {
    tx: Option<mpsc::UnboundedSender<String>>,
    rx: mpsc::UnboundedReceiver<String>,
    n: u64,
    /// The session this peer is in, once welcomed.
    pub session_id: Option<String>,
    /// The current resume token, once welcomed.
    pub resume_token: Option<String>,
    /// The highest `event_seq` received.
    pub last_seq: u64,
    /// Every `event_seq` received, in order (for gap and duplicate checks).
    pub seqs: Vec<u64>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("session_id", &self.session_id).field("last_seq", &self.last_seq).finish()
    }
}

impl Peer {
    /// Wraps a transport: two pump tasks move frames between it and the peer.
    pub fn over<T: Transport>(transport: T) -> Peer {
        let (mut sink, mut source) = transport.split();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
        let (in_tx, in_rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(frame) = out_rx.recv().await {
                if sink.send(frame).await.is_err() {
                    break;
                }
            }
            sink.close().await;
        });
        tokio::spawn(async move {
            while let Some(Ok(frame)) = source.recv().await {
                if in_tx.send(frame).is_err() {
                    break;
                }
            }
        });
        Peer { tx: Some(out_tx), rx: in_rx, n: 0, session_id: None, resume_token: None, last_seq: 0, seqs: Vec::new() }
    }

    /// A fresh envelope id (ULID-shaped, which strict peers require).
    pub fn next_id(&mut self) -> String {
        self.n += 1;
        format!("msg_{:026}", self.n)
    }

    /// Sends a frame verbatim.
    pub fn send_raw(&self, frame: impl Into<String>) -> Result<(), Failure> {
        match &self.tx {
            Some(tx) => tx.send(frame.into()).map_err(|_| "the connection is closed".to_owned()),
            None => Err("the connection is closed".to_owned()),
        }
    }

    /// Sends `{arcp, id, type, session_id?, payload, ...extra}`; returns the id.
    pub fn send(&mut self, ty: &str, payload: Value, extra: Value) -> Result<String, Failure> {
        let id = self.next_id();
        let mut env = json!({ "arcp": "1.1", "id": id, "type": ty, "payload": payload });
        if let Some(s) = &self.session_id {
            env["session_id"] = json!(s);
        }
        if let Value::Object(map) = extra {
            for (k, v) in map {
                env[k] = v;
            }
        }
        self.send_raw(env.to_string())?;
        Ok(id)
    }

    /// The next frame as JSON. Checks `event_seq` continuity on the way.
    pub async fn recv(&mut self) -> Result<Value, Failure> {
        let frame = tokio::time::timeout(FRAME_TIMEOUT, self.rx.recv())
            .await
            .map_err(|_| format!("no frame within {FRAME_TIMEOUT:?}"))?
            .ok_or("the server closed the connection")?;
        let v: Value =
            serde_json::from_str(&frame).map_err(|e| format!("the server sent invalid JSON ({e}): {frame}"))?;
        arcp_core::decode(frame.as_bytes(), &arcp_core::DecodeOptions::default())
            .map_err(|f| format!("the server sent a frame that does not decode ({}): {frame}", f.error))?;
        check_error_payloads(&v).map_err(|e| format!("{e}: {frame}"))?;
        if let Some(seq) = v.get("event_seq").and_then(Value::as_u64) {
            if seq != self.last_seq + 1 {
                return Err(format!("event_seq {seq} after {} (gap or duplicate): {frame}", self.last_seq));
            }
            self.last_seq = seq;
            self.seqs.push(seq);
        }
        Ok(v)
    }

    /// Reads frames until one of type `ty` (skipping others); fails after 200 frames.
    pub async fn recv_type(&mut self, ty: &str) -> Result<Value, Failure> {
        for _ in 0..200 {
            let v = self.recv().await?;
            if v["type"] == ty {
                return Ok(v);
            }
        }
        Err(format!("no {ty} within 200 frames"))
    }

    /// Whether the server closes the connection within `timeout` (frames in flight skipped).
    pub async fn closes_within(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(None) => return true,
                Ok(Some(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Whether nothing arrives for `quiet`.
    pub async fn silent_for(&mut self, quiet: Duration) -> bool {
        tokio::time::timeout(quiet, self.rx.recv()).await.is_err()
    }

    /// Drops the connection without a goodbye (a transport failure, as seen by the server).
    pub fn drop_connection(&mut self) {
        self.tx = None;
        self.rx.close();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::check_error_payloads;

    fn session_error(payload: serde_json::Value) -> serde_json::Value {
        json!({"type": "session.error", "payload": payload})
    }

    #[test]
    fn error_objects_need_a_boolean_retryable_and_the_pinned_value() {
        let ok = |p| check_error_payloads(&session_error(p)).is_ok();
        assert!(ok(json!({"code": "INVALID_REQUEST", "message": "m", "retryable": false})));
        assert!(ok(json!({"code": "TIMEOUT", "message": "m", "retryable": false})), "a default may be overridden");
        assert!(!ok(json!({"code": "INVALID_REQUEST", "message": "m"})), "retryable is always present");
        assert!(!ok(json!({"code": "INVALID_REQUEST", "message": "m", "retryable": "no"})));
        assert!(!ok(json!({"code": "INVALID_REQUEST", "retryable": false})), "message is required");
        assert!(!ok(json!({"code": "INTERNAL_ERROR", "message": "m", "retryable": false})));
        for pinned_false in ["LEASE_EXPIRED", "BUDGET_EXHAUSTED", "AGENT_VERSION_NOT_AVAILABLE"] {
            assert!(!ok(json!({"code": pinned_false, "message": "m", "retryable": true})), "{pinned_false}");
        }
        let job_error =
            json!({"type": "job.error", "payload": {"code": "INTERNAL_ERROR", "message": "m", "retryable": false}});
        assert!(check_error_payloads(&job_error).is_err());
        let tool_result = |error| json!({"type": "job.event", "payload": {"kind": "tool_result", "body": {"call_id": "c", "error": error}}});
        assert!(
            check_error_payloads(&tool_result(json!({"code": "BUDGET_EXHAUSTED", "message": "m", "retryable": false})))
                .is_ok()
        );
        assert!(check_error_payloads(&tool_result(json!({"code": "BUDGET_EXHAUSTED", "message": "m"}))).is_err());
        let void = json!({"type": "job.event", "payload": {"kind": "tool_result", "body": {"call_id": "c"}}});
        assert!(check_error_payloads(&void).is_ok());
    }
}
