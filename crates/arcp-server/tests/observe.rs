//! The observation and rate-limit hooks (`Observer`, `SubmitLimiter`): what the runtime reports
//! for a scripted session, and a submit the limiter refuses (a retryable request error with a
//! retry hint; the session stays open, nothing runs, no key is bound).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arcp_core::ErrorCode;
use arcp_core::message::{JobStatus, Message};
use arcp_server::observe::{RefusalScope, StoreOp, job_status_label};
use arcp_server::{Observer, Runtime, StaticBearerVerifier, SubmitLimiter};
use serde_json::json;
use support::{Client, OTHER_TOKEN, TOKEN};

/// Records every call as a line.
#[derive(Default)]
struct Recorder(parking_lot::Mutex<Vec<String>>);

impl Recorder {
    fn push(&self, line: String) {
        self.0.lock().push(line);
    }

    fn count(&self, line: &str) -> usize {
        self.0.lock().iter().filter(|l| *l == line).count()
    }

    /// Waits (up to 5 s) until `line` was recorded `n` times: a connection's end is reported
    /// on the server's own time.
    async fn wait_for(&self, line: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.count(line) != n {
            assert!(tokio::time::Instant::now() < deadline, "{line} ×{n}; have {:?}", self.0.lock());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Observer for Recorder {
    fn session_opened(&self) {
        self.push("session_opened".into());
    }
    fn resume_succeeded(&self) {
        self.push("resume ok".into());
    }
    fn resume_refused(&self, code: &ErrorCode) {
        self.push(format!("resume {code}"));
    }
    fn session_detached(&self) {
        self.push("session_detached".into());
    }
    fn job_started(&self, agent: &str) {
        self.push(format!("job_started {agent}"));
    }
    fn job_ended(&self, agent: &str, status: JobStatus, _elapsed: Duration) {
        self.push(format!("job_ended {agent} {}", job_status_label(status)));
    }
    fn event_persisted(&self, message_type: &'static str) {
        self.push(format!("event {message_type}"));
    }
    fn idempotent_replay(&self) {
        self.push("idempotent_replay".into());
    }
    fn refused(&self, scope: RefusalScope, code: &ErrorCode) {
        self.push(format!("refused {} {code}", scope.as_str()));
    }
    fn store_operation(&self, op: StoreOp, _elapsed: Duration, ok: bool) {
        self.push(format!("store {} {ok}", op.as_str()));
    }
}

/// Admits the first `n` submits of each principal, then refuses with a 1.5 s hint.
struct FirstN {
    n: usize,
    seen: parking_lot::Mutex<HashMap<String, usize>>,
}

impl SubmitLimiter for FirstN {
    fn check(&self, principal: &str) -> Result<(), Duration> {
        let mut seen = self.seen.lock();
        let count = seen.entry(principal.to_owned()).or_default();
        *count += 1;
        if *count <= self.n { Ok(()) } else { Err(Duration::from_millis(1500)) }
    }
}

fn runtime(observer: Arc<Recorder>, admit: usize) -> Runtime {
    let verifier = StaticBearerVerifier::new().with_token(TOKEN, "alice").with_token(OTHER_TOKEN, "bob");
    Runtime::builder(verifier)
        .agents(support::registry())
        .observer(observer)
        .submit_limiter(Arc::new(FirstN { n: admit, seen: parking_lot::Mutex::default() }))
        .build()
}

#[tokio::test]
async fn the_observer_sees_sessions_jobs_events_refusals_resumes_and_store_latency() {
    let rec = Arc::new(Recorder::default());
    let rt = runtime(rec.clone(), 100);
    let mut c = Client::connect(&rt);
    assert!(matches!(c.hello().await.message, Message::SessionWelcome(_)));
    let (session, token) = (c.session_id.clone().unwrap(), c.resume_token.clone().unwrap());

    let submit = json!({"agent": "echo", "input": 1, "idempotency_key": "k"});
    c.send("job.submit", submit.clone(), json!({}));
    let accepted = c.next().await;
    let job = support::job_id_of(&accepted);
    c.until_terminal(&job).await;
    c.send("job.submit", submit, json!({}));
    c.next().await; // the same job.accepted
    c.until_terminal(&job).await; // the terminal, replayed
    c.submit("no-such-agent", json!({}));
    let refused = c.next().await;
    assert!(matches!(&refused.message, Message::JobError(e) if e.code == ErrorCode::AGENT_NOT_AVAILABLE));

    let mut wrong = Client::connect(&rt);
    wrong.hello_with("nope", None).await;
    let mut bad_resume = Client::connect(&rt);
    bad_resume.resume(&session, &format!("rt_{}", "0".repeat(64)), 0).await;
    drop(c);
    rec.wait_for("session_detached", 1).await;
    let mut again = Client::connect(&rt);
    assert!(matches!(again.resume(&session, &token, 0).await.message, Message::SessionWelcome(_)));
    rec.wait_for("resume ok", 1).await;

    for (line, n) in [
        ("session_opened", 1),
        ("job_started echo", 1),
        ("job_ended echo success", 1),
        ("event job.event", 2),
        // The result, its replay to the resubmit, and the refused submit.
        ("event job.result", 2),
        ("event job.error", 1),
        ("store append true", 5),
        ("store job_insert true", 2),
        ("store idempotency_claim true", 2),
        ("idempotent_replay", 1),
        ("refused request AGENT_NOT_AVAILABLE", 1),
        ("refused session UNAUTHENTICATED", 1),
        ("refused session RESUME_WINDOW_EXPIRED", 1),
        ("resume RESUME_WINDOW_EXPIRED", 1),
        ("resume ok", 1),
    ] {
        assert_eq!(rec.count(line), n, "{line} in {:?}", rec.0.lock());
    }
}

#[tokio::test]
async fn a_submit_the_limiter_refuses_is_a_retryable_request_error_and_the_session_stays_open() {
    let rec = Arc::new(Recorder::default());
    let rt = runtime(rec.clone(), 1);
    let mut c = Client::connect(&rt);
    c.hello().await;
    let job = {
        c.submit("echo", json!(1));
        support::job_id_of(&c.next().await)
    };
    c.until_terminal(&job).await;
    let request = c.send("job.submit", json!({"agent": "echo", "input": 2, "idempotency_key": "k2"}), json!({}));
    let env = c.next().await;
    let Message::JobError(e) = &env.message else { panic!("{env:?}") };
    assert_eq!((e.code.clone(), e.retryable), (ErrorCode::INTERNAL_ERROR, true));
    let details = e.details.clone().unwrap();
    assert_eq!(details["reason"], "rate_limited");
    assert_eq!(details["cap"], "rate_limit");
    assert_eq!(details["retry_after_ms"], 1500);
    assert_eq!(details["request_id"], request.as_str());
    assert_ne!(support::job_id_of(&env), job, "a fresh job_id");
    // Nothing ran and no key was bound; the session still answers.
    assert_eq!(rec.count("job_started echo"), 1);
    assert_eq!(rec.count("store idempotency_claim true"), 0);
    assert_eq!(rec.count("refused request INTERNAL_ERROR"), 1);
    c.send("session.ping", json!({"nonce": "p", "sent_at": "2026-01-01T00:00:00Z"}), json!({}));
    assert!(matches!(c.next().await.message, Message::SessionPong(_)));
    // Another principal has its own budget.
    let mut bob = Client::connect(&rt);
    bob.hello_with(OTHER_TOKEN, None).await;
    bob.submit("echo", json!(3));
    assert!(matches!(bob.next().await.message, Message::JobAccepted(_)));
}
