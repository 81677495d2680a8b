//! API keys (`runtime::keys`, `arcp keys`, `arcp serve` without `--token`).
//!
//! - One store contract ([`contract`]) run against the memory, SQLite and PostgreSQL key
//!   stores (PostgreSQL needs `ARCP_TEST_DATABASE_URL`, e.g.
//!   `postgres://postgres@127.0.0.1:5432/postgres`; without it that test prints `SKIPPED: …`
//!   and passes), plus what only a durable store can show: a second handle (another process,
//!   another node) sees a revocation at once, and one first key among racing starts.
//! - The binary: the first start prints a key once and a restart does not; `arcp keys
//!   create` keys work over WebSocket and `/v1`; `arcp keys revoke` (run while the server
//!   runs) refuses the key on the next hello and the next `/v1` request while another key goes
//!   on working; expired keys are refused; `arcp keys list` never shows a key; `--token`
//!   disables API keys; `arcp stdio` accepts the key it prints on stderr.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::hash::{BuildHasher as _, Hasher as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arcp_core::{ErrorCode, ManualClock, OsEntropy};
use arcp_server::BearerVerifier as _;
use arcp_server::store::postgres::{PgOptions, PgStore};
use common::{Arcp, Client};
use runtime::keys::{
    self, ApiKey, ApiKeyStore, KeyError, KeyRecord, KeyStatus, KeyVerifier, MemoryKeyStore, NewKey, PgKeyStore,
    Revoked, SqliteKeyStore,
};
use serde_json::{Value, json};

const START: u64 = 1_700_000_000_000;

const SKIPPED: &str = "SKIPPED: ARCP_TEST_DATABASE_URL is not set; the PostgreSQL key store tests did not run";

// ---------------------------------------------------------------------------------------
// The store contract
// ---------------------------------------------------------------------------------------

fn mint(principal: &str, expires_at: Option<u64>, label: Option<&str>, now: u64) -> (ApiKey, KeyRecord) {
    NewKey { principal: principal.into(), label: label.map(str::to_owned), expires_at }.mint(&OsEntropy, now).unwrap()
}

