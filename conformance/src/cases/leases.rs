//! §9.3, §9.5: lease enforcement at run time — a refused operation is a `tool_result` error
//! on the job (never a session error), and an expired lease ends the job with
//! `LEASE_EXPIRED`. Driven through the contract agents `delegate` (whose delegation is an
//! authority-bearing operation) and `sleep`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{
    Case, FEATURES, SKIP, adopt_welcome, case, ensure, hello_payload, job_id, open, require_agent, submit,
    until_terminal,
};
use crate::{Ctx, Failure, Peer};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            s9_3_a_refused_operation_is_a_tool_result_error,
            "9.3",
            "An operation outside the lease is reported as tool_result {call_id, error PERMISSION_DENIED}; the session stays open"
        ),
        case!(
            s9_5_expires_at_must_be_utc_z_and_in_the_future,
            "9.5",
            "lease_constraints.expires_at in the past, with an offset, or unparseable is refused with INVALID_REQUEST"
        ),
        case!(
            s9_5_an_expired_lease_ends_the_job_with_lease_expired,
            "9.5",
            "A job still running when its lease expires ends with job.error LEASE_EXPIRED, final_status error, retryable false"
        ),
        case!(
            s7_1_the_effective_lease_never_widens,
            "7.1",
            "job.accepted.lease holds only requested capabilities, each pattern covered by a requested one (the runtime may narrow, never widen)"
        ),
        case!(
            s9_2_unknown_capabilities_and_constraints_are_invalid_request,
            "9.2",
            "A lease capability outside the reserved namespaces and not x-vendor.*, or an unknown lease_constraints key, is INVALID_REQUEST; a vendor capability is accepted"
        ),
        case!(
            s9_8_credentials_only_when_negotiated,
            "9.8",
            "job.accepted carries credentials only when provisioned_credentials was negotiated, each {id, scheme, value, endpoint}; never otherwise, never in listings or job.subscribed of a session without it"
        ),
    ]
}

/// Skips unless the welcome's effective features include `feature`.
pub(super) fn require_feature(welcome: &Value, feature: &str) -> Result<(), Failure> {
    let negotiated = welcome["payload"]["capabilities"]["features"]
        .as_array()
        .is_some_and(|fs| fs.iter().any(|f| f.as_str() == Some(feature)));
    if negotiated { Ok(()) } else { Err(format!("{SKIP} the server does not negotiate `{feature}`")) }
}

/// `expires_at` `offset_ms` from now (this machine's clock), RFC 3339 UTC with `Z`.
pub(super) fn expires_in(offset_ms: u64) -> Result<String, Failure> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| format!("clock before 1970: {e}"))?;
    let ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX).saturating_add(offset_ms);
    arcp_core::lease::ExpiresAt::from_unix_millis(ms)
        .map(|at| at.to_string())
        .ok_or_else(|| "cannot represent the expiry".to_owned())
}

/// The `tool_result` errors among `frames`: `(call_id, error)`.
pub(super) fn tool_errors(frames: &[Value]) -> Vec<(String, Value)> {
    frames
        .iter()
        .filter(|f| f["type"] == "job.event" && f["payload"]["kind"] == "tool_result")
        .filter(|f| f["payload"]["body"]["error"].is_object())
        .map(|f| {
            let body = &f["payload"]["body"];
            (body["call_id"].as_str().unwrap_or_default().to_owned(), body["error"].clone())
        })
        .collect()
}

