//! Runs the channel conformance suite against the in-process port (memory store, manual
//! clock, the fixture runner, a second port over the same store), and checks that
//! `CONFORMANCE.md` lists every channel case.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use arcp_core::{ManualClock, OsEntropy};
use channel_core::{Channel, ChannelConfig, MemoryTokenStore};
use conformance::channel::{
    ChannelTarget, ChannelTransport, FixtureRunner, all_channel_cases, render_channel_text, run_channel,
};
use conformance::{Outcome, Report};

fn port(with_extras: bool) -> ChannelTarget {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = Arc::new(MemoryTokenStore::default());
    let config = ChannelConfig::default();
    let a = Channel::new(store.clone(), clock.clone(), Arc::new(OsEntropy), config);
    let target = ChannelTarget::port(a, Arc::new(FixtureRunner), "alice");
    if !with_extras {
        return target;
    }
    let b = Channel::new(store, clock.clone(), Arc::new(OsEntropy), config);
    target.with_clock(clock).with_second_port(b)
}

fn applies_to_port(id: &str) -> bool {
    all_channel_cases().iter().any(|c| c.id == id && c.transports.contains(&ChannelTransport::Port))
}

fn outcome<'a>(report: &'a Report, id: &str) -> &'a Outcome {
    &report.results.iter().find(|(c, _)| c.id == id).unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_case_passes_on_the_port() {
    let report = run_channel(&port(true), None).await;
    let text = render_channel_text(&report);
    println!("{text}");
    let (passed, failed, _) = report.counts();
    assert!(report.passed(), "{text}");
    assert_eq!(failed, 0, "{text}");
    assert!(passed > 0, "{text}");
    assert_eq!(report.results.len(), all_channel_cases().len());
    for (case, o) in &report.results {
        match o {
            Outcome::Skip(why) => {
                assert!(!applies_to_port(case.id), "{} applies to the port but skipped: {why}", case.id)
            }
            Outcome::Pass => assert!(applies_to_port(case.id), "{} does not apply to the port but passed", case.id),
            Outcome::Fail(msg) => panic!("{} failed: {msg}", case.id),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cases_needing_a_clock_or_second_port_skip_without_them() {
    let report = run_channel(&port(false), Some("rule")).await;
    assert!(report.passed(), "{}", render_channel_text(&report));
    for id in ["rule5_two_ports_on_one_store_share_sessions", "rule6_idle_sessions_expire"] {
        assert!(matches!(outcome(&report, id), Outcome::Skip(_)), "{id}: {:?}", outcome(&report, id));
    }
}

#[tokio::test]
async fn an_unsupported_base_url_fails_every_case() {
    let target = ChannelTarget::Http { base_url: "https://example.invalid".into(), bearer: None, sse: false };
    let report = run_channel(&target, Some("rule3_start")).await;
    assert!(!report.passed());
    assert!(matches!(&report.results[0].1, Outcome::Fail(m) if m.contains("http")), "{:?}", report.results);
}

#[test]
fn case_ids_are_unique_and_name_their_rule() {
    let cases = all_channel_cases();
    let mut ids: Vec<_> = cases.iter().map(|c| c.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), cases.len(), "duplicate channel case ids");
    for rule in 1..=6 {
        assert!(
            cases.iter().any(|c| c.section == rule.to_string() && c.id.starts_with(&format!("rule{rule}_"))),
            "rule {rule} of channel.md has no case"
        );
    }
}

#[test]
fn conformance_md_lists_every_channel_case() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../CONFORMANCE.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(committed.contains("## Channel conformance"), "run `cargo xtask conformance --write-md`");
    for case in all_channel_cases() {
        assert!(
            committed.contains(&format!("`{}`", case.id)),
            "CONFORMANCE.md lacks {}; run `cargo xtask conformance --write-md`",
            case.id
        );
    }
}

/// A runner that ignores `force` and always finishes: the suite must notice.
struct AlwaysFinishes;

#[async_trait::async_trait]
impl channel_core::TurnRunner for AlwaysFinishes {
    async fn run(
        &self,
        _turn: &channel_core::Turn,
        _body: serde_json::Value,
        emit: &mut dyn channel_core::EventSink,
    ) -> Result<channel_core::TurnOutcome, channel_core::RunnerError> {
        emit.emit(channel_core::ChannelEvent::Delta { text: "x".into() });
        Ok(channel_core::TurnOutcome::Finished { output: None })
    }
}

/// A store with a planted bug.
struct Buggy {
    inner: MemoryTokenStore,
    bug: Bug,
}

#[derive(Clone, Copy, PartialEq)]
enum Bug {
    /// `missing-token` is reported as `stale-token`.
    WrongReason,
    /// A committed turn does not replace the token.
    NoRotation,
    /// The claim ignores a running turn.
    NoInFlight,
}

#[async_trait::async_trait]
impl channel_core::TokenStore for Buggy {
    async fn create(
        &self,
        s: &channel_core::SessionId,
        o: &str,
        t: &channel_core::ContinuationToken,
        now: u64,
        until: u64,
    ) -> Result<channel_core::Claim, channel_core::StoreError> {
        self.inner.create(s, o, t, now, until).await
    }
    async fn claim(
        &self,
        s: &channel_core::SessionId,
        o: &str,
        p: Option<&channel_core::ContinuationToken>,
        now: u64,
        until: u64,
    ) -> Result<channel_core::Claim, channel_core::StoreError> {
        use channel_core::{Refusal, StoreError};
        match self.inner.claim(s, o, p, now, until).await {
            Err(StoreError::Refused(Refusal::MissingToken)) if self.bug == Bug::WrongReason => {
                Err(StoreError::Refused(Refusal::StaleToken))
            }
            Err(StoreError::Refused(Refusal::InFlight)) if self.bug == Bug::NoInFlight => {
                Ok(channel_core::Claim::new(s.clone(), u64::MAX))
            }
            other => other,
        }
    }
    async fn validate(
        &self,
        s: &channel_core::SessionId,
        o: &str,
        p: Option<&channel_core::ContinuationToken>,
        now: u64,
    ) -> Result<(), channel_core::StoreError> {
        self.inner.validate(s, o, p, now).await
    }
    async fn commit(
        &self,
        c: channel_core::Claim,
        t: &channel_core::ContinuationToken,
        e: u64,
        turn: &channel_core::TurnSummary,
    ) -> Result<(), channel_core::StoreError> {
        if c.nonce() == u64::MAX {
            return Ok(());
        }
        if self.bug == Bug::NoRotation {
            self.inner.release(c, e, Some(turn)).await
        } else {
            self.inner.commit(c, t, e, turn).await
        }
    }
    async fn release(
        &self,
        c: channel_core::Claim,
        e: u64,
        turn: Option<&channel_core::TurnSummary>,
    ) -> Result<(), channel_core::StoreError> {
        if c.nonce() == u64::MAX {
            return Ok(());
        }
        self.inner.release(c, e, turn).await
    }
    async fn recover(
        &self,
        s: &channel_core::SessionId,
        o: &str,
        p: Option<&channel_core::ContinuationToken>,
        r: &channel_core::ContinuationToken,
        now: u64,
    ) -> Result<channel_core::Recovered, channel_core::StoreError> {
        self.inner.recover(s, o, p, r, now).await
    }
    async fn info(
        &self,
        s: &channel_core::SessionId,
        o: &str,
        now: u64,
    ) -> Result<Option<channel_core::SessionInfo>, channel_core::StoreError> {
        self.inner.info(s, o, now).await
    }
    async fn current_token(
        &self,
        s: &channel_core::SessionId,
        now: u64,
    ) -> Result<Option<channel_core::ContinuationToken>, channel_core::StoreError> {
        self.inner.current_token(s, now).await
    }
    async fn in_flight(&self, s: &channel_core::SessionId, now: u64) -> Result<bool, channel_core::StoreError> {
        self.inner.in_flight(s, now).await
    }
    async fn touch(&self, s: &channel_core::SessionId, e: u64, now: u64) -> Result<bool, channel_core::StoreError> {
        self.inner.touch(s, e, now).await
    }
    async fn purge_expired(&self, now: u64) -> Result<usize, channel_core::StoreError> {
        self.inner.purge_expired(now).await
    }
}

fn failed(report: &Report) -> Vec<&'static str> {
    report.results.iter().filter(|(_, o)| matches!(o, Outcome::Fail(_))).map(|(c, _)| c.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_planted_bugs() {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let channel =
        Channel::new(Arc::new(MemoryTokenStore::default()), clock, Arc::new(OsEntropy), ChannelConfig::default());
    let report = run_channel(&ChannelTarget::port(channel, Arc::new(AlwaysFinishes), "a"), Some("rule3")).await;
    let f = failed(&report);
    for id in ["rule3_parked_rotates", "rule3_contended_keeps_token", "rule3_runner_failure_keeps_token"] {
        assert!(f.contains(&id), "a runner ignoring `force` must fail {id}: {f:?}");
    }
    for (bug, must_fail) in [
        (Bug::WrongReason, "rule1_missing_token_is_refused"),
        (Bug::NoRotation, "rule1_consumed_token_is_dead"),
        (Bug::NoInFlight, "rule2_single_use_is_atomic_2"),
    ] {
        let store = Arc::new(Buggy { inner: MemoryTokenStore::default(), bug });
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let channel = Channel::new(store, clock, Arc::new(OsEntropy), ChannelConfig::default());
        let report = run_channel(&ChannelTarget::port(channel, Arc::new(FixtureRunner), "a"), Some("rule")).await;
        let f = failed(&report);
        assert!(f.contains(&must_fail), "a store with {must_fail:?} planted must fail it: {f:?}");
    }
}
