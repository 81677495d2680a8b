//! `event_seq`: the session-scoped, strictly monotonic, gap-free event counter.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An event sequence number: an integer in `0..=i64::MAX` (the wire's integers fit int64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EventSeq(u64);

impl EventSeq {
    /// The largest value the wire allows.
    pub const MAX: EventSeq = EventSeq(i64::MAX as u64);
    /// Zero: "nothing seen yet".
    pub const ZERO: EventSeq = EventSeq(0);

    /// A sequence number, if `n` fits the wire's int64.
    pub fn new(n: u64) -> Option<Self> {
        (n <= Self::MAX.0).then_some(EventSeq(n))
    }

    /// The value.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The next number, or `None` at the wire's maximum.
    pub fn next(self) -> Option<Self> {
        Self::new(self.0.checked_add(1)?)
    }
}

impl fmt::Display for EventSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for EventSeq {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for EventSeq {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        EventSeq::new(n).ok_or_else(|| serde::de::Error::custom(format!("{n} exceeds the int64 range")))
    }
}

impl schemars::JsonSchema for EventSeq {
    fn schema_name() -> Cow<'static, str> {
        "EventSeq".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "integer",
            "minimum": 0,
            "maximum": i64::MAX,
        })
    }
}

#[cfg(any(test, feature = "proptest"))]
impl proptest::arbitrary::Arbitrary for EventSeq {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        use proptest::prelude::*;
        prop_oneof![0..1000u64, 0..=EventSeq::MAX.0].prop_map(EventSeq).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range() {
        assert!(EventSeq::new(i64::MAX as u64).is_some());
        assert!(EventSeq::new(i64::MAX as u64 + 1).is_none());
        assert!(EventSeq::MAX.next().is_none());
        assert!(serde_json::from_str::<EventSeq>("-1").is_err());
        assert!(serde_json::from_str::<EventSeq>("1.5").is_err());
        assert!(serde_json::from_str::<EventSeq>("9223372036854775808").is_err());
        assert_eq!(serde_json::from_str::<EventSeq>("42").unwrap().get(), 42);
    }
}
