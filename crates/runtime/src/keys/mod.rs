//! API keys: the bearer tokens `arcp serve` accepts by default, kept in the store named by
//! `--store` and managed with `arcp keys create|list|revoke`.
//!
//! A key is `arcp_sk_` followed by 52 lowercase base32 characters (256 bits from the OS
//! CSPRNG). It is shown once, when it is created; a store keeps only
//!
//! - its **SHA-256 digest** (the lookup key). A fast, unsalted hash is the right tool here: the
//!   key is 256 uniformly random bits, so there is nothing to brute-force, and a slow
//!   password hash (argon2, bcrypt) would only make every handshake expensive;
//! - its **display prefix**, the first [`PREFIX_LEN`] characters (`arcp_sk_` and 8 more), so
//!   operators can tell keys apart;
//! - an **id** (`key_…`), the **principal** it authenticates as, an optional **label**, when it
//!   was **created**, when it **expires** (optional) and when it was **revoked** (if it was).
//!
//! [`KeyVerifier`] is the [`BearerVerifier`] over an [`ApiKeyStore`]: every verification
//! reads the store (no cache), so a revocation or an expiry is effective for the next
//! `session.hello` or HTTP request, whichever process wrote it (`arcp keys revoke` runs as a
//! separate process on the same SQLite file or PostgreSQL database). Sessions already open
//! are not closed by a revocation; they cannot be resumed with the revoked key.
//!
//! Stores: [`MemoryKeyStore`] (one process; bounded), [`SqliteKeyStore`] (table `api_keys`,
//! migrated as component [`COMPONENT`], usually in the file of the ARCP stores) and
//! [`PgKeyStore`] (the same table in the PostgreSQL database and schema of the ARCP stores).

mod memory;
mod postgres;
mod sqlite;

use std::fmt;
use std::sync::Arc;

use arcp_core::{Clock, Entropy, ErrorCode};
use arcp_server::{BearerVerifier, Identity};
use async_trait::async_trait;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

pub use memory::MemoryKeyStore;
pub use postgres::PgKeyStore;
pub use sqlite::SqliteKeyStore;

/// The migration component of the key table (SQLite and PostgreSQL).
pub const COMPONENT: &str = "keys";

/// What every API key starts with.
pub const KEY_PREFIX: &str = "arcp_sk_";

/// How many random bytes a key carries (256 bits).
const KEY_BYTES: usize = 32;

/// How many characters of a key are kept and shown: `arcp_sk_` and 8 random characters
/// (40 bits; the other 216 stay secret).
pub const PREFIX_LEN: usize = KEY_PREFIX.len() + 8;

/// What every key id starts with.
pub const ID_PREFIX: &str = "key_";

/// The longest principal a key may name, in bytes.
pub const MAX_PRINCIPAL_BYTES: usize = 256;

/// The longest label a key may carry, in bytes.
pub const MAX_LABEL_BYTES: usize = 200;

/// SHA-256 of a key: the only form in which a store keeps it.
pub type KeyDigest = [u8; 32];

/// The lowercase RFC 4648 base32 alphabet (no padding): unambiguous, URL- and shell-safe.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Lowercase base32 of `bytes`, without padding.
fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// An API key (the secret). Its `Debug` shows only the display prefix.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A fresh key from `entropy` (the OS CSPRNG outside tests).
    pub fn generate(entropy: &dyn Entropy) -> Result<ApiKey, KeyError> {
        let mut bytes = [0u8; KEY_BYTES];
        entropy.fill(&mut bytes).map_err(|e| KeyError::Entropy(e.to_string()))?;
        Ok(ApiKey(format!("{KEY_PREFIX}{}", base32(&bytes))))
    }

    /// The key, to show once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its SHA-256 digest.
    pub fn digest(&self) -> KeyDigest {
        digest(&self.0)
    }

    /// Its display prefix (the first [`PREFIX_LEN`] characters).
    pub fn display_prefix(&self) -> &str {
        self.0.get(..PREFIX_LEN).unwrap_or(&self.0)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…)", self.display_prefix())
    }
}