/// The `delegate_id`s of the `delegate` events among `frames`.
pub(super) fn delegate_ids(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f["type"] == "job.event" && f["payload"]["kind"] == "delegate")
        .map(|f| f["payload"]["body"]["delegate_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Reads every frame until the terminal envelope of `job`, whatever job they belong to.
pub(super) async fn all_until_terminal(peer: &mut Peer, job: &str) -> Result<Vec<Value>, Failure> {
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let v = peer.recv().await?;
        let done = v["job_id"] == job && (v["type"] == "job.result" || v["type"] == "job.error");
        out.push(v);
        if done {
            return Ok(out);
        }
    }
    Err(format!("job {job} did not end"))
}

/// Expects the last frame to be `job.error` with `code` and `final_status: "error"`.
pub(super) fn ends_with_error(frames: &[Value], code: &str) -> Result<(), Failure> {
    let last = frames.last().cloned().unwrap_or_default();
    ensure(
        last["type"] == "job.error" && last["payload"]["code"] == code && last["payload"]["final_status"] == "error",
        format!("expected job.error {code} (final_status error), got {last}"),
    )
}

async fn s9_3_a_refused_operation_is_a_tool_result_error(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "delegate")?;
    require_agent(&welcome, "echo")?;
    let payload = json!({"agent": "delegate", "input": {"agent": "echo", "input": 1},
                         "lease_request": {"tool.call": ["*"]}});
    let (_, accepted) = submit(&mut peer, payload).await?;
    let job = job_id(&accepted)?;
    let frames = all_until_terminal(&mut peer, &job).await?;
    ensure(!frames.iter().any(|f| f["type"] == "session.error"), "a lease refusal is never a session error")?;
    let ids = delegate_ids(&frames);
    let errors = tool_errors(&frames);
    ensure(ids.len() == 1 && errors.len() == 1, format!("one delegate event and one tool_result error: {frames:?}"))?;
    let (call_id, error) = &errors[0];
    ensure(call_id == &ids[0], format!("the tool_result answers the delegate_id {}, got {call_id}", ids[0]))?;
    ensure(
        error["code"] == "PERMISSION_DENIED" && error["retryable"] == false,
        format!("expected PERMISSION_DENIED, retryable false: {error}"),
    )?;
    // The session is unharmed: another job runs.
    let (_, accepted) = submit(&mut peer, json!({"agent": "echo", "input": 2})).await?;
    let frames = until_terminal(&mut peer, &job_id(&accepted)?).await?;
    let last = frames.last().cloned().unwrap_or_default();
    ensure(last["type"] == "job.result", format!("the session must stay usable, got {last}"))
}

async fn s9_5_expires_at_must_be_utc_z_and_in_the_future(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_feature(&welcome, "lease_expires_at")?;
    require_agent(&welcome, "echo")?;
    for bad in ["2020-01-01T00:00:00Z", "2099-01-01T00:00:00+00:00", "2099-01-01T00:00:00", "tomorrow"] {
        let payload = json!({"agent": "echo", "input": 1, "lease_constraints": {"expires_at": bad}});
        peer.send("job.submit", payload, json!({}))?;
        let v = peer.recv().await?;
        ensure(
            (v["type"] == "job.error" || v["type"] == "session.error") && v["payload"]["code"] == "INVALID_REQUEST",
            format!("expires_at {bad:?} must be refused with INVALID_REQUEST, got {v}"),
        )?;
        if v["type"] == "session.error" {
            return Ok(());
        }
    }
    Ok(())
}

async fn s9_5_an_expired_lease_ends_the_job_with_lease_expired(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_feature(&welcome, "lease_expires_at")?;
    require_agent(&welcome, "sleep")?;
    // Three seconds leave room for a little clock skew between this machine and the server.
    let expires_at = expires_in(3_000)?;
    let payload = json!({"agent": "sleep", "input": {}, "lease_constraints": {"expires_at": expires_at}});
    let (_, accepted) = submit(&mut peer, payload).await?;
    let frames = until_terminal(&mut peer, &job_id(&accepted)?).await?;
    ends_with_error(&frames, "LEASE_EXPIRED")?;
    let last = frames.last().cloned().unwrap_or_default();
    ensure(last["payload"]["retryable"] == false, format!("LEASE_EXPIRED is pinned retryable false: {last}"))
}

async fn s7_1_the_effective_lease_never_widens(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "echo")?;
    let requested = json!({
        "tool.call": ["conformance.*"],
        "fs.read": ["/tmp/conformance/**"],
        "net.fetch": ["https://example.com/conformance/*"],
        "agent.delegate": ["echo"],
    });
    let (_, accepted) = submit(&mut peer, json!({"agent": "echo", "input": 1, "lease_request": requested})).await?;
    let lease = accepted["payload"]["lease"].as_object().ok_or_else(|| format!("job.accepted.lease: {accepted}"))?;
    for (name, patterns) in lease {
        let asked = requested[name.as_str()]
            .as_array()
            .ok_or_else(|| format!("the effective lease grants {name}, which was not requested: {accepted}"))?;
        let cap = arcp_core::lease::Capability::parse(name).map_err(|e| format!("{name}: {e}"))?;
        let globs = |list: &[Value]| -> Result<Vec<arcp_core::lease::Glob>, Failure> {
            list.iter()
                .map(|p| {
                    let p = p.as_str().ok_or_else(|| format!("{name}: a pattern that is not a string: {p}"))?;
                    arcp_core::lease::Glob::new(&cap, p).map_err(|e| format!("{name} {p:?}: {e}"))
                })
                .collect()
        };
        let asked = globs(asked)?;
        let granted = globs(patterns.as_array().ok_or_else(|| format!("{name}: patterns must be an array"))?)?;
        for g in &granted {
            ensure(
                asked.iter().any(|a| a.covers(g)),
                format!("{name}: the effective pattern {:?} is wider than anything requested", g.as_str()),
            )?;
        }
    }
    until_terminal(&mut peer, &job_id(&accepted)?).await.map(drop)
}

