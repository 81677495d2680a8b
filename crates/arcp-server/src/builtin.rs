//! The built-in agents of `arcp serve`: `echo`, `count`, `chunks`, `delegate` and `sleep`
//! (also what the conformance suite's in-process target hosts).
//!
//! Their inputs and results are a public contract (the brief's "Built-in agents" table):
//! tests and examples outside the project rely on them, so change them only together with
//! that table.
//!
//! | agent | input | result |
//! |---|---|---|
//! | `echo` | any JSON; logs one line | the input, unchanged |
//! | `count` | `{"n": int, "delay_ms"?: int}`; `n` `progress` events (`current` 1..n, `total` n), `delay_ms` apart (default 0) | `{"count": n}` |
//! | `chunks` | `{"bytes": int, "chunk"?: int}`; streams `bytes` bytes as `result_chunk`s (`utf8`) of `chunk` bytes (default 65 536; the last one may be shorter; `bytes: 0` is one empty chunk). Byte `i` is the letter `a` + (`i` mod 26). Needs the session to negotiate `result_chunk` | final `job.result` with `result_id` and `result_size` = `bytes` (no inline `result`) |
//! | `delegate` | `{"agent": str, "input"?: any, "lease_request"?: {capability: [pattern]}}`; delegates to `agent` (§10) under `lease_request` (absent: the empty lease), which must be a subset of this job's lease, and this job's lease must hold `agent.delegate` covering `agent` | the child's result (`{"result_id", "result_size"}` for a streamed one); a refused delegation or a failed child ends the job with that error code |
//! | `sleep` | `{"ms"?: int}`; sleeps `ms` (forever if absent) until cancelled or timed out | `{"slept_ms": ms}` |
//!
//! Integers are JSON integers ≥ 0 (`3.0`, `-1` and `"3"` are refused with
//! `INVALID_REQUEST`); a field set to `null` counts as absent; unknown fields are ignored.
//! `count` refuses `n` above [`MAX_COUNT`]; `chunks` refuses `bytes` above
//! [`MAX_CHUNKS_BYTES`] and `chunk` outside 1..=[`MAX_CHUNK_BYTES`] (the runtime's own caps,
//! [`crate::RuntimeConfig::max_result_chunk_bytes`] and `max_result_bytes`, may be lower:
//! exceeding those is `INTERNAL_ERROR`).

use std::time::Duration;

use crate::{AgentError, AgentRegistry, JobContext};
use arcp_core::ErrorCode;
use serde_json::{Map, Value, json};

/// The largest `n` the `count` agent accepts (ten million events is already far beyond a
/// demo; larger requests are refused rather than silently clamped).
pub const MAX_COUNT: u64 = 10_000_000;

/// The largest `bytes` the `chunks` agent accepts (the default streamed-result cap, §14).
pub const MAX_CHUNKS_BYTES: u64 = 256 << 20;

/// The largest `chunk` the `chunks` agent accepts (the default chunk cap, §14).
pub const MAX_CHUNK_BYTES: u64 = 1 << 20;

/// The `chunk` size `chunks` uses when none is given.
pub const DEFAULT_CHUNK_BYTES: u64 = 64 << 10;

/// How many `progress` events `count` emits between voluntary yields, so a large `n` with
/// no delay does not hog a worker thread.
const YIELD_EVERY: u64 = 256;

/// A registry holding every built-in agent.
pub fn registry() -> Result<AgentRegistry, arcp_core::Error> {
    let mut registry = AgentRegistry::new();
    registry
        .register("echo", echo)?
        .register("count", count)?
        .register("chunks", chunks)?
        .register("delegate", delegate)?
        .register("sleep", sleep)?;
    Ok(registry)
}

/// `echo`: logs one line and returns its input unchanged.
async fn echo(ctx: JobContext, input: Value) -> Result<Value, AgentError> {
    ctx.info("echo").await?;
    Ok(input)
}

/// `count`: `n` progress events, `delay_ms` apart, then `{"count": n}`.
async fn count(ctx: JobContext, input: Value) -> Result<Value, AgentError> {
    let fields = object("count", &input)?;
    let n = uint("count", fields, "n")?
        .ok_or_else(|| AgentError::invalid_input("count: input needs \"n\", a non-negative integer"))?;
    if n > MAX_COUNT {
        return Err(AgentError::invalid_input(format!("count: \"n\" is {n}, more than the limit of {MAX_COUNT}")));
    }
    let delay = Duration::from_millis(uint("count", fields, "delay_ms")?.unwrap_or(0));
    for current in 1..=n {
        if current > 1 && !delay.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = ctx.cancelled() => return Err(cancelled()),
            }
        } else if current % YIELD_EVERY == 0 {
            tokio::task::yield_now().await;
        }
        if ctx.is_cancelled() {
            return Err(cancelled());
        }
        ctx.progress(current, Some(n), None).await?;
    }
    Ok(json!({ "count": n }))
}

