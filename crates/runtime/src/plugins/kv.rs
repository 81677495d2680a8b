//! `storage.kv`: the [`KvStore`] trait (namespaced JSON values), the bounded [`MemoryKv`],
//! the durable [`RuntimeKv`] over the runtime's principal-scoped store, and the [`Storage`]
//! surface, which always uses the plugin's own name as the namespace (filtered server-side: a
//! plugin cannot name another's namespace).
//!
//! Both stores keep the same limits: keys of 1..=[`MAX_KEY_BYTES`] bytes without NUL, values
//! of at most [`MAX_VALUE_BYTES`] encoded, at most [`MAX_KEYS_PER_NAMESPACE`] keys per
//! plugin, listings of at most [`MAX_LIST`] entries.
//!
//! [`RuntimeKv`] stores a plugin's namespace under the reserved principal
//! [`plugin_principal`]`(name)` = `"\u{1}plugin:<name>"` of the runtime's
//! [`arcp_server::store::KvStore`] (memory, SQLite or PostgreSQL: what `arcp serve --store`
//! opened), so plugin records survive a restart on a durable store. The leading U+0001 is a
//! control character, which no API key's principal may hold (`arcp keys` refuses them): no
//! agent's `JobContext::kv` can read or write a plugin's entries.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arcp_core::Clock as _;
use arcp_server::store::{KvError as StoreKvError, KvQuery, KvStore as PrincipalKvStore};
use async_trait::async_trait;
use parking_lot::Mutex;
use plugin_api::Capability;
use serde_json::Value;

use super::PluginError;
use super::context::PluginContext;

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// The largest value, serialised as JSON, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// The most keys one namespace holds in [`MemoryKv`].
pub const MAX_KEYS_PER_NAMESPACE: usize = 10_000;
/// The most entries one `list` returns.
pub const MAX_LIST: usize = 1_000;

/// The reserved principal prefix of plugin namespaces in the runtime's store (see the module
/// docs): a control character, so no API key's principal starts with it.
pub const PLUGIN_PRINCIPAL_PREFIX: &str = "\u{1}plugin:";

/// The principal under which [`RuntimeKv`] keeps `plugin`'s namespace.
pub fn plugin_principal(plugin: &str) -> String {
    format!("{PLUGIN_PRINCIPAL_PREFIX}{plugin}")
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The key is empty, longer than [`MAX_KEY_BYTES`] or holds a NUL character.
    #[error("a key is 1..={MAX_KEY_BYTES} bytes, without NUL")]
    InvalidKey,
    /// The value is larger than [`MAX_VALUE_BYTES`].
    #[error("the value is {0} bytes, more than {MAX_VALUE_BYTES}")]
    ValueTooLarge(usize),
    /// The namespace holds [`MAX_KEYS_PER_NAMESPACE`] keys already.
    #[error("the namespace is full ({MAX_KEYS_PER_NAMESPACE} keys): delete some first")]
    Full,
    /// The backing store failed.
    #[error("the store failed: {0}")]
    Backend(String),
}

/// A namespaced key/value store of JSON values. Keys list in byte order.
#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// The value of `key`, if any.
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Value>, KvError>;
    /// Sets `key` to `value`.
    async fn set(&self, namespace: &str, key: &str, value: Value) -> Result<(), KvError>;
    /// Deletes `key`; whether it existed.
    async fn delete(&self, namespace: &str, key: &str) -> Result<bool, KvError>;
    /// Up to `limit` entries whose key starts with `prefix`, in key order.
    async fn list(&self, namespace: &str, prefix: &str, limit: usize) -> Result<Vec<(String, Value)>, KvError>;
}

/// The in-memory store: bounded per namespace (keys, value size); lost at exit.
#[derive(Debug, Default)]
pub struct MemoryKv {
    spaces: Mutex<HashMap<String, BTreeMap<String, Value>>>,
}

fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES || key.contains('\0') { Err(KvError::InvalidKey) } else { Ok(()) }
}

/// Checks the value's encoded size.
fn check_value(value: &Value) -> Result<(), KvError> {
    let size = serde_json::to_vec(value).map_err(|e| KvError::Backend(e.to_string()))?.len();
    if size > MAX_VALUE_BYTES { Err(KvError::ValueTooLarge(size)) } else { Ok(()) }
}

