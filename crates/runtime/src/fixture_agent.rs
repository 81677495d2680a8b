//! `conformance.channel`: the ARCP agent behind the channel conformance fixture, hosted by
//! `arcp serve --conformance-fixtures` so `cargo xtask conformance --channel URL` can force
//! every turn outcome through the real agent binding (see `channel_turns`).
//!
//! Input `{"force": "ok"|"park"|"contend"|"abort"|"fail", "delay_ms"?: int, "value"?: any}`:
//! logs one line (a `record`), sleeps `delay_ms` (until cancelled), then `ok` returns `value`
//! (`finished`), `park` reports status `input_required` and returns `value` (`parked`),
//! `contend` reports status `contended` (`contended`), `abort` fails with `LEASE_EXPIRED`
//! (`aborted`), `fail` fails with `INTERNAL_ERROR` (the turn fails).

use std::time::Duration;

use arcp_core::ErrorCode;
use arcp_server::{AgentError, AgentRegistry, JobContext};
use serde_json::Value;

use crate::channel_turns::{PHASE_CONTENDED, PHASE_INPUT_REQUIRED};

/// The agent's registered name.
pub(crate) const NAME: &str = "conformance.channel";

/// Registers the fixture agent.
pub(crate) fn register(registry: &mut AgentRegistry) -> Result<(), arcp_core::Error> {
    registry.register(NAME, fixture)?;
    Ok(())
}

async fn fixture(ctx: JobContext, input: Value) -> Result<Value, AgentError> {
    let force = input.get("force").and_then(Value::as_str).unwrap_or("ok").to_owned();
    let delay = match input.get("delay_ms") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_u64().ok_or_else(|| AgentError::invalid_input("delay_ms must be an integer ≥ 0"))?,
    };
    let value = input.get("value").cloned().unwrap_or(Value::Null);
    ctx.info(format!("fixture: {force}")).await?;
    if delay > 0 {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(delay)) => {}
            () = ctx.cancelled() => return Err(AgentError::new(ErrorCode::CANCELLED, "cancelled")),
        }
    }
    match force.as_str() {
        "ok" => Ok(value),
        "park" => {
            ctx.status(PHASE_INPUT_REQUIRED, Some("the fixture waits for input".into())).await?;
            Ok(value)
        }
        "contend" => {
            ctx.status(PHASE_CONTENDED, Some("the fixture's state is held elsewhere".into())).await?;
            Ok(Value::Null)
        }
        "abort" => Err(AgentError::new(ErrorCode::LEASE_EXPIRED, "the fixture lost its lease")),
        "fail" => Err(AgentError::internal("the fixture failed as asked")),
        other => Err(AgentError::invalid_input(format!("unknown force {other:?}"))),
    }
}
