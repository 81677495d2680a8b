//! Property tests over the whole wire format: typed → JSON → typed is the identity for every
//! message type, and no byte string or JSON value can make the decoder panic or return
//! anything but a typed `INVALID_REQUEST` error.

use proptest::prelude::*;
use serde_json::Value;

use crate::message::arb::json_value;
use crate::{DecodeOptions, Envelope, ErrorCode, MessageType, decode};

fn opts() -> DecodeOptions {
    DecodeOptions::default()
}

fn assert_typed(result: &Result<Envelope, crate::DecodeFailure>) {
    if let Err(f) = result {
        assert_eq!(f.error.code(), ErrorCode::INVALID_REQUEST, "{}", f.error);
        assert!(!f.error.to_string().is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_envelope_round_trips(env in any::<Envelope>()) {
        let json = env.to_json();
        let back = decode(json.as_bytes(), &opts());
        prop_assert!(back.is_ok(), "{json}\n{:?}", back.err().map(|f| f.error));
        prop_assert_eq!(back.ok(), Some(env.clone()));
        // The serde path agrees with the decoder.
        let via_serde: Envelope = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(via_serde, env);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let r = decode(&bytes, &opts());
        assert_typed(&r);
    }

    #[test]
    fn arbitrary_json_never_panics(v in json_value()) {
        let r = decode(v.to_string().as_bytes(), &opts());
        assert_typed(&r);
    }

    #[test]
    fn json_shaped_noise_never_panics(s in "[\\[\\]{}\":,0-9a-z\\\\ ]{0,200}") {
        let r = decode(s.as_bytes(), &opts());
        assert_typed(&r);
    }

    #[test]
    fn any_field_of_any_message_with_any_value_gives_ok_or_a_typed_error(
        env in any::<Envelope>(),
        in_payload in any::<bool>(),
        pick in any::<proptest::sample::Index>(),
        replacement in json_value(),
    ) {
        let mut v: Value = serde_json::to_value(&env).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let target = if in_payload { &mut v["payload"] } else { &mut v };
        if let Some(obj) = target.as_object_mut()
            && !obj.is_empty()
        {
            let key = obj.keys().nth(pick.index(obj.len())).cloned().unwrap_or_default();
            obj.insert(key, replacement);
        }
        let r = decode(v.to_string().as_bytes(), &opts());
        assert_typed(&r);
        if let Ok(decoded) = r {
            // Whatever was accepted re-encodes and decodes to the same thing.
            let again = decode(decoded.to_json().as_bytes(), &opts()).map_err(|f| TestCaseError::fail(f.error.to_string()))?;
            prop_assert_eq!(again, decoded);
        }
    }

    #[test]
    fn truncated_frames_never_panic(env in any::<Envelope>(), cut in any::<proptest::sample::Index>()) {
        let json = env.to_json();
        let bytes = &json.as_bytes()[..cut.index(json.len())];
        let r = decode(bytes, &opts());
        assert_typed(&r);
    }
}

/// Every field of every message type, replaced by a value of every JSON type: a typed result.
#[test]
fn every_wrong_type_field_is_a_typed_error() {
    let samples = [
        Value::Null,
        Value::Bool(true),
        serde_json::json!(-1),
        serde_json::json!(1.5),
        serde_json::json!("x"),
        serde_json::json!([1]),
        serde_json::json!({"a": 1}),
    ];
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..2_000 {
        let env = any::<Envelope>().new_tree(&mut runner).map(|t| t.current()).unwrap_or_else(|_| unreachable!());
        let Some(ty) = env.message.message_type() else { continue };
        seen.insert(ty.as_str());
        let v = serde_json::to_value(&env).unwrap();
        let payload_keys: Vec<String> =
            v["payload"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        let top_keys: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        for sample in &samples {
            for key in &top_keys {
                let mut w = v.clone();
                w[key.as_str()] = sample.clone();
                assert_typed(&decode(w.to_string().as_bytes(), &opts()));
            }
            for key in &payload_keys {
                let mut w = v.clone();
                w["payload"][key.as_str()] = sample.clone();
                assert_typed(&decode(w.to_string().as_bytes(), &opts()));
            }
        }
    }
    assert_eq!(seen.len(), MessageType::ALL.len(), "every message type was exercised");
}
