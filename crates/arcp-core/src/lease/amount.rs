//! [`Amount`]: one `cost.budget` entry, `currency:decimal` (§9.6), parsed exactly.
//!
//! Deliberately does not know any currency list (`USD`, `credits` and runtime-defined names
//! are all just names) and never uses floating point.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;
use crate::error::clip;

/// The longest currency name accepted.
const MAX_CURRENCY_LEN: usize = 64;
/// The longest amount string looked at.
const MAX_AMOUNT_LEN: usize = 128;

/// A budget amount: a currency (`[A-Za-z][A-Za-z0-9_-]*`) and a non-negative exact decimal
/// (`\d+(\.\d+)?`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Amount {
    currency: String,
    value: Decimal,
}

impl Amount {
    /// Parses `currency:decimal`. Signs, exponents, empty parts, a missing `:`, more digits
    /// than a `Decimal` holds exactly, or a bad currency are [`Error::InvalidAmount`].
    pub fn parse(s: &str) -> Result<Amount, Error> {
        let invalid = |reason: &str| Error::InvalidAmount { amount: clip(s), reason: reason.to_owned() };
        if s.len() > MAX_AMOUNT_LEN {
            return Err(invalid("too long"));
        }
        let (currency, number) = s.split_once(':').ok_or_else(|| invalid("expected `currency:decimal`"))?;
        if !is_currency(currency) {
            return Err(invalid("currency must match [A-Za-z][A-Za-z0-9_-]* (at most 64 bytes)"));
        }
        if !is_plain_decimal(number) {
            return Err(invalid("amount must match \\d+(\\.\\d+)?"));
        }
        let value = Decimal::from_str_exact(number).map_err(|_| invalid("amount out of range or too precise"))?;
        Ok(Amount { currency: currency.to_owned(), value })
    }

    /// The currency.
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// The (non-negative) value.
    pub fn value(&self) -> Decimal {
        self.value
    }
}

/// Whether `s` is a currency name: `[A-Za-z][A-Za-z0-9_-]*`, at most 64 bytes.
pub(super) fn is_currency(s: &str) -> bool {
    let mut bytes = s.bytes();
    s.len() <= MAX_CURRENCY_LEN
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `\d+(\.\d+)?` with ASCII digits.
fn is_plain_decimal(s: &str) -> bool {
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    match s.split_once('.') {
        Some((int, frac)) => digits(int) && digits(frac),
        None => digits(s),
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.currency, self.value)
    }
}

impl FromStr for Amount {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Amount::parse(s)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Amount::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_amounts() {
        let a = Amount::parse("USD:12.50").unwrap();
        assert_eq!(a.currency(), "USD");
        assert_eq!(a.value(), Decimal::new(1250, 2));
        assert_eq!(a.to_string(), "USD:12.50");
        assert_eq!(Amount::parse("credits:007").unwrap().value(), Decimal::from(7));
        assert_eq!(Amount::parse("x_y-z9:0").unwrap().value(), Decimal::ZERO);
        let max = Amount::parse("USD:79228162514264337593543950335").unwrap();
        assert_eq!(max.value(), Decimal::MAX);
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "USD",
            "USD:",
            ":1",
            "USD:-1",
            "USD:+1",
            "USD:1e3",
            "USD:1.",
            "USD:.5",
            "USD:1.2.3",
            "USD: 1",
            "1USD:1",
            "US D:1",
            "USD:1,5",
            "USD:١",
            "USD:0x10",
            "USD:NaN",
            "USD:79228162514264337593543950336",
            "USD:0.00000000000000000000000000001",
        ] {
            let err = Amount::parse(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidAmount { .. }), "{bad:?}");
        }
        assert!(Amount::parse(&format!("{}:1", "A".repeat(65))).is_err());
    }

    #[test]
    fn serde_round_trip() {
        let a: Amount = serde_json::from_str("\"EUR:3.25\"").unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"EUR:3.25\"");
    }
}
