//! `storage.kv` backed by the runtime's principal-scoped store (`RuntimeKv`): on SQLite a
//! record written by a plugin survives a restart (the `webhooks` delivery log and the `demo`
//! hit counter, each loaded again over a reopened database file), each plugin lives under a
//! reserved principal that no API key can name, and the plugin limits still hold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arcp_server::store::sqlite::{SqliteOptions, SqliteStore};
use arcp_server::store::{KvQuery, KvStore as _, MemoryKvStore};
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use plugin_api::{Format, Origin};
use runtime::plugins::demo::Demo;
use runtime::plugins::kv::{self, KvError, KvStore as _, RuntimeKv, plugin_principal};
use runtime::plugins::webhooks::Webhooks;
use runtime::plugins::{HostConfig, Plugins, RouteRequest};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(10);

fn db(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("arcp-plugins-storage-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    (dir.join("arcp.db"), dir)
}

fn get(path: &str) -> RouteRequest {
    RouteRequest {
        method: hyper::Method::GET,
        path: path.to_owned(),
        query: None,
        headers: hyper::HeaderMap::new(),
        body: Bytes::new(),
    }
}

async fn route_json(plugins: &Plugins, path: &str) -> Value {
    serde_json::from_slice(&plugins.dispatch(get(path)).await.body).unwrap()
}

/// A receiver on 127.0.0.1 that answers `200` to everything.
async fn receiver() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let service = service_fn(|_req: Request<hyper::body::Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), service).await;
            });
        }
    });
    port
}

fn event(job: &str) -> arcp_server::JobLifecycle {
    arcp_server::JobLifecycle {
        kind: arcp_server::LifecycleKind::Result,
        job_id: job.into(),
        session_id: "sess_1".into(),
        principal: "alice".into(),
        agent: "echo".into(),
        payload: json!({"result": null}),
        at_millis: 1,
    }
}

/// Loads `webhooks` over the SQLite database at `path`.
async fn webhooks_on(path: &std::path::Path, port: u16) -> (Plugins, SqliteStore) {
    let store = SqliteStore::open(path, SqliteOptions::default()).await.unwrap();
    let policy = plugin_api::load_policy(
        &json!({"plugins": {"webhooks": {
            "enabled": true,
            "grant": ["http.outbound", "session.events", "storage.kv", "scheduler", "routes"],
            "outboundHosts": ["localhost"],
            "allowPrivateAddresses": true,
            "config": {"endpoints": [{"url": format!("http://localhost:{port}/hook"), "secret": "s"}]}
        }}})
        .to_string(),
        Format::Json,
    )
    .unwrap();
    let host = HostConfig::default().durable_kv(Arc::new(store.kv_store()));
    let plugins =
        Plugins::load_in(&policy, vec![(Arc::new(Webhooks::default()), Origin::Builtin)], host).await.unwrap();
    (plugins, store)
}

