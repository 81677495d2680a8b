//! The channel token store over PostgreSQL (`runtime::stores::postgres_tokens`): the whole
//! channel conformance suite on the in-process port with two ports over two `PgTokenStore`s
//! on one schema ("two nodes"), 100 racing claims of one token across two stores, a
//! conversation surviving a restart with only digests stored, and the claim fencing and
//! expiry rules.
//!
//! Needs `ARCP_TEST_DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/postgres`); each
//! test works in a fresh schema `t_<random hex>` and drops it at the end. Without the
//! variable every test prints `SKIPPED: …` and passes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arcp_core::{ManualClock, OsEntropy};
use arcp_server::store::postgres::{PgOptions, PgStore};
use channel_core::{
    Channel, ChannelConfig, ContinuationToken, Refusal, SessionId, StoreError, TokenStore, TurnLog, TurnSummary,
};
use conformance::Outcome;
use conformance::channel::{
    ChannelTarget, ChannelTransport, FixtureRunner, all_channel_cases, fixture_body, render_channel_text, run_channel,
};
use runtime::stores::postgres_tokens::{PgTokenOptions, PgTokenStore};
use serde_json::json;

const SKIPPED: &str = "SKIPPED: ARCP_TEST_DATABASE_URL is not set; PostgreSQL store tests did not run";

const START: u64 = 1_700_000_000_000;

/// A fresh schema in the test database, dropped (best effort) when this is dropped.
struct TestDb {
    url: String,
    schema: String,
}

impl TestDb {
    /// A fresh schema, or `None` (after saying so loudly) without `ARCP_TEST_DATABASE_URL`.
    async fn create() -> Option<TestDb> {
        let Some(url) = std::env::var("ARCP_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
            eprintln!("{SKIPPED}");
            println!("{SKIPPED}");
            return None;
        };
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let schema = format!("t_{:016x}{:08x}", h.finish(), std::process::id());
        let db = TestDb { url, schema };
        db.admin().await.batch_execute(&format!("CREATE SCHEMA \"{}\"", db.schema)).await.unwrap();
        Some(db)
    }

    async fn admin(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }

    /// A "node": its own `PgStore` (pool) on the schema.
    async fn node(&self) -> PgStore {
        PgStore::connect(&self.url, PgOptions::default().with_schema(&self.schema).with_pool_size(8)).await.unwrap()
    }

    async fn tokens(&self) -> PgTokenStore {
        PgTokenStore::from_store(&self.node().await).await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                if let Ok((client, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                    tokio::spawn(connection);
                    let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await;
                }
            });
        })
        .join();
    }
}

