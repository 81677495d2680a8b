//! Exact conversions between JSON numbers (`serde_json::Number`) and `Decimal`, through the
//! number's decimal text, for `metric` values and the `job.accepted.budget` counters.
//!
//! Deliberately does no float arithmetic on values: a JSON number is read digit by digit.
//! Writing a non-integral `Decimal` as a JSON number does go through `f64` (serde_json without
//! `arbitrary_precision` stores nothing else), which is exact to ~15 significant digits.

use rust_decimal::Decimal;
use serde_json::Number;

use crate::Error;
use crate::error::clip;

/// The most significant digits a `Decimal` mantissa (96 bits) can hold.
const MAX_DIGITS: usize = 29;
/// The largest `Decimal` scale.
const MAX_SCALE: i64 = 28;
/// The largest `Decimal` mantissa, `2^96 - 1`.
const MAX_MANTISSA: u128 = (1 << 96) - 1;

/// The exact value of a JSON number as a `Decimal`.
///
/// Values with more than 28 decimal places are rounded *away from zero* to 28 places (a tiny
/// positive cost never becomes free). A magnitude beyond `Decimal::MAX` is
/// [`Error::InvalidAmount`].
pub fn decimal_from_json_number(number: &Number) -> Result<Decimal, Error> {
    let text = number.to_string();
    parse_json_decimal(&text).ok_or_else(|| Error::InvalidAmount {
        amount: clip(&text),
        reason: "beyond the range of an exact decimal".to_owned(),
    })
}

/// A `Decimal` as a JSON number: an integer when it is one and fits `i64`/`u64`, otherwise
/// the nearest `f64` to its decimal text.
pub fn decimal_to_json_number(value: Decimal) -> Number {
    let value = value.normalize();
    if value.scale() == 0 {
        let mantissa = value.mantissa();
        if let Ok(n) = i64::try_from(mantissa) {
            return Number::from(n);
        }
        if let Ok(n) = u64::try_from(mantissa) {
            return Number::from(n);
        }
    }
    let approx: f64 = value.to_string().parse().unwrap_or(0.0);
    Number::from_f64(approx).unwrap_or_else(|| Number::from(0))
}

/// Parses JSON number text (`-?digits(.digits)?([eE][+-]?digits)?`) into a `Decimal`;
/// `None` on overflow or bad syntax.
fn parse_json_decimal(text: &str) -> Option<Decimal> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa_text, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.strip_prefix('+').unwrap_or(e).parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa_text.split_once('.').unwrap_or((mantissa_text, ""));
    if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let all_digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
    let first_nonzero = all_digits.iter().position(|&d| d != 0);
    let Some(first) = first_nonzero else {
        return Some(Decimal::ZERO);
    };
    let mut digits: Vec<u8> = all_digits.get(first..)?.to_vec();
    // value = digits × 10^(-scale)
    let frac_len = i64::try_from(frac.len()).ok()?;
    let mut scale = frac_len.checked_sub(exponent)?;
    if scale < 0 {
        let zeros = usize::try_from(-scale).ok()?;
        if digits.len().checked_add(zeros)? > MAX_DIGITS {
            return None;
        }
        digits.extend(std::iter::repeat_n(0, zeros));
        scale = 0;
    }
    let mut inexact = false;
    loop {
        let fits_digits = digits.len() <= MAX_DIGITS && scale <= MAX_SCALE;
        let mantissa = if fits_digits { to_u128(&digits) } else { None };
        match mantissa {
            Some(m) if m <= MAX_MANTISSA && !inexact => {
                return build(m, scale, negative);
            }
            Some(m) if m < MAX_MANTISSA && inexact => {
                return build(m + 1, scale, negative);
            }
            _ => {
                if scale == 0 {
                    return None;
                }
                // Drop the last digit, remembering whether anything non-zero was lost.
                inexact |= digits.pop().is_some_and(|d| d != 0);
                scale -= 1;
            }
        }
    }
}

fn to_u128(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |acc, &d| acc.checked_mul(10)?.checked_add(u128::from(d)))
}

fn build(mantissa: u128, scale: i64, negative: bool) -> Option<Decimal> {
    let signed = i128::try_from(mantissa).ok()?;
    let signed = if negative { -signed } else { signed };
    Decimal::try_from_i128_with_scale(signed, u32::try_from(scale).ok()?).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn from_json(s: &str) -> Result<Decimal, Error> {
        let number: Number = serde_json::from_str(s).unwrap();
        decimal_from_json_number(&number)
    }

    #[test]
    fn reads_decimal_text_exactly() {
        assert_eq!(from_json("0.1").unwrap(), dec("0.1"));
        assert_eq!(from_json("0.2").unwrap(), dec("0.2"));
        assert_eq!(from_json("12").unwrap(), dec("12"));
        assert_eq!(from_json("-3.5").unwrap(), dec("-3.5"));
        assert_eq!(from_json("1e3").unwrap(), dec("1000"));
        assert_eq!(from_json("2.5E-3").unwrap(), dec("0.0025"));
        assert_eq!(from_json("0").unwrap(), Decimal::ZERO);
        assert_eq!(from_json("18446744073709551615").unwrap(), dec("18446744073709551615"));
    }

    #[test]
    fn tiny_values_round_away_from_zero_and_huge_ones_fail() {
        assert_eq!(from_json("1e-40").unwrap(), Decimal::new(1, 28));
        assert!(from_json("1e300").is_err());
        assert!(from_json("-1e300").is_err());
        assert_eq!(parse_json_decimal("0.00000000000000000000000000015"), Some(Decimal::new(2, 28)));
        assert_eq!(parse_json_decimal("79228162514264337593543950335"), Some(Decimal::MAX));
        assert_eq!(parse_json_decimal("79228162514264337593543950336"), None);
        assert_eq!(parse_json_decimal("1.5"), Some(dec("1.5")));
        assert_eq!(parse_json_decimal("x"), None);
        assert_eq!(parse_json_decimal(".5"), None);
    }

    #[test]
    fn writes_integers_as_integers() {
        assert_eq!(decimal_to_json_number(dec("10.00")).to_string(), "10");
        assert_eq!(decimal_to_json_number(dec("-2")).to_string(), "-2");
        assert_eq!(decimal_to_json_number(dec("0.3")).to_string(), "0.3");
        assert_eq!(decimal_to_json_number(dec("12.75")).to_string(), "12.75");
    }
}
