//! [`Budget`]: the per-currency remaining counters of a job (§9.6), built from its lease's
//! `cost.budget` amounts and decremented by self-reported `cost.*` metrics.
//!
//! Deliberately does not emit `cost.budget.remaining` metrics or debounce them (that is the
//! runtime's), and never uses floating point for arithmetic.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde_json::Number;

use super::amount::Amount;
use super::json_decimal::{decimal_from_json_number, decimal_to_json_number};
use crate::Error;
use crate::error::clip;

/// The metric name a runtime uses to report remaining budget; it never decrements.
pub const BUDGET_REMAINING_METRIC: &str = "cost.budget.remaining";

/// Remaining budget per currency. A currency at or below zero is exhausted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Budget {
    remaining: BTreeMap<String, Decimal>,
}

impl Budget {
    /// No budgeted currencies (nothing can be exhausted).
    pub fn new() -> Budget {
        Budget::default()
    }

    /// Counters from `cost.budget` amounts; entries with the same currency are summed.
    /// [`Error::InvalidAmount`] if a sum overflows.
    pub fn from_amounts<'a>(amounts: impl IntoIterator<Item = &'a Amount>) -> Result<Budget, Error> {
        let mut remaining: BTreeMap<String, Decimal> = BTreeMap::new();
        for amount in amounts {
            let slot = remaining.entry(amount.currency().to_owned()).or_insert(Decimal::ZERO);
            *slot = slot.checked_add(amount.value()).ok_or_else(|| Error::InvalidAmount {
                amount: clip(&amount.to_string()),
                reason: format!("the {} total overflows", amount.currency()),
            })?;
        }
        Ok(Budget { remaining })
    }

    /// Counters restored from stored values (e.g. after a restart).
    pub fn from_remaining(remaining: BTreeMap<String, Decimal>) -> Budget {
        Budget { remaining }
    }

    /// Whether no currency is budgeted.
    pub fn is_empty(&self) -> bool {
        self.remaining.is_empty()
    }

    /// The remaining amount of `currency`, if it is budgeted.
    pub fn remaining(&self, currency: &str) -> Option<Decimal> {
        self.remaining.get(currency).copied()
    }

    /// All counters, by currency.
    pub fn counters(&self) -> &BTreeMap<String, Decimal> {
        &self.remaining
    }

    /// Applies a `metric` event (§9.6): when `metric_name` starts with `cost.` (and is not
    /// [`BUDGET_REMAINING_METRIC`]), `unit` is a budgeted currency and `value` is not negative,
    /// that currency's counter is decreased by `value` (saturating) and its new value returned.
    /// Anything else changes nothing and returns `None`.
    pub fn apply_cost(&mut self, metric_name: &str, value: Decimal, unit: Option<&str>) -> Option<Decimal> {
        let is_cost = metric_name.starts_with("cost.") && metric_name != BUDGET_REMAINING_METRIC;
        if !is_cost || value < Decimal::ZERO {
            return None;
        }
        let slot = self.remaining.get_mut(unit?)?;
        *slot = slot.saturating_sub(value);
        Some(*slot)
    }

    /// [`Budget::apply_cost`] with the metric's JSON number, read exactly. A positive value too
    /// large for a `Decimal` counts as `Decimal::MAX` (it exhausts the currency).
    pub fn apply_cost_json(&mut self, metric_name: &str, value: &Number, unit: Option<&str>) -> Option<Decimal> {
        let value = match decimal_from_json_number(value) {
            Ok(v) => v,
            Err(_) if !value.to_string().starts_with('-') => Decimal::MAX,
            Err(_) => return None,
        };
        self.apply_cost(metric_name, value, unit)
    }

    /// The first currency (in name order) whose counter is at or below zero.
    pub fn exhausted(&self) -> Option<&str> {
        self.remaining.iter().find(|(_, v)| **v <= Decimal::ZERO).map(|(c, _)| c.as_str())
    }

    /// [`Error::BudgetExhausted`] if any currency is exhausted.
    pub fn check(&self) -> Result<(), Error> {
        match self.exhausted() {
            Some(currency) => Err(Error::BudgetExhausted { currency: currency.to_owned() }),
            None => Ok(()),
        }
    }

    /// The counters as JSON numbers, e.g. for `job.accepted.payload.budget` (integers stay
    /// integers; see [`decimal_to_json_number`]).
    pub fn to_wire_numbers(&self) -> BTreeMap<String, Number> {
        self.remaining.iter().map(|(c, v)| (c.clone(), decimal_to_json_number(*v))).collect()
    }

    /// Per currency, the smaller of the two budgets; a currency in only one of them keeps that
    /// one's value (absent = unbounded).
    pub fn tightest(&self, other: &Budget) -> Budget {
        let mut remaining = self.remaining.clone();
        for (currency, value) in &other.remaining {
            remaining.entry(currency.clone()).and_modify(|mine| *mine = (*mine).min(*value)).or_insert(*value);
        }
        Budget { remaining }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn budget(amounts: &[&str]) -> Budget {
        let parsed: Vec<Amount> = amounts.iter().map(|a| Amount::parse(a).unwrap()).collect();
        Budget::from_amounts(&parsed).unwrap()
    }

    #[test]
    fn duplicate_currencies_sum() {
        let b = budget(&["USD:1.5", "EUR:2", "USD:0.25"]);
        assert_eq!(b.remaining("USD"), Some(dec("1.75")));
        assert_eq!(b.remaining("EUR"), Some(dec("2")));
        assert_eq!(b.remaining("usd"), None);
    }

    #[test]
    fn overflowing_sum_is_invalid() {
        let max = "USD:79228162514264337593543950335";
        let parsed = [Amount::parse(max).unwrap(), Amount::parse("USD:1").unwrap()];
        assert!(matches!(Budget::from_amounts(&parsed), Err(Error::InvalidAmount { .. })));
    }

    #[test]
    fn decrement_is_exact() {
        let mut b = budget(&["USD:0.3"]);
        assert_eq!(b.apply_cost("cost.llm", dec("0.1"), Some("USD")), Some(dec("0.2")));
        assert_eq!(b.apply_cost("cost.llm", dec("0.2"), Some("USD")), Some(Decimal::ZERO));
        assert_eq!(b.remaining("USD"), Some(Decimal::ZERO));
        assert_eq!(b.exhausted(), Some("USD"));
        assert_eq!(b.check().unwrap_err(), Error::BudgetExhausted { currency: "USD".to_owned() });
    }

    #[test]
    fn json_decrement_is_exact() {
        let mut b = budget(&["USD:0.3"]);
        for v in ["0.1", "0.2"] {
            let n: Number = serde_json::from_str(v).unwrap();
            b.apply_cost_json("cost.tokens", &n, Some("USD"));
        }
        assert_eq!(b.remaining("USD"), Some(Decimal::ZERO));
        let huge: Number = serde_json::from_str("1e300").unwrap();
        let mut c = budget(&["USD:5"]);
        assert!(c.apply_cost_json("cost.x", &huge, Some("USD")).unwrap() <= Decimal::ZERO);
        let neg: Number = serde_json::from_str("-1e300").unwrap();
        assert_eq!(budget(&["USD:5"]).apply_cost_json("cost.x", &neg, Some("USD")), None);
    }

    #[test]
    fn only_cost_metrics_in_budgeted_units_count() {
        let mut b = budget(&["USD:10"]);
        assert_eq!(b.apply_cost("tokens", dec("1"), Some("USD")), None);
        assert_eq!(b.apply_cost("costly", dec("1"), Some("USD")), None);
        assert_eq!(b.apply_cost(BUDGET_REMAINING_METRIC, dec("1"), Some("USD")), None);
        assert_eq!(b.apply_cost("cost.llm", dec("1"), Some("EUR")), None);
        assert_eq!(b.apply_cost("cost.llm", dec("1"), None), None);
        assert_eq!(b.apply_cost("cost.llm", dec("-5"), Some("USD")), None);
        assert_eq!(b.apply_cost("cost.llm", dec("-0"), Some("USD")), Some(dec("10")));
        assert_eq!(b.remaining("USD"), Some(dec("10")));
        assert_eq!(b.exhausted(), None);
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        let mut b = budget(&["USD:0"]);
        b.apply_cost("cost.x", Decimal::MAX, Some("USD"));
        b.apply_cost("cost.x", Decimal::MAX, Some("USD"));
        assert_eq!(b.remaining("USD"), Some(Decimal::MIN));
    }

    #[test]
    fn wire_numbers_and_tightest() {
        let b = budget(&["USD:10.50", "credits:100"]);
        let wire = b.to_wire_numbers();
        assert_eq!(serde_json::to_string(&wire).unwrap(), r#"{"USD":10.5,"credits":100}"#);
        let t = b.tightest(&budget(&["USD:3", "EUR:1"]));
        assert_eq!(t.remaining("USD"), Some(dec("3")));
        assert_eq!(t.remaining("EUR"), Some(dec("1")));
        assert_eq!(t.remaining("credits"), Some(dec("100")));
    }
}
