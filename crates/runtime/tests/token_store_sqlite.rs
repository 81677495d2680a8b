//! The channel token store over SQLite (`runtime::stores::sqlite_tokens`): the whole channel
//! conformance suite on the in-process port over it, a restart (drop the store, reopen the
//! file, continue), and racing claims from separate handles on one file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;

use arcp_core::{ManualClock, OsEntropy};
use channel_core::{
    Channel, ChannelConfig, ContinuationToken, Refusal, SessionId, StoreError, TokenStore, TurnLog, TurnSummary,
};
use conformance::Outcome;
use conformance::channel::{
    ChannelTarget, ChannelTransport, FixtureRunner, all_channel_cases, fixture_body, render_channel_text, run_channel,
};
use runtime::stores::sqlite_tokens::{SqliteTokenOptions, SqliteTokenStore};
use serde_json::json;

const START: u64 = 1_700_000_000_000;

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("arcp-tokens-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("data").join("arcp.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn applies_to_port(id: &str) -> bool {
    all_channel_cases().iter().any(|c| c.id == id && c.transports.contains(&ChannelTransport::Port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_case_passes_on_the_port_over_sqlite() {
    let dir = TempDir::new();
    let clock = Arc::new(ManualClock::new(START));
    let config = ChannelConfig::default();
    // Two ports on one database: the second through its own connection.
    let a = Channel::new(
        Arc::new(SqliteTokenStore::open(dir.db()).await.unwrap()),
        clock.clone(),
        Arc::new(OsEntropy),
        config,
    );
    let b = Channel::new(
        Arc::new(SqliteTokenStore::open(dir.db()).await.unwrap()),
        clock.clone(),
        Arc::new(OsEntropy),
        config,
    );
    let target = ChannelTarget::port(a, Arc::new(FixtureRunner), "alice").with_clock(clock).with_second_port(b);
    let report = run_channel(&target, None).await;
    let text = render_channel_text(&report);
    println!("{text}");
    assert!(report.passed(), "{text}");
    assert_eq!(report.results.len(), all_channel_cases().len());
    let mut passed = 0;
    for (case, o) in &report.results {
        match o {
            Outcome::Pass => {
                assert!(applies_to_port(case.id), "{} does not apply to the port but passed", case.id);
                passed += 1;
            }
            Outcome::Skip(why) => {
                assert!(!applies_to_port(case.id), "{} applies to the port but skipped: {why}", case.id)
            }
            Outcome::Fail(msg) => panic!("{} failed: {msg}", case.id),
        }
    }
    assert!(passed > 0);
}

fn body() -> serde_json::Value {
    fixture_body("ok", json!("hi"))
}

fn token(reply: &channel_core::TurnReply) -> String {
    reply.continuation_token.as_ref().unwrap().expose().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_survives_reopening_the_file() {
    let dir = TempDir::new();
    let clock = Arc::new(ManualClock::new(START));
    let config = ChannelConfig::default();
    let port = |store: SqliteTokenStore| Channel::new(Arc::new(store), clock.clone(), Arc::new(OsEntropy), config);

    let (session, first) = {
        let channel = port(SqliteTokenStore::open(dir.db()).await.unwrap());
        let reply = channel.start("alice", body(), &FixtureRunner, &mut Vec::new()).await.unwrap();
        (reply.session_id.clone(), token(&reply))
        // The store (its connection) is dropped here.
    };

    let channel = port(SqliteTokenStore::open(dir.db()).await.unwrap());
    let info = channel.info(&session, "alice").await.unwrap().unwrap();
    assert_eq!((info.turns, info.in_flight), (1, false));
    assert_eq!(channel.current_token(&session).await.unwrap(), None, "only digests are stored");
    // Another principal still does not see it.
    assert!(channel.info(&session, "mallory").await.unwrap().is_none());
    let refused =
        channel.continue_turn(&session, "mallory", Some(&first), body(), &FixtureRunner, &mut Vec::new()).await;
    assert_eq!(refused.unwrap_err().refusal(), Some(Refusal::UnknownSession));

    // Continuing with the token works and rotates it.
    let reply =
        channel.continue_turn(&session, "alice", Some(&first), body(), &FixtureRunner, &mut Vec::new()).await.unwrap();
    let second = token(&reply);
    assert_ne!(first, second);

    drop(channel);
    let channel = port(SqliteTokenStore::open(dir.db()).await.unwrap());
    // The old token is stale, the new one works.
    let stale = channel.continue_turn(&session, "alice", Some(&first), body(), &FixtureRunner, &mut Vec::new()).await;
    assert_eq!(stale.unwrap_err().refusal(), Some(Refusal::StaleToken));
    // The last turn can be recovered with the token it consumed (reissue), once.
    let recovered = channel.recover(&session, "alice", Some(&first)).await.unwrap().expect("a recorded turn");
    let reissued = recovered.reply.continuation_token.clone().unwrap();
    assert_ne!(reissued.expose(), second);
    let stale = channel.continue_turn(&session, "alice", Some(&second), body(), &FixtureRunner, &mut Vec::new()).await;
    assert_eq!(stale.unwrap_err().refusal(), Some(Refusal::StaleToken), "the reissue replaced the current token");
    let reply = channel
        .continue_turn(&session, "alice", Some(reissued.expose()), body(), &FixtureRunner, &mut Vec::new())
        .await
        .unwrap();
    assert!(reply.continuation_token.is_some());
    assert_eq!(channel.info(&session, "alice").await.unwrap().unwrap().turns, 3);

    // Nothing in the file is a token.
    drop(channel);
    let raw = std::fs::read(dir.db()).unwrap();
    let wal = std::fs::read(dir.db().with_extension("db-wal")).unwrap_or_default();
    for t in [&first, &second, reissued.expose(), &token(&reply)] {
        for bytes in [&raw, &wal] {
            assert!(!bytes.windows(t.len()).any(|w| w == t.as_bytes()), "a token is stored in clear");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_claims_from_two_handles_on_one_file_have_one_winner() {
    let dir = TempDir::new();
    let a = SqliteTokenStore::open(dir.db()).await.unwrap();
    let b = SqliteTokenStore::open(dir.db()).await.unwrap();
    let now = START;
    for round in 0..20 {
        let session = SessionId::presented(format!("chs_race_{round}"));
        let t = ContinuationToken::presented(Some(&format!("ct_race_{round}"))).unwrap();
        let created = a.create(&session, "alice", &t, now, now + 1_000).await.unwrap();
        a.release(created, now + 60_000, None).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (session, t) = (session.clone(), t.clone());
            tasks.push(tokio::spawn(async move { store.claim(&session, "alice", Some(&t), now, now + 30_000).await }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(claim) => winners.push(claim),
                Err(StoreError::Refused(Refusal::InFlight)) => {}
                Err(e) => panic!("round {round}: unexpected {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one claim wins");
        // The winner's claim is fenced: a forged nonce cannot commit, the real one can.
        let claim = winners.pop().unwrap();
        let forged = channel_core::Claim::new(session.clone(), claim.nonce() ^ 1);
        let next = ContinuationToken::presented(Some(&format!("ct_next_{round}"))).unwrap();
        let turn = TurnSummary { status: "finished", log: TurnLog::new(&[], false) };
        assert_eq!(b.commit(forged, &next, now + 60_000, &turn).await, Err(StoreError::ClaimLost));
        b.commit(claim, &next, now + 60_000, &turn).await.unwrap();
        assert_eq!(a.validate(&session, "alice", Some(&t), now).await, Err(StoreError::Refused(Refusal::StaleToken)));
        a.validate(&session, "alice", Some(&next), now).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_expire_and_fence_like_the_memory_store() {
    let dir = TempDir::new();
    let store = SqliteTokenStore::open_with(dir.db(), SqliteTokenOptions { max_sessions: 2, ..Default::default() })
        .await
        .unwrap();
    let s = SessionId::presented("chs_fence");
    let t = ContinuationToken::presented(Some("ct_fence")).unwrap();
    let first = store.create(&s, "alice", &t, START, START + 100).await.unwrap();
    assert_eq!(store.create(&s, "bob", &t, START, START + 100).await, Err(StoreError::Duplicate));
    assert!(store.in_flight(&s, START + 99).await.unwrap());
    assert_eq!(
        store.claim(&s, "alice", Some(&t), START + 99, START + 500).await,
        Err(StoreError::Refused(Refusal::InFlight))
    );
    assert_eq!(
        store.claim(&s, "alice", None, START, START + 500).await,
        Err(StoreError::Refused(Refusal::MissingToken))
    );
    // The first claim (and the session: its idle expiry was the claim's) lapses at START+100.
    assert_eq!(
        store.claim(&s, "alice", Some(&t), START + 100, START + 500).await,
        Err(StoreError::Refused(Refusal::UnknownSession))
    );
    assert!(!store.touch(&s, START + 10_000, START + 100).await.unwrap());
    // Touched while live, the session outlives its first claim, which a new claim takes over.
    let s2 = SessionId::presented("chs_fence_2");
    let first2 = store.create(&s2, "alice", &t, START, START + 100).await.unwrap();
    assert!(store.touch(&s2, START + 10_000, START + 50).await.unwrap());
    let second = store.claim(&s2, "alice", Some(&t), START + 100, START + 500).await.unwrap();
    let turn = TurnSummary { status: "finished", log: TurnLog::new(&[], false) };
    let next = ContinuationToken::presented(Some("ct_next")).unwrap();
    assert_eq!(store.commit(first2, &next, START + 10_000, &turn).await, Err(StoreError::ClaimLost));
    store.release(second, START + 10_000, Some(&turn)).await.unwrap();
    store.validate(&s2, "alice", Some(&t), START + 200).await.unwrap();
    // Full: the store holds two sessions (one of them expired, not yet purged).
    let s3 = SessionId::presented("chs_fence_3");
    assert_eq!(store.create(&s3, "alice", &t, START + 200, START + 300).await, Err(StoreError::Full { max: 2 }));
    assert_eq!(store.purge_expired(START + 200).await.unwrap(), 1);
    store.create(&s3, "alice", &t, START + 200, START + 300).await.unwrap();
    assert_eq!(store.commit(first, &next, START, &turn).await, Err(StoreError::ClaimLost), "purged with its session");
}
