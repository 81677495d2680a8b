//! Shared test fixtures: a scripted turn runner and a channel over a memory store.
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arcp_core::{ManualClock, SeededEntropy};
use async_trait::async_trait;
use channel_core::{
    Channel, ChannelConfig, ChannelEvent, EventSink, MemoryTokenStore, RunnerError, Turn, TurnOutcome, TurnRunner,
};
use parking_lot::Mutex;
use serde_json::{Value, json};

/// What the next turn does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Force {
    Finished,
    Parked,
    Contended,
    Aborted,
    Fail,
}

/// A runner whose outcomes are scripted (default: finished, echoing the body).
#[derive(Default)]
pub struct Scripted {
    pub script: Mutex<VecDeque<Force>>,
    pub runs: AtomicUsize,
    pub delay: Option<Duration>,
}

impl Scripted {
    pub fn force(&self, f: Force) {
        self.script.lock().push_back(f);
    }

    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl TurnRunner for Scripted {
    async fn run(&self, _turn: &Turn, body: Value, emit: &mut dyn EventSink) -> Result<TurnOutcome, RunnerError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        emit.emit(ChannelEvent::Delta { text: "thinking".into() });
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        let force = self.script.lock().pop_front().unwrap_or(Force::Finished);
        match force {
            Force::Finished => Ok(TurnOutcome::Finished { output: Some(body) }),
            Force::Parked => Ok(TurnOutcome::Parked { wait: json!("input") }),
            Force::Contended => Ok(TurnOutcome::Contended { current: json!("elsewhere") }),
            Force::Aborted => Ok(TurnOutcome::Aborted),
            Force::Fail => Err(RunnerError::new("boom")),
        }
    }
}

pub struct Fixture {
    pub channel: Channel,
    pub clock: Arc<ManualClock>,
    pub store: Arc<MemoryTokenStore>,
}

impl Fixture {
    pub fn store_dyn(&self) -> &dyn channel_core::TokenStore {
        self.store.as_ref()
    }

    pub fn now(&self) -> u64 {
        use arcp_core::Clock;
        self.clock.now_millis()
    }
}

pub const TTL_MS: u64 = 60_000;

/// The principal every fixture conversation belongs to.
pub const OWNER: &str = "alice";

pub fn fixture_with(max_sessions: usize) -> Fixture {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = Arc::new(MemoryTokenStore::new(max_sessions));
    let channel = Channel::new(
        store.clone(),
        clock.clone(),
        Arc::new(SeededEntropy::new(42)),
        ChannelConfig { idle_ttl: Duration::from_millis(TTL_MS), ..ChannelConfig::default() },
    );
    Fixture { channel, clock, store }
}

pub fn fixture() -> Fixture {
    fixture_with(1_000)
}