/// What every [`ApiKeyStore`] does; `store` must be empty.
async fn contract(store: Arc<dyn ApiKeyStore>) {
    assert!(store.list().await.unwrap().is_empty());

    // The first key goes in once; afterwards `insert_first` inserts nothing.
    let (first, first_rec) = mint("alice", None, Some("first"), START);
    assert!(store.insert_first(&first_rec).await.unwrap());
    let (_, other_first) = mint("alice", None, None, START);
    assert!(!store.insert_first(&other_first).await.unwrap());
    assert_eq!(store.find(&other_first.digest).await.unwrap(), None);

    // Records round-trip exactly, with and without the optional fields.
    let (expiring, expiring_rec) = mint("bob", Some(START + 60_000), Some("CI ✓ \"quoted\""), START + 1);
    store.insert(&expiring_rec).await.unwrap();
    assert_eq!(store.find(&first.digest()).await.unwrap().as_ref(), Some(&first_rec));
    assert_eq!(store.find(&expiring.digest()).await.unwrap().as_ref(), Some(&expiring_rec));
    assert_eq!(store.find(&keys::digest("arcp_sk_unknown")).await.unwrap(), None);

    // Duplicates: same id, or same digest.
    let (_, mut same_id) = mint("carol", None, None, START + 2);
    same_id.id = first_rec.id.clone();
    assert_eq!(store.insert(&same_id).await, Err(KeyError::Duplicate));
    let (_, mut same_digest) = mint("carol", None, None, START + 2);
    same_digest.digest = first_rec.digest;
    assert_eq!(store.insert(&same_digest).await, Err(KeyError::Duplicate));

    // Listing: oldest first, ties by id.
    let (_, tie_a) = mint("dave", None, None, START + 5);
    let (_, tie_b) = mint("dave", None, None, START + 5);
    store.insert(&tie_b).await.unwrap();
    store.insert(&tie_a).await.unwrap();
    let ids: Vec<String> = store.list().await.unwrap().into_iter().map(|r| r.id).collect();
    let mut ties = [tie_a.id.clone(), tie_b.id.clone()];
    ties.sort();
    assert_eq!(ids, [first_rec.id.clone(), expiring_rec.id.clone(), ties[0].clone(), ties[1].clone()]);

    // Revocation: once, then "already", keeping the first time; unknown ids are NotFound.
    let Revoked::Now(r) = store.revoke(&first_rec.id, START + 100).await.unwrap() else { panic!("not revoked now") };
    assert_eq!(r.revoked_at, Some(START + 100));
    assert_eq!(r.status(START + 100), KeyStatus::Revoked);
    let Revoked::Already(r) = store.revoke(&first_rec.id, START + 200).await.unwrap() else { panic!("revoked twice") };
    assert_eq!(r.revoked_at, Some(START + 100));
    assert_eq!(store.find(&first.digest()).await.unwrap().unwrap().revoked_at, Some(START + 100));
    assert!(matches!(store.revoke("key_nonexistent", START).await, Err(KeyError::NotFound(_))));
    // The other keys are untouched.
    assert_eq!(store.find(&expiring.digest()).await.unwrap().unwrap().revoked_at, None);

    // Revoking by prefix goes through the listing.
    assert!(matches!(
        keys::revoke_key(&*store, &expiring_rec.prefix, START + 300).await.unwrap(),
        Revoked::Now(r) if r.id == expiring_rec.id
    ));

    // The verifier over the store: active keys only.
    let clock = Arc::new(ManualClock::new(START + 1_000));
    let verifier = KeyVerifier::new(store.clone(), clock.clone());
    let (live, live_rec) = mint("erin", Some(START + 10_000), None, START + 500);
    store.insert(&live_rec).await.unwrap();
    assert_eq!(verifier.verify(live.expose()).await.unwrap().principal, "erin");
    let refused = |r: Result<arcp_server::Identity, arcp_server::Error>| r.unwrap_err().code();
    assert_eq!(refused(verifier.verify(first.expose()).await), ErrorCode::UNAUTHENTICATED, "revoked");
    clock.set(START + 10_000);
    assert_eq!(refused(verifier.verify(live.expose()).await), ErrorCode::UNAUTHENTICATED, "expired");
}

#[tokio::test]
async fn the_memory_store_keeps_the_contract_and_its_cap() {
    contract(Arc::new(MemoryKeyStore::new())).await;
    let small = MemoryKeyStore::with_max_keys(1);
    small.insert(&mint("p", None, None, START).1).await.unwrap();
    assert_eq!(small.insert(&mint("p", None, None, START).1).await, Err(KeyError::Full { max: 1 }));
}

