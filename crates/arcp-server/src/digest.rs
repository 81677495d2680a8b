//! SHA-256 digests and constant-time comparison, for tokens and idempotency payloads.

use sha2::{Digest, Sha256};

/// SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Constant-time equality of two digests.
pub(crate) fn digest_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Constant-time equality of two secrets of any length: compares their digests, so neither
/// the content nor the length leaks through timing.
pub(crate) fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    digest_eq(&sha256(a), &sha256(b))
}
