//! §14 resource caps, at their documented defaults: concurrent jobs per session, open
//! sessions per principal, and buffered events per session. Each is a typed `INTERNAL_ERROR`
//! with `retryable: true`, never a silent drop. A runtime configured above the default is
//! reported as skipped for that case.

use std::time::Duration;

use serde_json::{Value, json};

use super::leases::require_feature;
use super::{Case, SKIP, adopt_welcome, case, ensure, hello_payload, job_id, open, require_agent};
use crate::{Ctx, Failure, Peer};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            s14_concurrent_job_cap_is_a_request_error,
            "14",
            "The submit beyond the concurrent-job cap (default 100) is a request error INTERNAL_ERROR, retryable, with details.request_id; the session stays open"
        ),
        case!(
            s14_sessions_per_principal_cap_refuses_the_hello,
            "14",
            "A hello beyond the open-sessions-per-principal cap (default 100) gets session.error INTERNAL_ERROR, retryable, and the transport closes"
        ),
        case!(
            s14_event_buffer_cap_terminates_the_session,
            "14",
            "Exceeding the buffered-events cap (default 10 000) without acks is session.error INTERNAL_ERROR; the session cannot be resumed"
        ),
        case!(
            s14_event_bytes_cap_terminates_the_session,
            "14",
            "Exceeding the buffered-bytes cap (default 16 MiB) without acks is session.error INTERNAL_ERROR, retryable, never a silent truncation; the session cannot be resumed"
        ),
    ]
}

fn is_cap_error(v: &Value) -> bool {
    v["payload"]["code"] == "INTERNAL_ERROR" && v["payload"]["retryable"] == true
}

async fn s14_concurrent_job_cap_is_a_request_error(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "sleep")?;
    let mut running = Vec::new();
    let mut refused = None;
    for _ in 0..101 {
        let request = peer.send("job.submit", json!({"agent": "sleep", "input": {}}), json!({}))?;
        let v = loop {
            let v = peer.recv().await?;
            if v["type"] == "job.accepted"
                || (v["type"] == "job.error" && v["payload"]["details"]["request_id"] == request.as_str())
            {
                break v;
            }
        };
        if v["type"] == "job.accepted" {
            running.push(job_id(&v)?);
        } else {
            refused = Some(v);
            break;
        }
    }
    let outcome = match refused {
        None => Err(format!("{SKIP} 101 concurrent jobs were accepted (the cap is above the default)")),
        Some(v) => {
            ensure(is_cap_error(&v), format!("expected INTERNAL_ERROR retryable:true, got {v}"))?;
            ensure(!running.iter().any(|j| v["job_id"] == j.as_str()), "the refusal names a fresh job_id")?;
            // The session is still open.
            peer.send("session.ping", json!({"nonce": "open", "sent_at": "2026-11-23T08:00:00Z"}), json!({}))?;
            peer.recv_type("session.pong").await.map(drop)
        }
    };
    for job in &running {
        peer.send("job.cancel", json!({}), json!({"job_id": job}))?;
    }
    let mut ended = std::collections::HashSet::new();
    while ended.len() < running.len() {
        let v = peer.recv().await?;
        if (v["type"] == "job.error" || v["type"] == "job.result")
            && let Some(j) = v["job_id"].as_str()
            && running.iter().any(|r| r == j)
        {
            ended.insert(j.to_owned());
        }
    }
    outcome
}

async fn hello(ctx: &Ctx) -> Result<(Peer, Value), Failure> {
    let mut peer = ctx.connect().await?;
    let mut payload = hello_payload(ctx.token(), None);
    payload["capabilities"]["features"] = json!([]);
    peer.send("session.hello", payload, json!({}))?;
    let v = peer.recv().await?;
    if v["type"] == "session.welcome" {
        adopt_welcome(&mut peer, &v)?;
    }
    Ok((peer, v))
}

