//! Observability of `arcp serve` (issue 8), driven from outside: `GET /metrics` counts what a
//! scripted client did (sessions, resumes, jobs, events, idempotent hits, refusals, store
//! latency, channel turns and errors), and `--log-format json` writes one JSON object per
//! stderr line whose spans carry `arcp.session_id`, `arcp.job_id` and `arcp.agent`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Client, hello_payload};
use serde_json::{Value, json};

const TOKEN: &str = "metrics-token";

/// `http://127.0.0.1:PORT` of a `ws://127.0.0.1:PORT/arcp` URL.
fn base(url: &str) -> String {
    url.replace("ws://", "http://").trim_end_matches("/arcp").to_owned()
}

/// `curl` with `args`; returns (status, headers, body).
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

/// A channel turn: `POST {base}{path}` with the token and a JSON body.
async fn channel_post(base: &str, path: &str, body: &Value, extra: &[&str]) -> (u16, String, String) {
    let url = format!("{base}{path}");
    let body = body.to_string();
    let mut args = vec!["-X", "POST", url.as_str(), "-H", "Content-Type: application/json"];
    let auth = format!("Authorization: Bearer {TOKEN}");
    args.extend(["-H", auth.as_str(), "-d", body.as_str()]);
    args.extend_from_slice(extra);
    curl(&args).await
}

