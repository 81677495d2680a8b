//! Name grammars shared by several parts of the wire: vendor names and message-type classes.
//!
//! Pure functions over `&str`; no allocation on the hot path.

use std::fmt;

/// Whether `s` is a vendor name: `x-vendor.<vendor>.<name>[.<more>…]`, each segment
/// `[a-z0-9_-]+`. Used for vendor message types, capabilities and `extensions` keys.
pub fn is_vendor_name(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("x-vendor.") else {
        return false;
    };
    let mut segments = 0;
    for seg in rest.split('.') {
        if seg.is_empty() || !seg.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-')) {
            return false;
        }
        segments += 1;
    }
    segments >= 2 && s.len() <= 256
}

/// Whether `s` is a vendor event kind: `x-vendor.` followed by `[a-z0-9_.-]+` (the looser
/// grammar the TypeScript SDK uses for event kinds).
pub fn is_vendor_kind(s: &str) -> bool {
    s.strip_prefix("x-vendor.").is_some_and(|rest| {
        !rest.is_empty()
            && s.len() <= 256
            && rest.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'))
    })
}

/// How an inbound `type` string is classified before it is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TypeClass {
    /// One of the message types this build knows.
    Known,
    /// Core-prefixed (`session.*`, `job.*`) but unknown: always `INVALID_REQUEST`.
    UnknownCore,
    /// A vendor type (`x-vendor.<vendor>.<name>`): decoded as raw JSON; an unhandled one is
    /// dropped if the envelope says `extensions.optional: true`, else `INVALID_REQUEST`.
    Vendor,
    /// Anything else: always `INVALID_REQUEST`.
    Other,
}

impl fmt::Display for TypeClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TypeClass::Known => "known",
            TypeClass::UnknownCore => "unknown core type",
            TypeClass::Vendor => "vendor type",
            TypeClass::Other => "not an ARCP type",
        })
    }
}

/// Classifies a message `type` string.
pub fn classify_type(type_name: &str) -> TypeClass {
    if crate::message::MessageType::from_wire(type_name).is_some() {
        TypeClass::Known
    } else if type_name.starts_with("session.") || type_name.starts_with("job.") {
        TypeClass::UnknownCore
    } else if is_vendor_name(type_name) {
        TypeClass::Vendor
    } else {
        TypeClass::Other
    }
}

/// What a host does with a vendor message it has no handler for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnhandledVendor {
    /// Drop it silently (`extensions.optional` was `true`).
    Drop,
    /// Reject it with `INVALID_REQUEST`.
    Reject,
}

/// The rule for an unhandled vendor message: drop when it is marked optional.
pub fn unhandled_vendor(optional: bool) -> UnhandledVendor {
    if optional { UnhandledVendor::Drop } else { UnhandledVendor::Reject }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_names() {
        assert!(is_vendor_name("x-vendor.acme.thing"));
        assert!(is_vendor_name("x-vendor.acme.thing.sub"));
        assert!(!is_vendor_name("x-vendor.acme"));
        assert!(!is_vendor_name("x-vendor.Acme.thing"));
        assert!(!is_vendor_name("x-vendor..thing"));
        assert!(!is_vendor_name("vendor.acme.thing"));
        assert!(is_vendor_kind("x-vendor.acme"));
        assert!(!is_vendor_kind("x-vendor."));
    }

    #[test]
    fn classification() {
        assert_eq!(classify_type("job.submit"), TypeClass::Known);
        assert_eq!(classify_type("job.frobnicate"), TypeClass::UnknownCore);
        assert_eq!(classify_type("session.nope"), TypeClass::UnknownCore);
        assert_eq!(classify_type("x-vendor.acme.ping"), TypeClass::Vendor);
        assert_eq!(classify_type("hello"), TypeClass::Other);
        assert_eq!(unhandled_vendor(true), UnhandledVendor::Drop);
        assert_eq!(unhandled_vendor(false), UnhandledVendor::Reject);
    }
}
