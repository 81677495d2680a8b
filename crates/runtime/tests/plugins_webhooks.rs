//! The `webhooks` plugin end to end: `arcp serve --plugins-policy` with a policy that grants
//! it and points it at a receiver on loopback (allowed with the test-only
//! `allowPrivateAddresses`). The receiver answers `500` once, then `200`: the delivery is
//! retried, the signature is recomputed here, and the delivery log is read back over HTTP.
//! With `--store sqlite:PATH` the delivery log survives a restart of `arcp serve`.
//!
//! The backoff schedule itself is checked in process and without waiting: the plugin is
//! built with `Webhooks::with_sleep`, whose function records each delay and returns at once,
//! so minutes of configured backoff take no time and the recorded delays are exact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt as _, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use plugin_api::{Format, Origin};
use runtime::plugins::webhooks::Webhooks;
use runtime::plugins::{Plugins, RouteRequest};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const SECRET: &str = "test-secret";

/// A receiver: the first request gets `500`, later ones `200`; every request is reported.
async fn receiver() -> (u16, mpsc::UnboundedReceiver<(StatusCode, Option<String>, Bytes)>) {
    receiver_failing(1).await
}

/// A receiver: the first `failures` requests get `500`, later ones `200`; every request is
/// reported.
async fn receiver_failing(failures: usize) -> (u16, mpsc::UnboundedReceiver<(StatusCode, Option<String>, Bytes)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    let seen = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (tx, seen) = (tx.clone(), seen.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (tx, seen) = (tx.clone(), seen.clone());
                    async move {
                        let sig = req.headers().get("x-arcp-signature").map(|v| v.to_str().unwrap().to_owned());
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let status = if seen.fetch_add(1, Ordering::SeqCst) < failures {
                            StatusCode::INTERNAL_SERVER_ERROR
                        } else {
                            StatusCode::OK
                        };
                        let _ = tx.send((status, sig, body));
                        let mut res = Response::new(Full::new(Bytes::new()));
                        *res.status_mut() = status;
                        Ok::<_, Infallible>(res)
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    (port, rx)
}

fn expected_signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[tokio::test]
async fn lifecycle_events_are_signed_delivered_retried_and_logged() {
    let (port, mut received) = receiver().await;
    let policy = json!({"plugins": {"webhooks": {
        "enabled": true,
        "grant": ["http.outbound", "session.events", "storage.kv", "scheduler", "routes"],
        "outboundHosts": ["localhost"],
        "allowPrivateAddresses": true,
        "config": {
            "endpoints": [{"url": format!("http://localhost:{port}/hook"), "secret": SECRET, "events": ["result"]}],
            "initialBackoffMs": 20,
            "maxAttempts": 5
        }
    }}});
    let path = std::env::temp_dir().join(format!("arcp-webhooks-policy-{}-{port}.json", std::process::id()));
    std::fs::write(&path, policy.to_string()).unwrap();
    let (_arcp, url) = serve(&["--token", "t", "--plugins-policy", path.to_str().unwrap()]).await;

    let mut c = Client::connect(&url).await;
    c.hello("t").await;
    let job = c.submit("echo", json!({"ping": 1})).await;
    c.until_terminal(&job).await;

    // First attempt: 500. Second: 200. Same bytes, same signature, both verified here.
    let mut bodies = Vec::new();
    for want in [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::OK] {
        let (status, sig, body) = tokio::time::timeout(WAIT, received.recv()).await.expect("a delivery").unwrap();
        assert_eq!(status, want);
        assert_eq!(sig.as_deref(), Some(expected_signature(&body).as_str()));
        bodies.push(body);
    }
    assert_eq!(bodies[0], bodies[1], "a retry resends the same body");
    let delivered: Value = serde_json::from_slice(&bodies[1]).unwrap();
    assert_eq!((delivered["event"].as_str(), delivered["job_id"].as_str()), (Some("job.result"), Some(job.as_str())));
    assert_eq!(delivered["payload"]["result"], json!({"ping": 1}));
    assert_eq!(delivered["agent"], "echo");

    // The delivery log, over the listener (the record is written right after the answer).
    let base = url.strip_prefix("ws://").unwrap().strip_suffix("/arcp").unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let log = http_get(&base, "/plugins/webhooks/deliveries").await;
        let d = &log["deliveries"][0];
        if d["status"] == "delivered" {
            assert_eq!((d["attempts"].as_u64(), d["job_id"].as_str()), (Some(2), Some(job.as_str())), "{log}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never recorded as delivered: {log}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let missing = http_get(&base, "/plugins/webhooks/nope").await;
    assert_eq!(missing["reason"], "not-found");
    let _ = std::fs::remove_file(&path);
}

/// The webhooks policy file for a receiver on `port` (retries every 20 ms).
fn policy_file(port: u16, tag: &str) -> std::path::PathBuf {
    let policy = json!({"plugins": {"webhooks": {
        "enabled": true,
        "grant": ["http.outbound", "session.events", "storage.kv", "scheduler", "routes"],
        "outboundHosts": ["localhost"],
        "allowPrivateAddresses": true,
        "config": {
            "endpoints": [{"url": format!("http://localhost:{port}/hook"), "secret": SECRET, "events": ["result"]}],
            "initialBackoffMs": 20,
            "maxAttempts": 5
        }
    }}});
    let path = std::env::temp_dir().join(format!("arcp-webhooks-{tag}-{}-{port}.json", std::process::id()));
    std::fs::write(&path, policy.to_string()).unwrap();
    path
}

/// The delivery log once its first record is `delivered`.
async fn delivered(base: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let log = http_get(base, "/plugins/webhooks/deliveries").await;
        if log["deliveries"][0]["status"] == "delivered" {
            return log;
        }
        assert!(tokio::time::Instant::now() < deadline, "never recorded as delivered: {log}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_delivery_log_survives_a_restart_on_sqlite() {
    let (port, _received) = receiver().await;
    let policy = policy_file(port, "sqlite");
    let dir = std::env::temp_dir().join(format!("arcp-webhooks-sqlite-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = format!("sqlite:{}", dir.join("arcp.db").display());
    let args = ["--token", "t", "--store", store.as_str(), "--plugins-policy", policy.to_str().unwrap()];

    let (mut arcp, url) = serve(&args).await;
    let base = url.strip_prefix("ws://").unwrap().strip_suffix("/arcp").unwrap().to_owned();
    let mut c = Client::connect(&url).await;
    c.hello("t").await;
    let job = c.submit("echo", json!({"ping": 1})).await;
    c.until_terminal(&job).await;
    let before = delivered(&base).await;
    assert_eq!(before["deliveries"][0]["job_id"], job.as_str());
    drop(c);
    // Killed and reaped: the database lock is free for the next process.
    arcp.child.kill().await.unwrap();

    // A new process over the same database file.
    let (_arcp, url) = serve(&args).await;
    let base = url.strip_prefix("ws://").unwrap().strip_suffix("/arcp").unwrap().to_owned();
    let after = http_get(&base, "/plugins/webhooks/deliveries").await;
    assert_eq!(after, before, "the delivery log is the one written before the restart");
    let _ = std::fs::remove_file(&policy);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `webhooks` loaded in process (no runtime: events are published directly), delivering to
/// a receiver on `port` with minutes of backoff, every delay recorded instead of waited.
async fn webhooks_recording_delays(port: u16, max_attempts: u32) -> (Plugins, mpsc::UnboundedReceiver<Duration>) {
    let policy = plugin_api::load_policy(
        &json!({"plugins": {"webhooks": {
            "enabled": true,
            "grant": ["http.outbound", "session.events", "storage.kv", "scheduler", "routes"],
            "outboundHosts": ["localhost"],
            "allowPrivateAddresses": true,
            "config": {
                "endpoints": [{"url": format!("http://localhost:{port}/hook"), "secret": SECRET}],
                "initialBackoffMs": 60_000,
                "maxBackoffMs": 150_000,
                "maxAttempts": max_attempts
            }
        }}})
        .to_string(),
        Format::Json,
    )
    .unwrap();
    let (tx, delays) = mpsc::unbounded_channel();
    let plugin = Webhooks::with_sleep(move |delay| {
        let _ = tx.send(delay);
        async {}
    });
    let plugins = Plugins::load(&policy, vec![(Arc::new(plugin), Origin::Builtin)]).await.unwrap();
    plugins.publish(arcp_server::JobLifecycle {
        kind: arcp_server::LifecycleKind::Error,
        job_id: "job_1".into(),
        session_id: "sess_1".into(),
        principal: "alice".into(),
        agent: "echo".into(),
        payload: json!({"code": "INTERNAL_ERROR"}),
        at_millis: 1,
    });
    (plugins, delays)
}

/// The first delivery record once its status is `status`.
async fn record_when(plugins: &Plugins, status: &str) -> Value {
    let req = || RouteRequest {
        method: hyper::Method::GET,
        path: "/plugins/webhooks/deliveries".to_owned(),
        query: None,
        headers: hyper::HeaderMap::new(),
        body: Bytes::new(),
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let log: Value = serde_json::from_slice(&plugins.dispatch(req()).await.body).unwrap();
        if log["deliveries"][0]["status"] == status {
            return log["deliveries"][0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "never {status}: {log}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn retries_follow_the_backoff_schedule_without_waiting_for_it() {
    let started = std::time::Instant::now();
    let (port, mut received) = receiver_failing(3).await;
    let (plugins, mut delays) = webhooks_recording_delays(port, 5).await;
    let record = record_when(&plugins, "delivered").await;
    assert_eq!((record["attempts"].as_u64(), record["last_result"].as_u64()), (Some(4), Some(200)), "{record}");
    // 60 s, then doubled, then capped at 150 s: 5.5 minutes of backoff, none of it waited.
    let mut got = Vec::new();
    while let Ok(d) = delays.try_recv() {
        got.push(d);
    }
    assert_eq!(got, [Duration::from_secs(60), Duration::from_secs(120), Duration::from_secs(150)]);
    let mut statuses = Vec::new();
    let mut bodies = Vec::new();
    while let Ok((status, sig, body)) = received.try_recv() {
        assert_eq!(sig.as_deref(), Some(expected_signature(&body).as_str()));
        statuses.push(status.as_u16());
        bodies.push(body);
    }
    assert_eq!(statuses, [500, 500, 500, 200]);
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "every attempt sends the same bytes");
    assert!(started.elapsed() < Duration::from_secs(5), "the backoff was not waited: {:?}", started.elapsed());
    plugins.teardown().await;
}

#[tokio::test]
async fn a_delivery_fails_after_max_attempts() {
    let (port, _received) = receiver_failing(usize::MAX).await;
    let (plugins, mut delays) = webhooks_recording_delays(port, 3).await;
    let record = record_when(&plugins, "failed").await;
    assert_eq!((record["attempts"].as_u64(), record["last_result"].as_u64()), (Some(3), Some(500)), "{record}");
    let mut got = Vec::new();
    while let Ok(d) = delays.try_recv() {
        got.push(d);
    }
    assert_eq!(got, [Duration::from_secs(60), Duration::from_secs(120)], "no delay after the last attempt");
    plugins.teardown().await;
}

async fn http_get(authority: &str, path: &str) -> Value {
    let stream = tokio::net::TcpStream::connect(authority).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::get(path).header("host", authority).body(Full::new(Bytes::new())).unwrap();
    let res = tokio::time::timeout(WAIT, sender.send_request(req)).await.unwrap().unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}