/// The value of the sample `series` (name and labels exactly as exposed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Polls `GET /metrics` until every `(series, value)` of `expect` holds (a connection's end is
/// counted on the server's own time), then returns the exposition; panics with the
/// mismatches after [`common::WAIT`].
async fn metrics_until(base: &str, expect: &[(&str, f64)]) -> String {
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let (status, headers, text) = curl(&[&format!("{base}/metrics")]).await;
        assert_eq!(status, 200, "{headers}{text}");
        assert!(
            headers.contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
            "{headers}"
        );
        let wrong: Vec<String> = expect
            .iter()
            .filter(|(series, value)| sample(&text, series) != Some(*value))
            .map(|(series, value)| format!("{series}: want {value}, have {:?}", sample(&text, series)))
            .collect();
        if wrong.is_empty() {
            return text;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}\n---\n{text}", wrong.join("\n"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_count_sessions_resumes_jobs_events_refusals_and_channel_turns() {
    let (_arcp, url) = common::serve(&["--token", TOKEN]).await;
    let base = base(&url);

    // A session, a job, an identical resubmit, and a refused submit.
    let mut c1 = Client::connect(&url).await;
    let welcome = c1.hello(TOKEN).await;
    assert_eq!(welcome["type"], "session.welcome", "{welcome}");
    let session = c1.session_id.clone().unwrap();
    let resume_token = welcome["payload"]["resume_token"].as_str().unwrap().to_owned();
    let submit = json!({"agent": "echo", "input": {"n": 1}, "idempotency_key": "k-1"});
    c1.send("job.submit", submit.clone(), json!({})).await;
    let accepted = c1.next().await;
    let job = accepted["job_id"].as_str().unwrap().to_owned();
    let first = c1.until_terminal(&job).await;
    assert_eq!(first.last().unwrap()["type"], "job.result", "{first:?}");
    c1.send("job.submit", submit, json!({})).await;
    assert_eq!(c1.next().await["job_id"], job.as_str());
    let again = c1.until_terminal(&job).await;
    assert_eq!(again.len(), 1, "only the terminal envelope is replayed: {again:?}");
    c1.send("job.submit", json!({"agent": "no-such-agent", "input": {}}), json!({})).await;
    let refused = c1.next().await;
    assert_eq!(refused["payload"]["code"], "AGENT_NOT_AVAILABLE", "{refused}");
    let last_seq = refused["event_seq"].as_u64().unwrap();

    // A refused hello (wrong token) and a refused resume (wrong resume token).
    let mut c2 = Client::connect(&url).await;
    let bad = c2.hello("wrong-token").await;
    assert_eq!(bad["payload"]["code"], "UNAUTHENTICATED", "{bad}");
    let mut c3 = Client::connect(&url).await;
    let mut payload = hello_payload(TOKEN);
    payload["resume"] =
        json!({"session_id": session, "resume_token": format!("rt_{}", "0".repeat(64)), "last_event_seq": 0});
    c3.send("session.hello", payload, json!({})).await;
    let bad = c3.next().await;
    assert_eq!(bad["payload"]["code"], "RESUME_WINDOW_EXPIRED", "{bad}");

    // A resume that works, on a new connection (the first one is dropped).
    drop(c1);
    let mut c4 = Client::connect(&url).await;
    let mut payload = hello_payload(TOKEN);
    payload["resume"] = json!({"session_id": session, "resume_token": resume_token, "last_event_seq": last_seq});
    c4.send("session.hello", payload, json!({})).await;
    assert_eq!(c4.next().await["type"], "session.welcome");

    // A channel turn, and a refused one.
    let (status, _, body) = channel_post(&base, "/v1/session", &json!({"input": {"hi": 1}}), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""status":"finished""#), "{body}");
    let (status, _, body) = channel_post(
        &base,
        "/v1/session/chs_nope/message",
        &json!({"input": 1}),
        &["-H", "X-Continuation-Token: ct_nope"],
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains(r#""reason":"unknown-session""#), "{body}");

    let text = metrics_until(
        &base,
        &[
            // c1's session and the channel's in-process session; c4 holds c1's session again.
            ("arcp_sessions_opened_total", 2.0),
            ("arcp_sessions_attached", 2.0),
            ("arcp_resumes_total{outcome=\"ok\"}", 1.0),
            ("arcp_resumes_total{outcome=\"RESUME_WINDOW_EXPIRED\"}", 1.0),
            // The echo job of c1 and the one of the channel turn.
            ("arcp_jobs_started_total{agent=\"echo\"}", 2.0),
            ("arcp_jobs_finished_total{agent=\"echo\",status=\"success\"}", 2.0),
            ("arcp_job_duration_seconds_count{status=\"success\"}", 2.0),
            // Each echo job: status running and one log event, then its result; the identical
            // resubmit re-sends the result; the refused submit is a job.error.
            ("arcp_events_total{type=\"job.event\"}", 4.0),
            ("arcp_events_total{type=\"job.result\"}", 3.0),
            ("arcp_events_total{type=\"job.error\"}", 1.0),
            ("arcp_idempotent_hits_total", 1.0),
            ("arcp_refusals_total{scope=\"request\",code=\"AGENT_NOT_AVAILABLE\"}", 1.0),
            ("arcp_refusals_total{scope=\"session\",code=\"UNAUTHENTICATED\"}", 1.0),
            ("arcp_refusals_total{scope=\"session\",code=\"RESUME_WINDOW_EXPIRED\"}", 1.0),
            ("arcp_store_operation_duration_seconds_count{op=\"append\"}", 8.0),
            // c1's submit and its resubmit, and the channel turn's (arcp-client keys every submit).
            ("arcp_store_operation_duration_seconds_count{op=\"idempotency_claim\"}", 3.0),
            // The resubmit's record is written before its key is claimed (and then removed).
            ("arcp_store_operation_duration_seconds_count{op=\"job_insert\"}", 3.0),
            ("arcp_channel_turns_total{outcome=\"finished\"}", 1.0),
            ("arcp_channel_turns_total{outcome=\"refused\"}", 1.0),
            ("arcp_channel_errors_total{reason=\"unknown-session\"}", 1.0),
        ],
    )
    .await;
    for present in [
        "# TYPE arcp_job_duration_seconds histogram",
        "# TYPE arcp_store_operation_duration_seconds histogram",
        "arcp_job_duration_seconds_bucket{le=\"+Inf\",status=\"success\"} 2",
    ] {
        assert!(text.contains(present), "{present} in\n{text}");
    }
    // Nothing failed, and nothing was rate-limited (no limit is configured).
    assert_eq!(sample(&text, "arcp_store_errors_total{op=\"append\"}"), None, "{text}");
    assert_eq!(sample(&text, "arcp_rate_limited_total{surface=\"arcp\"}"), None, "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    // No principal, token or id is ever a label value.
    for secret in [TOKEN, "local", session.as_str(), job.as_str()] {
        assert!(!text.contains(&format!("\"{secret}\"")), "{secret} in\n{text}");
    }
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_arcp_span_fields() {
    let (mut arcp, url) = common::serve(&["--token", TOKEN, "--log-format", "json"]).await;
    let mut c = Client::connect(&url).await;
    assert_eq!(c.hello(TOKEN).await["type"], "session.welcome");
    let session = c.session_id.clone().unwrap();
    let job = c.submit("echo", json!({"x": 1})).await;
    let end = c.until_terminal(&job).await;
    assert_eq!(end.last().unwrap()["type"], "job.result");
    drop(c);
    let pid = arcp.child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("run kill").success());
    assert_eq!(arcp.exit_code().await, Some(0));
    let stderr = arcp.stderr().await;

    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(lines.len() > 3, "{stderr}");
    for line in &lines {
        assert!(line["timestamp"].is_string() && line["level"].is_string(), "{line}");
        assert!(line["fields"].is_object() && line["target"].is_string(), "{line}");
    }
    // The job's end is logged inside its span: session, job and agent.
    let ended = lines
        .iter()
        .find(|l| l["fields"]["message"] == "job ended" && l["span"]["arcp.job_id"] == job.as_str())
        .unwrap_or_else(|| panic!("no 'job ended' line for {job}:\n{stderr}"));
    assert_eq!(ended["span"]["name"], "arcp.job", "{ended}");
    assert_eq!(ended["span"]["arcp.session_id"], session.as_str(), "{ended}");
    assert_eq!(ended["span"]["arcp.agent"], "echo", "{ended}");
    assert_eq!(ended["fields"]["status"], "success", "{ended}");
    // The connection's span carries the session once bound.
    let bound = lines
        .iter()
        .find(|l| {
            l["fields"]["message"] == "connection bound to a session"
                && l["span"]["arcp.session_id"] == session.as_str()
        })
        .unwrap_or_else(|| panic!("no bound line for {session}:\n{stderr}"));
    assert_eq!(bound["span"]["name"], "arcp.connection", "{bound}");
    assert!(!stderr.contains(TOKEN), "the token is never logged:\n{stderr}");
}