#[async_trait]
impl KvStore for MemoryKv {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Value>, KvError> {
        check_key(key)?;
        Ok(self.spaces.lock().get(namespace).and_then(|s| s.get(key)).cloned())
    }

    async fn set(&self, namespace: &str, key: &str, value: Value) -> Result<(), KvError> {
        check_key(key)?;
        check_value(&value)?;
        let mut spaces = self.spaces.lock();
        let space = spaces.entry(namespace.to_owned()).or_default();
        if !space.contains_key(key) && space.len() >= MAX_KEYS_PER_NAMESPACE {
            return Err(KvError::Full);
        }
        space.insert(key.to_owned(), value);
        Ok(())
    }

    async fn delete(&self, namespace: &str, key: &str) -> Result<bool, KvError> {
        check_key(key)?;
        Ok(self.spaces.lock().get_mut(namespace).is_some_and(|s| s.remove(key).is_some()))
    }

    async fn list(&self, namespace: &str, prefix: &str, limit: usize) -> Result<Vec<(String, Value)>, KvError> {
        let spaces = self.spaces.lock();
        let Some(space) = spaces.get(namespace) else { return Ok(Vec::new()) };
        Ok(space
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit.min(MAX_LIST))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// The plugins' store over the runtime's principal-scoped key/value store (see the module
/// docs): one reserved principal per plugin, no TTLs, the plugin limits checked here.
///
/// The key count of a namespace is counted once (a keys-only listing) and then kept per
/// process, writes of one namespace serialised; several runtime nodes sharing a PostgreSQL
/// store each keep their own count, so the cap is per node there.
pub struct RuntimeKv {
    store: Arc<dyn PrincipalKvStore>,
    /// Per namespace: the live key count, once known (`None`: not counted yet).
    counts: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<usize>>>>>,
}

impl std::fmt::Debug for RuntimeKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeKv").finish_non_exhaustive()
    }
}

impl RuntimeKv {
    /// Plugin storage in `store` (the runtime's: `RuntimeBuilder::kv_store`).
    pub fn new(store: Arc<dyn PrincipalKvStore>) -> Self {
        Self { store, counts: Mutex::new(HashMap::new()) }
    }

    fn now() -> u64 {
        arcp_core::SystemClock.now_millis()
    }

    fn count_slot(&self, namespace: &str) -> Arc<tokio::sync::Mutex<Option<usize>>> {
        self.counts.lock().entry(namespace.to_owned()).or_default().clone()
    }

    /// Counts the live keys of `principal`, a page at a time.
    async fn count(&self, principal: &str) -> Result<usize, KvError> {
        let mut query = KvQuery { keys_only: true, ..KvQuery::prefix("", 0) };
        let mut n = 0;
        loop {
            let page = self.store.list(principal, query.clone(), Self::now()).await.map_err(from_store)?;
            n += page.entries.len();
            match page.next_cursor {
                Some(cursor) => query.after = Some(cursor),
                None => return Ok(n),
            }
        }
    }
}

/// The runtime store's errors as plugin storage errors.
fn from_store(e: StoreKvError) -> KvError {
    match e {
        StoreKvError::EmptyKey | StoreKvError::NulInKey | StoreKvError::KeyTooLong { .. } => KvError::InvalidKey,
        StoreKvError::ValueTooLarge { len, .. } => KvError::ValueTooLarge(len),
        other => KvError::Backend(other.to_string()),
    }
}

#[async_trait]
impl KvStore for RuntimeKv {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Value>, KvError> {
        check_key(key)?;
        let entry = self.store.get(&plugin_principal(namespace), key, Self::now()).await.map_err(from_store)?;
        Ok(entry.and_then(|e| e.value))
    }

