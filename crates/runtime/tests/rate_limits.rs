//! Per-principal rate limits of `arcp serve` (issue 8), driven from outside. The rate is one
//! token per 1000 s, so nothing refills during a test: the request after the burst is
//! refused, deterministically.
//!
//! - ARCP: the submit over the limit gets a request error `INTERNAL_ERROR` (retryable) with
//!   `details {cap: "rate_limit", reason: "rate_limited", retry_after_ms, request_id}`; the
//!   session stays open.
//! - Channel: `429 rate-limited` with `Retry-After`; a WebSocket frame gets an in-band
//!   `rate-limited` error frame. A channel turn costs one token (its ARCP job is not charged
//!   again), and the bucket is the principal's, shared with its ARCP submits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Client;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

const TOKEN: &str = "limits-token";

/// `arcp serve` allowing each principal a burst of `burst` requests, then one per 1000 s.
async fn serve_limited(burst: &str) -> (common::Arcp, String) {
    common::serve(&["--token", TOKEN, "--rate-limit-per-sec", "0.001", "--rate-limit-burst", burst]).await
}

fn base(url: &str) -> String {
    url.replace("ws://", "http://").trim_end_matches("/arcp").to_owned()
}

/// `curl` with `args`; returns (status, lower-cased headers, body).
async fn curl(args: &[&str]) -> (u16, String, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-D", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .await
        .expect("run curl");
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (rest, status) = text.rsplit_once('\n').expect("the status line");
    let (headers, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    (status.trim().parse().expect("a status"), headers.to_ascii_lowercase(), body.to_owned())
}

/// `POST /v1/session` with the token and `{"input": n}`.
async fn start_turn(base: &str, n: u64) -> (u16, String, String) {
    let url = format!("{base}/v1/session");
    let auth = format!("Authorization: Bearer {TOKEN}");
    let body = json!({ "input": n }).to_string();
    curl(&["-X", "POST", &url, "-H", "Content-Type: application/json", "-H", &auth, "-d", &body]).await
}

/// Asserts `reply` is the rate-limit refusal of the submit `request_id`.
fn assert_rate_limited(reply: &Value, request_id: &str) {
    assert_eq!(reply["type"], "job.error", "{reply}");
    let p = &reply["payload"];
    assert_eq!(
        (&p["code"], &p["retryable"], &p["final_status"]),
        (&json!("INTERNAL_ERROR"), &json!(true), &json!("error"))
    );
    let d = &p["details"];
    assert_eq!(
        (&d["reason"], &d["cap"], &d["request_id"]),
        (&json!("rate_limited"), &json!("rate_limit"), &json!(request_id))
    );
    // One token per 1000 s: the next one is due in (just under) 1000 s.
    let ms = d["retry_after_ms"].as_u64().unwrap_or_else(|| panic!("retry_after_ms in {reply}"));
    assert!((900_000..=1_000_000).contains(&ms), "{reply}");
}

#[tokio::test]
async fn a_submit_over_the_limit_gets_a_retryable_error_with_a_hint_and_the_session_stays_open() {
    let (_arcp, url) = serve_limited("2").await;
    let mut c = Client::connect(&url).await;
    assert_eq!(c.hello(TOKEN).await["type"], "session.welcome");
    for n in 0..2 {
        let job = c.submit("echo", json!(n)).await;
        assert_eq!(c.until_terminal(&job).await.last().unwrap()["type"], "job.result");
    }
    let id = c.send("job.submit", json!({"agent": "echo", "input": 3, "idempotency_key": "k-3"}), json!({})).await;
    let refused = c.next().await;
    assert_rate_limited(&refused, &id);

    // The session is still open: it answers a ping, and a further submit is refused the same way
    // (the refused one bound no idempotency key).
    c.send("session.ping", json!({"nonce": "n-1", "sent_at": "2026-01-01T00:00:00Z"}), json!({})).await;
    let pong = c.next().await;
    assert_eq!((&pong["type"], &pong["payload"]["ping_nonce"]), (&json!("session.pong"), &json!("n-1")), "{pong}");
    let id = c.send("job.submit", json!({"agent": "echo", "input": 3, "idempotency_key": "k-3"}), json!({})).await;
    assert_rate_limited(&c.next().await, &id);

    let (_, _, text) = curl(&[&format!("{}/metrics", base(&url))]).await;
    assert!(text.contains("arcp_rate_limited_total{surface=\"arcp\"} 2\n"), "{text}");
    assert!(text.contains("arcp_refusals_total{scope=\"request\",code=\"INTERNAL_ERROR\"} 2\n"), "{text}");
    assert!(text.contains("arcp_jobs_started_total{agent=\"echo\"} 2\n"), "{text}");
}

#[tokio::test]
async fn a_channel_request_over_the_limit_is_429_with_retry_after_and_the_bucket_is_the_principals() {
    let (_arcp, url) = serve_limited("2").await;
    let base = base(&url);
    // Two turns fit: each costs one token (its ARCP job is not charged again).
    for n in 0..2 {
        let (status, _, body) = start_turn(&base, n).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(r#""status":"finished""#), "{body}");
    }
    let (status, headers, body) = start_turn(&base, 3).await;
    assert_eq!(status, 429, "{headers}{body}");
    let retry_after: u64 = headers
        .lines()
        .find_map(|l| l.strip_prefix("retry-after:"))
        .unwrap_or_else(|| panic!("Retry-After in {headers}"))
        .trim()
        .parse()
        .unwrap();
    assert!((900..=1000).contains(&retry_after), "{headers}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["reason"], "rate-limited", "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("rate limit")), "{body}");

    // The same principal's ARCP submits share the bucket.
    let mut c = Client::connect(&url).await;
    assert_eq!(c.hello(TOKEN).await["type"], "session.welcome");
    let id = c.send("job.submit", json!({"agent": "echo", "input": 1}), json!({})).await;
    assert_rate_limited(&c.next().await, &id);

    let (_, _, text) = curl(&[&format!("{base}/metrics")]).await;
    assert!(text.contains("arcp_rate_limited_total{surface=\"channel\"} 1\n"), "{text}");
    assert!(text.contains("arcp_rate_limited_total{surface=\"arcp\"} 1\n"), "{text}");
    assert!(text.contains("arcp_channel_errors_total{reason=\"rate-limited\"} 1\n"), "{text}");
    assert!(text.contains("arcp_channel_turns_total{outcome=\"finished\"} 2\n"), "{text}");
}

#[tokio::test]
async fn a_websocket_frame_over_the_limit_gets_an_in_band_rate_limited_error() {
    // The upgrade request takes one token, the first frame the other.
    let (_arcp, url) = serve_limited("2").await;
    let ws_url = url.replace("/arcp", "/v1/ws");
    let mut request = ws_url.into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (mut ws, _) = tokio::time::timeout(common::WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect in time")
        .expect("the upgrade is accepted");

    ws.send(Message::text(json!({"body": {"input": 1}, "requestId": 1}).to_string())).await.unwrap();
    let outcome = read_until_terminal(&mut ws).await;
    assert_eq!((&outcome["type"], &outcome["status"]), (&json!("outcome"), &json!("finished")), "{outcome}");
    ws.send(Message::text(json!({"body": {"input": 2}, "requestId": 2}).to_string())).await.unwrap();
    let refused = read_until_terminal(&mut ws).await;
    assert_eq!(
        (&refused["type"], &refused["reason"], &refused["requestId"]),
        (&json!("error"), &json!("rate-limited"), &json!(2)),
        "{refused}"
    );
    let secs = refused["retryAfter"].as_u64().unwrap_or_else(|| panic!("retryAfter in {refused}"));
    assert!((900..=1000).contains(&secs), "{refused}");
    // The connection stays open: it still answers (with the same refusal).
    ws.send(Message::text(json!({"body": {"input": 3}, "requestId": 3}).to_string())).await.unwrap();
    assert_eq!(read_until_terminal(&mut ws).await["reason"], "rate-limited");
}

/// The next `outcome` or `error` frame.
async fn read_until_terminal<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let msg = tokio::time::timeout(common::WAIT, ws.next()).await.expect("a frame in time").expect("open").unwrap();
        let Message::Text(text) = msg else { continue };
        let value: Value = serde_json::from_str(text.as_str()).unwrap();
        if matches!(value["type"].as_str(), Some("outcome" | "error")) {
            return value;
        }
    }
}