/// SHA-256 of a presented token.
pub fn digest(token: &str) -> KeyDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `token` has the shape of an API key (`arcp_sk_` and 32 to 128 lowercase letters
/// or digits). Anything else is refused without asking the store.
pub fn looks_like_key(token: &str) -> bool {
    token.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        (32..=128).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// A stored key: everything but the key itself.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Its id (`key_` and 16 base32 characters), for `arcp keys revoke`.
    pub id: String,
    /// The first [`PREFIX_LEN`] characters of the key.
    pub prefix: String,
    /// SHA-256 of the key.
    pub digest: KeyDigest,
    /// The principal the key authenticates as.
    pub principal: String,
    /// A free-form note ("CI", "alice's laptop").
    pub label: Option<String>,
    /// When it was created (milliseconds since the Unix epoch).
    pub created_at: u64,
    /// When it stops working (milliseconds since the Unix epoch), if ever.
    pub expires_at: Option<u64>,
    /// When it was revoked (milliseconds since the Unix epoch), if it was.
    pub revoked_at: Option<u64>,
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("id", &self.id)
            .field("prefix", &self.prefix)
            .field("principal", &self.principal)
            .field("label", &self.label)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// Whether a key works at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// It authenticates.
    Active,
    /// Its expiry has passed.
    Expired,
    /// It was revoked (whatever its expiry).
    Revoked,
}

impl KeyStatus {
    /// `active`, `expired` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Expired => "expired",
            KeyStatus::Revoked => "revoked",
        }
    }
}

impl KeyRecord {
    /// The key's status at `now` (a key expires at its `expires_at`, inclusive).
    pub fn status(&self, now: u64) -> KeyStatus {
        if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if self.expires_at.is_some_and(|at| at <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }

    /// Whether `selector` names this key: its id or its display prefix, exactly.
    pub fn matches(&self, selector: &str) -> bool {
        self.id == selector || self.prefix == selector
    }
}

/// What a new key is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    /// The principal it authenticates as.
    pub principal: String,
    /// A free-form note.
    pub label: Option<String>,
    /// When it stops working (milliseconds since the Unix epoch), if ever.
    pub expires_at: Option<u64>,
}

impl NewKey {
    /// A key for `principal` without label or expiry.
    pub fn for_principal(principal: impl Into<String>) -> NewKey {
        NewKey { principal: principal.into(), label: None, expires_at: None }
    }

    /// Checks the fields and mints the key and its record at `now`.
    pub fn mint(self, entropy: &dyn Entropy, now: u64) -> Result<(ApiKey, KeyRecord), KeyError> {
        check_text("principal", &self.principal, MAX_PRINCIPAL_BYTES)?;
        if self.principal.is_empty() {
            return Err(KeyError::Invalid("the principal must not be empty".into()));
        }
        if let Some(label) = &self.label {
            check_text("label", label, MAX_LABEL_BYTES)?;
        }
        if let Some(at) = self.expires_at
            && at <= now
        {
            return Err(KeyError::Invalid(format!(
                "the expiry {} is not in the future",
                arcp_core::Timestamp::from_millis(at)
            )));
        }
        let key = ApiKey::generate(entropy)?;
        let mut id = [0u8; 10];
        entropy.fill(&mut id).map_err(|e| KeyError::Entropy(e.to_string()))?;
        let record = KeyRecord {
            id: format!("{ID_PREFIX}{}", base32(&id)),
            prefix: key.display_prefix().to_owned(),
            digest: key.digest(),
            principal: self.principal,
            label: self.label,
            created_at: now,
            expires_at: self.expires_at,
            revoked_at: None,
        };
        Ok((key, record))
    }
}

