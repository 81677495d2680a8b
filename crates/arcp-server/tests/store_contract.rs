//! The store contract (`arcp_server::store::contract`) run against every store in this crate:
//! the in-memory reference stores and the SQLite stores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use arcp_server::store::contract;
use arcp_server::store::memory::{MemoryEventLog, MemoryIdempotencyStore, MemoryJobStore, MemoryResumeStore};

#[tokio::test]
async fn memory_kv_store() {
    contract::kv_store(&arcp_server::store::MemoryKvStore::default()).await;
}

/// The memory store holds at most its cap of entries (over all principals) and evicts the
/// least recently used one; a `get` or a `set` uses an entry, a listing does not.
#[tokio::test]
async fn memory_kv_store_evicts_the_least_recently_used_entry() {
    use arcp_server::store::{KvQuery, KvStore, MemoryKvStore};
    use serde_json::json;

    let store = MemoryKvStore::with_max_entries(3);
    let now = 1_000;
    store.set("p1", "a", json!(1), None, now).await.unwrap();
    store.set("p2", "b", json!(2), None, now).await.unwrap();
    store.set("p1", "c", json!(3), None, now).await.unwrap();
    // Touch "a": "b" is now the least recently used.
    assert!(store.get("p1", "a", now).await.unwrap().is_some());
    // A listing is no use.
    assert_eq!(store.list("p2", KvQuery::default(), now).await.unwrap().entries.len(), 1);
    store.set("p1", "d", json!(4), None, now).await.unwrap();
    assert_eq!(store.len(), 3);
    assert_eq!(store.get("p2", "b", now).await.unwrap(), None, "the least recently used entry stays");
    for key in ["a", "c", "d"] {
        assert!(store.get("p1", key, now).await.unwrap().is_some(), "{key} was evicted");
    }
    // Overwriting an entry uses it and does not count twice: now "a" is the oldest.
    store.set("p1", "a", json!(10), None, now).await.unwrap();
    assert_eq!(store.len(), 3);
    store.set("p1", "e", json!(5), None, now).await.unwrap();
    assert_eq!(store.get("p1", "c", now).await.unwrap(), None, "c was the least recently used");
    assert_eq!(store.get("p1", "a", now).await.unwrap().unwrap().value, Some(json!(10)));
    assert_eq!(store.len(), 3);
    // Deleting frees a slot: nothing is evicted by the next set.
    assert!(store.delete("p1", "a", now).await.unwrap());
    store.set("p1", "f", json!(6), None, now).await.unwrap();
    for key in ["d", "e", "f"] {
        assert!(store.get("p1", key, now).await.unwrap().is_some(), "{key} was evicted");
    }
}

#[tokio::test]
async fn memory_event_log() {
    contract::event_log(&MemoryEventLog::default()).await;
}

#[tokio::test]
async fn memory_event_log_caps() {
    contract::event_log_caps(&MemoryEventLog::with_caps(contract::CAPPED_MAX_EVENTS, contract::CAPPED_MAX_BYTES)).await;
}

#[tokio::test]
async fn memory_resume_store() {
    contract::resume_store(&MemoryResumeStore::default()).await;
}

#[tokio::test]
async fn memory_idempotency_store() {
    contract::idempotency_store(&MemoryIdempotencyStore::default()).await;
}

#[tokio::test]
async fn memory_job_store() {
    contract::job_store(&MemoryJobStore::default()).await;
}

mod sqlite {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;

    use arcp_core::message::JobStatus;
    use arcp_core::{EventSeq, JobId, SessionId};
    use arcp_server::store::contract;
    use arcp_server::store::sqlite::{
        COMPONENT, MIGRATIONS_TABLE, SqliteOptions, SqliteStore, migrate, schema_version,
    };
    use arcp_server::store::{
        Claim, EventLog, IdempotencyRecord, IdempotencyStore, JobStore, JobUpdate, ResumeRecord, ResumeStore,
        StoreError, StoredEvent,
    };

