//! §5: every malformed-frame class after the handshake is `session.error INVALID_REQUEST`
//! followed by the transport closing; before the handshake, anything but a hello is dropped.

use std::time::Duration;

use serde_json::json;

use super::{Case, case, ensure, expect_session_error, hello_payload, open};
use crate::{Ctx, Failure};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            s5_not_json_is_invalid_request,
            "5",
            "A frame that is not JSON is refused with INVALID_REQUEST and the transport closes"
        ),
        case!(s5_non_object_is_invalid_request, "5", "A JSON frame that is not an object is refused"),
        case!(s5_missing_type_is_invalid_request, "5", "An envelope without `type` is refused"),
        case!(s5_unknown_core_type_is_invalid_request, "5", "An unknown `session.*`/`job.*` type is refused"),
        case!(s5_non_arcp_type_is_invalid_request, "5", "A type that is neither core nor `x-vendor.*` is refused"),
        case!(s5_wrong_field_type_is_invalid_request, "5", "A field of the wrong type is refused"),
        case!(s5_unsupported_version_is_invalid_request, "5", "An `arcp` literal other than \"1\"/\"1.1\" is refused"),
        case!(s5_bad_trace_id_is_invalid_request, "5", "A trace_id that is not 32 lowercase hex is refused"),
        case!(
            s15_optional_vendor_message_is_dropped,
            "15",
            "An unhandled vendor message with extensions.optional=true is dropped silently"
        ),
        case!(
            s15_mandatory_vendor_message_is_refused,
            "15",
            "An unhandled vendor message without extensions.optional is refused"
        ),
        case!(s5_unknown_top_level_fields_are_ignored, "5", "Unknown top-level envelope fields are ignored"),
        case!(
            s5_a_foreign_session_id_is_invalid_request,
            "5",
            "After the welcome, a client envelope naming another session_id is INVALID_REQUEST and closes"
        ),
        case!(
            s5_a_message_in_the_wrong_direction_is_invalid_request,
            "5",
            "A runtime-to-client type sent by the client (job.result, session.welcome) is INVALID_REQUEST and closes"
        ),
        case!(
            s5_envelope_and_payload_job_ids_must_agree,
            "5",
            "A job_id on the envelope that differs from the payload's (job.subscribe) is INVALID_REQUEST and closes"
        ),
    ]
}

async fn refused_after_welcome(ctx: Ctx, frame: String) -> Result<(), Failure> {
    let (mut peer, _) = open(&ctx).await?;
    peer.send_raw(frame)?;
    expect_session_error(&mut peer, "INVALID_REQUEST").await
}

async fn s5_not_json_is_invalid_request(ctx: Ctx) -> Result<(), Failure> {
    refused_after_welcome(ctx, "{this is not json".into()).await
}

async fn s5_non_object_is_invalid_request(ctx: Ctx) -> Result<(), Failure> {
    refused_after_welcome(ctx, "[1,2,3]".into()).await
}

async fn s5_missing_type_is_invalid_request(ctx: Ctx) -> Result<(), Failure> {
    refused_after_welcome(
        ctx,
        json!({"arcp": "1.1", "id": "msg_00000000000000000000000099", "payload": {}}).to_string(),
    )
    .await
}

async fn s5_unknown_core_type_is_invalid_request(ctx: Ctx) -> Result<(), Failure> {
    refused_after_welcome(
        ctx,
        json!({"arcp": "1.1", "id": "msg_00000000000000000000000099", "type": "job.frobnicate", "payload": {}})
            .to_string(),
    )
    .await
}

async fn s5_non_arcp_type_is_invalid_request(ctx: Ctx) -> Result<(), Failure> {
    refused_after_welcome(
        ctx,
        json!({"arcp": "1.1", "id": "msg_00000000000000000000000099", "type": "hello", "payload": {}}).to_string(),
    )
    .await
}

async fn s5_wrong_field_type_is_invalid_request(ctx: Ctx) -> Result<(), Failure> {
    refused_after_welcome(ctx, json!({"arcp": "1.1", "id": 42, "type": "session.ping", "payload": {"nonce": "n", "sent_at": "2026-11-23T08:00:00Z"}}).to_string())
        .await
}

