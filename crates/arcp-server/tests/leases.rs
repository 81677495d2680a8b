//! §9.3, §9.5, §9.7: lease enforcement inside `JobContext` — denials are `tool_result`
//! errors (not fatal), expiry ends the job with `LEASE_EXPIRED` (on the paused tokio clock).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use arcp_core::event::{EventBody, ToolCall};
use arcp_core::lease::Capability;
use arcp_core::message::{ErrorStatus, Message};
use arcp_core::{ErrorCode, ManualClock};
use arcp_server::{AgentRegistry, JobContext, Runtime, StaticBearerVerifier};
use serde_json::{Value, json};
use support::*;

/// 2026-01-01T00:00:00Z.
const NOW: u64 = 1_767_225_600_000;

fn at(offset_ms: u64) -> String {
    arcp_core::lease::ExpiresAt::from_unix_millis(NOW + offset_ms).unwrap().to_string()
}

fn code_of(e: arcp_server::Error) -> Value {
    json!(e.code().as_str())
}

fn registry() -> AgentRegistry {
    let mut reg = AgentRegistry::new();
    // Calls each tool of `input` in turn; a refusal is recorded and the agent goes on.
    reg.register("tools", |ctx: JobContext, input: Value| async move {
        let mut out = Vec::new();
        for (i, tool) in input.as_array().cloned().unwrap_or_default().iter().enumerate() {
            let tool = tool.as_str().unwrap_or_default();
            match ctx.tool_call(tool, Some(json!({"i": i})), format!("call_{i}")).await {
                Ok(()) => out.push(json!("ok")),
                Err(e) => out.push(code_of(e)),
            }
        }
        Ok(Value::Array(out))
    })
    .unwrap();
    // Authorises each `[capability, target]`; answers the canonical target or the code.
    reg.register("ops", |ctx: JobContext, input: Value| async move {
        let mut out = Vec::new();
        for (i, op) in input.as_array().cloned().unwrap_or_default().iter().enumerate() {
            let (cap, target) = (op[0].as_str().unwrap_or_default(), op[1].as_str().unwrap_or_default());
            let call = format!("op_{i}");
            let r = match cap {
                "fs.read" => ctx.fs_read(target, &call).await,
                "fs.write" => ctx.fs_write(target, &call).await,
                "net.fetch" => ctx.net_fetch(target, &call).await,
                "model.use" => ctx.use_model(target, &call).await,
                other => ctx.authorize(&Capability::parse(other).unwrap(), target, &call).await,
            };
            out.push(match r {
                Ok(canonical) => json!(canonical),
                Err(e) => code_of(e),
            });
        }
        Ok(Value::Array(out))
    })
    .unwrap();
    // Sleeps `ms`, then calls `tool` and ignores the answer, then waits for cancellation.
    reg.register("late", |ctx: JobContext, input: Value| async move {
        tokio::time::sleep(std::time::Duration::from_millis(input["ms"].as_u64().unwrap_or(0))).await;
        // Refused (the lease expired); the agent ignores that and carries on.
        let _ = ctx.tool_call("search", None, "late_call").await;
        ctx.cancelled().await;
        Ok(json!("unreachable"))
    })
    .unwrap();
    // Sleeps `ms`, calls a tool, ignores the refusal and returns at once.
    reg.register("late-return", |ctx: JobContext, input: Value| async move {
        tokio::time::sleep(std::time::Duration::from_millis(input["ms"].as_u64().unwrap_or(0))).await;
        let _ = ctx.tool_call("search", None, "late_call").await;
        Ok(json!("done anyway"))
    })
    .unwrap();
    // Never returns by itself.
    reg.register("forever", |_ctx: JobContext, _input: Value| async move {
        std::future::pending::<()>().await;
        Ok(Value::Null)
    })
    .unwrap();
    reg
}

fn runtime() -> Runtime {
    Runtime::builder(StaticBearerVerifier::new().with_token(TOKEN, "alice"))
        .agents(registry())
        .clock(ManualClock::new(NOW))
        .build()
}

async fn start(c: &mut Client, payload: Value) -> String {
    c.send("job.submit", payload, json!({}));
    let accepted = c.next().await;
    let Message::JobAccepted(a) = &accepted.message else { panic!("{accepted:?}") };
    a.job_id.to_string()
}

