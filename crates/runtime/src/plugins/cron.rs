//! 5-field cron expressions for the `scheduler` surface: `minute hour day-of-month month
//! day-of-week`, always in UTC. Pure: [`Cron::parse`] and [`Cron::next_after`] take and give
//! Unix seconds, no clock.
//!
//! Each field is a comma-separated list of items; an item is `*`, a value `a`, a range
//! `a-b`, each optionally followed by a step `/n` (`*/15`, `1-30/2`; `a/n` means `a-max/n`).
//! Ranges: minute 0–59, hour 0–23, day-of-month 1–31, month 1–12 (or `jan`…`dec`),
//! day-of-week 0–7 (0 and 7 are Sunday, or `sun`…`sat`); names are case-insensitive. A range
//! must not run backwards (`5-1` is refused), a step is 1..=the field's span.
//!
//! Day-of-month and day-of-week combine as in Vixie cron: when both are restricted (neither
//! field starts with `*`) a day matches if **either** does (`0 0 1 * mon`: the 1st and every
//! Monday); otherwise both must. An expression that can never fire (`0 0 30 feb *`) is
//! refused at parse time.

use std::fmt;
use std::str::FromStr;

/// The longest expression accepted, in bytes.
pub const MAX_CRON_LEN: usize = 256;

/// Days searched by [`Cron::next_after`]: 28 years. A satisfiable expression fires at least
/// once every 8 years (`0 0 29 2 *` between 2096 and 2104), so nothing is missed.
const HORIZON_DAYS: i64 = 28 * 366;

/// A parsed cron expression.
#[derive(Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days_of_month: u32,
    months: u16,
    days_of_week: u8,
    dom_restricted: bool,
    dow_restricted: bool,
    source: String,
}

impl fmt::Debug for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cron({:?})", self.source)
    }
}

impl fmt::Display for Cron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Why an expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron expression {expr:?}: {why}")]
pub struct CronError {
    /// The expression (clipped).
    pub expr: String,
    /// What is wrong.
    pub why: String,
}

/// One field's rules.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTE: Field = Field { name: "minute", min: 0, max: 59, names: &[] };
const HOUR: Field = Field { name: "hour", min: 0, max: 23, names: &[] };
const DAY_OF_MONTH: Field = Field { name: "day-of-month", min: 1, max: 31, names: &[] };
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
};
const DAY_OF_WEEK: Field =
    Field { name: "day-of-week", min: 0, max: 7, names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"] };

impl Field {
    fn value(&self, text: &str) -> Result<u32, String> {
        let v = if let Some(i) = self.names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            // Months are named from 1 (their minimum), days of the week from 0 (theirs).
            u32::try_from(i).unwrap_or(u32::MAX).saturating_add(self.min)
        } else if !text.is_empty() && text.len() <= 2 && text.bytes().all(|b| b.is_ascii_digit()) {
            text.parse::<u32>().map_err(|e| e.to_string())?
        } else {
            return Err(format!("{} {text:?} is not a number", self.name));
        };
        if v < self.min || v > self.max {
            return Err(format!("{} {v} is outside {}-{}", self.name, self.min, self.max));
        }
        Ok(v)
    }

    /// The set of values of one field, as a bit mask (bit `v` for value `v`).
    fn parse(&self, text: &str) -> Result<u64, String> {
        let mut bits = 0u64;
        for item in text.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => {
                    let step = if !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit()) {
                        s.parse::<u32>().map_err(|e| e.to_string())?
                    } else {
                        return Err(format!("{} step {s:?} is not a number", self.name));
                    };
                    if step == 0 || step > self.max - self.min + 1 {
                        return Err(format!("{} step {step} is outside 1-{}", self.name, self.max - self.min + 1));
                    }
                    (r, Some(step))
                }
                None => (item, None),
            };
            let (lo, hi) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(format!("{} range {a}-{b} runs backwards", self.name));
                }
                (a, b)
            } else {
                let a = self.value(range)?;
                (a, if step.is_some() { self.max } else { a })
            };
            let step = step.unwrap_or(1);
            let mut v = lo;
            while v <= hi {
                bits |= 1 << v;
                v += step;
            }
        }
        Ok(bits)
    }
}

