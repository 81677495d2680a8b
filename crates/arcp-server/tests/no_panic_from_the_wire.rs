//! Fuzzing the frame handler: arbitrary sequences of frames — well-formed envelopes of every
//! type, mutated ones and raw garbage, before and after a valid hello — never panic the
//! connection task or any job it starts. (A panic hook counts panics in any thread.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arcp_core::Envelope;
use proptest::prelude::*;
use serde_json::json;
use support::*;

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn frame() -> impl Strategy<Value = String> {
    prop_oneof![
        // Without a session_id, so the connection stays open and later frames get handled.
        4 => any::<Envelope>().prop_map(|mut e| {
            e.session_id = None;
            e.to_json()
        }),
        1 => any::<Envelope>().prop_map(|e| e.to_json()),
        2 => (any::<Envelope>(), any::<proptest::sample::Index>(), ".{0,8}").prop_map(|(e, cut, junk)| {
            let s = e.to_json();
            let at = cut.index(s.len().max(1));
            let mut prefix = s.get(..at).unwrap_or_default().to_owned();
            prefix.push_str(&junk);
            prefix
        }),
        1 => ".{0,64}",
        1 => Just(r#"{"arcp":"1.1","id":"msg_x","type":"job.submit","payload":{"agent":"echo","input":{"a":1}}}"#.to_owned()),
        1 => Just(r#"{"arcp":"1.1","id":"msg_y","type":"job.submit","payload":{"agent":"sleep","input":{"ms":5},"idempotency_key":"k"}}"#.to_owned()),
        1 => Just(r#"{"arcp":"1.1","id":"msg_z","type":"job.cancel","job_id":"job_x","payload":{}}"#.to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn no_frame_sequence_panics_the_runtime(with_hello in any::<bool>(), frames in proptest::collection::vec(frame(), 0..24)) {
        std::panic::set_hook(Box::new(|info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            eprintln!("PANIC: {info}");
        }));
        let before = PANICS.load(Ordering::SeqCst);
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let rt = support::runtime();
            let (client, server) = arcp_server::transport::memory::pair();
            let handle = rt.spawn(server);
            if with_hello {
                let hello = json!({"arcp": "1.1", "id": "msg_h", "type": "session.hello", "payload": {
                    "client": {"name": "fuzz", "version": "0"}, "auth": {"scheme": "bearer", "token": TOKEN},
                    "capabilities": {"features": ALL_FEATURES}}});
                let _ = client.send(hello.to_string());
            }
            for f in &frames {
                let _ = client.send(f.clone());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            client.close();
            let joined = tokio::time::timeout(Duration::from_secs(10), handle).await;
            assert!(matches!(joined, Ok(Ok(()))), "the connection task ended cleanly: {joined:?}");
            // Give started jobs a moment to run into whatever they run into.
            tokio::time::sleep(Duration::from_millis(20)).await;
        });
        prop_assert_eq!(PANICS.load(Ordering::SeqCst), before, "no panic anywhere");
    }
}
