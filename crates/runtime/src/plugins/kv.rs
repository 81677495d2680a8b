//! `storage.kv`: the [`KvStore`] trait (namespaced JSON values; a durable implementation can
//! come later behind the same trait), the bounded [`MemoryKv`], and the [`Storage`] surface,
//! which always uses the plugin's own name as the namespace (filtered server-side: a plugin
//! cannot name another's namespace).

use std::collections::{BTreeMap, HashMap};

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

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The key is empty or longer than [`MAX_KEY_BYTES`].
    #[error("a key is 1..={MAX_KEY_BYTES} bytes")]
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
    if key.is_empty() || key.len() > MAX_KEY_BYTES { Err(KvError::InvalidKey) } else { Ok(()) }
}

#[async_trait]
impl KvStore for MemoryKv {
    async fn get(&self, namespace: &str, key: &str) -> Result<Option<Value>, KvError> {
        check_key(key)?;
        Ok(self.spaces.lock().get(namespace).and_then(|s| s.get(key)).cloned())
    }

    async fn set(&self, namespace: &str, key: &str, value: Value) -> Result<(), KvError> {
        check_key(key)?;
        let size = serde_json::to_vec(&value).map_err(|e| KvError::Backend(e.to_string()))?.len();
        if size > MAX_VALUE_BYTES {
            return Err(KvError::ValueTooLarge(size));
        }
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
