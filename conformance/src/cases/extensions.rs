//! §15 extensions on core messages: vendor `extensions` keys and the `optional` flag change
//! nothing for a message the runtime understands; a malformed `extensions` object is refused.
//! (Unhandled vendor message types are in `malformed.rs`.)

use serde_json::json;

use super::{Case, case, ensure, expect_session_error, job_id, open, require_agent};
use crate::{Ctx, Failure};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            s15_vendor_extension_keys_on_a_core_message_are_ignored,
            "15",
            "A core message carrying vendor extensions keys (without optional) is handled normally"
        ),
        case!(
            s15_optional_does_not_drop_an_understood_message,
            "15",
            "extensions.optional=true on a core message does not make the runtime drop it"
        ),
        case!(
            s15_malformed_extensions_are_invalid_request,
            "15",
            "extensions with a non-vendor key or a non-boolean optional is INVALID_REQUEST"
        ),
    ]
}

async fn s15_vendor_extension_keys_on_a_core_message_are_ignored(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, welcome) = open(&ctx).await?;
    require_agent(&welcome, "echo")?;
    let ext = json!({"extensions": {"x-vendor.conformance.routing": {"zone": "eu", "hops": [1, 2]}}});
    peer.send("job.submit", json!({"agent": "echo", "input": {"v": 1}}), ext.clone())?;
    let accepted = peer.recv().await?;
    ensure(accepted["type"] == "job.accepted", format!("expected job.accepted, got {accepted}"))?;
    let frames = super::until_terminal(&mut peer, &job_id(&accepted)?).await?;
    let last = frames.last().cloned().unwrap_or_default();
    ensure(last["payload"]["result"] == json!({"v": 1}), format!("expected the echo, got {last}"))?;
    peer.send("session.ping", json!({"nonce": "ext", "sent_at": "2026-11-23T08:00:00Z"}), ext)?;
    let pong = peer.recv().await?;
    ensure(pong["type"] == "session.pong", format!("expected the pong, got {pong}"))
}

async fn s15_optional_does_not_drop_an_understood_message(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, _) = open(&ctx).await?;
    peer.send(
        "session.ping",
        json!({"nonce": "opt", "sent_at": "2026-11-23T08:00:00Z"}),
        json!({"extensions": {"optional": true, "x-vendor.conformance.k": 1}}),
    )?;
    let pong = peer.recv().await?;
    ensure(
        pong["type"] == "session.pong" && pong["payload"]["ping_nonce"] == "opt",
        format!("an understood message is handled even when optional, got {pong}"),
    )
}

async fn s15_malformed_extensions_are_invalid_request(ctx: Ctx) -> Result<(), Failure> {
    for ext in [json!({"not-a-vendor-key": 1}), json!({"optional": "yes"})] {
        let (mut peer, _) = open(&ctx).await?;
        peer.send(
            "session.ping",
            json!({"nonce": "bad", "sent_at": "2026-11-23T08:00:00Z"}),
            json!({ "extensions": ext }),
        )?;
        expect_session_error(&mut peer, "INVALID_REQUEST").await.map_err(|e| format!("extensions {ext}: {e}"))?;
    }
    Ok(())
}