async fn s9_2_unknown_capabilities_and_constraints_are_invalid_request(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "echo")?;
    let refused = [
        json!({"lease_request": {"fs.delete": ["/tmp/x"]}}),
        json!({"lease_request": {"shell": ["ls"]}}),
        json!({"lease_request": {"x-vendor": ["a"]}}),
        json!({"lease_constraints": {"x-conformance-unknown": 1}}),
    ];
    for extra in refused {
        let mut payload = json!({"agent": "echo", "input": 1});
        for (k, v) in extra.as_object().into_iter().flatten() {
            payload[k] = v.clone();
        }
        peer.send("job.submit", payload, json!({}))?;
        let v = peer.recv().await?;
        ensure(
            v["type"] == "job.error" && v["payload"]["code"] == "INVALID_REQUEST",
            format!("{extra} must be refused with INVALID_REQUEST, got {v}"),
        )?;
    }
    let vendor = json!({"agent": "echo", "input": 1, "lease_request": {"x-vendor.conformance.thing": ["a/*"]}});
    let (_, accepted) = submit(&mut peer, vendor).await?;
    until_terminal(&mut peer, &job_id(&accepted)?).await.map(drop)
}

fn has_credentials(v: &Value) -> bool {
    v["payload"].get("credentials").is_some_and(|c| !c.is_null())
}

async fn s9_8_credentials_only_when_negotiated(ctx: Ctx) -> Result<(), Failure> {
    let mut features: Vec<&str> = FEATURES.to_vec();
    features.extend(["model.use", "provisioned_credentials"]);
    let mut peer = ctx.connect().await?;
    let mut hello = hello_payload(ctx.token(), None);
    hello["capabilities"]["features"] = json!(features);
    peer.send("session.hello", hello, json!({}))?;
    let welcome = peer.recv().await?;
    ensure(welcome["type"] == "session.welcome", format!("expected session.welcome, got {welcome}"))?;
    adopt_welcome(&mut peer, &welcome)?;
    require_agent(&welcome, "sleep")?;
    let negotiated = welcome["payload"]["capabilities"]["features"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == "provisioned_credentials"));
    let lease = json!({"model.use": ["*"]});
    let (_, accepted) = submit(&mut peer, json!({"agent": "sleep", "input": {}, "lease_request": lease})).await?;
    let job = job_id(&accepted)?;
    if negotiated {
        if let Some(creds) = accepted["payload"].get("credentials") {
            let list = creds.as_array().ok_or_else(|| format!("credentials must be an array: {accepted}"))?;
            for c in list {
                ensure(
                    ["id", "scheme", "value", "endpoint"].iter().all(|k| c[*k].is_string()),
                    format!("a credential is {{id, scheme, value, endpoint, …}}: {c}"),
                )?;
            }
        }
    } else {
        ensure(!has_credentials(&accepted), format!("credentials without provisioned_credentials: {accepted}"))?;
    }
    // A session of the same principal that did not offer the feature never sees credentials.
    // (`FEATURES` does not offer provisioned_credentials.)
    let (mut other, w) = super::open_with(&ctx, ctx.same_principal_token()).await?;
    let listed = super::listing::list_all(&mut other, json!({"status": ["running", "pending"]}), 1000).await?;
    let entry = listed.iter().find(|j| j["job_id"] == job.as_str());
    ensure(entry.is_some(), format!("the running job is listed: {listed:?}"))?;
    ensure(
        entry.is_some_and(|e| e.get("credentials").is_none()),
        format!("credentials never appear in listings: {entry:?}"),
    )?;
    if w["payload"]["capabilities"]["features"].as_array().is_some_and(|f| f.iter().any(|x| x == "subscribe")) {
        other.send("job.subscribe", json!({"job_id": job}), json!({}))?;
        let subscribed = other.recv_type("job.subscribed").await?;
        ensure(
            !has_credentials(&subscribed),
            format!("no credentials to a session without the feature: {subscribed}"),
        )?;
    }
    peer.send("job.cancel", json!({}), json!({"job_id": job}))?;
    until_terminal(&mut peer, &job).await.map(drop)
}