    /// A directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            let dir = std::env::temp_dir().join(contract::unique("arcp-sqlite-test"));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn db(&self) -> PathBuf {
            self.0.join("nested").join("dir").join("arcp.db")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn open(path: &Path) -> SqliteStore {
        SqliteStore::open_blocking(path, SqliteOptions::default()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_event_log() {
        let dir = TempDir::new();
        contract::event_log(&open(&dir.db()).event_log()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_event_log_caps() {
        let dir = TempDir::new();
        let options = SqliteOptions {
            max_events_per_session: contract::CAPPED_MAX_EVENTS,
            max_bytes_per_session: contract::CAPPED_MAX_BYTES,
            ..SqliteOptions::default()
        };
        contract::event_log_caps(&SqliteStore::open(dir.db(), options).await.unwrap().event_log()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_resume_store() {
        let dir = TempDir::new();
        contract::resume_store(&open(&dir.db()).resume_store()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_idempotency_store() {
        let dir = TempDir::new();
        let store = open(&dir.db());
        contract::idempotency_store(&store.idempotency_store()).await;
        // Many more racers than the batch size: still exactly one winner.
        contract::idempotency_race(&store.idempotency_store(), 1_500).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_kv_store() {
        let dir = TempDir::new();
        let store = open(&dir.db());
        contract::kv_store(&store.kv_store()).await;
        // Entries survive reopening the file.
        use arcp_server::store::KvStore;
        store.kv_store().set("p", "k", serde_json::json!({"kept": true}), None, 1).await.unwrap();
        drop(store);
        let reopened = open(&dir.db());
        let entry = reopened.kv_store().get("p", "k", 2).await.unwrap().unwrap();
        assert_eq!(entry.value, Some(serde_json::json!({"kept": true})));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_job_store() {
        let dir = TempDir::new();
        contract::job_store(&open(&dir.db()).job_store()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_job_store_walks_like_the_memory_store() {
        let dir = TempDir::new();
        let store = open(&dir.db()).job_store();
        for seed in 1..=8 {
            contract::job_store_against_model(&store, seed, 250).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_event_log_walks_like_the_memory_log() {
        let dir = TempDir::new();
        let store = open(&dir.db());
        let (events, bytes) =
            (SqliteOptions::default().max_events_per_session, SqliteOptions::default().max_bytes_per_session);
        for seed in 1..=4 {
            contract::event_log_against_model(&store.event_log(), seed, 300, events, bytes).await;
        }
        // Small caps, so the walk keeps running into them.
        let capped = TempDir::new();
        let options =
            SqliteOptions { max_events_per_session: 6, max_bytes_per_session: 120, ..SqliteOptions::default() };
        let store = SqliteStore::open(capped.db(), options).await.unwrap();
        for seed in 1..=8 {
            contract::event_log_against_model(&store.event_log(), seed, 300, 6, 120).await;
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]

        /// Random walks (seeds from proptest) of the SQLite job store and event log against
        /// the memory stores.
        #[test]
        fn sqlite_stores_walk_like_the_memory_stores(seed in proptest::prelude::any::<u64>()) {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async {
                let dir = TempDir::new();
                let options = SqliteOptions { max_events_per_session: 5, max_bytes_per_session: 100, ..SqliteOptions::default() };
                let store = SqliteStore::open(dir.db(), options).await.unwrap();
                contract::job_store_against_model(&store.job_store(), seed, 150).await;
                contract::event_log_against_model(&store.event_log(), seed, 150, 5, 100).await;
            });
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_contract_on_one_shared_file() {
        // The functions isolate themselves: they may share one database.
        let dir = TempDir::new();
        let store = open(&dir.db());
        contract::event_log(&store.event_log()).await;
        contract::resume_store(&store.resume_store()).await;
        contract::idempotency_store(&store.idempotency_store()).await;
        contract::job_store(&store.job_store()).await;
    }

    fn sid(n: usize) -> SessionId {
        SessionId::parse(&format!("sess_{n}")).unwrap()
    }

    fn job(n: usize) -> JobId {
        JobId::parse(&format!("job_{n}")).unwrap()
    }

    /// `sessions` × `per_session` appends, every session concurrently (sequential within one).
    async fn concurrent_appends(log: &(dyn EventLog + Sync), sessions: usize, per_session: u64) {
        let results = futures_util::future::join_all((0..sessions).map(|s| async move {
            for n in 1..=per_session {
                log.append(&sid(s), contract::event(n, &job(s))).await?;
            }
            Ok::<_, StoreError>(())
        }))
        .await;
        for r in results {
            r.unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn everything_survives_dropping_every_handle_and_reopening() {
        let dir = TempDir::new();
        let path = dir.db();
        let now = contract::wall_millis();
        let resume = ResumeRecord {
            session_id: sid(0),
            token_digest: [7; 32],
            principal: "alice".into(),
            expires_at_millis: u64::MAX,
        };
        let idem = IdempotencyRecord {
            digest: [9; 32],
            job_id: job(1),
            accepted: contract::rich_accepted(&job(1)),
            expires_at_millis: now + 3_600_000,
        };
        let record = contract::job_record("alice", "node-1", "sum@1", JobStatus::Running, 1_000, true);
        {
            let store = open(&path);
            let log = store.event_log();
            concurrent_appends(&log, 50, 20).await;
            store.resume_store().put(resume.clone()).await.unwrap();
            assert_eq!(
                store.idempotency_store().claim("alice", "k1", idem.clone(), now).await.unwrap(),
                Claim::Claimed
            );
            let jobs = store.job_store();
            jobs.insert(record.clone()).await.unwrap();
            jobs.update(
                &record.job_id,
                JobUpdate {
                    status: JobStatus::Running,
                    last_event_seq: EventSeq::new(33).unwrap(),
                    ended_at_millis: None,
                },
            )
            .await
            .unwrap();
            // Every handle (and the store) is dropped here; the writer thread closes the file.
        }
        let store = open(&path);
        let log = store.event_log();
        for s in 0..50 {
            let events = log.read_since(&sid(s), EventSeq::ZERO, 100).await.unwrap();
            let expected: Vec<StoredEvent> = (1..=20).map(|n| contract::event(n, &job(s))).collect();
            assert_eq!(events, expected, "session {s}");
            // The newest seq (and so the conflict check) survives too.
            assert!(matches!(log.append(&sid(s), contract::event(20, &job(s))).await, Err(StoreError::Conflict(_))));
        }
        let mut saturated = resume.clone();
        saturated.expires_at_millis = i64::MAX as u64; // stored saturated: "never"
        assert_eq!(store.resume_store().get(&sid(0)).await.unwrap(), Some(saturated));
        let other = IdempotencyRecord { job_id: job(2), ..idem.clone() };
        match store.idempotency_store().claim("alice", "k1", other, now).await.unwrap() {
            Claim::Existing(got) => assert_eq!(*got, idem),
            Claim::Claimed => panic!("the idempotency record was lost"),
        }
        let mut want = record.clone();
        want.last_event_seq = EventSeq::new(33).unwrap();
        assert_eq!(store.job_store().get(&record.job_id).await.unwrap(), Some(want.clone()));
        assert_eq!(store.job_store().unfinished("node-1").await.unwrap(), vec![want]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_share_transactions() {
        let dir = TempDir::new();
        let store = open(&dir.db());
        let before = store.stats();
        concurrent_appends(&store.event_log(), 50, 20).await;
        let stats = store.stats();
        let ops = stats.operations - before.operations;
        let txs = stats.transactions - before.transactions;
        assert_eq!(ops, 1_000, "{stats:?}");
        assert!(txs < 1_000, "1000 concurrent appends took {txs} transactions: no group commit ({stats:?})");
        assert!(stats.largest_batch > 1, "{stats:?}");
        assert_eq!(stats.failed_batches, 0);
        println!("1000 appends over 50 sessions: {txs} transactions, largest batch {}", stats.largest_batch);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_write_does_not_undo_its_batch() {
        let dir = TempDir::new();
        let store = open(&dir.db());
        let log = Arc::new(store.event_log());
        // Every session gets seq 1 twice (one is refused) and seq 2 once, all at once.
        let mut tasks = Vec::new();
        for s in 0..40 {
            for n in [1, 1, 2] {
                let log = log.clone();
                tasks.push(tokio::spawn(async move { (s, n, log.append(&sid(s), contract::event(n, &job(s))).await) }));
            }
        }
        let mut refused = 0;
        for t in tasks {
            let (_, _, r) = t.await.unwrap();
            match r {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => refused += 1,
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        // Ordering across tasks is free, so seq 2 may beat a seq 1 (which is then refused).
        assert!(refused >= 40, "{refused}");
        for s in 0..40 {
            let events = log.read_since(&sid(s), EventSeq::ZERO, 10).await.unwrap();
            assert!(!events.is_empty() && events.windows(2).all(|w| w[0].seq < w[1].seq), "session {s}: {events:?}");
        }
        assert_eq!(store.stats().failed_batches, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_locked_database_fails_the_batch_with_unavailable_then_recovers() {
        let dir = TempDir::new();
        let path = dir.db();
        let options = SqliteOptions { busy_timeout: Duration::from_millis(50), ..SqliteOptions::default() };
        let store = SqliteStore::open(&path, options).await.unwrap();
        let log = store.event_log();
        log.append(&sid(1), contract::event(1, &job(1))).await.unwrap();
        // Another connection takes the write lock and holds it.
        let blocker = rusqlite::Connection::open(&path).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let err = log.append(&sid(1), contract::event(2, &job(1))).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        let r = store.job_store().insert(contract::job_record("p", "n", "a", JobStatus::Pending, 1, false)).await;
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        assert!(store.stats().failed_batches >= 2);
        assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))), "a locked database is not ready");
        // Reads still work (WAL) and the failed append left nothing behind.
        assert_eq!(log.read_since(&sid(1), EventSeq::ZERO, 10).await.unwrap().len(), 1);
        blocker.execute_batch("ROLLBACK").unwrap();
        store.ping().await.unwrap();
        log.append(&sid(1), contract::event(2, &job(1))).await.unwrap();
        assert_eq!(log.read_since(&sid(1), EventSeq::ZERO, 10).await.unwrap().len(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migrations_are_idempotent_and_a_newer_schema_is_refused() {
        let dir = TempDir::new();
        let path = dir.db();
        drop(open(&path));
        drop(open(&path));
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(schema_version(&conn, COMPONENT).unwrap(), 2);
        let rows: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM {MIGRATIONS_TABLE} WHERE component = ?1"), [COMPONENT], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(rows, 2, "each step is recorded once");

        // Another component on the same file, step by step.
        let steps = ["CREATE TABLE t1 (a INTEGER)", "ALTER TABLE t1 ADD COLUMN b TEXT"];
        assert_eq!(schema_version(&conn, "other").unwrap(), 0);
        migrate(&mut conn, "other", &steps[..1]).unwrap();
        assert_eq!(schema_version(&conn, "other").unwrap(), 1);
        migrate(&mut conn, "other", &steps).unwrap();
        migrate(&mut conn, "other", &steps).unwrap();
        assert_eq!(schema_version(&conn, "other").unwrap(), 2);
        conn.execute("INSERT INTO t1 (a, b) VALUES (1, 'x')", []).unwrap();
        // An older build (knowing one step) refuses the newer schema.
        let err = migrate(&mut conn, "other", &steps[..1]).unwrap_err();
        assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("newer")), "{err:?}");
        // A failing step is not recorded and leaves nothing behind.
        let bad = ["CREATE TABLE t2 (a INTEGER)", "CREATE TABLE t3 (a INTEGER); THIS IS NOT SQL"];
        assert!(migrate(&mut conn, "bad", &bad).is_err());
        assert_eq!(schema_version(&conn, "bad").unwrap(), 1);
        let t3: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master WHERE name = 't3'", [], |r| r.get(0)).unwrap();
        assert_eq!(t3, 0, "the failed step was rolled back");

        // The stores refuse a database migrated by a newer build.
        conn.execute(&format!("INSERT INTO {MIGRATIONS_TABLE} (component, version) VALUES (?1, 99)"), [COMPONENT])
            .unwrap();
        drop(conn);
        let err = SqliteStore::open(&path, SqliteOptions::default()).await.unwrap_err();
        assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("version 99")), "{err:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_files_and_corrupt_rows_are_typed_errors() {
        let dir = TempDir::new();
        // Not a database.
        let junk = dir.0.join("junk.db");
        std::fs::write(&junk, b"this is not a sqlite database, not even close.........................").unwrap();
        assert!(matches!(SqliteStore::open(&junk, SqliteOptions::default()).await, Err(StoreError::Unavailable(_))));
        // A directory.
        assert!(matches!(SqliteStore::open(&dir.0, SqliteOptions::default()).await, Err(StoreError::Unavailable(_))));
        // A row written by something else that does not decode.
        let path = dir.db();
        let store = open(&path);
        let record = contract::job_record("p", "n", "a", JobStatus::Pending, 1, false);
        store.job_store().insert(record.clone()).await.unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE arcp_jobs SET status = 'paused', lease = '{not json' WHERE job_id = ?1",
            [record.job_id.as_str()],
        )
        .unwrap();
        let err = store.job_store().get(&record.job_id).await.unwrap_err();
        assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("corrupt")), "{err:?}");
        let q = arcp_server::store::JobQuery {
            principal: "p".into(),
            statuses: None,
            agent: None,
            created_after_millis: None,
            created_before_millis: None,
            after: None,
            limit: 10,
        };
        assert!(matches!(store.job_store().list(&q).await, Err(StoreError::Unavailable(_))));
        conn.execute("INSERT INTO arcp_events (session_id, seq, job_id, frame, bytes) VALUES ('s', 5, '', 'f', 1)", [])
            .unwrap();
        let err = store.event_log().read_since(&SessionId::parse("s").unwrap(), EventSeq::ZERO, 10).await;
        assert!(matches!(err, Err(StoreError::Unavailable(_))), "{err:?}");
    }
}
