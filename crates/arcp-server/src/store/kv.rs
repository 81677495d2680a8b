//! The principal-scoped key-value store agents reach through
//! [`JobContext::kv`](crate::JobContext::kv): JSON values under UTF-8 keys, each principal in
//! its own namespace, with an optional sliding TTL per key.
//!
//! Every method takes the principal: no call can name a key without naming whose key it is,
//! so two principals never see (read, list, overwrite or delete) each other's keys.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::StoreError;

/// The longest key, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// The largest value, as encoded JSON bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// The most entries one [`KvStore::list`] call returns (a larger `limit` is lowered to it).
pub const MAX_LIST_LIMIT: usize = 1000;
/// The entry cap of a [`MemoryKvStore::default`].
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// Why a key-value operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KvError {
    /// The key is empty.
    #[error("the key is empty")]
    EmptyKey,
    /// The key holds a NUL character (durable stores cannot keep it).
    #[error("the key holds a NUL character")]
    NulInKey,
    /// The key is longer than [`MAX_KEY_BYTES`].
    #[error("the key is {len} bytes long, the most is {max}")]
    KeyTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The encoded value is larger than [`MAX_VALUE_BYTES`].
    #[error("the value is {len} bytes encoded, the most is {max}")]
    ValueTooLarge {
        /// Its encoded length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq)]
pub struct KvEntry {
    /// Its key.
    pub key: String,
    /// Its value (`None` only in a `keys_only` listing).
    pub value: Option<Value>,
    /// When it expires (Unix milliseconds), if it has a TTL.
    pub expires_at_millis: Option<u64>,
}

/// What [`KvStore::list`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvQuery {
    /// Only keys starting with this (empty: every key).
    pub prefix: String,
    /// Only keys after this one (the previous page's `next_cursor`).
    pub after: Option<String>,
    /// The most entries (0 or above [`MAX_LIST_LIMIT`]: [`MAX_LIST_LIMIT`]).
    pub limit: usize,
    /// Leave the values out.
    pub keys_only: bool,
}

impl KvQuery {
    /// Every key starting with `prefix`, a page of up to `limit`.
    pub fn prefix(prefix: impl Into<String>, limit: usize) -> KvQuery {
        KvQuery { prefix: prefix.into(), after: None, limit, keys_only: false }
    }

    /// The limit actually applied.
    pub fn effective_limit(&self) -> usize {
        if self.limit == 0 { MAX_LIST_LIMIT } else { self.limit.min(MAX_LIST_LIMIT) }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KvPage {
    /// Entries in ascending key order (byte order of the UTF-8 keys).
    pub entries: Vec<KvEntry>,
    /// Pass as [`KvQuery::after`] for the next page; `None`: this was the last one.
    pub next_cursor: Option<String>,
}

/// A principal-scoped key-value store. Expired entries are never returned; a `get` that
/// finds an entry with a TTL slides its expiry to `now + ttl`. Times are Unix milliseconds.
#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// `principal`'s entry under `key`, if present and not expired (sliding its TTL).
    async fn get(&self, principal: &str, key: &str, now_millis: u64) -> Result<Option<KvEntry>, KvError>;

    /// Stores `value` under `key` for `principal` (replacing any), expiring `ttl` after its
    /// last `set` or `get` (`None`: never).
    async fn set(
        &self,
        principal: &str,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        now_millis: u64,
    ) -> Result<(), KvError>;

    /// Removes `principal`'s `key`; `true` if a live entry was removed.
    async fn delete(&self, principal: &str, key: &str, now_millis: u64) -> Result<bool, KvError>;

    /// A page of `principal`'s live entries matching `query`, in key order. Listing does not
    /// slide TTLs.
    async fn list(&self, principal: &str, query: KvQuery, now_millis: u64) -> Result<KvPage, KvError>;

    /// Removes every entry expired at `now_millis`; returns how many.
    async fn purge_expired(&self, now_millis: u64) -> Result<usize, KvError>;
}

/// Checks a key against the limits.
pub fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() {
        return Err(KvError::EmptyKey);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::KeyTooLong { len: key.len(), max: MAX_KEY_BYTES });
    }
    if key.contains('\0') {
        return Err(KvError::NulInKey);
    }
    Ok(())
}

/// Checks a key and a value against the limits; returns the encoded value.
pub fn check_entry(key: &str, value: &Value) -> Result<String, KvError> {
    check_key(key)?;
    let encoded = serde_json::to_string(value)
        .map_err(|e| KvError::Store(StoreError::Unavailable(format!("cannot encode the value: {e}"))))?;
    if encoded.len() > MAX_VALUE_BYTES {
        return Err(KvError::ValueTooLarge { len: encoded.len(), max: MAX_VALUE_BYTES });
    }
    Ok(encoded)
}

/// A TTL in milliseconds (at least 1, saturated).
pub fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Whether a key is a candidate of `query` (prefix and cursor).
fn after_cursor(query: &KvQuery, key: &str) -> bool {
    query.after.as_deref().is_none_or(|after| key > after)
}

#[derive(Debug)]
struct Slot {
    value: Value,
    ttl_ms: Option<u64>,
    expires_at: Option<u64>,
    /// Its position in the LRU order.
    stamp: u64,
}

impl Slot {
    fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

#[derive(Debug, Default)]
struct MemoryState {
    by_principal: HashMap<String, BTreeMap<String, Slot>>,
    /// stamp → (principal, key): the least recently used entry first.
    lru: BTreeMap<u64, (String, String)>,
    next_stamp: u64,
}

impl MemoryState {
    fn stamp(&mut self) -> u64 {
        self.next_stamp += 1;
        self.next_stamp
    }

