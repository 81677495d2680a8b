//! §9.6 (feature `cost.budget`): amounts are validated exactly, the initial counters are
//! echoed in `job.accepted.budget`, and an exhausted budget refuses the next
//! authority-bearing operation with `BUDGET_EXHAUSTED`.

use serde_json::json;

use super::leases::{all_until_terminal, ends_with_error, require_feature, tool_errors};
use super::{Case, case, ensure, job_id, open, require_agent, submit, until_terminal};
use crate::{Ctx, Failure};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            s9_6_accepted_echoes_the_initial_budget,
            "9.6",
            "job.accepted.budget holds one counter per currency, duplicate currencies summed, as exact numbers"
        ),
        case!(
            s9_6_malformed_amounts_are_invalid_request,
            "9.6",
            "A cost.budget entry that is not currency:decimal (sign, exponent, bad currency) is refused with INVALID_REQUEST"
        ),
        case!(
            s9_6_an_exhausted_budget_refuses_the_next_operation,
            "9.6",
            "With a counter at zero the next authority-bearing operation fails with BUDGET_EXHAUSTED (tool_result, retryable false)"
        ),
    ]
}

async fn s9_6_accepted_echoes_the_initial_budget(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_feature(&welcome, "cost.budget")?;
    require_agent(&welcome, "echo")?;
    let lease = json!({"cost.budget": ["USD:1.50", "EUR:2", "USD:0.25"]});
    let (_, accepted) = submit(&mut peer, json!({"agent": "echo", "input": 1, "lease_request": lease})).await?;
    let budget = &accepted["payload"]["budget"];
    ensure(
        budget["USD"].as_f64() == Some(1.75)
            && budget["EUR"].as_f64() == Some(2.0)
            && budget.as_object().map(|b| b.len()) == Some(2),
        format!("expected budget {{USD: 1.75, EUR: 2}}, got {accepted}"),
    )?;
    until_terminal(&mut peer, &job_id(&accepted)?).await.map(drop)
}

async fn s9_6_malformed_amounts_are_invalid_request(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_feature(&welcome, "cost.budget")?;
    require_agent(&welcome, "echo")?;
    for bad in ["USD:-1", "USD:1e3", "1USD:1", "USD", "USD:.5"] {
        let payload = json!({"agent": "echo", "input": 1, "lease_request": {"cost.budget": [bad]}});
        peer.send("job.submit", payload, json!({}))?;
        let v = peer.recv().await?;
        ensure(
            v["type"] == "job.error" && v["payload"]["code"] == "INVALID_REQUEST",
            format!("amount {bad:?} must be refused with INVALID_REQUEST, got {v}"),
        )?;
    }
    Ok(())
}

async fn s9_6_an_exhausted_budget_refuses_the_next_operation(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_feature(&welcome, "cost.budget")?;
    require_agent(&welcome, "delegate")?;
    require_agent(&welcome, "echo")?;
    let payload = json!({"agent": "delegate", "input": {"agent": "echo", "input": 1},
                         "lease_request": {"agent.delegate": ["*"], "cost.budget": ["USD:0"]}});
    let (_, accepted) = submit(&mut peer, payload).await?;
    let frames = all_until_terminal(&mut peer, &job_id(&accepted)?).await?;
    ensure(!frames.iter().any(|f| f["type"] == "job.accepted"), "an exhausted budget starts no child")?;
    let errors = tool_errors(&frames);
    ensure(
        errors.len() == 1 && errors[0].1["code"] == "BUDGET_EXHAUSTED" && errors[0].1["retryable"] == false,
        format!("expected one tool_result BUDGET_EXHAUSTED, got {errors:?}"),
    )?;
    ends_with_error(&frames, "BUDGET_EXHAUSTED")
}