/// The delivery log once its newest record has `status`.
async fn deliveries_when(plugins: &Plugins, count: usize, status: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let log = route_json(plugins, "/plugins/webhooks/deliveries").await;
        let list = log["deliveries"].as_array().cloned().unwrap_or_default();
        if list.len() == count && list.last().is_some_and(|d| d["status"] == status) {
            return list;
        }
        assert!(tokio::time::Instant::now() < deadline, "never {count} with the last {status}: {log}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn webhook_delivery_records_survive_a_restart_on_sqlite() {
    let (path, dir) = db("webhooks");
    let port = receiver().await;

    let (plugins, store) = webhooks_on(&path, port).await;
    plugins.publish(event("job_1"));
    let first = deliveries_when(&plugins, 1, "delivered").await;
    assert_eq!((first[0]["id"].as_str(), first[0]["job_id"].as_str()), (Some("dlv_000000000001"), Some("job_1")));
    // An agent's principal sees nothing of it; the reserved principal holds it.
    let kv = store.kv_store();
    for principal in ["webhooks", "plugin:webhooks", "alice"] {
        assert!(kv.list(principal, KvQuery::prefix("", 0), 0).await.unwrap().entries.is_empty(), "{principal}");
    }
    let held = kv.list(&plugin_principal("webhooks"), KvQuery::prefix("d/", 0), 0).await.unwrap();
    assert_eq!(held.entries.len(), 1);
    plugins.teardown().await;
    drop((plugins, kv, store));

    // The restart: a new store over the same file, the plugin loaded again.
    let (plugins, _store) = webhooks_on(&path, port).await;
    let kept = route_json(&plugins, "/plugins/webhooks/deliveries").await;
    assert_eq!(kept["deliveries"].as_array().unwrap(), &first, "the record survived the restart");
    // Numbering continues after the stored records.
    plugins.publish(event("job_2"));
    let both = deliveries_when(&plugins, 2, "delivered").await;
    assert_eq!((both[1]["id"].as_str(), both[1]["job_id"].as_str()), (Some("dlv_000000000002"), Some("job_2")));
    plugins.teardown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_delivery_in_flight_at_shutdown_is_recorded_as_interrupted() {
    let (path, dir) = db("interrupted");
    let store = SqliteStore::open(&path, SqliteOptions::default()).await.unwrap();
    // What a run that stopped mid-retry leaves behind.
    let record = json!({"id": "dlv_000000000007", "url": "http://localhost:9/hook", "event": "job.result",
        "job_id": "job_7", "status": "retrying", "attempts": 2});
    RuntimeKv::new(Arc::new(store.kv_store())).set("webhooks", "d/000000000007", record).await.unwrap();
    drop(store);
    let (plugins, _store) = webhooks_on(&path, 9).await;
    let log = route_json(&plugins, "/plugins/webhooks/deliveries").await;
    assert_eq!(log["deliveries"][0]["status"], "interrupted", "{log}");
    plugins.teardown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_demo_hit_counter_survives_a_restart_on_sqlite() {
    let (path, dir) = db("demo");
    let policy = plugin_api::load_policy(
        r#"{"plugins": {"demo": {"enabled": true, "grant": ["agents.register", "routes", "storage.kv"]}}}"#,
        Format::Json,
    )
    .unwrap();
    for expected in [1, 2] {
        let store = SqliteStore::open(&path, SqliteOptions::default()).await.unwrap();
        let host = HostConfig::default().durable_kv(Arc::new(store.kv_store()));
        let plugins = Plugins::load_in(&policy, vec![(Arc::new(Demo), Origin::Builtin)], host).await.unwrap();
        assert_eq!(route_json(&plugins, "/plugins/demo/hello").await, json!({"hello": "world", "hits": expected}));
        plugins.teardown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn no_api_key_can_name_a_plugin_principal() {
    let principal = plugin_principal("webhooks");
    let e = runtime::keys::NewKey::for_principal(principal).mint(&arcp_core::OsEntropy, 1).unwrap_err();
    assert!(e.to_string().contains("control"), "{e}");
}

#[tokio::test]
async fn the_plugin_limits_hold_over_the_runtime_store() {
    let kv = RuntimeKv::new(Arc::new(MemoryKvStore::default()));
    kv.set("a", "k1", json!(1)).await.unwrap();
    kv.set("b", "k1", json!("b")).await.unwrap();
    assert_eq!(kv.get("a", "k1").await.unwrap(), Some(json!(1)));
    assert_eq!(kv.get("b", "k1").await.unwrap(), Some(json!("b")));
    assert_eq!(kv.set("a", "", json!(1)).await, Err(KvError::InvalidKey));
    assert_eq!(kv.set("a", "nul\0", json!(1)).await, Err(KvError::InvalidKey));
    assert_eq!(kv.set("a", &"k".repeat(kv::MAX_KEY_BYTES + 1), json!(1)).await, Err(KvError::InvalidKey));
    let big = json!("x".repeat(kv::MAX_VALUE_BYTES));
    assert!(matches!(kv.set("a", "big", big).await, Err(KvError::ValueTooLarge(_))));
    assert!(kv.delete("a", "k1").await.unwrap());
    assert!(!kv.delete("a", "k1").await.unwrap());
    assert!(kv.list("a", "", 0).await.unwrap().is_empty());

    for i in 0..kv::MAX_KEYS_PER_NAMESPACE {
        kv.set("c", &format!("{i:06}"), json!(i)).await.unwrap();
    }
    assert_eq!(kv.set("c", "one-more", json!(0)).await, Err(KvError::Full));
    kv.set("c", "000001", json!("replaced")).await.unwrap();
    assert_eq!(kv.list("c", "", usize::MAX).await.unwrap().len(), kv::MAX_LIST);
    assert_eq!(kv.list("c", "00000", 100).await.unwrap()[1], ("000001".to_owned(), json!("replaced")));
    assert!(kv.delete("c", "000002").await.unwrap());
    kv.set("c", "one-more", json!(0)).await.unwrap();
    // A fresh adapter over the same store counts what is there.
    let store = Arc::new(MemoryKvStore::default());
    let first = RuntimeKv::new(store.clone());
    for i in 0..kv::MAX_KEYS_PER_NAMESPACE {
        first.set("d", &format!("{i:06}"), json!(i)).await.unwrap();
    }
    let second = RuntimeKv::new(store);
    assert_eq!(second.set("d", "one-more", json!(0)).await, Err(KvError::Full));
}