fn tool_results(events: &[arcp_core::Envelope]) -> Vec<(String, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match &e.message {
            Message::JobEvent(ev) => match &ev.body {
                EventBody::ToolResult(r) => Some((r.call_id.clone(), r.error.as_ref().map(|e| e.code.to_string()))),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn result(events: &[arcp_core::Envelope]) -> Value {
    match &events.last().unwrap().message {
        Message::JobResult(r) => r.result.clone().unwrap(),
        other => panic!("expected job.result, got {other:?}"),
    }
}

#[tokio::test]
async fn s9_3_tool_calls_outside_the_lease_are_tool_result_errors_not_fatal() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let job = start(
        &mut c,
        json!({"agent": "tools", "input": ["search.web", "shell", "search.news"],
               "lease_request": {"tool.call": ["search.*"]}}),
    )
    .await;
    let events = c.until_terminal(&job).await;
    assert_eq!(result(&events), json!(["ok", "PERMISSION_DENIED", "ok"]));
    let calls: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.message {
            Message::JobEvent(ev) => match &ev.body {
                EventBody::ToolCall(ToolCall { tool, .. }) => Some(tool.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(calls, vec!["search.web", "search.news"], "a refused call is not announced");
    assert_eq!(tool_results(&events), vec![("call_1".to_owned(), Some("PERMISSION_DENIED".to_owned()))]);
    let refusal = events.iter().find_map(|e| match &e.message {
        Message::JobEvent(ev) => match &ev.body {
            EventBody::ToolResult(r) => r.error.clone(),
            _ => None,
        },
        _ => None,
    });
    let refusal = refusal.unwrap();
    assert!(!refusal.retryable);
    assert_eq!(refusal.details, Some(json!({"capability": "tool.call", "target": "shell"})));
}

#[tokio::test]
async fn s9_3_every_capability_is_checked_on_its_canonical_target() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let job = start(
        &mut c,
        json!({"agent": "ops", "input": [
                ["fs.read", "/data/a/../b.txt"], ["fs.read", "/etc/passwd"], ["fs.read", "relative"],
                ["fs.write", "/data/out.txt"], ["net.fetch", "HTTPS://API.example.com:443/v1/x"],
                ["net.fetch", "https://user@api.example.com/"], ["model.use", "claude-haiku"],
                ["model.use", "gpt-4o"], ["x-vendor.acme.thing", "widget"]],
               "lease_request": {"fs.read": ["/data/**"], "net.fetch": ["https://api.example.com/**"],
                                 "model.use": ["claude-*"], "x-vendor.acme.thing": ["wid*"]}}),
    )
    .await;
    let events = c.until_terminal(&job).await;
    assert_eq!(
        result(&events),
        json!([
            "/data/b.txt",
            "PERMISSION_DENIED",
            "PERMISSION_DENIED",
            "PERMISSION_DENIED",
            "https://api.example.com/v1/x",
            "PERMISSION_DENIED",
            "claude-haiku",
            "PERMISSION_DENIED",
            "widget"
        ])
    );
    let denied: Vec<String> = tool_results(&events).into_iter().map(|(id, _)| id).collect();
    assert_eq!(denied, vec!["op_1", "op_2", "op_3", "op_5", "op_7"]);
}

#[tokio::test]
async fn s9_7_no_model_use_means_no_model() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let job = start(&mut c, json!({"agent": "ops", "input": [["model.use", "any-model"]]})).await;
    assert_eq!(result(&c.until_terminal(&job).await), json!(["PERMISSION_DENIED"]));
}

#[tokio::test(start_paused = true)]
async fn s9_5_an_expired_lease_ends_the_job_with_lease_expired() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let job =
        start(&mut c, json!({"agent": "forever", "input": null, "lease_constraints": {"expires_at": at(2_000)}})).await;
    let started = tokio::time::Instant::now();
    let events = c.until_terminal(&job).await;
    let Message::JobError(e) = &events.last().unwrap().message else { panic!("{events:?}") };
    assert_eq!((e.final_status, &e.code, e.retryable), (ErrorStatus::Error, &ErrorCode::LEASE_EXPIRED, false));
    assert_eq!(e.details, Some(json!({"expires_at": at(2_000)})));
    // Not before expiry (the virtual clock only moves when everything is idle).
    assert!(started.elapsed() >= std::time::Duration::from_millis(2_000));
}

#[tokio::test(start_paused = true)]
async fn s9_5_using_an_expired_lease_is_refused_and_ends_the_job_at_once() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    // Expires at +1 s; the agent calls a tool at +1.5 s, inside the 1 s grace.
    let job = start(
        &mut c,
        json!({"agent": "late", "input": {"ms": 1_500}, "lease_request": {"tool.call": ["*"]},
               "lease_constraints": {"expires_at": at(1_000)}}),
    )
    .await;
    let started = tokio::time::Instant::now();
    let events = c.until_terminal(&job).await;
    assert!(started.elapsed() < std::time::Duration::from_millis(2_000), "ended by the refused call, not the timer");
    assert_eq!(tool_results(&events), vec![("late_call".to_owned(), Some("LEASE_EXPIRED".to_owned()))]);
    let Message::JobError(e) = &events.last().unwrap().message else { panic!("{events:?}") };
    assert_eq!(e.code, ErrorCode::LEASE_EXPIRED);
}

#[tokio::test(start_paused = true)]
async fn s9_5_returning_after_using_an_expired_lease_still_ends_lease_expired() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let job = start(
        &mut c,
        json!({"agent": "late-return", "input": {"ms": 1_500}, "lease_request": {"tool.call": ["*"]},
               "lease_constraints": {"expires_at": at(1_000)}}),
    )
    .await;
    let events = c.until_terminal(&job).await;
    let Message::JobError(e) = &events.last().unwrap().message else { panic!("{events:?}") };
    assert_eq!(e.code, ErrorCode::LEASE_EXPIRED);
}

#[tokio::test(start_paused = true)]
async fn s9_5_a_lease_that_has_not_expired_authorises() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let job = start(
        &mut c,
        json!({"agent": "tools", "input": ["t"], "lease_request": {"tool.call": ["t"]},
               "lease_constraints": {"expires_at": at(60_000)}}),
    )
    .await;
    assert_eq!(result(&c.until_terminal(&job).await), json!(["ok"]));
}

#[tokio::test]
async fn s8_5_a_raw_tool_call_event_is_authorised_too() {
    let mut reg = AgentRegistry::new();
    reg.register("raw", |ctx: JobContext, _input: Value| async move {
        let call = ToolCall { tool: "shell".into(), args: None, call_id: "raw_1".into() };
        let denied = ctx.emit(call).await.is_err();
        Ok(json!({"denied": denied}))
    })
    .unwrap();
    let rt = Runtime::builder(StaticBearerVerifier::new().with_token(TOKEN, "alice")).agents(reg).build();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let job = start(&mut c, json!({"agent": "raw", "input": null})).await;
    let events = c.until_terminal(&job).await;
    assert_eq!(result(&events), json!({"denied": true}));
    assert_eq!(tool_results(&events), vec![("raw_1".to_owned(), Some("PERMISSION_DENIED".to_owned()))]);
}