#[tokio::test]
async fn the_sqlite_store_keeps_the_contract_across_handles_and_reopening() {
    let dir = tempdir("sqlite-contract");
    let path = dir.join("nested").join("arcp.db");
    assert!(SqliteKeyStore::open_existing(&path).await.is_err(), "open_existing does not create");
    let store = SqliteKeyStore::open(&path).await.unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "a directory the store creates is the owner's only");
    }
    contract(Arc::new(store.clone())).await;

    // Another handle on the file (as `arcp keys revoke` in another process) writes; the first
    // handle's verifier sees it on the next call.
    let (key, record) = mint("frank", None, None, START);
    store.insert(&record).await.unwrap();
    let verifier = KeyVerifier::new(Arc::new(store.clone()), Arc::new(arcp_core::SystemClock));
    assert_eq!(verifier.verify(key.expose()).await.unwrap().principal, "frank");
    let other = SqliteKeyStore::open_existing(&path).await.unwrap();
    keys::revoke_key(&other, &record.id, START + 1).await.unwrap();
    assert!(verifier.verify(key.expose()).await.is_err());

    // Everything survives closing and reopening.
    let before = store.list().await.unwrap();
    drop((store, other, verifier));
    let reopened = SqliteKeyStore::open_existing(&path).await.unwrap();
    assert_eq!(reopened.list().await.unwrap(), before);
    // A new ARCP store on the same file leaves the key table alone (separate components).
    arcp_server::store::sqlite::SqliteStore::open(&path, Default::default()).await.unwrap();
    assert_eq!(SqliteKeyStore::open_existing(&path).await.unwrap().list().await.unwrap(), before);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn sqlite_handles_racing_for_the_first_key_insert_one() {
    let dir = tempdir("sqlite-first");
    let path = dir.join("arcp.db");
    SqliteKeyStore::open(&path).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            tokio::spawn(async move {
                let store = SqliteKeyStore::open_existing(&path).await.unwrap();
                keys::ensure_first_key(&store, "local", &OsEntropy, START).await.unwrap().is_some()
            })
        })
        .collect();
    let mut inserted = 0;
    for t in tasks {
        inserted += usize::from(t.await.unwrap());
    }
    assert_eq!(inserted, 1);
    assert_eq!(SqliteKeyStore::open_existing(&path).await.unwrap().list().await.unwrap().len(), 1);
    let _ = std::fs::remove_dir_all(dir);
}

/// A fresh schema in the test database, dropped (best effort) when this is dropped.
struct TestDb {
    url: String,
    schema: String,
}

impl TestDb {
    async fn create() -> Option<TestDb> {
        let Some(url) = std::env::var("ARCP_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
            eprintln!("{SKIPPED}");
            println!("{SKIPPED}");
            return None;
        };
        let schema = format!("t_keys_{:016x}{:08x}", unique(), std::process::id());
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client.batch_execute(&format!("CREATE SCHEMA \"{schema}\"")).await.unwrap();
        Some(TestDb { url, schema })
    }

