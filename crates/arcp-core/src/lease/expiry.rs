//! [`ExpiresAt`]: `lease_constraints.expires_at` (§9.5), parsed strictly and compared against
//! a caller-supplied "now".
//!
//! Deliberately does not read a clock (the crate is sans-IO: "now" is always passed in as
//! milliseconds since the Unix epoch) and does not apply a grace period (the runtime may shift
//! its "now" for that).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::Error;
use crate::error::clip;

/// The longest `expires_at` string looked at.
const MAX_LEN: usize = 64;

/// A lease expiry instant: RFC 3339, UTC, written with a `Z` (or `z`) suffix, not before the
/// Unix epoch. Ordered by instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExpiresAt(OffsetDateTime);

impl ExpiresAt {
    /// The `expires_at` of a wire `lease_constraints`, parsed; a constraint key this build
    /// does not know is refused (`INVALID_REQUEST`) rather than ignored, because ignoring a
    /// constraint would widen the lease.
    pub fn from_constraints(constraints: &crate::message::LeaseConstraints) -> Result<Option<ExpiresAt>, Error> {
        if let Some(key) = constraints.unknown.keys().next() {
            return Err(Error::InvalidField {
                field: "lease_constraints",
                reason: format!("unknown constraint {:?}", crate::error::clip(key)),
            });
        }
        constraints.expires_at.as_deref().map(ExpiresAt::parse).transpose()
    }

    /// Parses the wire value. Anything but RFC 3339 with a `Z`/`z` suffix — a numeric offset,
    /// even `+00:00`, a missing offset, garbage, or an instant before 1970 — is
    /// [`Error::InvalidExpiresAt`] (fail closed).
    pub fn parse(value: &str) -> Result<ExpiresAt, Error> {
        let invalid = |reason: &str| Error::InvalidExpiresAt { value: clip(value), reason: reason.to_owned() };
        if value.len() > MAX_LEN {
            return Err(invalid("too long"));
        }
        if !value.ends_with(['Z', 'z']) {
            return Err(invalid("must be UTC with a `Z` suffix"));
        }
        if !matches!(value.as_bytes().get(10), Some(b'T' | b't')) {
            // The `time` parser also takes a space here; ISO 8601 does not.
            return Err(invalid("date and time must be separated by `T`"));
        }
        let at = OffsetDateTime::parse(value, &Rfc3339).map_err(|_| invalid("not an RFC 3339 timestamp"))?;
        if at.offset() != UtcOffset::UTC {
            return Err(invalid("must be UTC with a `Z` suffix"));
        }
        if at.unix_timestamp() < 0 {
            return Err(invalid("before the Unix epoch"));
        }
        Ok(ExpiresAt(at))
    }

    /// The instant `millis` milliseconds after the Unix epoch, if representable (up to the end
    /// of year 9999).
    pub fn from_unix_millis(millis: u64) -> Option<ExpiresAt> {
        let nanos = i128::from(millis).checked_mul(1_000_000)?;
        let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
        (at.year() <= 9999).then_some(ExpiresAt(at))
    }

