//! §10 (decision 12) and decision 20: delegation through `JobContext::delegate` and the
//! built-in `delegate` agent — `agent.delegate` first, then the §9.4 subset rules against the
//! parent's remaining budget; refusals are `tool_result` errors on the parent; children share
//! the session and trace, roll their costs up, and are cancelled with their parent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use arcp_core::event::EventBody;
use arcp_core::message::{JobAccepted, Message};
use arcp_core::{Envelope, ErrorCode};
use arcp_server::{AgentRegistry, JobContext, Runtime, RuntimeConfig, StaticBearerVerifier};
use serde_json::{Value, json};
use support::*;

fn registry() -> AgentRegistry {
    let mut reg = arcp_server::builtin::registry().unwrap();
    reg.register_version("ver", "1.0", |_c: JobContext, _i: Value| async move { Ok(json!("v1")) }).unwrap();
    reg.register_version("ver", "2.0", |_c: JobContext, _i: Value| async move { Ok(json!("v2")) }).unwrap();
    reg.set_default("ver", "2.0").unwrap();
    reg.register("panics", |_c: JobContext, input: Value| async move {
        if input.is_null() {
            panic!("an agent bug");
        }
        Ok(input)
    })
    .unwrap();
    // Reports a cost of `input` USD and returns.
    reg.register("spender", |ctx: JobContext, input: Value| async move {
        let value: serde_json::Number = serde_json::from_str(input.as_str().unwrap_or("0")).unwrap();
        ctx.metric("cost.llm", value, Some("USD")).await?;
        Ok(json!({"spent": input}))
    })
    .unwrap();
    // Delegates `input` to `spender` under no explicit budget, then reports its own counters.
    reg.register("spend-via-child", |ctx: JobContext, input: Value| async move {
        let child = ctx.delegate("spender", input, None, None).await?;
        Ok(json!({"child": child, "remaining": ctx.budget().to_wire_numbers()}))
    })
    .unwrap();
    reg
}

fn runtime_with(config: RuntimeConfig) -> Runtime {
    Runtime::builder(StaticBearerVerifier::new().with_token(TOKEN, "alice")).config(config).agents(registry()).build()
}

fn runtime() -> Runtime {
    runtime_with(RuntimeConfig::default())
}

/// Submits `delegate` with `input` under `lease`; returns the parent's accepted and every
/// frame up to the parent's terminal one.
async fn run(c: &mut Client, agent: &str, input: Value, lease: Value) -> (JobAccepted, Vec<Envelope>) {
    c.send("job.submit", json!({"agent": agent, "input": input, "lease_request": lease}), json!({}));
    let accepted = c.next().await;
    let Message::JobAccepted(a) = accepted.message else { panic!("{accepted:?}") };
    let mut frames = Vec::new();
    loop {
        let env = c.next().await;
        let done = env.job_id.as_ref() == Some(&a.job_id)
            && matches!(env.message, Message::JobResult(_) | Message::JobError(_));
        frames.push(env);
        if done {
            return (a, frames);
        }
    }
}