/// `chunks`: streams `bytes` bytes of `a`..`z` as `result_chunk`s of `chunk` bytes.
async fn chunks(ctx: JobContext, input: Value) -> Result<Value, AgentError> {
    let fields = object("chunks", &input)?;
    let bytes = uint("chunks", fields, "bytes")?
        .ok_or_else(|| AgentError::invalid_input("chunks: input needs \"bytes\", a non-negative integer"))?;
    if bytes > MAX_CHUNKS_BYTES {
        return Err(AgentError::invalid_input(format!(
            "chunks: \"bytes\" is {bytes}, more than the limit of {MAX_CHUNKS_BYTES}"
        )));
    }
    let chunk = uint("chunks", fields, "chunk")?.unwrap_or(DEFAULT_CHUNK_BYTES);
    if !(1..=MAX_CHUNK_BYTES).contains(&chunk) {
        return Err(AgentError::invalid_input(format!("chunks: \"chunk\" is {chunk}, outside 1..={MAX_CHUNK_BYTES}")));
    }
    let mut sent = 0u64;
    loop {
        if ctx.is_cancelled() {
            return Err(cancelled());
        }
        let len = chunk.min(bytes - sent);
        let text: String = (sent..sent + len).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        sent += len;
        ctx.result_chunk_text(&text, sent < bytes).await?;
        if sent >= bytes {
            return Ok(Value::Null);
        }
        tokio::task::yield_now().await;
    }
}

/// `delegate`: delegates to `agent` with `input` under `lease_request`; the child's result.
async fn delegate(ctx: JobContext, input: Value) -> Result<Value, AgentError> {
    let fields = object("delegate", &input)?;
    let agent = match fields.and_then(|f| f.get("agent")) {
        Some(Value::String(agent)) => agent.clone(),
        _ => return Err(AgentError::invalid_input("delegate: input needs \"agent\", a string")),
    };
    let child_input = fields.and_then(|f| f.get("input")).cloned().unwrap_or(Value::Null);
    let lease_request = match fields.and_then(|f| f.get("lease_request")) {
        None | Some(Value::Null) => None,
        Some(value) => Some(serde_json::from_value(value.clone()).map_err(|e| {
            AgentError::invalid_input(format!(
                "delegate: \"lease_request\" must map capabilities to arrays of strings: {e}"
            ))
        })?),
    };
    Ok(ctx.delegate(&agent, child_input, lease_request, None).await?)
}

/// `sleep`: sleeps `ms` (forever if absent) unless cancelled or timed out first.
async fn sleep(ctx: JobContext, input: Value) -> Result<Value, AgentError> {
    let ms = uint("sleep", object("sleep", &input)?, "ms")?;
    let Some(ms) = ms else {
        ctx.cancelled().await;
        return Err(cancelled());
    };
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(json!({ "slept_ms": ms })),
        () = ctx.cancelled() => Err(cancelled()),
    }
}

/// What an agent returns once its job was cancelled or timed out (the runtime reports the
/// job's real terminal status either way).
fn cancelled() -> AgentError {
    AgentError::new(ErrorCode::CANCELLED, "cancelled")
}

/// The input as an object; `null` (an absent input) is an empty object.
fn object<'a>(agent: &str, input: &'a Value) -> Result<Option<&'a Map<String, Value>>, AgentError> {
    match input {
        Value::Object(map) => Ok(Some(map)),
        Value::Null => Ok(None),
        other => Err(AgentError::invalid_input(format!("{agent}: input must be a JSON object, got {other}"))),
    }
}

/// An optional non-negative integer field (`null` counts as absent).
fn uint(agent: &str, fields: Option<&Map<String, Value>>, name: &str) -> Result<Option<u64>, AgentError> {
    match fields.and_then(|f| f.get(name)) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_u64().map(Some).ok_or_else(|| {
            AgentError::invalid_input(format!("{agent}: \"{name}\" must be a non-negative integer, got {value}"))
        }),
    }
}

/// The name of the versioned conformance fixture agent (§7.5): hosted by the conformance
/// suite's in-process targets and by `arcp serve --conformance-fixtures`, never by default.
pub const VERSIONED_FIXTURE: &str = "conformance.versioned";