impl Cron {
    /// Parses `expr` (see the module docs).
    pub fn parse(expr: &str) -> Result<Cron, CronError> {
        let fail = |why: String| CronError { expr: expr.chars().take(80).collect(), why };
        if expr.len() > MAX_CRON_LEN {
            return Err(fail(format!("longer than {MAX_CRON_LEN} bytes")));
        }
        let fields: Vec<&str> = expr.split_ascii_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(fail(format!(
                "{} fields, expected 5 (minute hour day-of-month month day-of-week)",
                fields.len()
            )));
        };
        let mut dow_bits = DAY_OF_WEEK.parse(dow).map_err(fail)?;
        if dow_bits & (1 << 7) != 0 {
            dow_bits = (dow_bits | 1) & 0x7f;
        }
        let cron = Cron {
            minutes: MINUTE.parse(minute).map_err(fail)?,
            hours: narrow(HOUR.parse(hour).map_err(fail)?),
            days_of_month: narrow(DAY_OF_MONTH.parse(dom).map_err(fail)?),
            months: narrow(MONTH.parse(month).map_err(fail)?),
            days_of_week: narrow(dow_bits),
            dom_restricted: !dom.starts_with('*'),
            dow_restricted: !dow.starts_with('*'),
            source: fields.join(" "),
        };
        if cron.next_after(0).is_none() {
            return Err(fail("it never fires (no such day)".to_owned()));
        }
        Ok(cron)
    }

    /// Whether the minute holding `unix_secs` (UTC) matches.
    pub fn matches(&self, unix_secs: i64) -> bool {
        let (days, secs) = (unix_secs.div_euclid(86_400), unix_secs.rem_euclid(86_400));
        self.day_matches(days)
            && self.hours & (1 << (secs / 3600)) != 0
            && self.minutes & (1 << (secs % 3600 / 60)) != 0
    }

    /// The start (second 0, Unix seconds) of the first matching minute strictly after
    /// `unix_secs`; `None` if none comes in the next 28 years (only for times near the end
    /// of the representable range: [`Cron::parse`] refuses expressions that never fire).
    pub fn next_after(&self, unix_secs: i64) -> Option<i64> {
        let start = unix_secs.div_euclid(60).checked_add(1)?.checked_mul(60)?;
        let (first_day, first_secs) = (start.div_euclid(86_400), start.rem_euclid(86_400));
        for day in first_day..first_day.checked_add(HORIZON_DAYS)? {
            if !self.day_matches(day) {
                continue;
            }
            let from = if day == first_day { first_secs / 60 } else { 0 };
            let (from_hour, from_minute) = (from / 60, from % 60);
            for hour in from_hour..24 {
                if self.hours & (1 << hour) == 0 {
                    continue;
                }
                let lowest = if hour == from_hour { from_minute } else { 0 };
                let candidates = (self.minutes >> lowest) << lowest;
                if candidates != 0 {
                    let minute = i64::from(candidates.trailing_zeros());
                    return day.checked_mul(86_400)?.checked_add(hour * 3600 + minute * 60);
                }
            }
        }
        None
    }

    fn day_matches(&self, days_since_epoch: i64) -> bool {
        let (_, month, day) = civil_from_days(days_since_epoch);
        if self.months & (1 << month) == 0 {
            return false;
        }
        // 1970-01-01 was a Thursday (4).
        let weekday = (days_since_epoch + 4).rem_euclid(7);
        let dom = self.days_of_month & (1 << day) != 0;
        let dow = self.days_of_week & (1 << weekday) != 0;
        if self.dom_restricted && self.dow_restricted { dom || dow } else { dom && dow }
    }
}

impl FromStr for Cron {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cron::parse(s)
    }
}

/// A field mask known to fit the narrower type (its field's maximum is below the width).
fn narrow<T: TryFrom<u64> + Default>(bits: u64) -> T {
    T::try_from(bits).unwrap_or_default()
}

/// The proleptic Gregorian `(year, month 1..=12, day 1..=31)` of a day count since
/// 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, u32::try_from(month).unwrap_or(1), u32::try_from(day).unwrap_or(1))
}