    fn remove(&mut self, principal: &str, key: &str) -> Option<Slot> {
        let keys = self.by_principal.get_mut(principal)?;
        let slot = keys.remove(key)?;
        if keys.is_empty() {
            self.by_principal.remove(principal);
        }
        self.lru.remove(&slot.stamp);
        Some(slot)
    }
}

/// The in-memory [`KvStore`]: at most `max_entries` entries over all principals; a `set`
/// beyond the cap evicts the least recently used entry (a `get` or `set` uses an entry).
#[derive(Debug)]
pub struct MemoryKvStore {
    state: parking_lot::Mutex<MemoryState>,
    max_entries: usize,
}

impl Default for MemoryKvStore {
    fn default() -> Self {
        MemoryKvStore::with_max_entries(DEFAULT_MAX_ENTRIES)
    }
}

impl MemoryKvStore {
    /// A store keeping at most `max_entries` entries (at least 1).
    pub fn with_max_entries(max_entries: usize) -> Self {
        MemoryKvStore { state: parking_lot::Mutex::new(MemoryState::default()), max_entries: max_entries.max(1) }
    }

    /// How many entries it holds (expired ones not yet purged included).
    pub fn len(&self) -> usize {
        self.state.lock().lru.len()
    }

    /// Whether it holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl KvStore for MemoryKvStore {
    async fn get(&self, principal: &str, key: &str, now_millis: u64) -> Result<Option<KvEntry>, KvError> {
        check_key(key)?;
        let mut state = self.state.lock();
        let expired = match state.by_principal.get(principal).and_then(|keys| keys.get(key)) {
            None => return Ok(None),
            Some(slot) => slot.expired(now_millis),
        };
        if expired {
            state.remove(principal, key);
            return Ok(None);
        }
        let stamp = state.stamp();
        let Some(slot) = state.by_principal.get_mut(principal).and_then(|keys| keys.get_mut(key)) else {
            return Ok(None);
        };
        let old = std::mem::replace(&mut slot.stamp, stamp);
        if let Some(ttl) = slot.ttl_ms {
            slot.expires_at = Some(now_millis.saturating_add(ttl));
        }
        let entry =
            KvEntry { key: key.to_owned(), value: Some(slot.value.clone()), expires_at_millis: slot.expires_at };
        state.lru.remove(&old);
        state.lru.insert(stamp, (principal.to_owned(), key.to_owned()));
        Ok(Some(entry))
    }

    async fn set(
        &self,
        principal: &str,
        key: &str,
        value: Value,
        ttl: Option<Duration>,
        now_millis: u64,
    ) -> Result<(), KvError> {
        check_entry(key, &value)?;
        let ttl_ms = ttl.map(ttl_millis);
        let mut state = self.state.lock();
        state.remove(principal, key);
        while state.lru.len() >= self.max_entries {
            let Some((_, (p, k))) = state.lru.pop_first() else { break };
            if let Some(keys) = state.by_principal.get_mut(&p) {
                keys.remove(&k);
                if keys.is_empty() {
                    state.by_principal.remove(&p);
                }
            }
        }
        let stamp = state.stamp();
        let slot = Slot { value, ttl_ms, expires_at: ttl_ms.map(|t| now_millis.saturating_add(t)), stamp };
        state.by_principal.entry(principal.to_owned()).or_default().insert(key.to_owned(), slot);
        state.lru.insert(stamp, (principal.to_owned(), key.to_owned()));
        Ok(())
    }

    async fn delete(&self, principal: &str, key: &str, now_millis: u64) -> Result<bool, KvError> {
        check_key(key)?;
        Ok(self.state.lock().remove(principal, key).is_some_and(|slot| !slot.expired(now_millis)))
    }

    async fn list(&self, principal: &str, query: KvQuery, now_millis: u64) -> Result<KvPage, KvError> {
        let limit = query.effective_limit();
        let state = self.state.lock();
        let Some(keys) = state.by_principal.get(principal) else { return Ok(KvPage::default()) };
        let start = match &query.after {
            Some(after) if after.as_str() >= query.prefix.as_str() => Bound::Excluded(after.as_str()),
            _ => Bound::Included(query.prefix.as_str()),
        };
        let mut entries = Vec::new();
        let mut more = false;
        for (key, slot) in keys.range::<str, _>((start, Bound::Unbounded)) {
            if !key.starts_with(&query.prefix) {
                break;
            }
            if !after_cursor(&query, key) || slot.expired(now_millis) {
                continue;
            }
            if entries.len() == limit {
                more = true;
                break;
            }
            entries.push(KvEntry {
                key: key.clone(),
                value: if query.keys_only { None } else { Some(slot.value.clone()) },
                expires_at_millis: slot.expires_at,
            });
        }
        let next_cursor = if more { entries.last().map(|e| e.key.clone()) } else { None };
        Ok(KvPage { entries, next_cursor })
    }

    async fn purge_expired(&self, now_millis: u64) -> Result<usize, KvError> {
        let mut state = self.state.lock();
        let expired: Vec<(String, String)> = state
            .by_principal
            .iter()
            .flat_map(|(p, keys)| {
                keys.iter().filter(|(_, s)| s.expired(now_millis)).map(move |(k, _)| (p.clone(), k.clone()))
            })
            .collect();
        for (p, k) in &expired {
            state.remove(p, k);
        }
        Ok(expired.len())
    }
}
