//! §7.5 agents and versions (feature `agent_versions`) and the inventory shape of §6.2
//! (decision 24): the agent grammar, unknown versions, bare names resolving to the advertised
//! default, pinned versions, and `name@version` in `job.accepted` and listings.
//!
//! The contract agents are unversioned, so against a server that hosts only them these cases
//! check what unversioned agents allow (a bare name is echoed bare, any pinned version is
//! `AGENT_VERSION_NOT_AVAILABLE`). A server that also hosts the fixture
//! [`crate::VERSIONED_FIXTURE`] gets default and pinned resolution checked for real.

use serde_json::{Value, json};

use super::listing::list_all;
use super::{Case, adopt_welcome, case, ensure, hello_payload, job_id, open, require_agent, submit, until_terminal};
use crate::{Ctx, Failure, Peer, VERSIONED_FIXTURE, VERSIONED_FIXTURE_VERSIONS};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            s6_2_the_inventory_shape_follows_agent_versions,
            "6.2",
            "decision 24: with agent_versions negotiated welcome.capabilities.agents is [{name, versions[], default?}]; without it, a flat list of names"
        ),
        case!(
            s7_5_an_invalid_agent_string_is_invalid_request,
            "7.5",
            "An agent that does not match name[@version] (uppercase, leading '-', empty version, space) is refused with INVALID_REQUEST"
        ),
        case!(
            s7_5_an_unknown_version_is_agent_version_not_available,
            "7.5",
            "A pinned version the agent does not have is AGENT_VERSION_NOT_AVAILABLE, retryable false; the session stays open"
        ),
        case!(
            s7_5_bare_and_pinned_names_resolve_as_advertised,
            "7.5",
            "A bare name runs the advertised default (else the unversioned agent); name@version runs exactly that version; job.accepted.agent and the listing show the resolved name@version"
        ),
    ]
}

/// Opens a session offering `features`; returns the peer and the welcome.
async fn open_offering(ctx: &Ctx, features: Value) -> Result<(Peer, Value), Failure> {
    let mut peer = ctx.connect().await?;
    let mut hello = hello_payload(ctx.token(), None);
    hello["capabilities"]["features"] = features;
    peer.send("session.hello", hello, json!({}))?;
    let welcome = peer.recv().await?;
    ensure(welcome["type"] == "session.welcome", format!("expected session.welcome, got {welcome}"))?;
    adopt_welcome(&mut peer, &welcome)?;
    Ok((peer, welcome))
}

fn negotiated(welcome: &Value, feature: &str) -> bool {
    welcome["payload"]["capabilities"]["features"].as_array().is_some_and(|f| f.iter().any(|x| x == feature))
}

/// The rich inventory entry of `name`, if the welcome lists one.
fn entry<'a>(welcome: &'a Value, name: &str) -> Option<&'a Value> {
    welcome["payload"]["capabilities"]["agents"].as_array()?.iter().find(|a| a["name"] == name)
}

async fn s6_2_the_inventory_shape_follows_agent_versions(ctx: Ctx) -> Result<(), Failure> {
    let (_, rich) = open(&ctx).await?;
    let agents = rich["payload"]["capabilities"]["agents"].clone();
    if negotiated(&rich, "agent_versions") {
        let list = agents.as_array().ok_or_else(|| format!("agents must be a list: {rich}"))?;
        ensure(!list.is_empty(), "the inventory lists the server's agents")?;
        for a in list {
            ensure(
                a["name"].is_string() && a["versions"].as_array().is_some_and(|v| v.iter().all(Value::is_string)),
                format!("with agent_versions every entry is {{name, versions: [string]}}: {a}"),
            )?;
            if let Some(default) = a.get("default") {
                ensure(
                    a["versions"].as_array().is_some_and(|v| v.contains(default)),
                    format!("an advertised default is one of the versions: {a}"),
                )?;
            }
        }
    }
    let (_, flat) = open_offering(&ctx, json!(["progress"])).await?;
    let agents = &flat["payload"]["capabilities"]["agents"];
    ensure(
        agents.is_null() || agents.as_array().is_some_and(|l| l.iter().all(Value::is_string)),
        format!("without agent_versions the inventory is a flat list of names: {flat}"),
    )
}

async fn s7_5_an_invalid_agent_string_is_invalid_request(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, _) = open(&ctx).await?;
    for bad in ["Echo", "-echo", "echo@", "@1.0.0", "echo@1 0", "echo@1/2", "ec ho"] {
        let id = peer.send("job.submit", json!({"agent": bad, "input": null}), json!({}))?;
        let v = peer.recv().await?;
        ensure(
            (v["type"] == "job.error" || v["type"] == "session.error") && v["payload"]["code"] == "INVALID_REQUEST",
            format!("agent {bad:?} must be refused with INVALID_REQUEST, got {v}"),
        )?;
        if v["type"] == "session.error" {
            return Ok(());
        }
        ensure(v["payload"]["details"]["request_id"] == id.as_str(), format!("a request error names the submit: {v}"))?;
    }
    Ok(())
}

