//! [`MemoryKeyStore`]: API keys in the process's memory (tests, `--store memory`), bounded.

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{ApiKeyStore, KeyDigest, KeyError, KeyRecord, Revoked, digest_eq};

/// API keys in memory, lost when the process exits. Holds at most
/// [`MemoryKeyStore::DEFAULT_MAX_KEYS`] keys (or the cap given to
/// [`with_max_keys`](MemoryKeyStore::with_max_keys)); revoked keys count.
#[derive(Debug)]
pub struct MemoryKeyStore {
    keys: Mutex<Vec<KeyRecord>>,
    max_keys: usize,
}

impl Default for MemoryKeyStore {
    fn default() -> Self {
        MemoryKeyStore::new()
    }
}

impl MemoryKeyStore {
    /// The default cap.
    pub const DEFAULT_MAX_KEYS: usize = 10_000;

    /// An empty store with the default cap.
    pub fn new() -> MemoryKeyStore {
        MemoryKeyStore::with_max_keys(MemoryKeyStore::DEFAULT_MAX_KEYS)
    }

    /// An empty store holding at most `max_keys` keys.
    pub fn with_max_keys(max_keys: usize) -> MemoryKeyStore {
        MemoryKeyStore { keys: Mutex::new(Vec::new()), max_keys }
    }

    fn insert_locked(&self, keys: &mut Vec<KeyRecord>, record: &KeyRecord) -> Result<(), KeyError> {
        if keys.iter().any(|k| k.id == record.id || digest_eq(&k.digest, &record.digest)) {
            return Err(KeyError::Duplicate);
        }
        if keys.len() >= self.max_keys {
            return Err(KeyError::Full { max: self.max_keys });
        }
        keys.push(record.clone());
        Ok(())
    }
}

#[async_trait]
impl ApiKeyStore for MemoryKeyStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), KeyError> {
        self.insert_locked(&mut self.keys.lock(), record)
    }

    async fn insert_first(&self, record: &KeyRecord) -> Result<bool, KeyError> {
        let mut keys = self.keys.lock();
        if !keys.is_empty() {
            return Ok(false);
        }
        self.insert_locked(&mut keys, record).map(|()| true)
    }

    async fn list(&self) -> Result<Vec<KeyRecord>, KeyError> {
        let mut all = self.keys.lock().clone();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    async fn find(&self, digest: &KeyDigest) -> Result<Option<KeyRecord>, KeyError> {
        // Every entry is compared (in constant time), so the time taken does not depend on
        // where, or whether, the key is found.
        let keys = self.keys.lock();
        let mut found = None;
        for k in keys.iter() {
            if digest_eq(&k.digest, digest) && found.is_none() {
                found = Some(k.clone());
            }
        }
        Ok(found)
    }

    async fn revoke(&self, id: &str, now: u64) -> Result<Revoked, KeyError> {
        let mut keys = self.keys.lock();
        let key = keys.iter_mut().find(|k| k.id == id).ok_or_else(|| KeyError::NotFound(id.to_owned()))?;
        if key.revoked_at.is_some() {
            return Ok(Revoked::Already(key.clone()));
        }
        key.revoked_at = Some(now);
        Ok(Revoked::Now(key.clone()))
    }
}