async fn s14_sessions_per_principal_cap_refuses_the_hello(ctx: Ctx) -> Result<(), Failure> {
    let mut open_peers = Vec::new();
    let mut refusal = None;
    for _ in 0..101 {
        let (peer, v) = hello(&ctx).await?;
        if v["type"] == "session.welcome" {
            open_peers.push(peer);
        } else {
            refusal = Some((peer, v));
            break;
        }
    }
    let outcome = match refusal {
        None => Err(format!("{SKIP} 101 open sessions were accepted (the cap is above the default)")),
        Some((mut peer, v)) => {
            ensure(v["type"] == "session.error" && is_cap_error(&v), format!("expected INTERNAL_ERROR, got {v}"))?;
            ensure(peer.closes_within(Duration::from_secs(5)).await, "session.error closes")
        }
    };
    // Leave, and wait until the runtime has noticed, so later cases are not refused.
    for peer in &mut open_peers {
        peer.send("session.close", json!({}), json!({}))?;
    }
    for peer in &mut open_peers {
        let _ = peer.closes_within(Duration::from_secs(5)).await;
    }
    drop(open_peers);
    for _ in 0..100 {
        if let Ok((_, v)) = hello(&ctx).await
            && v["type"] == "session.welcome"
        {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("no session could be opened after closing the others".into())
}

async fn s14_event_buffer_cap_terminates_the_session(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "count")?;
    let cap = ctx.buffer_caps().events;
    let n = cap + 100;
    peer.send("job.submit", json!({"agent": "count", "input": {"n": n}}), json!({}))?;
    let error = loop {
        let v = peer.recv().await?;
        if v["type"] == "session.error" {
            break v;
        }
        if v["type"] == "job.result" || v["type"] == "job.error" {
            return Err(format!(
                "{SKIP} {} events were buffered (the cap is above {cap}: give the target's cap in RunOptions::buffer_caps)",
                peer.last_seq
            ));
        }
    };
    ensure(is_cap_error(&error), format!("expected INTERNAL_ERROR retryable:true, got {error}"))?;
    ensure(peer.closes_within(Duration::from_secs(5)).await, "session.error closes")?;
    ensure(peer.last_seq <= cap, format!("at most the cap ({cap}) was delivered, saw {}", peer.last_seq))?;
    // Terminated: resuming is refused.
    let session = peer.session_id.clone().unwrap_or_default();
    let token = peer.resume_token.clone().unwrap_or_default();
    let mut again = ctx.connect().await?;
    let r = json!({"session_id": session, "resume_token": token, "last_event_seq": peer.last_seq});
    again.send("session.hello", hello_payload(ctx.token(), Some(r)), json!({}))?;
    let v = again.recv().await?;
    ensure(
        v["type"] == "session.error" && v["payload"]["code"] == "RESUME_WINDOW_EXPIRED",
        format!("a terminated session cannot be resumed, got {v}"),
    )
}

async fn s14_event_bytes_cap_terminates_the_session(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_feature(&welcome, "result_chunk")?;
    require_agent(&welcome, "chunks")?;
    // Chunks of a 16th of the cap (at most 1 MiB, the chunk cap), one more than fit: more
    // bytes than the cap (17 MiB at the default 16 MiB), far fewer events than the event cap.
    let cap = ctx.buffer_caps().bytes;
    let chunk = (cap / 16).clamp(1, 1 << 20);
    let bytes = (cap / chunk + 1) * chunk;
    peer.send("job.submit", json!({"agent": "chunks", "input": {"bytes": bytes, "chunk": chunk}}), json!({}))?;
    let mut received = 0u64;
    let error = loop {
        let v = peer.recv().await?;
        if v["type"] == "session.error" {
            break v;
        }
        if v["payload"]["kind"] == "result_chunk" {
            received += v["payload"]["body"]["data"].as_str().map_or(0, |d| d.len() as u64);
        }
        if v["type"] == "job.result" || v["type"] == "job.error" {
            return Err(format!(
                "{SKIP} {bytes} bytes of events were buffered (the cap is above {cap}: give the target's cap in RunOptions::buffer_caps)"
            ));
        }
    };
    ensure(is_cap_error(&error), format!("expected INTERNAL_ERROR retryable:true, got {error}"))?;
    ensure(peer.closes_within(Duration::from_secs(5)).await, "session.error closes")?;
    ensure(received <= cap, format!("at most the cap ({cap}) was delivered, got {received} bytes of chunks"))?;
    ensure(received.is_multiple_of(chunk), format!("whole chunks only, never a truncated one: {received} bytes"))?;
    let session = peer.session_id.clone().unwrap_or_default();
    let token = peer.resume_token.clone().unwrap_or_default();
    let mut again = ctx.connect().await?;
    let r = json!({"session_id": session, "resume_token": token, "last_event_seq": peer.last_seq});
    again.send("session.hello", hello_payload(ctx.token(), Some(r)), json!({}))?;
    let v = again.recv().await?;
    ensure(
        v["type"] == "session.error" && v["payload"]["code"] == "RESUME_WINDOW_EXPIRED",
        format!("a terminated session cannot be resumed, got {v}"),
    )
}