async fn s7_5_an_unknown_version_is_agent_version_not_available(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "echo")?;
    let id = peer.send("job.submit", json!({"agent": "echo@0.0.0-conformance-missing", "input": null}), json!({}))?;
    let v = peer.recv().await?;
    ensure(
        (v["type"] == "job.error" || v["type"] == "session.error")
            && v["payload"]["code"] == "AGENT_VERSION_NOT_AVAILABLE"
            && v["payload"]["retryable"] == false,
        format!("expected AGENT_VERSION_NOT_AVAILABLE, retryable false, got {v}"),
    )?;
    ensure(
        v["type"] == "job.error" && v["payload"]["details"]["request_id"] == id.as_str(),
        format!("arcp-rs (decision 21): a refused submit is a request error, the session stays open: {v}"),
    )?;
    let (_, accepted) = submit(&mut peer, json!({"agent": "echo", "input": 1})).await?;
    until_terminal(&mut peer, &job_id(&accepted)?).await.map(drop)
}

/// Submits `agent`, runs it to its end; returns `(job.accepted, terminal)`.
async fn run(peer: &mut Peer, agent: &str, input: Value) -> Result<(Value, Value), Failure> {
    let (_, accepted) = submit(peer, json!({"agent": agent, "input": input})).await?;
    let frames = until_terminal(peer, &job_id(&accepted)?).await?;
    Ok((accepted, frames.last().cloned().unwrap_or_default()))
}

async fn s7_5_bare_and_pinned_names_resolve_as_advertised(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "echo")?;
    let listing = negotiated(&welcome, "list_jobs");
    // The contract agent `echo`: bare resolves to the default, else the unversioned agent,
    // else some advertised version; every advertised version resolves to itself.
    let echo = entry(&welcome, "echo").cloned().unwrap_or_else(|| json!({"name": "echo", "versions": []}));
    let versions: Vec<String> = echo["versions"]
        .as_array()
        .map(|v| v.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let (accepted, _) = run(&mut peer, "echo", json!(1)).await?;
    let label = accepted["payload"]["agent"].as_str().unwrap_or_default().to_owned();
    let expected_bare = match (echo["default"].as_str(), versions.first()) {
        (Some(default), _) => label == format!("echo@{default}"),
        (None, None) => label == "echo",
        (None, Some(_)) => label == "echo" || versions.iter().any(|v| label == format!("echo@{v}")),
    };
    ensure(expected_bare, format!("bare `echo` must resolve as advertised ({echo}), job.accepted.agent is {label:?}"))?;
    for v in &versions {
        let (accepted, _) = run(&mut peer, &format!("echo@{v}"), json!(1)).await?;
        ensure(
            accepted["payload"]["agent"] == format!("echo@{v}"),
            format!("echo@{v} resolves to itself: {accepted}"),
        )?;
    }
    // The versioned fixture, when hosted: the default is not the first version registered.
    let Some(fixture) = entry(&welcome, VERSIONED_FIXTURE).cloned() else { return Ok(()) };
    let [first, default] = VERSIONED_FIXTURE_VERSIONS;
    ensure(
        fixture["versions"] == json!(VERSIONED_FIXTURE_VERSIONS) && fixture["default"] == default,
        format!(
            "the fixture is advertised with versions {VERSIONED_FIXTURE_VERSIONS:?} and default {default}: {fixture}"
        ),
    )?;
    let (bare, result) = run(&mut peer, VERSIONED_FIXTURE, Value::Null).await?;
    ensure(
        bare["payload"]["agent"] == format!("{VERSIONED_FIXTURE}@{default}")
            && result["payload"]["result"]["version"] == default,
        format!("a bare name runs the default version {default}: {bare} → {result}"),
    )?;
    let (pinned, result) = run(&mut peer, &format!("{VERSIONED_FIXTURE}@{first}"), Value::Null).await?;
    ensure(
        pinned["payload"]["agent"] == format!("{VERSIONED_FIXTURE}@{first}")
            && result["payload"]["result"]["version"] == first,
        format!("a pinned name runs exactly that version {first}: {pinned} → {result}"),
    )?;
    if !listing {
        return Ok(());
    }
    let (bare_id, pinned_id) = (job_id(&bare)?, job_id(&pinned)?);
    let all = list_all(&mut peer, json!({"agent": VERSIONED_FIXTURE}), 1000).await?;
    let label_of = |jobs: &[Value], id: &str| jobs.iter().find(|j| j["job_id"] == id).map(|j| j["agent"].clone());
    ensure(
        label_of(&all, &bare_id) == Some(json!(format!("{VERSIONED_FIXTURE}@{default}")))
            && label_of(&all, &pinned_id) == Some(json!(format!("{VERSIONED_FIXTURE}@{first}"))),
        "a bare agent filter lists every version, each entry showing its resolved name@version",
    )?;
    let only_first = list_all(&mut peer, json!({"agent": format!("{VERSIONED_FIXTURE}@{first}")}), 1000).await?;
    ensure(
        label_of(&only_first, &pinned_id).is_some() && label_of(&only_first, &bare_id).is_none(),
        format!("filter.agent {VERSIONED_FIXTURE}@{first} lists that version only"),
    )?;
    ensure(
        only_first.iter().all(|j| j["agent"] == format!("{VERSIONED_FIXTURE}@{first}")),
        "a pinned agent filter matches exactly",
    )
}