/// The versions of [`VERSIONED_FIXTURE`], in registration order; the last is the default.
pub const VERSIONED_FIXTURE_VERSIONS: [&str; 2] = ["1.0.0", "2.0.0"];

/// Registers [`VERSIONED_FIXTURE`] at [`VERSIONED_FIXTURE_VERSIONS`] (in that order, so the
/// default `2.0.0` is not the first registered); each version returns
/// `{"version": "<its version>"}`.
pub fn register_versioned_fixture(registry: &mut AgentRegistry) -> Result<(), arcp_core::Error> {
    for version in VERSIONED_FIXTURE_VERSIONS {
        registry.register_version(VERSIONED_FIXTURE, version, move |_ctx, _input| async move {
            Ok(serde_json::json!({ "version": version }))
        })?;
    }
    registry.set_default(VERSIONED_FIXTURE, VERSIONED_FIXTURE_VERSIONS[1])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The agents driven through a real runtime over the in-memory transport.

    use std::time::Duration;

    use crate::transport::memory::{MemoryTransport, pair};
    use crate::{Runtime, StaticBearerVerifier};
    use serde_json::{Value, json};

    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    struct Client {
        t: MemoryTransport,
        session_id: String,
        n: u64,
    }

    impl Client {
        async fn start() -> Client {
            let rt =
                Runtime::builder(StaticBearerVerifier::new().with_token("t", "p")).agents(registry().unwrap()).build();
            let (t, server) = pair();
            rt.spawn(server);
            let mut c = Client { t, session_id: String::new(), n: 0 };
            c.send(
                "session.hello",
                json!({
                    "client": {"name": "unit", "version": "0"},
                    "auth": {"scheme": "bearer", "token": "t"},
                    "capabilities": {"features": ["progress"]},
                }),
                json!({}),
            );
            let welcome = c.next().await;
            assert_eq!(welcome["type"], "session.welcome", "{welcome}");
            c.session_id = welcome["session_id"].as_str().unwrap().to_owned();
            c
        }

        fn send(&mut self, ty: &str, payload: Value, extra: Value) {
            self.n += 1;
            let mut env = json!({"arcp": "1.1", "id": format!("msg_unit_{}", self.n), "type": ty, "payload": payload});
            if !self.session_id.is_empty() {
                env["session_id"] = json!(self.session_id);
            }
            for (k, v) in extra.as_object().unwrap() {
                env[k] = v.clone();
            }
            self.t.send(env.to_string()).unwrap();
        }

        async fn next(&mut self) -> Value {
            let frame = tokio::time::timeout(WAIT, self.t.recv()).await.expect("a frame in time").expect("open");
            serde_json::from_str(&frame).unwrap()
        }

        /// Submits and returns the job id.
        async fn submit(&mut self, agent: &str, input: Value) -> String {
            self.send("job.submit", json!({"agent": agent, "input": input}), json!({}));
            let accepted = self.next().await;
            assert_eq!(accepted["type"], "job.accepted", "{accepted}");
            accepted["job_id"].as_str().unwrap().to_owned()
        }

        /// Every envelope of `job` up to and including its terminal one.
        async fn run(&mut self, agent: &str, input: Value) -> Vec<Value> {
            let job = self.submit(agent, input).await;
            self.until_terminal(&job).await
        }

        async fn until_terminal(&mut self, job: &str) -> Vec<Value> {
            let mut out = Vec::new();
            loop {
                let env = self.next().await;
                if env["job_id"] != job {
                    continue;
                }
                let done = matches!(env["type"].as_str(), Some("job.result" | "job.error"));
                out.push(env);
                if done {
                    return out;
                }
            }
        }
    }

    fn progress(events: &[Value]) -> Vec<(u64, u64)> {
        events
            .iter()
            .filter(|e| e["type"] == "job.event" && e["payload"]["kind"] == "progress")
            .map(|e| {
                let body = &e["payload"]["body"];
                (body["current"].as_u64().unwrap(), body["total"].as_u64().unwrap())
            })
            .collect()
    }

    #[tokio::test]
    async fn echo_logs_one_line_and_returns_its_input() {
        let mut c = Client::start().await;
        let input = json!({"a": [1, "two", null, {"b": 3.5}]});
        let events = c.run("echo", input.clone()).await;
        let logs = events.iter().filter(|e| e["payload"]["kind"] == "log").count();
        assert_eq!(logs, 1);
        let last = events.last().unwrap();
        assert_eq!((last["type"].as_str(), &last["payload"]["result"]), (Some("job.result"), &input));
        for scalar in [json!(null), json!("s"), json!(7)] {
            let events = c.run("echo", scalar.clone()).await;
            assert_eq!(events.last().unwrap()["payload"]["result"], scalar);
        }
    }

    #[tokio::test]
    async fn count_emits_n_progress_events_then_the_count() {
        let mut c = Client::start().await;
        let events = c.run("count", json!({"n": 4, "delay_ms": 5})).await;
        assert_eq!(progress(&events), vec![(1, 4), (2, 4), (3, 4), (4, 4)]);
        assert_eq!(events.last().unwrap()["payload"]["result"], json!({"count": 4}));
        let events = c.run("count", json!({"n": 0, "delay_ms": null})).await;
        assert_eq!(progress(&events), vec![]);
        assert_eq!(events.last().unwrap()["payload"]["result"], json!({"count": 0}));
        let events = c.run("count", json!({"n": 1000})).await;
        assert_eq!(progress(&events).len(), 1000);
    }

    #[tokio::test]
    async fn count_refuses_bad_input() {
        let mut c = Client::start().await;
        for input in [
            json!({}),
            json!(null),
            json!({"n": null}),
            json!({"n": -1}),
            json!({"n": 2.5}),
            json!({"n": 3.0}),
            json!({"n": "3"}),
            json!({"n": MAX_COUNT + 1}),
            json!({"n": 3, "delay_ms": -5}),
            json!({"n": 3, "delay_ms": "5"}),
            json!([3]),
        ] {
            let events = c.run("count", input.clone()).await;
            let last = events.last().unwrap();
            assert_eq!(last["type"], "job.error", "{input}: {last}");
            assert_eq!(last["payload"]["code"], "INVALID_REQUEST", "{input}: {last}");
            assert_eq!(last["payload"]["final_status"], "error", "{input}: {last}");
            assert!(progress(&events).is_empty());
        }
    }

    #[tokio::test]
    async fn sleep_sleeps_then_reports_the_duration() {
        let mut c = Client::start().await;
        let started = std::time::Instant::now();
        let events = c.run("sleep", json!({"ms": 50})).await;
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(events.last().unwrap()["payload"]["result"], json!({"slept_ms": 50}));
        for input in [json!({"ms": -1}), json!({"ms": 1.5}), json!("x")] {
            let events = c.run("sleep", input.clone()).await;
            assert_eq!(events.last().unwrap()["payload"]["code"], "INVALID_REQUEST", "{input}");
        }
    }

    #[tokio::test]
    async fn sleep_without_ms_runs_until_cancelled() {
        let mut c = Client::start().await;
        for input in [json!({}), json!(null), json!({"ms": 3_600_000})] {
            let job = c.submit("sleep", input).await;
            let running = c.next().await;
            assert_eq!(running["payload"]["kind"], "status", "{running}");
            c.send("job.cancel", json!({}), json!({"job_id": job}));
            let events = c.until_terminal(&job).await;
            let last = events.last().unwrap();
            assert_eq!(
                (&last["payload"]["final_status"], &last["payload"]["code"]),
                (&json!("cancelled"), &json!("CANCELLED"))
            );
        }
    }

    #[tokio::test]
    async fn sleep_times_out_at_max_runtime_sec() {
        let mut c = Client::start().await;
        c.send("job.submit", json!({"agent": "sleep", "input": {}, "max_runtime_sec": 1}), json!({}));
        let accepted = c.next().await;
        let job = accepted["job_id"].as_str().unwrap().to_owned();
        let events = c.until_terminal(&job).await;
        let last = events.last().unwrap();
        assert_eq!(
            (&last["payload"]["final_status"], &last["payload"]["code"]),
            (&json!("timed_out"), &json!("TIMEOUT"))
        );
    }

    #[tokio::test]
    async fn count_stops_when_cancelled() {
        let mut c = Client::start().await;
        let job = c.submit("count", json!({"n": 1000, "delay_ms": 1000})).await;
        c.send("job.cancel", json!({}), json!({"job_id": job}));
        let events = c.until_terminal(&job).await;
        let last = events.last().unwrap();
        assert_eq!(last["payload"]["code"], "CANCELLED", "{last}");
        assert!(progress(&events).len() <= 1);
    }

    #[test]
    fn only_the_contracted_agents_are_registered() {
        assert_eq!(registry().unwrap().names(), vec!["echo", "count", "chunks", "delegate", "sleep"]);
    }
}