/// Refuses a `what` longer than `max` bytes or holding control characters.
fn check_text(what: &str, value: &str, max: usize) -> Result<(), KeyError> {
    if value.len() > max {
        return Err(KeyError::Invalid(format!("the {what} is longer than {max} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(KeyError::Invalid(format!("the {what} must not contain control characters")));
    }
    Ok(())
}

/// What [`ApiKeyStore::revoke`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// The key is revoked from now on.
    Now(KeyRecord),
    /// It already was (its record, with the first revocation time).
    Already(KeyRecord),
}

impl Revoked {
    /// The key's record after the call.
    pub fn record(&self) -> &KeyRecord {
        match self {
            Revoked::Now(r) | Revoked::Already(r) => r,
        }
    }
}

/// Why a key operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key with this id or digest is already stored.
    #[error("a key with this id or digest already exists")]
    Duplicate,
    /// The store holds as many keys as it may (memory store).
    #[error("the key store is full ({max} keys): revoke and delete keys, or use a durable store")]
    Full {
        /// The cap.
        max: usize,
    },
    /// No key has this id or display prefix.
    #[error("no key has the id or prefix {0:?} (see `arcp keys list`)")]
    NotFound(String),
    /// Several keys share this display prefix.
    #[error("{selector:?} is the prefix of several keys ({}): give the key's id", ids.join(", "))]
    Ambiguous {
        /// What was asked for.
        selector: String,
        /// The ids it matches.
        ids: Vec<String>,
    },
    /// A field of a new key is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The random source failed.
    #[error("no random bytes for a key: {0}")]
    Entropy(String),
    /// The store failed (unreachable, corrupt, refused).
    #[error("key store: {0}")]
    Backend(String),
}

/// Where API keys are kept. Implementations: [`MemoryKeyStore`], [`SqliteKeyStore`],
/// [`PgKeyStore`]. Every write is durable (for the durable stores) before the call returns,
/// and visible to every reader of the same store at once.
#[async_trait]
pub trait ApiKeyStore: Send + Sync + 'static {
    /// Stores `record`; [`KeyError::Duplicate`] if its id or digest is already stored.
    async fn insert(&self, record: &KeyRecord) -> Result<(), KeyError>;

    /// Stores `record` only if the store has never held a key (revoked and expired keys
    /// count), atomically: of several processes starting together on one store, exactly one
    /// inserts. Returns whether it did.
    async fn insert_first(&self, record: &KeyRecord) -> Result<bool, KeyError>;

    /// Every key, oldest first (by creation time, then id).
    async fn list(&self) -> Result<Vec<KeyRecord>, KeyError>;

    /// The key whose digest is `digest`, whatever its status.
    async fn find(&self, digest: &KeyDigest) -> Result<Option<KeyRecord>, KeyError>;

    /// Marks the key with id `id` revoked at `now` (a revoked key stays revoked: a second
    /// call returns [`Revoked::Already`] with the first time); [`KeyError::NotFound`] if there
    /// is no such key.
    async fn revoke(&self, id: &str, now: u64) -> Result<Revoked, KeyError>;
}

/// Mints a key for `new` at `now` and stores it.
pub async fn create_key(
    store: &dyn ApiKeyStore,
    new: NewKey,
    entropy: &dyn Entropy,
    now: u64,
) -> Result<(ApiKey, KeyRecord), KeyError> {
    let (key, record) = new.mint(entropy, now)?;
    store.insert(&record).await?;
    Ok((key, record))
}

/// On the first start of a store that has never held a key: mints one for `principal`,
/// stores it, and returns it (to be shown once). `None` once the store holds any key.
pub async fn ensure_first_key(
    store: &dyn ApiKeyStore,
    principal: &str,
    entropy: &dyn Entropy,
    now: u64,
) -> Result<Option<(ApiKey, KeyRecord)>, KeyError> {
    let (key, mut record) = NewKey::for_principal(principal).mint(entropy, now)?;
    record.label = Some("created on first start".into());
    Ok(store.insert_first(&record).await?.then_some((key, record)))
}

