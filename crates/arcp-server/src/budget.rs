//! Budget accounting at run time (§9.6, feature `cost.budget`; decision 20).
//!
//! Each job holds a [`BudgetState`]: its remaining counters (an exact-decimal
//! [`arcp_core::lease::Budget`]), the initial counters, and what was last reported. A `cost.*`
//! metric the job emits decrements the counter of its `unit` — in the job **and in every
//! ancestor** of a delegated job (decision 20: budgets bound the whole delegation tree) — and
//! may produce a debounced `cost.budget.remaining` metric on each job whose counter moved.
//!
//! Exhaustion is never raised here: a counter at or below zero makes the *next* lease check
//! fail with `BUDGET_EXHAUSTED` (see `lease_guard`). Money is never a float: counters are
//! `rust_decimal` values and metric values are read from their JSON text exactly.

use std::collections::BTreeMap;
use std::sync::Arc;

use arcp_core::event::{JobEvent, Metric};
use arcp_core::lease::{BUDGET_REMAINING_METRIC, Budget, decimal_to_json_number};
use arcp_core::message::Message;
use rust_decimal::Decimal;

use crate::job::Job;
use crate::runtime::Inner;

/// `cost.budget.remaining` is re-emitted once a counter moved by at least this share of its
/// initial value since the last report (5 %, as the TS SDK does).
const REPORT_STEP_PERCENT: u32 = 5;

/// A job's budget counters and the debounce state of its `cost.budget.remaining` metrics.
#[derive(Debug, Clone, Default)]
pub(crate) struct BudgetState {
    remaining: Budget,
    initial: Budget,
    /// Per currency, the value last reported in a `cost.budget.remaining` metric.
    reported: BTreeMap<String, Decimal>,
}

impl BudgetState {
    /// Counters starting at `initial`.
    pub(crate) fn new(initial: Budget) -> Self {
        BudgetState { remaining: initial.clone(), initial, reported: BTreeMap::new() }
    }

    /// The remaining counters.
    pub(crate) fn remaining(&self) -> &Budget {
        &self.remaining
    }

    /// Applies one `metric` (§9.6): a `cost.*` metric (not `cost.budget.remaining`) whose unit
    /// is a budgeted currency and whose value is not negative decrements that counter. Returns
    /// the `cost.budget.remaining` metric to emit, if the debounce rule says one is due: after
    /// the first decrement of a currency, whenever the counter moved by at least 5 % of its
    /// initial value since the last report, and once when it reaches zero or below.
    pub(crate) fn apply(&mut self, metric: &Metric) -> Option<Metric> {
        let unit = metric.unit.as_deref()?;
        let now = self.remaining.apply_cost_json(&metric.name, &metric.value, Some(unit))?;
        let due = match self.reported.get(unit) {
            None => true,
            Some(last) if *last <= Decimal::ZERO => false,
            Some(_) if now <= Decimal::ZERO => true,
            Some(last) => {
                // 5 % of the initial amount, computed without any overflowing operation.
                let initial = self.initial.remaining(unit).unwrap_or(Decimal::ZERO);
                let step = initial / Decimal::from(100 / REPORT_STEP_PERCENT);
                last.checked_sub(now).is_none_or(|moved| moved.abs() >= step)
            }
        };
        if !due {
            return None;
        }
        self.reported.insert(unit.to_owned(), now);
        Some(Metric {
            name: BUDGET_REMAINING_METRIC.to_owned(),
            value: decimal_to_json_number(now),
            unit: Some(unit.to_owned()),
            dimensions: None,
        })
    }
}