fn children(frames: &[Envelope]) -> Vec<JobAccepted> {
    frames
        .iter()
        .filter_map(|e| match &e.message {
            Message::JobAccepted(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

fn refusals(frames: &[Envelope]) -> Vec<(String, ErrorCode)> {
    frames
        .iter()
        .filter_map(|e| match &e.message {
            Message::JobEvent(ev) => match &ev.body {
                EventBody::ToolResult(r) => r.error.as_ref().map(|err| (r.call_id.clone(), err.code.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn delegate_ids(frames: &[Envelope]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|e| match &e.message {
            Message::JobEvent(ev) => match &ev.body {
                EventBody::Delegate(d) => Some(d.delegate_id.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn terminal_code(frames: &[Envelope]) -> Option<ErrorCode> {
    match &frames.last()?.message {
        Message::JobError(e) => Some(e.code.clone()),
        _ => None,
    }
}

fn terminal_result(frames: &[Envelope]) -> Value {
    match &frames.last().unwrap().message {
        Message::JobResult(r) => r.result.clone().unwrap_or(Value::Null),
        other => panic!("expected job.result, got {other:?}"),
    }
}

#[tokio::test]
async fn s10_delegate_runs_a_child_in_the_same_session_and_returns_its_result() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let input = json!({"agent": "echo", "input": {"x": [1, 2]}});
    let (parent, frames) = run(&mut c, "delegate", input, json!({"agent.delegate": ["echo"]})).await;
    assert_eq!(terminal_result(&frames), json!({"x": [1, 2]}));
    let ids = delegate_ids(&frames);
    assert_eq!(ids.len(), 1);
    assert!(ids[0].starts_with("del_") && ids[0].len() == 30, "{ids:?}");
    let child = &children(&frames)[0];
    assert_eq!(child.parent_job_id.as_ref(), Some(&parent.job_id));
    assert_eq!(child.delegate_id.as_deref(), Some(ids[0].as_str()));
    assert_eq!(child.trace_id, parent.trace_id, "the child inherits the trace");
    assert_eq!(child.agent.as_deref(), Some("echo"));
    assert!(child.lease.0.is_empty());
    // Order: parent's delegate event, child's accepted, child's events, then the parent's result.
    let kinds: Vec<String> = frames.iter().map(kind).collect();
    let pos = |k: &str| kinds.iter().position(|x| x == k).unwrap();
    assert!(pos("event:delegate") < pos("job.accepted"));
    assert!(pos("job.accepted") < pos("job.result"));
    let child_frames: Vec<&Envelope> = frames.iter().filter(|e| e.job_id.as_ref() == Some(&child.job_id)).collect();
    assert_eq!(
        child_frames.iter().map(|e| kind(e)).collect::<Vec<_>>(),
        vec!["job.accepted", "event:status", "event:log", "job.result"]
    );
    assert!(frames.iter().filter(|e| e.event_seq.is_some()).all(|e| e.trace_id == parent.trace_id));
    assert!(refusals(&frames).is_empty());
}

#[tokio::test]
async fn s10_delegation_needs_agent_delegate_first() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    for lease in [json!({}), json!({"agent.delegate": ["count"]}), json!({"agent.delegate": []})] {
        let input = json!({"agent": "echo", "input": 1});
        let (_, frames) = run(&mut c, "delegate", input, lease.clone()).await;
        let ids = delegate_ids(&frames);
        assert_eq!(refusals(&frames), vec![(ids[0].clone(), ErrorCode::PERMISSION_DENIED)], "{lease}");
        assert!(children(&frames).is_empty(), "a refusal creates no job");
        assert_eq!(terminal_code(&frames), Some(ErrorCode::PERMISSION_DENIED), "the built-in agent propagates it");
    }
    // Checked before resolution: an unknown agent without authority is PERMISSION_DENIED …
    let (_, frames) = run(&mut c, "delegate", json!({"agent": "nope"}), json!({"agent.delegate": ["echo"]})).await;
    assert_eq!(terminal_code(&frames), Some(ErrorCode::PERMISSION_DENIED));
    // … and with authority, AGENT_NOT_AVAILABLE.
    let (_, frames) = run(&mut c, "delegate", json!({"agent": "nope"}), json!({"agent.delegate": ["*"]})).await;
    assert_eq!(refusals(&frames)[0].1, ErrorCode::AGENT_NOT_AVAILABLE);
}

#[tokio::test]
async fn s10_agent_delegate_patterns_with_at_match_the_resolved_version() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let cases = [
        ("ver", json!(["ver"]), Some("v2")),
        ("ver@1.0", json!(["ver"]), Some("v1")),
        ("ver@1.0", json!(["ver@1.0"]), Some("v1")),
        ("ver", json!(["ver@1.0"]), None),
        ("ver", json!(["ver@2.*"]), Some("v2")),
        ("ver@2.0", json!(["ver@1.*"]), None),
    ];
    for (agent, patterns, expected) in cases {
        let input = json!({"agent": agent, "input": null});
        let (_, frames) = run(&mut c, "delegate", input, json!({"agent.delegate": patterns})).await;
        match expected {
            Some(v) => assert_eq!(terminal_result(&frames), json!(v), "{agent} under {patterns}"),
            None => assert_eq!(terminal_code(&frames), Some(ErrorCode::PERMISSION_DENIED), "{agent} under {patterns}"),
        }
    }
}

#[tokio::test]
async fn s9_4_a_wider_child_lease_is_a_subset_violation() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let parent = json!({"agent.delegate": ["*"], "fs.read": ["/data/*"], "cost.budget": ["USD:1"]});
    for child in [
        json!({"fs.read": ["/data/**"]}),
        json!({"fs.write": ["/data/x"]}),
        json!({"cost.budget": ["USD:1.01"]}),
        json!({"cost.budget": ["EUR:1"]}),
        json!({"model.use": ["*"]}),
    ] {
        let input = json!({"agent": "echo", "input": 1, "lease_request": child});
        let (_, frames) = run(&mut c, "delegate", input, parent.clone()).await;
        assert_eq!(refusals(&frames).len(), 1, "{child}");
        assert_eq!(refusals(&frames)[0].1, ErrorCode::LEASE_SUBSET_VIOLATION, "{child}");
        assert!(children(&frames).is_empty());
        assert_eq!(terminal_code(&frames), Some(ErrorCode::LEASE_SUBSET_VIOLATION));
    }
    // A narrower one passes, and the accepted child shows its effective lease and budget.
    let child = json!({"fs.read": ["/data/a.txt"], "cost.budget": ["USD:0.25"]});
    let input = json!({"agent": "echo", "input": 1, "lease_request": child});
    let (_, frames) = run(&mut c, "delegate", input, parent).await;
    let accepted = &children(&frames)[0];
    assert_eq!(serde_json::to_value(&accepted.lease).unwrap(), child);
    assert_eq!(serde_json::to_value(&accepted.budget).unwrap(), json!({"USD": 0.25}));
    // Invalid child leases are INVALID_REQUEST, still a tool_result.
    let input = json!({"agent": "echo", "input": 1, "lease_request": {"bogus": ["x"]}});
    let (_, frames) = run(&mut c, "delegate", input, json!({"agent.delegate": ["*"]})).await;
    assert_eq!(refusals(&frames)[0].1, ErrorCode::INVALID_REQUEST);
}

#[tokio::test]
async fn decision_20_child_costs_bound_the_whole_tree() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let lease = json!({"agent.delegate": ["spender"], "cost.budget": ["USD:1"]});
    let (_, frames) = run(&mut c, "spend-via-child", json!("0.3"), lease).await;
    let accepted = &children(&frames)[0];
    assert_eq!(serde_json::to_value(&accepted.budget).unwrap(), json!({"USD": 1}), "inherits the remaining budget");
    assert_eq!(terminal_result(&frames), json!({"child": {"spent": "0.3"}, "remaining": {"USD": 0.7}}));
    // The parent's own cost.budget.remaining is emitted on the parent.
    let parent_remaining = frames.iter().any(|e| {
        e.job_id.as_ref() != Some(&accepted.job_id)
            && matches!(&e.message, Message::JobEvent(ev) if matches!(&ev.body, EventBody::Metric(m) if m.name == "cost.budget.remaining"))
    });
    assert!(parent_remaining);
    // Once the tree spent the parent's budget, further delegation is BUDGET_EXHAUSTED.
    let lease = json!({"agent.delegate": ["spender"], "cost.budget": ["USD:0"]});
    let (_, frames) = run(&mut c, "spend-via-child", json!("0"), lease).await;
    assert_eq!(refusals(&frames)[0].1, ErrorCode::BUDGET_EXHAUSTED);
}

#[tokio::test]
async fn s10_cancelling_the_parent_cancels_the_child() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.send(
        "job.submit",
        json!({"agent": "delegate", "input": {"agent": "sleep", "input": {}}, "lease_request": {"agent.delegate": ["sleep"]}}),
        json!({}),
    );
    let Message::JobAccepted(parent) = c.next().await.message else { panic!() };
    let child = loop {
        if let Message::JobAccepted(a) = c.next().await.message {
            break a;
        }
    };
    c.send("job.cancel", json!({}), json!({"job_id": parent.job_id.as_str()}));
    let mut ended = Vec::new();
    let mut cancelled_acks = Vec::new();
    while ended.len() < 2 {
        let env = c.next().await;
        match &env.message {
            Message::JobError(e) => ended.push((env.job_id.clone().unwrap(), e.code.clone())),
            Message::JobCancelled(_) => cancelled_acks.push(env.job_id.clone().unwrap()),
            _ => {}
        }
    }
    assert!(ended.contains(&(parent.job_id.clone(), ErrorCode::CANCELLED)));
    assert!(ended.contains(&(child.job_id.clone(), ErrorCode::CANCELLED)));
    assert_eq!(cancelled_acks, vec![parent.job_id], "no job.cancelled for the child");
}

#[tokio::test]
async fn s14_delegation_depth_is_capped() {
    let config = RuntimeConfig { max_delegation_depth: 1, ..RuntimeConfig::default() };
    let rt = runtime_with(config);
    let mut c = Client::connect(&rt);
    c.hello().await;
    let inner = json!({"agent": "echo", "input": 1});
    let input = json!({"agent": "delegate", "input": inner, "lease_request": {"agent.delegate": ["*"]}});
    let (_, frames) = run(&mut c, "delegate", input, json!({"agent.delegate": ["*"]})).await;
    assert_eq!(children(&frames).len(), 1, "depth 1 is allowed, depth 2 is not");
    assert_eq!(refusals(&frames).len(), 1);
    assert_eq!(refusals(&frames)[0].1, ErrorCode::INTERNAL_ERROR);
    assert_eq!(terminal_code(&frames), Some(ErrorCode::INTERNAL_ERROR));
}

#[tokio::test]
async fn s10_a_streamed_child_result_reaches_the_parent_as_its_id_and_size() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let input = json!({"agent": "chunks", "input": {"bytes": 10, "chunk": 4}});
    let (_, frames) = run(&mut c, "delegate", input, json!({"agent.delegate": ["chunks"]})).await;
    let result = terminal_result(&frames);
    assert_eq!(result["result_size"], 10);
    assert!(result["result_id"].as_str().unwrap().starts_with("res_"));
}

#[tokio::test]
async fn s10_a_failing_child_fails_the_delegate_agent_with_its_code() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let input = json!({"agent": "count", "input": {"n": "x"}});
    let (_, frames) = run(&mut c, "delegate", input, json!({"agent.delegate": ["*"]})).await;
    assert_eq!(children(&frames).len(), 1);
    assert!(refusals(&frames).is_empty(), "the delegation itself succeeded");
    assert_eq!(terminal_code(&frames), Some(ErrorCode::INVALID_REQUEST));
    for bad in [json!({}), json!({"agent": 3}), json!({"agent": "echo", "lease_request": ["x"]}), json!("echo")] {
        let (_, frames) = run(&mut c, "delegate", bad.clone(), json!({"agent.delegate": ["*"]})).await;
        assert_eq!(terminal_code(&frames), Some(ErrorCode::INVALID_REQUEST), "{bad}");
        assert!(delegate_ids(&frames).is_empty(), "{bad}");
    }
}

#[tokio::test]
async fn s7_3_a_panicking_agent_ends_with_internal_error_and_so_does_its_parent() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let (_, frames) = run(&mut c, "panics", Value::Null, json!({})).await;
    assert_eq!(terminal_code(&frames), Some(ErrorCode::INTERNAL_ERROR));
    let input = json!({"agent": "panics", "input": null});
    let (_, frames) = run(&mut c, "delegate", input, json!({"agent.delegate": ["*"]})).await;
    assert_eq!(children(&frames).len(), 1);
    assert_eq!(terminal_code(&frames), Some(ErrorCode::INTERNAL_ERROR));
}