/// Revokes the one key whose id or display prefix is `selector` at `now`.
pub async fn revoke_key(store: &dyn ApiKeyStore, selector: &str, now: u64) -> Result<Revoked, KeyError> {
    let selector = selector.trim();
    // A whole key pasted by mistake still names its key (by digest); it is never echoed.
    let matching: Vec<KeyRecord> = if looks_like_key(selector) && selector.len() > PREFIX_LEN {
        store.find(&digest(selector)).await?.into_iter().collect()
    } else {
        store.list().await?.into_iter().filter(|r| r.matches(selector)).collect()
    };
    match matching.as_slice() {
        [] if looks_like_key(selector) && selector.len() > PREFIX_LEN => {
            Err(KeyError::NotFound(format!("{}…", selector.get(..PREFIX_LEN).unwrap_or(selector))))
        }
        [] => Err(KeyError::NotFound(selector.to_owned())),
        [one] => store.revoke(&one.id, now).await,
        several => Err(KeyError::Ambiguous {
            selector: selector.to_owned(),
            ids: several.iter().map(|r| r.id.clone()).collect(),
        }),
    }
}

/// Constant-time equality of a stored digest and a presented one.
fn digest_eq(stored: &KeyDigest, presented: &KeyDigest) -> bool {
    bool::from(stored.ct_eq(presented))
}

/// The [`BearerVerifier`] over an [`ApiKeyStore`]: a key authenticates as its principal while
/// it is neither revoked nor expired. Every call reads the store, so revocations (from any
/// process sharing the store) apply to the next handshake or request.
pub struct KeyVerifier {
    store: Arc<dyn ApiKeyStore>,
    clock: Arc<dyn Clock>,
}

impl KeyVerifier {
    /// A verifier over `store`, telling expiry by `clock`.
    pub fn new(store: Arc<dyn ApiKeyStore>, clock: Arc<dyn Clock>) -> KeyVerifier {
        KeyVerifier { store, clock }
    }
}

impl fmt::Debug for KeyVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyVerifier").finish_non_exhaustive()
    }
}

fn unauthenticated(message: &str) -> arcp_server::Error {
    arcp_server::Error::refused(ErrorCode::UNAUTHENTICATED, message)
}

#[async_trait]
impl BearerVerifier for KeyVerifier {
    async fn verify(&self, token: &str) -> Result<Identity, arcp_server::Error> {
        if !looks_like_key(token) {
            return Err(unauthenticated("Unknown bearer token"));
        }
        let presented = digest(token);
        let record = match self.store.find(&presented).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot verify an API key: the key store failed");
                return Err(arcp_server::Error::Store(arcp_server::store::StoreError::Unavailable(
                    "the key store did not answer".into(),
                )));
            }
        };
        // The store found the row by its digest; compare again in constant time so no store
        // (e.g. one that matches on a prefix) can let a different key through.
        let Some(record) = record.filter(|r| digest_eq(&r.digest, &presented)) else {
            return Err(unauthenticated("Unknown bearer token"));
        };
        match record.status(self.clock.now_millis()) {
            KeyStatus::Active => Ok(Identity { principal: record.principal }),
            KeyStatus::Expired => {
                tracing::info!(key = %record.id, "refused an expired API key");
                Err(unauthenticated("The API key has expired"))
            }
            KeyStatus::Revoked => {
                tracing::info!(key = %record.id, "refused a revoked API key");
                Err(unauthenticated("The API key has been revoked"))
            }
        }
    }
}

/// A [`BearerVerifier`] behind an `Arc`, cloneable: `arcp serve` picks one (static token or
/// API keys) at start and hands it to both ARCP and the channel.
#[derive(Clone)]
pub struct SharedVerifier(Arc<dyn BearerVerifier>);

impl SharedVerifier {
    /// Shares `verifier`.
    pub fn new(verifier: impl BearerVerifier) -> SharedVerifier {
        SharedVerifier(Arc::new(verifier))
    }
}

impl fmt::Debug for SharedVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedVerifier").finish_non_exhaustive()
    }
}

