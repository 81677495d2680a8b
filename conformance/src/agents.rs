//! The agents of the `arcp serve` contract (`runtime.md`): `echo`, `count`, `sleep`, for
//! in-process targets. Other servers must host agents with the same inputs and outputs.

use std::time::Duration;

use arcp_server::{AgentError, AgentRegistry, JobContext};
use serde_json::{Value, json};

/// A registry with `echo` (returns its input), `count` (`{"n", "delay_ms"?}` → n progress
/// events, `{"count": n}`) and `sleep` (`{"ms"?}`, until cancelled; `{"slept_ms"}`).
#[allow(clippy::unwrap_used)] // registering fixed, valid names cannot fail
pub fn reference_agents() -> AgentRegistry {
    let mut reg = AgentRegistry::new();
    reg.register("echo", |ctx: JobContext, input: Value| async move {
        ctx.info("echo").await?;
        Ok(input)
    })
    .unwrap();
    reg.register("count", |ctx: JobContext, input: Value| async move {
        let n = input["n"].as_u64().ok_or_else(|| AgentError::invalid_input("n must be a non-negative integer"))?;
        let delay = input["delay_ms"].as_u64().unwrap_or(0);
        for i in 1..=n {
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            ctx.progress(i, Some(n), None).await?;
        }
        Ok(json!({ "count": n }))
    })
    .unwrap();
    reg.register("sleep", |ctx: JobContext, input: Value| async move {
        let started = tokio::time::Instant::now();
        match input["ms"].as_u64() {
            Some(ms) => tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                () = ctx.cancelled() => {}
            },
            None => ctx.cancelled().await,
        }
        Ok(json!({ "slept_ms": started.elapsed().as_millis() as u64 }))
    })
    .unwrap();
    reg
}
