//! The fixture turn: a body that forces the next turn's outcome (the public contract every
//! server under test must honour for the agent `conformance.channel`), and [`FixtureRunner`],
//! the in-process [`TurnRunner`] that implements it.

use std::time::Duration;

use async_trait::async_trait;
use channel_core::{ChannelEvent, EventSink, RunnerError, Turn, TurnOutcome, TurnRunner};
use serde_json::{Value, json};

/// The agent name a fixture body routes to.
pub const FIXTURE_AGENT: &str = "conformance.channel";

/// The outcomes a fixture body can force (`input.force`).
pub const FORCES: [&str; 5] = ["ok", "park", "contend", "abort", "fail"];

/// The longest `delay_ms` the [`FixtureRunner`] honours (longer delays are cut to this).
pub const MAX_DELAY_MS: u64 = 60_000;

/// A fixture turn body: `{"agent": "conformance.channel", "input": {"force": force, "value": value}}`
/// (`value` left out when it is `null`).
pub fn fixture_body(force: &str, value: Value) -> Value {
    let mut input = json!({ "force": force });
    if !value.is_null() {
        input["value"] = value;
    }
    json!({ "agent": FIXTURE_AGENT, "input": input })
}

/// [`fixture_body`] with `input.delay_ms`: the turn sleeps that long before it ends, so
/// concurrent requests overlap it.
pub fn fixture_body_with_delay(force: &str, value: Value, delay_ms: u64) -> Value {
    let mut body = fixture_body(force, value);
    body["input"]["delay_ms"] = json!(delay_ms);
    body
}

/// What a fixture body asks for.
#[derive(Debug, Clone, PartialEq)]
struct Forced {
    force: &'static str,
    delay_ms: u64,
    value: Value,
}

fn parse(body: &Value) -> Result<Forced, String> {
    let input = body
        .as_object()
        .and_then(|o| o.get("input"))
        .and_then(Value::as_object)
        .ok_or("a fixture body is an object with an `input` object")?;
    let force = input.get("force").and_then(Value::as_str).ok_or("a fixture body's `input.force` is a string")?;
    let force = FORCES
        .iter()
        .find(|f| **f == force)
        .ok_or_else(|| format!("unknown `input.force` {force:?} (expected one of {FORCES:?})"))?;
    let delay_ms = match input.get("delay_ms") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_u64().ok_or("a fixture body's `input.delay_ms` is a non-negative integer")?,
    };
    let value = input.get("value").cloned().unwrap_or(Value::Null);
    Ok(Forced { force, delay_ms: delay_ms.min(MAX_DELAY_MS), value })
}

/// The in-process fixture runner. For a body `{"input": {"force", "delay_ms"?, "value"?}}`
/// it emits one `delta` (`{text: "fixture"}`) and one `record` (`{record: {"force": …}}`),
/// sleeps `delay_ms`, then: `ok` → `finished` with `output` = `input.value` (`null` if
/// absent); `park` → `parked`; `contend` → `contended`; `abort` → `aborted`; `fail` → a
/// runner failure. Its [`check`](TurnRunner::check) refuses any other body (`invalid-body`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FixtureRunner;

#[async_trait]
impl TurnRunner for FixtureRunner {
    async fn run(&self, _turn: &Turn, body: Value, emit: &mut dyn EventSink) -> Result<TurnOutcome, RunnerError> {
        let forced = parse(&body).map_err(RunnerError::new)?;
        emit.emit(ChannelEvent::Delta { text: "fixture".into() });
        emit.emit(ChannelEvent::Record { record: json!({ "force": forced.force }) });
        if forced.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(forced.delay_ms)).await;
        }
        match forced.force {
            "ok" => Ok(TurnOutcome::Finished { output: Some(forced.value) }),
            "park" => Ok(TurnOutcome::Parked { wait: json!("fixture") }),
            "contend" => Ok(TurnOutcome::Contended { current: json!("fixture") }),
            "abort" => Ok(TurnOutcome::Aborted),
            _ => Err(RunnerError::new("the fixture was asked to fail")),
        }
    }

    fn check(&self, body: &Value) -> Result<(), String> {
        parse(body).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_parse_and_bad_ones_are_refused() {
        let b = fixture_body_with_delay("park", json!({"a": 1}), 5);
        assert_eq!(parse(&b), Ok(Forced { force: "park", delay_ms: 5, value: json!({"a": 1}) }));
        assert_eq!(fixture_body("ok", Value::Null)["input"], json!({"force": "ok"}));
        for bad in [
            json!(null),
            json!({"input": 1}),
            json!({"input": {}}),
            json!({"input": {"force": "explode"}}),
            json!({"input": {"force": 3}}),
            json!({"input": {"force": "ok", "delay_ms": -1}}),
        ] {
            assert!(FixtureRunner.check(&bad).is_err(), "{bad}");
        }
    }
}
