//! Runs the channel conformance suite against `channel-rest` (serving the fixture runner on
//! 127.0.0.1) over plain JSON, SSE and WebSocket: once with a bearer key (an
//! authenticator), once without.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use arcp_core::{OsEntropy, SystemClock};
use async_trait::async_trait;
use channel_core::{Channel, ChannelConfig, MemoryTokenStore};
use channel_rest::{Authenticator, ChannelService, RestConfig, serve};
use conformance::Outcome;
use conformance::channel::{ChannelTarget, FixtureRunner, all_channel_cases, render_channel_text, run_channel};

const KEY: &str = "conf-channel-key";

struct StaticKey;

#[async_trait]
impl Authenticator for StaticKey {
    async fn authenticate(&self, headers: &http::HeaderMap) -> Option<String> {
        let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        (v == format!("Bearer {KEY}")).then(|| "alice".to_owned())
    }
}

/// Serves channel-rest on 127.0.0.1:0; returns its base URL and the shutdown trigger.
async fn server(auth: bool) -> (String, tokio::sync::oneshot::Sender<()>) {
    let channel = Channel::new(
        Arc::new(MemoryTokenStore::default()),
        Arc::new(SystemClock),
        Arc::new(OsEntropy),
        ChannelConfig::default(),
    );
    let mut service = ChannelService::new(channel, Arc::new(FixtureRunner), RestConfig::default());
    if auth {
        service = service.with_authenticator(Arc::new(StaticKey));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, service, async {
        let _ = stopped.await;
    }));
    (base, stop)
}

async fn suite(auth: bool) {
    let (base, stop) = server(auth).await;
    let bearer = auth.then(|| KEY.to_owned());
    let mut failures = Vec::new();
    for target in ChannelTarget::network(&base, bearer) {
        let report = run_channel(&target, None).await;
        let text = render_channel_text(&report);
        println!("{text}");
        let (passed, failed, _) = report.counts();
        assert!(passed > 0, "{text}");
        assert_eq!(report.results.len(), all_channel_cases().len());
        if failed > 0 {
            failures.push(text);
        }
        let transport = target.transport();
        for (case, outcome) in &report.results {
            let applies = all_channel_cases().iter().any(|c| c.id == case.id && c.transports.contains(&transport));
            if let Outcome::Pass = outcome {
                assert!(applies, "{} passed on {transport:?}, where it does not apply", case.id);
            }
        }
    }
    let _ = stop.send(());
    assert!(failures.is_empty(), "channel-rest failed channel conformance:\n{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_rest_passes_with_a_bearer_key() {
    suite(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_rest_passes_without_authentication() {
    suite(false).await;
}
