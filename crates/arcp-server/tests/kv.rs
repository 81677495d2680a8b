//! `JobContext::kv`: agents keep key-value entries scoped to the submitting principal.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use arcp_core::message::Message;
use arcp_server::store::{KvQuery, KvStore, MemoryKvStore};
use arcp_server::{AgentError, AgentRegistry, JobContext, Runtime, RuntimeConfig, StaticBearerVerifier};
use serde_json::{Value, json};
use support::*;

fn kv_error(e: arcp_server::store::KvError) -> AgentError {
    AgentError::new(arcp_core::ErrorCode::INVALID_REQUEST, e.to_string())
}

/// An agent running one key-value operation given as its input.
fn kv_agents() -> AgentRegistry {
    let mut reg = AgentRegistry::new();
    reg.register("kv", |ctx: JobContext, input: Value| async move {
        let kv = ctx.kv();
        assert_eq!(kv.principal(), ctx.principal());
        let key = input["key"].as_str().unwrap_or("").to_owned();
        match input["op"].as_str() {
            Some("set") => {
                let ttl = input["ttl_ms"].as_u64().map(Duration::from_millis);
                kv.set(&key, input["value"].clone(), ttl).await.map_err(kv_error)?;
                Ok(json!({ "set": key }))
            }
            Some("get") => Ok(json!({ "value": kv.get(&key).await.map_err(kv_error)? })),
            Some("delete") => Ok(json!({ "deleted": kv.delete(&key).await.map_err(kv_error)? })),
            Some("list") => {
                let page = kv
                    .list(KvQuery { prefix: key, after: None, limit: 100, keys_only: true })
                    .await
                    .map_err(kv_error)?;
                Ok(json!({ "keys": page.entries.into_iter().map(|e| e.key).collect::<Vec<_>>() }))
            }
            _ => Err(AgentError::new(arcp_core::ErrorCode::INVALID_REQUEST, "unknown op")),
        }
    })
    .unwrap();
    reg
}

fn kv_runtime(store: Arc<MemoryKvStore>) -> Runtime {
    let verifier = StaticBearerVerifier::new()
        .with_token(TOKEN, "alice")
        .with_token(ALICE_TOO, "alice")
        .with_token(OTHER_TOKEN, "bob");
    Runtime::builder(verifier).config(RuntimeConfig::default()).agents(kv_agents()).kv_store(store).build()
}

/// Runs one `kv` job on `c` and returns its result (or the error message).
async fn run(c: &mut Client, input: Value) -> Result<Value, String> {
    c.submit("kv", input);
    let accepted = c.next().await;
    let Message::JobAccepted(a) = &accepted.message else { panic!("{accepted:?}") };
    let job = a.job_id.to_string();
    let events = c.until_terminal(&job).await;
    match &events.last().unwrap().message {
        Message::JobResult(r) => Ok(r.result.clone().unwrap_or(Value::Null)),
        Message::JobError(e) => Err(e.message.clone()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn jobs_of_one_principal_share_keys_and_two_principals_never_see_each_others() {
    let store = Arc::new(MemoryKvStore::default());
    let rt = kv_runtime(store.clone());
    let mut alice = Client::connect(&rt);
    alice.hello_with(TOKEN, None).await;
    let mut bob = Client::connect(&rt);
    bob.hello_with(OTHER_TOKEN, None).await;

    run(&mut alice, json!({"op": "set", "key": "notes/1", "value": {"text": "alice's"}})).await.unwrap();
    run(&mut alice, json!({"op": "set", "key": "notes/2", "value": 2})).await.unwrap();

    // Another job (and another session) of alice sees them.
    let mut alice_too = Client::connect(&rt);
    alice_too.hello_with(ALICE_TOO, None).await;
    assert_eq!(
        run(&mut alice_too, json!({"op": "get", "key": "notes/1"})).await.unwrap(),
        json!({"value": {"text": "alice's"}})
    );

    // Bob's jobs see none of them: get, list, delete.
    assert_eq!(run(&mut bob, json!({"op": "get", "key": "notes/1"})).await.unwrap(), json!({"value": null}));
    assert_eq!(run(&mut bob, json!({"op": "list", "key": "notes/"})).await.unwrap(), json!({"keys": []}));
    assert_eq!(run(&mut bob, json!({"op": "list", "key": ""})).await.unwrap(), json!({"keys": []}));
    assert_eq!(run(&mut bob, json!({"op": "delete", "key": "notes/1"})).await.unwrap(), json!({"deleted": false}));
    // Bob's own entry under the same key is his alone.
    run(&mut bob, json!({"op": "set", "key": "notes/1", "value": "bob's"})).await.unwrap();
    assert_eq!(run(&mut bob, json!({"op": "get", "key": "notes/1"})).await.unwrap(), json!({"value": "bob's"}));
    assert_eq!(
        run(&mut alice, json!({"op": "list", "key": "notes/"})).await.unwrap(),
        json!({"keys": ["notes/1", "notes/2"]})
    );
    assert_eq!(
        run(&mut alice, json!({"op": "get", "key": "notes/1"})).await.unwrap(),
        json!({"value": {"text": "alice's"}})
    );
    assert_eq!(run(&mut bob, json!({"op": "delete", "key": "notes/1"})).await.unwrap(), json!({"deleted": true}));
    assert_eq!(
        run(&mut alice, json!({"op": "get", "key": "notes/1"})).await.unwrap(),
        json!({"value": {"text": "alice's"}})
    );

    // The entries sit in the runtime's store under the principals' names.
    assert!(store.get("alice", "notes/2", 0).await.unwrap().is_some());
    assert!(store.get("bob", "notes/1", 0).await.unwrap().is_none());

    // A refused key is a typed error the agent can report.
    let long = "k".repeat(513);
    let err = run(&mut alice, json!({"op": "set", "key": long, "value": 1})).await.unwrap_err();
    assert!(err.contains("513 bytes"), "{err}");
}

#[tokio::test]
async fn the_sweeper_purges_expired_entries() {
    let store = Arc::new(MemoryKvStore::default());
    let rt = kv_runtime(store.clone());
    let mut alice = Client::connect(&rt);
    alice.hello_with(TOKEN, None).await;
    // Expires a millisecond after it was set: gone by the time the sweeper runs.
    run(&mut alice, json!({"op": "set", "key": "brief", "value": 1, "ttl_ms": 1})).await.unwrap();
    run(&mut alice, json!({"op": "set", "key": "kept", "value": 2})).await.unwrap();
    assert_eq!(store.len(), 2);
    // Wait until the wall clock has moved past the expiry (no timing assertion: just progress).
    while store.list("alice", KvQuery::default(), now_millis()).await.unwrap().entries.len() == 2 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    rt.sweep().await;
    assert_eq!(store.len(), 1, "the expired entry was not purged");
    assert!(store.get("alice", "kept", now_millis()).await.unwrap().is_some());
}

fn now_millis() -> u64 {
    u64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}