    async fn set(&self, namespace: &str, key: &str, value: Value) -> Result<(), KvError> {
        check_key(key)?;
        check_value(&value)?;
        let principal = plugin_principal(namespace);
        let slot = self.count_slot(namespace);
        let mut count = slot.lock().await;
        let n = match *count {
            Some(n) => n,
            None => self.count(&principal).await?,
        };
        *count = Some(n);
        let exists = self.store.get(&principal, key, Self::now()).await.map_err(from_store)?.is_some();
        if !exists && n >= MAX_KEYS_PER_NAMESPACE {
            return Err(KvError::Full);
        }
        self.store.set(&principal, key, value, None, Self::now()).await.map_err(from_store)?;
        if !exists {
            *count = Some(n + 1);
        }
        Ok(())
    }

    async fn delete(&self, namespace: &str, key: &str) -> Result<bool, KvError> {
        check_key(key)?;
        let slot = self.count_slot(namespace);
        let mut count = slot.lock().await;
        let removed = self.store.delete(&plugin_principal(namespace), key, Self::now()).await.map_err(from_store)?;
        if removed && let Some(n) = count.as_mut() {
            *n = n.saturating_sub(1);
        }
        Ok(removed)
    }

    async fn list(&self, namespace: &str, prefix: &str, limit: usize) -> Result<Vec<(String, Value)>, KvError> {
        let limit = limit.min(MAX_LIST);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let page = self
            .store
            .list(&plugin_principal(namespace), KvQuery::prefix(prefix, limit), Self::now())
            .await
            .map_err(from_store)?;
        Ok(page.entries.into_iter().filter_map(|e| Some((e.key, e.value?))).collect())
    }
}

/// The `storage.kv` surface: the plugin's own namespace.
#[derive(Debug)]
pub struct Storage<'a> {
    pub(crate) ctx: &'a PluginContext,
}

impl Storage<'_> {
    fn ns(&self) -> &str {
        self.ctx.plugin().as_str()
    }

    /// The value of `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Value>, PluginError> {
        self.ctx.check(Capability::StorageKv)?;
        Ok(self.ctx.inner.shared.kv.get(self.ns(), key).await?)
    }

    /// Sets `key`.
    pub async fn set(&self, key: &str, value: Value) -> Result<(), PluginError> {
        self.ctx.check(Capability::StorageKv)?;
        Ok(self.ctx.inner.shared.kv.set(self.ns(), key, value).await?)
    }

    /// Deletes `key`; whether it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, PluginError> {
        self.ctx.check(Capability::StorageKv)?;
        Ok(self.ctx.inner.shared.kv.delete(self.ns(), key).await?)
    }

    /// Up to `limit` (≤ [`MAX_LIST`]) entries whose key starts with `prefix`, in key order.
    pub async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<(String, Value)>, PluginError> {
        self.ctx.check(Capability::StorageKv)?;
        Ok(self.ctx.inner.shared.kv.list(self.ns(), prefix, limit).await?)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn namespaces_are_separate_and_bounded() {
        let kv = MemoryKv::default();
        kv.set("a", "k1", json!(1)).await.unwrap();
        kv.set("a", "k2", json!(2)).await.unwrap();
        kv.set("b", "k1", json!("b")).await.unwrap();
        assert_eq!(kv.get("a", "k1").await.unwrap(), Some(json!(1)));
        assert_eq!(kv.get("b", "k1").await.unwrap(), Some(json!("b")));
        assert_eq!(kv.list("a", "k", 10).await.unwrap().len(), 2);
        assert_eq!(kv.list("a", "k2", 10).await.unwrap(), vec![("k2".to_owned(), json!(2))]);
        assert!(kv.delete("a", "k1").await.unwrap());
        assert!(!kv.delete("a", "k1").await.unwrap());
        assert_eq!(kv.set("a", "", json!(1)).await, Err(KvError::InvalidKey));
        let big = json!("x".repeat(MAX_VALUE_BYTES));
        assert!(matches!(kv.set("a", "big", big).await, Err(KvError::ValueTooLarge(_))));
        for i in 0..MAX_KEYS_PER_NAMESPACE {
            kv.set("c", &format!("{i:06}"), json!(i)).await.unwrap();
        }
        assert_eq!(kv.set("c", "one-more", json!(0)).await, Err(KvError::Full));
        kv.set("c", "000001", json!("replaced")).await.unwrap();
        assert_eq!(kv.list("c", "", usize::MAX).await.unwrap().len(), MAX_LIST);
    }
}