/// Accounts a metric `job` has just emitted: decrements `job`'s counters and every
/// ancestor's, emitting each due `cost.budget.remaining` on the job it concerns. Emission
/// failures (a job that has already ended) are ignored: the metric itself was delivered.
pub(crate) async fn account(rt: &Inner, job: &Arc<Job>, metric: &Metric) {
    if !metric.name.starts_with("cost.") || metric.name == BUDGET_REMAINING_METRIC {
        return;
    }
    let mut current = Some(job.clone());
    while let Some(j) = current {
        let report = j.budget.lock().apply(metric);
        if let Some(report) = report {
            let event = JobEvent { ts: rt.now_timestamp(), body: report.into() };
            if let Err(e) = j.emit(rt, Message::JobEvent(event)).await {
                tracing::debug!(job = %j.id, error = %e, "cost.budget.remaining not emitted");
            }
        }
        current = j.parent.clone();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use arcp_core::lease::Amount;
    use std::str::FromStr;

    fn state(amounts: &[&str]) -> BudgetState {
        let amounts: Vec<Amount> = amounts.iter().map(|a| Amount::parse(a).unwrap()).collect();
        BudgetState::new(Budget::from_amounts(&amounts).unwrap())
    }

    fn cost(name: &str, value: &str, unit: &str) -> Metric {
        Metric {
            name: name.into(),
            value: serde_json::from_str(value).unwrap(),
            unit: Some(unit.into()),
            dimensions: None,
        }
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn decrements_exactly_and_debounces_reports() {
        let mut s = state(&["USD:1.00"]);
        // First decrement: reported.
        let m = s.apply(&cost("cost.llm", "0.01", "USD")).unwrap();
        assert_eq!(
            (m.name.as_str(), m.value.to_string(), m.unit.as_deref()),
            ("cost.budget.remaining", "0.99".into(), Some("USD"))
        );
        // 0.01 steps: no report until the counter moved by 0.05 since the last one.
        for _ in 0..4 {
            assert!(s.apply(&cost("cost.llm", "0.01", "USD")).is_none());
        }
        assert_eq!(s.apply(&cost("cost.llm", "0.01", "USD")).unwrap().value.to_string(), "0.94");
        assert_eq!(s.remaining().remaining("USD"), Some(dec("0.94")));
        // Ten cents a hundred times in floating point would drift; decimals do not.
        let mut s = state(&["USD:10"]);
        for _ in 0..100 {
            s.apply(&cost("cost.tokens", "0.1", "USD"));
        }
        assert_eq!(s.remaining().remaining("USD"), Some(Decimal::ZERO));
        assert!(s.remaining().check().is_err());
    }

    #[test]
    fn reaching_zero_is_reported_once() {
        let mut s = state(&["USD:1"]);
        s.apply(&cost("cost.a", "0.001", "USD")).unwrap();
        let m = s.apply(&cost("cost.a", "0.999", "USD")).unwrap();
        assert_eq!(m.value.to_string(), "0");
        assert!(s.apply(&cost("cost.a", "5", "USD")).is_none(), "already reported at zero");
        assert_eq!(s.remaining().remaining("USD"), Some(dec("-5")));
    }

    #[test]
    fn ignores_what_is_not_a_budgeted_cost() {
        let mut s = state(&["USD:1"]);
        assert!(s.apply(&cost("latency", "5", "USD")).is_none());
        assert!(s.apply(&cost("cost.llm", "5", "EUR")).is_none());
        assert!(s.apply(&cost("cost.llm", "-5", "USD")).is_none());
        assert!(s.apply(&cost(BUDGET_REMAINING_METRIC, "5", "USD")).is_none());
        let no_unit = Metric { unit: None, ..cost("cost.llm", "5", "USD") };
        assert!(s.apply(&no_unit).is_none());
        assert_eq!(s.remaining().remaining("USD"), Some(Decimal::ONE));
        let mut empty = BudgetState::default();
        assert!(empty.apply(&cost("cost.llm", "5", "USD")).is_none());
    }

    #[test]
    fn huge_values_exhaust_instead_of_failing() {
        let mut s = state(&["USD:1"]);
        s.apply(&cost("cost.llm", "1e300", "USD"));
        assert!(s.remaining().check().is_err());
        // Extreme counters never overflow the debounce arithmetic.
        let max = "USD:79228162514264337593543950335";
        let mut s = state(&[max]);
        assert!(s.apply(&cost("cost.llm", "1", "USD")).is_some());
        s.apply(&cost("cost.llm", "79228162514264337593543950335", "USD"));
        s.apply(&cost("cost.llm", "79228162514264337593543950335", "USD"));
        s.apply(&cost("cost.llm", "1e300", "USD"));
        assert!(s.remaining().check().is_err());
    }
}
