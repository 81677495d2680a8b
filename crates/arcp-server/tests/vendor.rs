//! §15 extensions: vendor message handlers, vendor `extensions` keys on core messages, and
//! vendor event kinds passing through verbatim.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use arcp_core::message::{Message, VendorMessage};
use arcp_core::{ErrorCode, ErrorPayload};
use arcp_server::{JobContext, Runtime, RuntimeConfig, StaticBearerVerifier, VendorHandlers, VendorRequest};
use serde_json::{Value, json};
use support::{Client, TOKEN, registry};

fn runtime() -> Runtime {
    let mut handlers = VendorHandlers::new();
    handlers
        .register("x-vendor.acme.echo", |req: VendorRequest| async move {
            Ok(Some(VendorMessage {
                type_name: "x-vendor.acme.echoed".into(),
                payload: json!({"principal": req.principal, "got": req.message.payload}),
            }))
        })
        .unwrap();
    handlers.register("x-vendor.acme.quiet", |_req: VendorRequest| async move { Ok(None) }).unwrap();
    handlers
        .register("x-vendor.acme.refuse", |_req: VendorRequest| async move {
            Err(ErrorPayload::new(ErrorCode::PERMISSION_DENIED, "not for you"))
        })
        .unwrap();
    assert!(handlers.register("acme.echo", |_req: VendorRequest| async move { Ok(None) }).is_err());
    let mut agents = registry();
    agents
        .register("vendor-events", |ctx: JobContext, input: Value| async move {
            ctx.vendor_event("x-vendor.acme.tick", input.clone()).await?;
            Ok(Value::Null)
        })
        .unwrap();
    let verifier = StaticBearerVerifier::new().with_token(TOKEN, "alice");
    Runtime::builder(verifier).config(RuntimeConfig::default()).agents(agents).vendor_handlers(handlers).build()
}

#[tokio::test]
async fn s15_a_handled_vendor_message_is_answered_by_its_handler() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.send("x-vendor.acme.echo", json!({"a": [1, {"b": null}]}), json!({}));
    let reply = c.next().await;
    let Message::Vendor(v) = &reply.message else { panic!("{reply:?}") };
    assert_eq!(v.type_name, "x-vendor.acme.echoed");
    assert_eq!(v.payload, json!({"principal": "alice", "got": {"a": [1, {"b": null}]}}));
    assert_eq!(reply.event_seq, None);
    // A handler that answers nothing; the session goes on.
    c.send("x-vendor.acme.quiet", json!({}), json!({}));
    c.send("session.ping", json!({"nonce": "n", "sent_at": "2026-01-01T00:00:00Z"}), json!({}));
    assert!(matches!(c.next().await.message, Message::SessionPong(_)));
}

#[tokio::test]
async fn s15_a_handler_error_is_a_session_error() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.send("x-vendor.acme.refuse", json!({}), json!({}));
    let Message::SessionError(e) = c.next().await.message else { panic!() };
    assert_eq!(e.code, ErrorCode::PERMISSION_DENIED);
    assert!(c.closed().await);
}

#[tokio::test]
async fn s15_unhandled_vendor_messages_follow_extensions_optional() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.send("x-vendor.acme.unknown", json!({}), json!({"extensions": {"optional": true}}));
    c.send("session.ping", json!({"nonce": "n", "sent_at": "2026-01-01T00:00:00Z"}), json!({}));
    assert!(matches!(c.next().await.message, Message::SessionPong(_)), "optional: dropped");
    c.send("x-vendor.acme.unknown", json!({}), json!({"extensions": {"x-vendor.acme.k": 1}}));
    let Message::SessionError(e) = c.next().await.message else { panic!() };
    assert_eq!(e.code, ErrorCode::INVALID_REQUEST, "required: refused");
}

#[tokio::test]
async fn s15_vendor_extension_keys_on_a_core_message_are_ignored() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    c.send(
        "job.submit",
        json!({"agent": "echo", "input": 7}),
        json!({"extensions": {"x-vendor.acme.routing": {"zone": "eu"}}}),
    );
    let Message::JobAccepted(a) = c.next().await.message else { panic!() };
    let ev = c.until_terminal(a.job_id.as_str()).await;
    let Message::JobResult(r) = &ev.last().unwrap().message else { panic!() };
    assert_eq!(r.result, Some(json!(7)));
}

#[tokio::test]
async fn s8_2_vendor_event_kinds_pass_through_verbatim() {
    let rt = runtime();
    let mut c = Client::connect(&rt);
    c.hello().await;
    let body = json!({"n": 1, "nested": {"list": [true, 2.5, "three"]}, "unknown": null});
    c.submit("vendor-events", body.clone());
    assert!(matches!(c.next().await.message, Message::JobAccepted(_)));
    c.next().await; // status running
    let raw: Value = serde_json::from_str(&c.t.recv().await.unwrap()).unwrap();
    assert_eq!(raw["type"], "job.event");
    assert_eq!(raw["payload"]["kind"], "x-vendor.acme.tick");
    assert_eq!(raw["payload"]["body"], body, "the body is kept as raw JSON");
}
