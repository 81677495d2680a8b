//! RFC 3339 timestamps as they appear in payloads (`ts`, `accepted_at`, `sent_at`, …).
//!
//! The wire string is kept verbatim (so re-encoding is byte-identical); it is validated on
//! decode. [`Timestamp::from_millis`] formats like JavaScript's `toISOString()`
//! (`2026-11-23T08:10:31.078Z`), which is what the other implementations emit.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An RFC 3339 timestamp (any offset), kept as received.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Timestamp(String);

impl Timestamp {
    /// Parses an RFC 3339 timestamp.
    pub fn parse(s: &str) -> Result<Self, crate::Error> {
        parse_rfc3339(s).map(|_| Timestamp(s.to_owned())).map_err(|reason| crate::Error::InvalidField {
            field: "timestamp",
            reason: format!("{:?} is not an RFC 3339 timestamp: {reason}", crate::error::clip(s)),
        })
    }

    /// Formats milliseconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn from_millis(millis: u64) -> Self {
        let nanos = i128::from(millis) * 1_000_000;
        let dt = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        Timestamp(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.millisecond()
        ))
    }

    /// The wire string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Milliseconds since the Unix epoch (negative before 1970).
    pub fn unix_millis(&self) -> i64 {
        parse_rfc3339(&self.0).map_or(0, |dt| i64::try_from(dt.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
    }
}

pub(crate) fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, String> {
    if s.len() > 64 {
        return Err("too long".into());
    }
    // RFC 3339's grammar separates date and time with `T`; the parser also takes a space.
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't')) {
        return Err("date and time must be separated by `T`".into());
    }
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| e.to_string())
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "RFC 3339 timestamp, e.g. 2026-11-23T08:10:31.078Z",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$",
        })
    }
}

#[cfg(any(test, feature = "proptest"))]
impl proptest::arbitrary::Arbitrary for Timestamp {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        use proptest::prelude::*;
        (0u64..4_102_444_800_000).prop_map(Timestamp::from_millis).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_to_iso_string() {
        assert_eq!(Timestamp::from_millis(0).as_str(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Timestamp::from_millis(1_795_421_431_078).as_str(), "2026-11-23T08:10:31.078Z");
        assert_eq!(Timestamp::from_millis(1_795_421_431_078).unix_millis(), 1_795_421_431_078);
    }

    #[test]
    fn parses_offsets_and_rejects_garbage() {
        assert!(Timestamp::parse("2026-11-23T08:10:31+02:00").is_ok());
        assert!(Timestamp::parse("2026-11-23T08:10:31.078000+00:00").is_ok());
        for bad in ["", "yesterday", "2026-11-23", "2026-11-23T25:00:00Z", "2026-11-23 08:10:31"] {
            assert!(Timestamp::parse(bad).is_err(), "{bad:?}");
        }
    }
}