#[async_trait]
impl BearerVerifier for SharedVerifier {
    async fn verify(&self, token: &str) -> Result<Identity, arcp_server::Error> {
        self.0.verify(token).await
    }
}

/// Milliseconds as stored in SQL (saturated at `i64::MAX`).
fn to_sql(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// A stored millisecond time, refused if negative.
fn from_sql(what: &str, v: i64) -> Result<u64, KeyError> {
    u64::try_from(v).map_err(|_| KeyError::Backend(format!("corrupt {what} in the key store: {v}")))
}

/// A stored digest, refused unless it has 32 bytes.
fn digest_from_sql(v: &[u8]) -> Result<KeyDigest, KeyError> {
    KeyDigest::try_from(v)
        .map_err(|_| KeyError::Backend(format!("corrupt digest in the key store ({} bytes)", v.len())))
}

#[cfg(test)]
mod tests {
    use arcp_core::{ManualClock, OsEntropy, SeededEntropy};

    use super::*;

    #[test]
    fn base32_is_rfc4648_lowercase_without_padding() {
        // RFC 4648 §10 test vectors, lowercased, padding removed.
        for (input, expected) in [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foob", "mzxw6yq"),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi"),
        ] {
            assert_eq!(base32(input.as_bytes()), expected, "{input}");
        }
    }

    #[test]
    fn keys_have_the_documented_shape() {
        let a = ApiKey::generate(&OsEntropy).unwrap();
        let b = ApiKey::generate(&OsEntropy).unwrap();
        assert_ne!(a, b);
        let rest = a.expose().strip_prefix("arcp_sk_").unwrap();
        assert_eq!(rest.len(), 52);
        assert!(rest.bytes().all(|c| BASE32.contains(&c)), "{}", a.expose());
        assert!(looks_like_key(a.expose()));
        assert_eq!(a.display_prefix(), &a.expose()[..16]);
        assert!(!format!("{a:?}").contains(&a.expose()[16..]), "Debug never shows the secret part");
        for bad in ["", "arcp_sk_", "arcp_sk_short", "arcp_0123456789abcdef0123456789abcdef", "ARCP_SK_abc"] {
            assert!(!looks_like_key(bad), "{bad}");
        }
        assert!(!looks_like_key(&a.expose().to_uppercase()));
    }

    #[test]
    fn minting_checks_the_fields() {
        let e = SeededEntropy::new(1);
        let (key, record) = NewKey::for_principal("alice").mint(&e, 1_000).unwrap();
        assert_eq!(record.digest, digest(key.expose()));
        assert_eq!(record.prefix, key.display_prefix());
        assert!(record.id.starts_with("key_") && record.id.len() == 4 + 16, "{}", record.id);
        assert_eq!((record.created_at, record.expires_at, record.revoked_at), (1_000, None, None));
        let bad = [
            NewKey::for_principal(""),
            NewKey::for_principal("a\nb"),
            NewKey::for_principal("x".repeat(MAX_PRINCIPAL_BYTES + 1)),
            NewKey { label: Some("l\u{7}".into()), ..NewKey::for_principal("p") },
            NewKey { label: Some("l".repeat(MAX_LABEL_BYTES + 1)), ..NewKey::for_principal("p") },
            NewKey { expires_at: Some(1_000), ..NewKey::for_principal("p") },
        ];
        for new in bad {
            assert!(matches!(new.clone().mint(&e, 1_000), Err(KeyError::Invalid(_))), "{new:?}");
        }
    }

    #[test]
    fn status_revoked_wins_and_expiry_is_inclusive() {
        let (_, mut r) = NewKey { expires_at: Some(2_000), ..NewKey::for_principal("p") }
            .mint(&SeededEntropy::new(2), 1_000)
            .unwrap();
        assert_eq!(r.status(1_999), KeyStatus::Active);
        assert_eq!(r.status(2_000), KeyStatus::Expired);
        r.revoked_at = Some(1_500);
        assert_eq!(r.status(1_000), KeyStatus::Revoked);
    }

    #[tokio::test]
    async fn the_verifier_refuses_unknown_expired_and_revoked_keys() {
        let store = Arc::new(MemoryKeyStore::new());
        let clock = Arc::new(ManualClock::new(10_000));
        let verifier = KeyVerifier::new(store.clone(), clock.clone());
        let e = OsEntropy;
        let (key, record) = create_key(&*store, NewKey::for_principal("alice"), &e, 10_000).await.unwrap();
        let (short, _) =
            create_key(&*store, NewKey { expires_at: Some(20_000), ..NewKey::for_principal("bob") }, &e, 10_000)
                .await
                .unwrap();
        assert_eq!(verifier.verify(key.expose()).await.unwrap().principal, "alice");
        assert_eq!(verifier.verify(short.expose()).await.unwrap().principal, "bob");
        let code = |r: Result<Identity, arcp_server::Error>| r.unwrap_err().code();
        let other = ApiKey::generate(&e).unwrap();
        assert_eq!(code(verifier.verify(other.expose()).await), ErrorCode::UNAUTHENTICATED);
        assert_eq!(code(verifier.verify("not-a-key").await), ErrorCode::UNAUTHENTICATED);
        clock.set(20_000);
        assert_eq!(code(verifier.verify(short.expose()).await), ErrorCode::UNAUTHENTICATED);
        revoke_key(&*store, &record.prefix, 20_001).await.unwrap();
        assert_eq!(code(verifier.verify(key.expose()).await), ErrorCode::UNAUTHENTICATED);
    }

    #[tokio::test]
    async fn revoke_by_id_prefix_or_whole_key() {
        let store = MemoryKeyStore::new();
        let e = OsEntropy;
        let (a, ra) = create_key(&store, NewKey::for_principal("p"), &e, 1).await.unwrap();
        let (_, rb) = create_key(&store, NewKey::for_principal("p"), &e, 2).await.unwrap();
        let (_, rc) = create_key(&store, NewKey::for_principal("p"), &e, 3).await.unwrap();
        assert!(matches!(revoke_key(&store, a.expose(), 10).await.unwrap(), Revoked::Now(r) if r.id == ra.id));
        assert!(matches!(revoke_key(&store, &rb.id, 11).await.unwrap(), Revoked::Now(r) if r.id == rb.id));
        assert!(matches!(revoke_key(&store, &rc.prefix, 12).await.unwrap(), Revoked::Now(r) if r.id == rc.id));
        assert!(
            matches!(revoke_key(&store, &rc.id, 13).await.unwrap(), Revoked::Already(r) if r.revoked_at == Some(12))
        );
        assert!(matches!(revoke_key(&store, "key_nope", 14).await, Err(KeyError::NotFound(_))));
        let stranger = ApiKey::generate(&e).unwrap();
        let err = revoke_key(&store, stranger.expose(), 15).await.unwrap_err();
        assert!(!err.to_string().contains(&stranger.expose()[PREFIX_LEN..]), "{err}");
    }

    #[tokio::test]
    async fn a_shared_prefix_is_ambiguous() {
        let store = MemoryKeyStore::new();
        let (_, mut a) = NewKey::for_principal("p").mint(&OsEntropy, 1).unwrap();
        let (_, mut b) = NewKey::for_principal("p").mint(&OsEntropy, 1).unwrap();
        a.prefix = "arcp_sk_aaaaaaaa".into();
        b.prefix = a.prefix.clone();
        store.insert(&a).await.unwrap();
        store.insert(&b).await.unwrap();
        let err = revoke_key(&store, "arcp_sk_aaaaaaaa", 2).await.unwrap_err();
        assert!(matches!(&err, KeyError::Ambiguous { ids, .. } if ids.len() == 2), "{err}");
        assert!(matches!(revoke_key(&store, &a.id, 2).await, Ok(Revoked::Now(_))));
    }
}