/// The day count since 1970-01-01 of a proleptic Gregorian date (the inverse of
/// [`civil_from_days`]).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Unix seconds of a UTC date and time.
    fn at(y: i64, mo: u32, d: u32, h: i64, mi: i64) -> i64 {
        days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60
    }

    fn next(expr: &str, from: i64) -> i64 {
        Cron::parse(expr).unwrap().next_after(from).unwrap()
    }

    #[test]
    fn the_calendar_is_right() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        // 2026-11-23 is a Monday.
        assert_eq!((days_from_civil(2026, 11, 23) + 4).rem_euclid(7), 1);
    }

    #[test]
    fn next_fire_times() {
        let t = at(2026, 11, 23, 18, 45) + 30; // Monday 18:45:30 UTC
        assert_eq!(next("* * * * *", t), at(2026, 11, 23, 18, 46));
        assert_eq!(next("* * * * *", at(2026, 11, 23, 18, 46)), at(2026, 11, 23, 18, 47), "strictly after");
        assert_eq!(next("*/15 * * * *", t), at(2026, 11, 23, 19, 0));
        assert_eq!(next("0 9 * * mon-fri", t), at(2026, 11, 24, 9, 0));
        assert_eq!(next("30 2 1 * *", t), at(2026, 12, 1, 2, 30));
        assert_eq!(next("0 0 1 jan *", t), at(2027, 1, 1, 0, 0));
        assert_eq!(next("0 0 29 2 *", t), at(2028, 2, 29, 0, 0));
        assert_eq!(next("0 0 29 2 *", at(2096, 3, 1, 0, 0)), at(2104, 2, 29, 0, 0), "2100 is not a leap year");
        assert_eq!(next("5,10-12 8 * * 0", t), at(2026, 11, 29, 8, 5));
        assert_eq!(next("0 0 * * 7", t), at(2026, 11, 29, 0, 0), "7 is Sunday");
        assert_eq!(next("59 23 31 12 *", t), at(2026, 12, 31, 23, 59));
        assert_eq!(next("0 12 */10 * *", t), at(2026, 12, 1, 12, 0));
        assert_eq!(next("15/20 * * * *", t), at(2026, 11, 23, 18, 55));
        // Both day fields restricted: either matches (the 1st, or a Friday).
        assert_eq!(next("0 0 1 * fri", t), at(2026, 11, 27, 0, 0));
        // Day-of-week `*/2` starts with `*`: both must match (Sunday, Tuesday, … and the 24th).
        assert_eq!(next("0 0 24 * */2", t), at(2026, 11, 24, 0, 0));
        // Wed 25 Nov, Fri 25 Dec and Mon 25 Jan are skipped: Thu 25 Feb 2027.
        assert_eq!(next("0 0 25 * */2", t), at(2027, 2, 25, 0, 0));
    }

    #[test]
    fn bad_expressions_are_refused() {
        for bad in [
            "",
            "* * * *",
            "* * * * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * 32 * *",
            "* * * 13 *",
            "* * * * 8",
            "5-1 * * * *",
            "*/0 * * * *",
            "*/61 * * * *",
            "a * * * *",
            "1,,2 * * * *",
            "- * * * *",
            "1-2-3 * * * *",
            "* * * foo *",
            "+1 * * * *",
            "0 0 30 2 *",
            "0 0 31 4,6,9,11 *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let e = Cron::parse("0 0 30 feb *").unwrap_err();
        assert!(e.why.contains("never"), "{e}");
        assert!(Cron::parse(&"1,".repeat(200)).is_err());
        assert_eq!(Cron::parse("  0   9 * *  MON ").unwrap().to_string(), "0 9 * * MON");
    }

    /// One arbitrary field item for a field of `min..=max`.
    fn item(min: u32, max: u32) -> impl Strategy<Value = String> {
        prop_oneof![
            Just("*".to_owned()),
            (1..=max - min + 1).prop_map(|s| format!("*/{s}")),
            (min..=max).prop_map(|v| v.to_string()),
            (min..=max, min..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (min..=max, min..=max, 1..=max - min + 1).prop_map(|(a, b, s)| format!("{}-{}/{s}", a.min(b), a.max(b))),
        ]
    }

    fn field(min: u32, max: u32) -> impl Strategy<Value = String> {
        prop::collection::vec(item(min, max), 1..=3).prop_map(|items| items.join(","))
    }

    fn expression() -> impl Strategy<Value = String> {
        (field(0, 59), field(0, 23), field(1, 31), field(1, 12), field(0, 7))
            .prop_map(|(a, b, c, d, e)| format!("{a} {b} {c} {d} {e}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// `next_after` agrees with a minute-by-minute scan: the result matches, is strictly
        /// later, and no minute in between matches.
        #[test]
        fn next_after_is_the_first_matching_minute(expr in expression(), from in 0i64..4_102_444_800) {
            let Ok(cron) = Cron::parse(&expr) else { return Ok(()) };
            let next = cron.next_after(from).expect("a parsed expression fires");
            prop_assert!(next > from && next % 60 == 0);
            prop_assert!(cron.matches(next));
            // Scan up to 40 days of minutes (past that, only check the bounds above).
            let mut t = (from.div_euclid(60) + 1) * 60;
            let end = next.min(t + 40 * 86_400);
            while t < end {
                prop_assert!(!cron.matches(t), "{expr}: {t} matches before {next}");
                t += 60;
            }
        }

        /// Parsing never panics, whatever the text.
        #[test]
        fn parsing_arbitrary_text_never_panics(text in "[0-9a-z*/,\\- ]{0,40}") {
            let _ = Cron::parse(&text);
        }
    }
}