async fn s5_unsupported_version_is_invalid_request(ctx: Ctx) -> Result<(), Failure> {
    let mut peer = ctx.connect().await?;
    let mut hello = json!({"arcp": "2", "id": "msg_00000000000000000000000001", "type": "session.hello"});
    hello["payload"] = hello_payload(ctx.token(), None);
    peer.send_raw(hello.to_string())?;
    expect_session_error(&mut peer, "INVALID_REQUEST").await
}

async fn s5_bad_trace_id_is_invalid_request(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, _) = open(&ctx).await?;
    peer.send(
        "session.ping",
        json!({"nonce": "n", "sent_at": "2026-11-23T08:00:00Z"}),
        json!({"trace_id": "NOT-A-TRACE"}),
    )?;
    expect_session_error(&mut peer, "INVALID_REQUEST").await
}

async fn s15_optional_vendor_message_is_dropped(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, _) = open(&ctx).await?;
    peer.send("x-vendor.conformance.poke", json!({}), json!({"extensions": {"optional": true}}))?;
    peer.send("session.ping", json!({"nonce": "after", "sent_at": "2026-11-23T08:00:00Z"}), json!({}))?;
    let v = peer.recv().await?;
    ensure(v["type"] == "session.pong" && v["payload"]["ping_nonce"] == "after", format!("expected the pong, got {v}"))
}

async fn s15_mandatory_vendor_message_is_refused(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, _) = open(&ctx).await?;
    peer.send("x-vendor.conformance.poke", json!({}), json!({}))?;
    expect_session_error(&mut peer, "INVALID_REQUEST").await
}

async fn s5_unknown_top_level_fields_are_ignored(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, _) = open(&ctx).await?;
    peer.send(
        "session.ping",
        json!({"nonce": "x", "sent_at": "2026-11-23T08:00:00Z"}),
        json!({"x_future_field": {"a": [1]}}),
    )?;
    let v = peer.recv().await?;
    ensure(v["type"] == "session.pong", format!("expected session.pong, got {v}"))?;
    ensure(!peer.closes_within(Duration::from_millis(100)).await, "the connection must stay open")
}

async fn s5_a_foreign_session_id_is_invalid_request(ctx: Ctx) -> Result<(), Failure> {
    let (other, _) = open(&ctx).await?;
    let foreign = other.session_id.clone().unwrap_or_default();
    let (mut peer, _) = open(&ctx).await?;
    ensure(peer.session_id.as_deref() != Some(foreign.as_str()), "two hellos open two sessions")?;
    let ping = json!({"arcp": "1.1", "id": "msg_00000000000000000000000097", "type": "session.ping",
                      "session_id": foreign, "payload": {"nonce": "n", "sent_at": "2026-11-23T08:00:00Z"}});
    peer.send_raw(ping.to_string())?;
    expect_session_error(&mut peer, "INVALID_REQUEST").await
}

async fn s5_a_message_in_the_wrong_direction_is_invalid_request(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, _) = open(&ctx).await?;
    peer.send(
        "job.result",
        json!({"final_status": "success", "result": 1}),
        json!({"job_id": "job_01M8ZZZZZZZZZZZZZZZZZZZZZZ", "event_seq": 1}),
    )?;
    expect_session_error(&mut peer, "INVALID_REQUEST").await?;
    let (mut peer, welcome) = open(&ctx).await?;
    peer.send("session.welcome", welcome["payload"].clone(), json!({}))?;
    expect_session_error(&mut peer, "INVALID_REQUEST").await
}

async fn s5_envelope_and_payload_job_ids_must_agree(ctx: Ctx) -> Result<(), Failure> {
    let (mut peer, _) = open(&ctx).await?;
    peer.send(
        "job.subscribe",
        json!({"job_id": "job_01M8ZZZZZZZZZZZZZZZZZZZZZA"}),
        json!({"job_id": "job_01M8ZZZZZZZZZZZZZZZZZZZZZB"}),
    )?;
    expect_session_error(&mut peer, "INVALID_REQUEST").await
}