    /// Milliseconds since the Unix epoch, rounded down (so a sub-millisecond expiry takes
    /// effect up to 1 ms early, never late).
    pub fn unix_millis(&self) -> u64 {
        u64::try_from(self.0.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
    }

    /// Submit-time check (§9.5): the expiry must be strictly after `now_millis`, else
    /// [`Error::InvalidExpiresAt`].
    pub fn validate_future(&self, now_millis: u64) -> Result<(), Error> {
        if self.unix_millis() > now_millis {
            Ok(())
        } else {
            Err(Error::InvalidExpiresAt { value: self.to_string(), reason: "not in the future".to_owned() })
        }
    }

    /// Whether the lease has expired at `now_millis`: at or after the expiry instant.
    pub fn is_expired(&self, now_millis: u64) -> bool {
        now_millis >= self.unix_millis()
    }

    /// [`Error::LeaseExpired`] if expired at `now_millis`.
    pub fn check(&self, now_millis: u64) -> Result<(), Error> {
        if self.is_expired(now_millis) { Err(Error::LeaseExpired { expires_at: self.to_string() }) } else { Ok(()) }
    }

    /// The earlier of two optional expiries (`None` = no expiry).
    pub fn earliest(a: Option<ExpiresAt>, b: Option<ExpiresAt>) -> Option<ExpiresAt> {
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl fmt::Display for ExpiresAt {
    /// Canonical RFC 3339 with a `Z` suffix (fractional seconds only when present).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.format(&Rfc3339).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl Serialize for ExpiresAt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ExpiresAt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ExpiresAt::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const T: &str = "2030-01-02T03:04:05Z";
    const T_MS: u64 = 1_893_553_445_000;

    #[test]
    fn parses_utc_z_only() {
        let at = ExpiresAt::parse(T).unwrap();
        assert_eq!(at.unix_millis(), T_MS);
        assert_eq!(at.to_string(), T);
        assert_eq!(ExpiresAt::parse("2030-01-02t03:04:05z").unwrap(), at);
        assert_eq!(ExpiresAt::parse("2030-01-02T03:04:05.250Z").unwrap().unix_millis(), T_MS + 250);
    }

    #[test]
    fn rejects_offsets_and_garbage() {
        for bad in [
            "2030-01-02T03:04:05+00:00",
            "2030-01-02T03:04:05-00:00",
            "2030-01-02T04:04:05+01:00",
            "2030-01-02T03:04:05",
            "2030-01-02 03:04:05Z",
            "2030-13-02T03:04:05Z",
            "2030-01-02T25:04:05Z",
            "Z",
            "",
            "tomorrow",
            "1969-12-31T23:59:59Z",
            "+12030-01-02T03:04:05Z",
        ] {
            let err = ExpiresAt::parse(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidExpiresAt { .. }), "{bad:?}");
        }
        assert!(ExpiresAt::parse(&format!("{}Z", "9".repeat(80))).is_err());
    }

    #[test]
    fn expiry_is_at_or_after() {
        let at = ExpiresAt::parse(T).unwrap();
        assert!(!at.is_expired(T_MS - 1));
        assert!(at.is_expired(T_MS));
        assert!(at.is_expired(T_MS + 1));
        assert!(at.check(T_MS - 1).is_ok());
        assert_eq!(at.check(T_MS).unwrap_err(), Error::LeaseExpired { expires_at: T.to_owned() });
        assert!(at.validate_future(T_MS - 1).is_ok());
        assert!(matches!(at.validate_future(T_MS), Err(Error::InvalidExpiresAt { .. })));
    }

    #[test]
    fn sub_millisecond_expiry_rounds_down() {
        let at = ExpiresAt::parse("2030-01-02T03:04:05.0009Z").unwrap();
        assert_eq!(at.unix_millis(), T_MS);
        assert!(at.is_expired(T_MS));
    }

    #[test]
    fn ordering_and_earliest() {
        let a = ExpiresAt::parse(T).unwrap();
        let b = ExpiresAt::parse("2031-01-01T00:00:00Z").unwrap();
        assert!(a < b);
        assert_eq!(ExpiresAt::earliest(Some(b), Some(a)), Some(a));
        assert_eq!(ExpiresAt::earliest(None, Some(b)), Some(b));
        assert_eq!(ExpiresAt::earliest(None, None), None);
        assert_eq!(ExpiresAt::from_unix_millis(T_MS), Some(a));
        assert_eq!(ExpiresAt::from_unix_millis(u64::MAX), None);
    }

    #[test]
    fn serde_uses_the_wire_string() {
        let at: ExpiresAt = serde_json::from_str(&format!("\"{T}\"")).unwrap();
        assert_eq!(serde_json::to_string(&at).unwrap(), format!("\"{T}\""));
        assert!(serde_json::from_str::<ExpiresAt>("\"2030-01-02T03:04:05+00:00\"").is_err());
    }

    #[test]
    fn constraints_with_unknown_keys_are_refused() {
        let mut c =
            crate::message::LeaseConstraints { expires_at: Some("2030-01-01T00:00:00Z".into()), ..Default::default() };
        assert!(ExpiresAt::from_constraints(&c).unwrap().is_some());
        c.unknown.insert("max_cost".into(), serde_json::json!("USD:5"));
        assert_eq!(ExpiresAt::from_constraints(&c).unwrap_err().code(), crate::ErrorCode::INVALID_REQUEST);
        assert!(ExpiresAt::from_constraints(&Default::default()).unwrap().is_none());
    }
}
