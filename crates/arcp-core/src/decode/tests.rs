//! Decoder unit tests: hostile inputs return typed errors, never panics.

use super::*;
use crate::message::Message;

fn dec(s: &str) -> Result<Envelope, DecodeFailure> {
    decode(s.as_bytes(), &DecodeOptions::default())
}

fn kind(s: &str) -> &'static str {
    dec(s).err().map(|f| f.error.kind()).unwrap_or("ok")
}

const HELLO: &str = r#"{"arcp":"1.1","id":"msg_1","type":"session.hello","payload":{"client":{"name":"c","version":"1"},"auth":{"scheme":"bearer","token":"t"}}}"#;

#[test]
fn decodes_a_hello() {
    let env = dec(HELLO).unwrap();
    assert!(matches!(env.message, Message::SessionHello(_)));
    assert_eq!(env.arcp, ProtocolVersion::V1_1);
}

#[test]
fn envelope_failures_are_typed() {
    assert_eq!(kind("[]"), "not_an_object");
    assert_eq!(kind("42"), "not_an_object");
    assert_eq!(kind("{"), "invalid_json");
    assert_eq!(kind(""), "invalid_json");
    assert_eq!(kind(r#"{"id":"m","type":"session.bye","payload":{}}"#), "missing_field");
    assert_eq!(kind(r#"{"arcp":"2","id":"m","type":"session.bye","payload":{}}"#), "unsupported_version");
    assert_eq!(kind(r#"{"arcp":1.1,"id":"m","type":"session.bye","payload":{}}"#), "invalid_field");
    assert_eq!(kind(r#"{"arcp":"1","id":7,"type":"session.bye","payload":{}}"#), "invalid_field");
    assert_eq!(kind(r#"{"arcp":"1","id":"m","type":"session.bye","payload":[]}"#), "invalid_field");
    assert_eq!(kind(r#"{"arcp":"1","id":"m","type":"session.bye"}"#), "ok", "absent payload is {{}}");
    assert_eq!(kind(r#"{"arcp":"1","id":"m","type":"job.submit"}"#), "invalid_payload");
    assert_eq!(kind(r#"{"arcp":"1","id":"m","type":"job.nope","payload":{}}"#), "unknown_type");
    assert_eq!(kind(r#"{"arcp":"1","id":"m","type":"hello","payload":{}}"#), "unknown_type");
    assert_eq!(kind(r#"{"arcp":"1","id":"m","type":"session.bye","payload":{},"trace_id":"xyz"}"#), "invalid_field");
    assert_eq!(kind(r#"{"arcp":"1","id":"m","id":"n","type":"session.bye","payload":{}}"#), "invalid_field");
}

#[test]
fn unknown_top_level_fields_and_nulls_are_ignored() {
    let env =
        dec(r#"{"arcp":"1","id":"m","type":"session.bye","payload":{},"x":{"deep":[1,2]},"trace_id":null}"#).unwrap();
    assert_eq!(env.trace_id, None);
    assert_eq!(env.arcp, ProtocolVersion::V1);
}

#[test]
fn failures_carry_what_could_be_read() {
    let f = dec(r#"{"arcp":"1.1","id":"msg_9","type":"job.submit","session_id":"sess_1","payload":{"input":1}}"#)
        .unwrap_err();
    assert_eq!(f.error.kind(), "invalid_payload");
    assert_eq!(f.context.id.as_ref().map(MessageId::as_str), Some("msg_9"));
    assert_eq!(f.context.type_name.as_deref(), Some("job.submit"));
    assert_eq!(f.context.session_id.as_ref().map(SessionId::as_str), Some("sess_1"));
    assert_eq!(f.to_payload().code, crate::ErrorCode::INVALID_REQUEST);
}

#[test]
fn sequenced_messages_need_job_and_seq() {
    let base = r#""payload":{"kind":"thought","ts":"2026-11-23T08:10:31Z","body":{"text":"x"}}"#;
    assert_eq!(kind(&format!(r#"{{"arcp":"1","id":"m","type":"job.event","job_id":"j",{base}}}"#)), "missing_field");
    assert_eq!(kind(&format!(r#"{{"arcp":"1","id":"m","type":"job.event","event_seq":1,{base}}}"#)), "missing_field");
    assert_eq!(kind(&format!(r#"{{"arcp":"1","id":"m","type":"job.event","event_seq":1,"job_id":"j",{base}}}"#)), "ok");
    assert_eq!(kind(r#"{"arcp":"1","id":"m","type":"job.cancel","payload":{}}"#), "missing_field");
}

#[test]
fn vendor_messages_decode_raw() {
    let env =
        dec(r#"{"arcp":"1","id":"m","type":"x-vendor.acme.poke","payload":{"a":1},"extensions":{"optional":true}}"#)
            .unwrap();
    assert!(env.is_optional());
    assert!(matches!(env.message, Message::Vendor(_)));
    assert_eq!(
        kind(r#"{"arcp":"1","id":"m","type":"session.bye","payload":{},"extensions":{"bogus":1}}"#),
        "invalid_field"
    );
    assert_eq!(
        kind(r#"{"arcp":"1","id":"m","type":"session.bye","payload":{},"extensions":{"optional":"yes"}}"#),
        "invalid_field"
    );
}

#[test]
fn oversized_frames_are_refused_unparsed() {
    let opts = DecodeOptions { max_frame_bytes: 16 };
    let f = decode(HELLO.as_bytes(), &opts).unwrap_err();
    assert_eq!(f.error, Error::FrameTooLarge { size: HELLO.len(), max: 16 });
}

#[test]
fn sixty_four_mib_frame_is_refused() {
    let big = vec![b' '; 64 * 1024 * 1024];
    let f = decode(&big, &DecodeOptions::default()).unwrap_err();
    assert_eq!(f.error.kind(), "frame_too_large");
}

#[test]
fn deep_nesting_is_refused_without_overflow() {
    for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
        let depth = 100_000;
        let mut s = String::from(r#"{"arcp":"1","id":"m","type":"job.submit","payload":{"agent":"echo","input":"#);
        s.push_str(&open.repeat(depth));
        s.push_str(&close.repeat(depth));
        s.push_str("}}");
        assert_eq!(kind(&s), "too_deep", "{open}");
        // Nested inside an ignored top-level field as well.
        let mut t = String::from(r#"{"arcp":"1","id":"m","type":"session.bye","payload":{},"junk":"#);
        t.push_str(&open.repeat(depth));
        t.push_str(&close.repeat(depth));
        t.push('}');
        assert_eq!(kind(&t), "too_deep", "ignored {open}");
    }
}

#[test]
fn invalid_utf8_is_typed() {
    let mut bytes = HELLO.as_bytes().to_vec();
    bytes[40] = 0xff;
    let f = decode(&bytes, &DecodeOptions::default()).unwrap_err();
    assert_eq!(f.error, Error::InvalidUtf8 { offset: 40 });
    assert_eq!(kind(r#"{"arcp":"1","id":"\ud800","type":"session.bye","payload":{}}"#), "invalid_field");
    assert_eq!(kind("{\"arcp\":\"1\",\"id\":\"a\u{0}\"}"), "invalid_json");
}

#[test]
fn envelope_and_payload_job_ids_must_agree() {
    let frame = |outer: &str| {
        format!(
            r#"{{"arcp":"1.1","id":"m","type":"job.unsubscribe","job_id":"{outer}","payload":{{"job_id":"job_A"}}}}"#
        )
    };
    assert_eq!(kind(&frame("job_A")), "ok");
    assert_eq!(kind(&frame("job_B")), "invalid_field");
}