    /// A "node": its own pool on the schema, and the key store over it.
    async fn node(&self) -> PgKeyStore {
        let pg = PgStore::connect(&self.url, PgOptions::default().with_schema(&self.schema).with_pool_size(4))
            .await
            .unwrap();
        PgKeyStore::from_store(&pg).await.unwrap()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_keeps_the_contract_across_nodes() {
    let Some(db) = TestDb::create().await else { return };
    let a = db.node().await;
    contract(Arc::new(a.clone())).await;

    // Node B revokes; node A's verifier refuses the key on its next call.
    let b = db.node().await;
    let (key, record) = mint("grace", None, None, START);
    a.insert(&record).await.unwrap();
    let verifier = KeyVerifier::new(Arc::new(a.clone()), Arc::new(arcp_core::SystemClock));
    assert_eq!(verifier.verify(key.expose()).await.unwrap().principal, "grace");
    assert!(matches!(keys::revoke_key(&b, &record.prefix, START + 1).await.unwrap(), Revoked::Now(_)));
    assert!(verifier.verify(key.expose()).await.is_err());
    assert_eq!(a.list().await.unwrap(), b.list().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_nodes_racing_for_the_first_key_insert_one() {
    let Some(db) = TestDb::create().await else { return };
    let mut nodes = Vec::new();
    for _ in 0..6 {
        nodes.push(db.node().await);
    }
    let tasks: Vec<_> = nodes
        .into_iter()
        .map(|node| {
            tokio::spawn(
                async move { keys::ensure_first_key(&node, "local", &OsEntropy, START).await.unwrap().is_some() },
            )
        })
        .collect();
    let mut inserted = 0;
    for t in tasks {
        inserted += usize::from(t.await.unwrap());
    }
    assert_eq!(inserted, 1);
    assert_eq!(db.node().await.list().await.unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------------------

fn unique() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("arcp-keys-{name}-{}-{:x}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `sqlite:<dir>/arcp.db`.
fn sqlite_store(dir: &std::path::Path) -> String {
    format!("sqlite:{}", dir.join("arcp.db").display())
}

/// The output of a finished `arcp` command.
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `arcp args…` to completion.
async fn arcp(args: &[&str]) -> Output {
    let out = tokio::time::timeout(common::WAIT, common::command(args).stdin(std::process::Stdio::null()).output())
        .await
        .expect("arcp finishes in time")
        .expect("arcp runs");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `arcp keys create --store STORE extra…`: the key and its id.
async fn create_key(store: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["keys", "create", "--store", store];
    args.extend_from_slice(extra);
    let out = arcp(&args).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let field = |name: &str| {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name:?} line: {}", out.stdout))
            .to_owned()
    };
    let key = field("api key: ");
    assert!(keys::looks_like_key(&key) && key.len() == 60, "{key}");
    assert!(out.stderr.contains("shown only now"), "{}", out.stderr);
    (key, field("id: "))
}

/// `arcp serve --store STORE extra…`: the process, its URL and the key it printed, if any.
async fn serve(store: &str, extra: &[&str]) -> (Arcp, String, Option<String>) {
    let mut args = vec!["--store", store];
    args.extend_from_slice(extra);
    let (mut server, url) = common::serve(&args).await;
    let line = server.line().await;
    let key = match line.strip_prefix("api key: ") {
        Some(key) => {
            let next = server.line().await;
            assert!(next.starts_with("channel at http://"), "{next}");
            Some(key.to_owned())
        }
        None => {
            assert!(line.starts_with("channel at http://"), "{line}");
            None
        }
    };
    (server, url, key)
}

/// Stops a server and waits until it is gone (its SQLite lock is released).
async fn stop(mut server: Arcp) {
    server.child.kill().await.expect("kill arcp");
}

/// The reply to a `session.hello` with `key`.
async fn hello(url: &str, key: &str) -> Value {
    Client::connect(url).await.hello(key).await
}

fn is_welcome(reply: &Value) -> bool {
    reply["type"] == "session.welcome"
}

fn is_unauthenticated(reply: &Value) -> bool {
    reply["type"] == "session.error" && reply["payload"]["code"] == "UNAUTHENTICATED"
}

/// The HTTP status of `POST /v1/session` with `key` (through curl).
async fn channel_status(url: &str, key: &str) -> u16 {
    let base = url.replace("ws://", "http://").trim_end_matches("/arcp").to_owned();
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", &format!("{base}/v1/session")])
        .args(["-H", &format!("Authorization: Bearer {key}"), "-H", "Content-Type: application/json"])
        .args(["-d", r#"{"input": {"text": "hi"}}"#])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(common::WAIT, out).await.expect("curl in time").expect("curl runs");
    let code = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    code.parse().unwrap_or_else(|_| panic!("curl printed {code:?}: {}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn the_first_start_prints_a_key_once_and_a_restart_keeps_it() {
    let dir = tempdir("first-start");
    let store = sqlite_store(&dir);
    let (server, url, key) = serve(&store, &["--principal", "owner"]).await;
    let key = key.expect("the first start prints a key");
    assert!(keys::looks_like_key(&key) && key.len() == 60, "{key}");
    assert!(is_welcome(&hello(&url, &key).await));
    assert!(is_unauthenticated(&hello(&url, "arcp_sk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").await));
    assert!(is_unauthenticated(&hello(&url, "local").await));
    assert_eq!(channel_status(&url, &key).await, 200);
    stop(server).await;

    // The restart prints no key; the first one still works, as --principal.
    let (server, url, again) = serve(&store, &[]).await;
    assert_eq!(again, None, "a store that holds a key gets no new one");
    let mut c = Client::connect(&url).await;
    assert!(is_welcome(&c.hello(&key).await));
    let job = c.submit("echo", json!({"n": 1})).await;
    assert_eq!(c.until_terminal(&job).await.last().unwrap()["type"], "job.result");
    stop(server).await;

    let listed = arcp(&["keys", "list", "--json", "--store", &store]).await;
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!((&listed[0]["principal"], &listed[0]["status"]), (&json!("owner"), &json!("active")));
    assert_eq!(listed[0]["prefix"], key[..16]);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn created_keys_work_over_websocket_and_v1_until_revoked() {
    let dir = tempdir("revoke");
    let store = sqlite_store(&dir);
    let (first, first_id) = create_key(&store, &["--principal", "alice", "--label", "laptop"]).await;
    let (second, _) = create_key(&store, &["--principal", "alice"]).await;
    let (server, url, printed) = serve(&store, &[]).await;
    assert_eq!(printed, None, "the store already holds keys");

    assert!(is_welcome(&hello(&url, &first).await));
    assert!(is_welcome(&hello(&url, &second).await));
    assert_eq!(channel_status(&url, &first).await, 200);
    assert_eq!(channel_status(&url, "arcp_sk_wrong").await, 401);

    // A session opened before the revocation stays open.
    let mut open = Client::connect(&url).await;
    assert!(is_welcome(&open.hello(&first).await));

    // Revoked while the server runs, from another process, by id.
    let out = arcp(&["keys", "revoke", &first_id, "--store", &store]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.starts_with(&format!("revoked {first_id} ({}", &first[..16])), "{}", out.stdout);

    let refused = hello(&url, &first).await;
    assert!(is_unauthenticated(&refused), "{refused}");
    assert!(refused["payload"]["message"].as_str().unwrap().contains("revoked"), "{refused}");
    assert_eq!(channel_status(&url, &first).await, 401);
    // The other key of the same principal goes on working, over both (the channel's
    // in-process session of the principal is not tied to either key).
    assert!(is_welcome(&hello(&url, &second).await));
    assert_eq!(channel_status(&url, &second).await, 200);
    let job = open.submit("echo", json!("still open")).await;
    assert_eq!(open.until_terminal(&job).await.last().unwrap()["type"], "job.result");

    // Revoking again says so and succeeds; by prefix works too.
    let again = arcp(&["keys", "revoke", &first[..16], "--store", &store]).await;
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(again.stdout.contains("already revoked"), "{}", again.stdout);
    stop(server).await;

    // A restart does not bring it back.
    let (server, url, _) = serve(&store, &[]).await;
    assert!(is_unauthenticated(&hello(&url, &first).await));
    assert!(is_welcome(&hello(&url, &second).await));
    stop(server).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn expired_keys_are_refused() {
    let dir = tempdir("expired");
    let store = sqlite_store(&dir);
    // A key that expired a minute ago, written through the library (no waiting).
    let path = dir.join("arcp.db");
    let now = arcp_core::Clock::now_millis(&arcp_core::SystemClock);
    let (expired, record) = mint("alice", Some(now - 60_000), None, now - 120_000);
    SqliteKeyStore::open(&path).await.unwrap().insert(&record).await.unwrap();
    let (later, _) = create_key(&store, &["--principal", "alice", "--expires-in", "3600"]).await;
    let (dated, _) = create_key(&store, &["--expires-at", "2999-01-01T00:00:00Z"]).await;

    let (server, url, printed) = serve(&store, &[]).await;
    assert_eq!(printed, None);
    let refused = hello(&url, expired.expose()).await;
    assert!(is_unauthenticated(&refused), "{refused}");
    assert!(refused["payload"]["message"].as_str().unwrap().contains("expired"), "{refused}");
    assert_eq!(channel_status(&url, expired.expose()).await, 401);
    assert!(is_welcome(&hello(&url, &later).await));
    assert!(is_welcome(&hello(&url, &dated).await));
    stop(server).await;

    let listed = arcp(&["keys", "list", "--json", "--store", &store]).await;
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    let statuses: Vec<&str> = listed.as_array().unwrap().iter().map(|k| k["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["expired", "active", "active"]);
    assert_eq!(listed[2]["expires_at"], "2999-01-01T00:00:00.000Z");

    // An expiry in the past is refused at creation (a usage error).
    let past = arcp(&["keys", "create", "--store", &store, "--expires-at", "2000-01-01T00:00:00Z"]).await;
    assert_eq!(past.code, Some(2), "{}", past.stderr);
    assert!(past.stderr.contains("not in the future"), "{}", past.stderr);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn listing_never_shows_a_key() {
    let dir = tempdir("list");
    let store = sqlite_store(&dir);
    let empty = arcp(&["keys", "list", "--json", "--store", &store]).await;
    assert_eq!(empty.code, Some(1), "the store does not exist yet: {}", empty.stderr);
    let (a, a_id) = create_key(&store, &["--principal", "alice", "--label", "CI"]).await;
    let (b, _) = create_key(&store, &["--principal", "bob", "--expires-in", "60"]).await;
    let out = arcp(&["keys", "revoke", &a_id, "--store", &store]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    let json_out = arcp(&["keys", "list", "--json", "--store", &store]).await;
    assert_eq!(json_out.code, Some(0), "{}", json_out.stderr);
    let text_out = arcp(&["keys", "list", "--store", &store]).await;
    assert_eq!(text_out.code, Some(0), "{}", text_out.stderr);
    for (key, shown) in [(&a, &json_out.stdout), (&b, &json_out.stdout), (&a, &text_out.stdout), (&b, &text_out.stdout)]
    {
        assert!(!shown.contains(key.as_str()) && !shown.contains(&key[16..]), "a key is shown: {shown}");
    }
    let listed: Value = serde_json::from_str(&json_out.stdout).unwrap();
    let mut fields: Vec<&String> = listed[0].as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(
        fields,
        ["created_at", "expires_at", "id", "label", "prefix", "principal", "revoked_at", "status"],
        "{listed}"
    );
    assert_eq!(listed[0]["id"], a_id.as_str());
    assert_eq!((&listed[0]["status"], &listed[0]["label"]), (&json!("revoked"), &json!("CI")));
    assert!(listed[0]["revoked_at"].is_string() && listed[0]["expires_at"].is_null(), "{listed}");
    assert_eq!((&listed[1]["principal"], &listed[1]["status"]), (&json!("bob"), &json!("active")));
    assert!(listed[1]["expires_at"].is_string(), "{listed}");

    let mut lines = text_out.stdout.lines();
    assert!(lines.next().unwrap().starts_with("ID "), "{}", text_out.stdout);
    assert!(text_out.stdout.contains(&a[..16]) && text_out.stdout.contains("revoked"), "{}", text_out.stdout);
    assert_eq!(lines.count(), 2, "{}", text_out.stdout);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn keys_commands_refuse_what_they_cannot_do() {
    let dir = tempdir("refusals");
    let store = sqlite_store(&dir);
    // Keys in memory exist only inside one server.
    let memory = arcp(&["keys", "list", "--store", "memory"]).await;
    assert_eq!(memory.code, Some(2), "{}", memory.stderr);
    let memory = arcp(&["keys", "create"]).await; // ARCP_STORE=memory from common::command
    assert_eq!(memory.code, Some(2), "{}", memory.stderr);
    // Unknown keys, ambiguous or invalid input.
    create_key(&store, &[]).await;
    let unknown = arcp(&["keys", "revoke", "key_doesnotexist", "--store", &store]).await;
    assert_eq!(unknown.code, Some(1), "{}", unknown.stderr);
    assert!(unknown.stderr.contains("no key has the id or prefix"), "{}", unknown.stderr);
    let empty_principal = arcp(&["keys", "create", "--store", &store, "--principal", ""]).await;
    assert_eq!(empty_principal.code, Some(2), "{}", empty_principal.stderr);
    let both = ["keys", "create", "--store", &store, "--expires-in", "5", "--expires-at", "2999-01-01T00:00:00Z"];
    assert_eq!(arcp(&both).await.code, Some(2));
    let bad_time = arcp(&["keys", "create", "--store", &store, "--expires-at", "tomorrow"]).await;
    assert_eq!(bad_time.code, Some(2), "{}", bad_time.stderr);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_static_token_replaces_api_keys() {
    let dir = tempdir("static");
    let store = sqlite_store(&dir);
    let (key, _) = create_key(&store, &[]).await;
    let (server, url, printed) = serve(&store, &["--token", "dev-token"]).await;
    assert_eq!(printed, None);
    assert!(is_welcome(&hello(&url, "dev-token").await));
    assert!(is_unauthenticated(&hello(&url, &key).await), "API keys are not consulted with --token");
    assert_eq!(channel_status(&url, &key).await, 401);
    assert_eq!(channel_status(&url, "dev-token").await, 200);
    stop(server).await;

    // On a fresh store, --token creates no key.
    let fresh = tempdir("static-fresh");
    let fresh_store = sqlite_store(&fresh);
    let (server, _, printed) = serve(&fresh_store, &["--token", "dev-token"]).await;
    assert_eq!(printed, None);
    stop(server).await;
    let listed = arcp(&["keys", "list", "--json", "--store", &fresh_store]).await;
    assert_eq!(listed.stdout.trim(), "[]", "{}", listed.stderr);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(fresh);
}

#[tokio::test]
async fn stdio_without_a_token_accepts_the_key_it_prints_on_stderr() {
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
    let mut child = common::command(&["stdio"]).spawn().expect("spawn arcp stdio");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let key = tokio::time::timeout(common::WAIT, async {
        loop {
            let line = stderr.next_line().await.expect("stderr is readable").expect("an api key line");
            if let Some(key) = line.strip_prefix("api key: ") {
                return key.to_owned();
            }
        }
    })
    .await
    .expect("the key in time");
    assert!(keys::looks_like_key(&key), "{key}");
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let hello = common::envelope("msg_1", "session.hello", common::hello_payload(&key), None, json!({}));
    stdin.write_all(format!("{hello}\n").as_bytes()).await.expect("write");
    let line = tokio::time::timeout(common::WAIT, stdout.next_line()).await.expect("a reply in time");
    let reply: Value = serde_json::from_str(&line.expect("readable").expect("a line")).expect("JSON");
    assert!(is_welcome(&reply), "{reply}");
    drop(stdin);
    let status = tokio::time::timeout(common::WAIT, child.wait()).await.expect("exit in time").expect("wait");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn keys_use_the_store_of_the_configuration_file_like_serve() {
    let dir = tempdir("config");
    let store = sqlite_store(&dir);
    let config = dir.join("arcp.toml");
    std::fs::write(&config, format!("store = {:?}\nnode-id = \"a\"\n", store.as_str())).unwrap();
    let config = config.to_str().unwrap().to_owned();
    // Neither --store nor ARCP_STORE: the file's `store` (the other keys are serve's).
    let mut cmd = common::command(&["keys", "create", "--config", &config, "--principal", "filed"]);
    cmd.env_remove("ARCP_STORE");
    let out = cmd.output().await.expect("arcp keys create runs");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let key = stdout.lines().find_map(|l| l.strip_prefix("api key: ")).expect("a key").to_owned();

    // `serve --config` reads the same store: no first key, and the created one works.
    let mut cmd = common::command(&["serve", "--listen", "127.0.0.1:0", "--config", &config]);
    cmd.env_remove("ARCP_STORE");
    let mut server = common::spawn_command(cmd);
    let url = server.line().await.strip_prefix("arcp listening on ").expect("the listening line").to_owned();
    assert!(server.line().await.starts_with("channel at http://"), "no key is printed");
    assert!(is_welcome(&hello(&url, &key).await));
    stop(server).await;

    // A flag (and ARCP_STORE) wins over the file.
    let listed = arcp(&["keys", "list", "--json", "--config", &config]).await; // ARCP_STORE=memory
    assert_eq!(listed.code, Some(2), "ARCP_STORE wins over the file: {}", listed.stderr);
    let listed = arcp(&["keys", "list", "--json", "--store", &store]).await;
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed[0]["principal"], "filed");
    let _ = std::fs::remove_dir_all(dir);
}
