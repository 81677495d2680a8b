//! §9.6 (feature `cost.budget`): `cost.*` metrics decrement exact-decimal counters, a
//! debounced `cost.budget.remaining` follows, and exhaustion surfaces as `BUDGET_EXHAUSTED`
//! at the next authority-bearing operation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use arcp_core::ErrorCode;
use arcp_core::event::EventBody;
use arcp_core::message::{ErrorStatus, Message};
use arcp_server::{AgentRegistry, JobContext, Runtime, StaticBearerVerifier};
use serde_json::{Value, json};
use support::*;

/// Input `{"costs": ["0.4", …], "unit"?: "USD", "strict"?: bool}`: for each cost, a
/// `cost.llm` metric then a tool call. Strict agents propagate a refusal; others record it.
async fn spend(ctx: JobContext, input: Value) -> Result<Value, arcp_server::AgentError> {
    let unit = input["unit"].as_str().unwrap_or("USD").to_owned();
    let mut out = Vec::new();
    for (i, cost) in input["costs"].as_array().cloned().unwrap_or_default().iter().enumerate() {
        let value: serde_json::Number = serde_json::from_str(cost.as_str().unwrap()).unwrap();
        ctx.metric("cost.llm", value, Some(&unit)).await?;
        match ctx.tool_call("search", None, format!("call_{i}")).await {
            Ok(()) => out.push(json!("ok")),
            Err(e) if input["strict"] == true => return Err(e.into()),
            Err(e) => out.push(json!(e.code().as_str())),
        }
    }
    Ok(json!({"outcomes": out, "remaining": ctx.budget().to_wire_numbers()}))
}

fn runtime() -> Runtime {
    let mut reg = AgentRegistry::new();
    reg.register("spend", spend).unwrap();
    Runtime::builder(StaticBearerVerifier::new().with_token(TOKEN, "alice")).agents(reg).build()
}

fn remaining_metrics(events: &[arcp_core::Envelope]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.message {
            Message::JobEvent(ev) => match &ev.body {
                EventBody::Metric(m) if m.name == "cost.budget.remaining" => {
                    Some((m.unit.clone().unwrap_or_default(), m.value.to_string()))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

async fn run(
    c: &mut Client,
    input: Value,
    budget: &[&str],
) -> (arcp_core::message::JobAccepted, Vec<arcp_core::Envelope>) {
    c.send(
        "job.submit",
        json!({"agent": "spend", "input": input, "lease_request": {"tool.call": ["*"], "cost.budget": budget}}),
        json!({}),
    );
    let accepted = c.next().await;
    let Message::JobAccepted(a) = accepted.message else { panic!("{accepted:?}") };
    let events = c.until_terminal(a.job_id.as_str()).await;
    (a, events)
}

#[tokio::test]
async fn s9_6_costs_decrement_and_exhaustion_refuses_the_next_operation() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let (accepted, events) = run(&mut c, json!({"costs": ["0.4", "0.4", "0.4"]}), &["USD:1.00"]).await;
    assert_eq!(serde_json::to_value(&accepted.budget).unwrap(), json!({"USD": 1}));
    let Message::JobResult(r) = &events.last().unwrap().message else { panic!("{events:?}") };
    let result = r.result.clone().unwrap();
    assert_eq!(result["outcomes"], json!(["ok", "ok", "BUDGET_EXHAUSTED"]), "not fatal: the agent chose to go on");
    assert_eq!(result["remaining"], json!({"USD": -0.2}));
    // First decrement, then every ≥ 5 % move, and reaching zero: each one reported.
    assert_eq!(
        remaining_metrics(&events),
        vec![("USD".into(), "0.6".into()), ("USD".into(), "0.2".into()), ("USD".into(), "-0.2".into())]
    );
    let refusal = events
        .iter()
        .find_map(|e| match &e.message {
            Message::JobEvent(ev) => match &ev.body {
                EventBody::ToolResult(t) => t.error.clone(),
                _ => None,
            },
            _ => None,
        })
        .unwrap();
    assert_eq!((refusal.code, refusal.retryable), (ErrorCode::BUDGET_EXHAUSTED, false));
    assert_eq!(refusal.details, Some(json!({"currency": "USD"})));
}

#[tokio::test]
async fn s9_6_decimal_arithmetic_is_exact_and_reports_are_debounced() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    // Ten times 0.1 is exactly 1: the tenth call is refused (binary floats would leave 1e-16).
    let costs: Vec<&str> = vec!["0.1"; 10];
    let (_, events) = run(&mut c, json!({"costs": costs}), &["USD:1"]).await;
    let Message::JobResult(r) = &events.last().unwrap().message else { panic!() };
    let outcomes = r.result.clone().unwrap()["outcomes"].clone();
    assert_eq!(outcomes[8], "ok");
    assert_eq!(outcomes[9], "BUDGET_EXHAUSTED");
    assert_eq!(remaining_metrics(&events).len(), 10, "each 0.1 moves the counter by 10 %");
    // Small steps (1 % each) are reported only every 5 %.
    let costs: Vec<&str> = vec!["0.01"; 20];
    let (_, events) = run(&mut c, json!({"costs": costs}), &["USD:1"]).await;
    let reported: Vec<String> = remaining_metrics(&events).into_iter().map(|(_, v)| v).collect();
    assert_eq!(reported, vec!["0.99", "0.94", "0.89", "0.84"]);
}

#[tokio::test]
async fn s9_6_other_units_and_negative_costs_do_not_count() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let (_, events) = run(&mut c, json!({"costs": ["5", "-5"], "unit": "EUR"}), &["USD:1"]).await;
    let Message::JobResult(r) = &events.last().unwrap().message else { panic!() };
    assert_eq!(r.result.clone().unwrap()["outcomes"], json!(["ok", "ok"]));
    assert!(remaining_metrics(&events).is_empty());
}

#[tokio::test]
async fn s9_6_an_agent_that_propagates_exhaustion_ends_with_budget_exhausted() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let (_, events) = run(&mut c, json!({"costs": ["2", "1"], "strict": true}), &["USD:1"]).await;
    let Message::JobError(e) = &events.last().unwrap().message else { panic!("{events:?}") };
    assert_eq!((e.final_status, &e.code, e.retryable), (ErrorStatus::Error, &ErrorCode::BUDGET_EXHAUSTED, false));
    // A budget already at zero is exhausted before anything is spent.
    let (_, events) = run(&mut c, json!({"costs": ["0"], "strict": true}), &["USD:0"]).await;
    let Message::JobError(e) = &events.last().unwrap().message else { panic!("{events:?}") };
    assert_eq!(e.code, ErrorCode::BUDGET_EXHAUSTED);
}