fn applies_to_port(id: &str) -> bool {
    all_channel_cases().iter().any(|c| c.id == id && c.transports.contains(&ChannelTransport::Port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_channel_case_passes_on_two_ports_over_two_postgres_stores() {
    let Some(db) = TestDb::create().await else { return };
    let clock = Arc::new(ManualClock::new(START));
    let config = ChannelConfig::default();
    let a = Channel::new(Arc::new(db.tokens().await), clock.clone(), Arc::new(OsEntropy), config);
    let b = Channel::new(Arc::new(db.tokens().await), clock.clone(), Arc::new(OsEntropy), config);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_claims_of_one_token_across_two_stores_have_one_winner() {
    let Some(db) = TestDb::create().await else { return };
    let (a, b) = (db.tokens().await, db.tokens().await);
    let now = START;
    for round in 0..5 {
        let session = SessionId::presented(format!("chs_race_{round}"));
        let t = ContinuationToken::presented(Some(&format!("ct_race_{round}"))).unwrap();
        let created = a.create(&session, "alice", &t, now, now + 1_000).await.unwrap();
        a.release(created, now + 60_000, None).await.unwrap();
        let tasks: Vec<_> = (0..100_u32)
            .map(|i| {
                let store = if i.is_multiple_of(2) { a.clone() } else { b.clone() };
                let (session, t) = (session.clone(), t.clone());
                tokio::spawn(async move { store.claim(&session, "alice", Some(&t), now, now + 30_000).await })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(claim) => winners.push(claim),
                Err(StoreError::Refused(Refusal::InFlight)) => {}
                Err(e) => panic!("round {round}: unexpected {e:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one of 100 claims wins");
        // The winner's claim is fenced: a forged nonce cannot commit, the real one can (on
        // the other node).
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

fn body() -> serde_json::Value {
    fixture_body("ok", json!("hi"))
}

fn token(reply: &channel_core::TurnReply) -> String {
    reply.continuation_token.as_ref().unwrap().expose().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_survives_a_restart_and_only_digests_are_stored() {
    let Some(db) = TestDb::create().await else { return };
    let clock = Arc::new(ManualClock::new(START));
    let config = ChannelConfig::default();
    let port = |store: PgTokenStore| Channel::new(Arc::new(store), clock.clone(), Arc::new(OsEntropy), config);

    let (session, first) = {
        let channel = port(db.tokens().await);
        let reply = channel.start("alice", body(), &FixtureRunner, &mut Vec::new()).await.unwrap();
        (reply.session_id.clone(), token(&reply))
        // The store (its pool) is dropped here.
    };

    let channel = port(db.tokens().await);
    let info = channel.info(&session, "alice").await.unwrap().unwrap();
    assert_eq!((info.turns, info.in_flight), (1, false));
    assert_eq!(channel.current_token(&session).await.unwrap(), None, "only digests are stored");
    assert!(channel.info(&session, "mallory").await.unwrap().is_none());
    let refused =
        channel.continue_turn(&session, "mallory", Some(&first), body(), &FixtureRunner, &mut Vec::new()).await;
    assert_eq!(refused.unwrap_err().refusal(), Some(Refusal::UnknownSession));

    let reply =
        channel.continue_turn(&session, "alice", Some(&first), body(), &FixtureRunner, &mut Vec::new()).await.unwrap();
    let second = token(&reply);
    assert_ne!(first, second);

    drop(channel);
    let channel = port(db.tokens().await);
    let stale = channel.continue_turn(&session, "alice", Some(&first), body(), &FixtureRunner, &mut Vec::new()).await;
    assert_eq!(stale.unwrap_err().refusal(), Some(Refusal::StaleToken));
    // The last turn can be recovered with the token it consumed (a reissue).
    let recovered = channel.recover(&session, "alice", Some(&first)).await.unwrap();
    let reissued = recovered.expect("the last turn is recorded").reply.continuation_token.clone().unwrap();
    assert_ne!(reissued.expose(), second);
    let stale = channel.continue_turn(&session, "alice", Some(&second), body(), &FixtureRunner, &mut Vec::new()).await;
    assert_eq!(stale.unwrap_err().refusal(), Some(Refusal::StaleToken), "the reissue replaced the current token");
    let reply = channel
        .continue_turn(&session, "alice", Some(reissued.expose()), body(), &FixtureRunner, &mut Vec::new())
        .await
        .unwrap();
    assert!(reply.continuation_token.is_some());
    assert_eq!(channel.info(&session, "alice").await.unwrap().unwrap().turns, 3);

    // Nothing in the table is a token.
    let rows = db
        .admin()
        .await
        .query(&format!("SELECT t::text FROM \"{}\".channel_sessions t", db.schema), &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let dump: String = rows[0].get(0);
    for t in [&first, &second, reissued.expose(), &token(&reply)] {
        assert!(!dump.contains(t), "a token is stored in clear");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_expire_and_fence_like_the_memory_store() {
    let Some(db) = TestDb::create().await else { return };
    let node = db.node().await;
    let store = PgTokenStore::new(node.pool().clone(), PgTokenOptions { max_sessions: 2 }).await.unwrap();
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
    assert_eq!(
        store.claim(&s, "bob", Some(&t), START, START + 500).await,
        Err(StoreError::Refused(Refusal::UnknownSession))
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
    let info = store.info(&s2, "alice", START + 200).await.unwrap().unwrap();
    assert_eq!((info.turns, info.in_flight, info.last_status.as_deref()), (1, false, Some("finished")));
    // Full: the store holds two sessions (one of them expired, not yet purged).
    let s3 = SessionId::presented("chs_fence_3");
    assert_eq!(store.create(&s3, "alice", &t, START + 200, START + 300).await, Err(StoreError::Full { max: 2 }));
    // An expired session's id may be created again (it is gone), even when full.
    let again = store.create(&s, "carol", &t, START + 200, START + 300).await.unwrap();
    store.release(again, START + 150, None).await.unwrap();
    assert_eq!(store.purge_expired(START + 200).await.unwrap(), 1);
    store.create(&s3, "alice", &t, START + 200, START + 300).await.unwrap();
    assert_eq!(store.commit(first, &next, START, &turn).await, Err(StoreError::ClaimLost), "purged with its session");
}

/// Recovery across two nodes: the consumed token reissues on either node; a claim held on one
/// node makes it `in-flight` on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_and_in_flight_are_seen_across_nodes() {
    let Some(db) = TestDb::create().await else { return };
    let (a, b) = (db.tokens().await, db.tokens().await);
    let s = SessionId::presented("chs_recover");
    let t0 = ContinuationToken::presented(Some("ct_0")).unwrap();
    let t1 = ContinuationToken::presented(Some("ct_1")).unwrap();
    let r1 = ContinuationToken::presented(Some("ct_r1")).unwrap();
    let turn = TurnSummary {
        status: "finished",
        log: TurnLog::new(&[channel_core::ChannelEvent::Delta { text: "x".into() }], false),
    };
    let c = a.create(&s, "alice", &t0, START, START + 100).await.unwrap();
    a.commit(c, &t1, START + 60_000, &turn).await.unwrap();
    // The current token answers the log without a reissue.
    let got = b.recover(&s, "alice", Some(&t1), &r1, START + 1).await.unwrap();
    assert_eq!((got.log.as_ref(), got.reissued), (Some(&turn.log), false));
    // A claim on node B holds the session: recovery with the consumed token on node A waits.
    let held = b.claim(&s, "alice", Some(&t1), START + 1, START + 500).await.unwrap();
    assert!(a.in_flight(&s, START + 2).await.unwrap());
    assert_eq!(a.recover(&s, "alice", Some(&t0), &r1, START + 2).await, Err(StoreError::Refused(Refusal::InFlight)));
    b.release(held, START + 60_000, None).await.unwrap();
    let got = a.recover(&s, "alice", Some(&t0), &r1, START + 3).await.unwrap();
    assert_eq!((got.log.as_ref(), got.reissued), (Some(&turn.log), true));
    b.validate(&s, "alice", Some(&r1), START + 4).await.unwrap();
    assert_eq!(b.validate(&s, "alice", Some(&t1), START + 4).await, Err(StoreError::Refused(Refusal::StaleToken)));
    let other = ContinuationToken::presented(Some("ct_other")).unwrap();
    assert_eq!(
        a.recover(&s, "alice", Some(&other), &r1, START + 5).await,
        Err(StoreError::Refused(Refusal::StaleToken))
    );
    assert_eq!(a.recover(&s, "alice", None, &r1, START + 5).await, Err(StoreError::Refused(Refusal::MissingToken)));
    assert_eq!(
        a.recover(&s, "bob", Some(&t0), &r1, START + 5).await,
        Err(StoreError::Refused(Refusal::UnknownSession))
    );
}

/// Runs without a database: a pool that cannot connect gives a typed error, not a panic.
#[tokio::test]
async fn an_unreachable_database_is_a_backend_error() {
    let config: tokio_postgres::Config = "postgres://postgres@127.0.0.1:1/postgres".parse().unwrap();
    let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(1)
        .create_timeout(Some(std::time::Duration::from_secs(2)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .unwrap();
    let err = PgTokenStore::new(pool, PgTokenOptions::default()).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
}
