//! The delegation subset check (§9.4, §10): a child lease may never widen its parent's, and
//! the child's effective bounds (expiry, budget, `model.use`) that follow from it.
//!
//! Deliberately does not create jobs, report errors on the wire (a violation goes back to the
//! parent as a `tool_result`, which is the runtime's business) or roll child costs up into the
//! parent's counters.

use super::budget::Budget;
use super::capability::Capability;
use super::expiry::ExpiresAt;
use super::{Grant, Lease};
use crate::Error;
use crate::error::clip;

/// What a child job actually runs under once the subset check has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildBounds {
    /// The child lease to grant (and echo in `job.accepted.lease`): the requested one, plus the
    /// parent's `model.use` when the child names none (so "no `model.use`" can never mean "any
    /// model" under a parent that restricts models).
    pub lease: Lease,
    /// The effective expiry: the earlier of the child's and the parent's (a child without one
    /// inherits the parent's).
    pub expires_at: Option<ExpiresAt>,
    /// The child's initial counters: its own `cost.budget`, plus the parent's *remaining*
    /// amount for every parent currency the child does not name.
    pub budget: Budget,
}

/// Checks that `child` is a subset of `parent` (§9.4) and returns the child's effective bounds.
///
/// - every capability the child names with at least one pattern must be granted by the parent,
///   and every child glob must be covered by some parent glob ([`super::Glob::covers`],
///   conservative: unproved coverage is a violation);
/// - `cost.budget`: per currency, the child's total must not exceed the parent's **remaining**
///   amount, and a currency the parent's budget does not have is a violation;
/// - the child's `expires_at` must not be after the parent's.
///
/// Violations are [`Error::LeaseSubsetViolation`], naming the capability (or
/// `lease_constraints.expires_at`). `model.use` is checked like any glob capability.
pub fn check_subset(
    parent: &Lease,
    parent_expires: Option<&ExpiresAt>,
    parent_remaining: &Budget,
    child: &Lease,
    child_expires: Option<&ExpiresAt>,
) -> Result<ChildBounds, Error> {
    for (capability, grant) in child.grants() {
        match grant {
            Grant::Amounts(_) => check_budget(parent_remaining, &child.budget())?,
            Grant::Globs(globs) if globs.is_empty() => {}
            Grant::Globs(globs) => {
                let parents = parent.globs(capability);
                if parents.is_empty() {
                    return Err(violation(capability.as_str(), "not granted by the parent lease".to_owned()));
                }
                for glob in globs {
                    let mut subject = glob.as_subject();
                    let covered = parents.contains(glob)
                        || parents.iter().any(|p| p.target_kind() == glob.target_kind() && p.accepts(&mut subject));
                    if !covered {
                        return Err(violation(
                            capability.as_str(),
                            format!("pattern {:?} is not covered by the parent's patterns", clip(glob.as_str())),
                        ));
                    }
                }
            }
        }
    }
    if let (Some(child_at), Some(parent_at)) = (child_expires, parent_expires)
        && child_at > parent_at
    {
        return Err(violation("lease_constraints.expires_at", format!("{child_at} is after the parent's {parent_at}")));
    }

    let lease = match (child.grant(&Capability::MODEL_USE), parent.grant(&Capability::MODEL_USE)) {
        (None, Some(inherited)) => child.with_grant(Capability::MODEL_USE, inherited.clone()),
        _ => child.clone(),
    };
    Ok(ChildBounds {
        lease,
        expires_at: ExpiresAt::earliest(child_expires.copied(), parent_expires.copied()),
        budget: child.budget().tightest(parent_remaining),
    })
}

/// The whole delegation check (§10, and decision 12 of `spec/arcp.md`), at `now_millis`:
/// 1. the parent may delegate to `agent`: [`Lease::check_operation`] with `agent.delegate`
///    (so an expired parent, an exhausted budget or an uncovered agent name fail first, with
///    [`Error::LeaseExpired`], [`Error::BudgetExhausted`] or [`Error::PermissionDenied`]);
/// 2. an explicit child `expires_at` must be in the future ([`Error::InvalidExpiresAt`]);
/// 3. [`check_subset`].
pub fn check_delegation(
    parent: &Lease,
    parent_expires: Option<&ExpiresAt>,
    parent_remaining: &Budget,
    agent: &str,
    child: &Lease,
    child_expires: Option<&ExpiresAt>,
    now_millis: u64,
) -> Result<ChildBounds, Error> {
    parent.check_operation(&Capability::AGENT_DELEGATE, agent, parent_expires, Some(parent_remaining), now_millis)?;
    if let Some(child_at) = child_expires {
        child_at.validate_future(now_millis)?;
    }
    check_subset(parent, parent_expires, parent_remaining, child, child_expires)
}

fn check_budget(parent_remaining: &Budget, child: &Budget) -> Result<(), Error> {
    for (currency, amount) in child.counters() {
        match parent_remaining.remaining(currency) {
            None => {
                return Err(violation(
                    Capability::COST_BUDGET.as_str(),
                    format!("currency {currency} is not in the parent's budget"),
                ));
            }
            Some(left) if *amount > left => {
                return Err(violation(
                    Capability::COST_BUDGET.as_str(),
                    format!("{currency}:{amount} exceeds the parent's remaining {left}"),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn violation(capability: &str, reason: String) -> Error {
    Error::LeaseSubsetViolation { capability: capability.to_owned(), reason }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::message::LeaseMap;
    use rust_decimal::Decimal;
    use std::collections::BTreeMap;

    fn lease(entries: &[(&str, &[&str])]) -> Lease {
        let map: BTreeMap<String, Vec<String>> =
            entries.iter().map(|(c, ps)| ((*c).to_owned(), ps.iter().map(|p| (*p).to_owned()).collect())).collect();
        Lease::from_wire(&LeaseMap(map)).unwrap()
    }

    fn at(s: &str) -> ExpiresAt {
        ExpiresAt::parse(s).unwrap()
    }

    fn violation_on(result: Result<ChildBounds, Error>) -> String {
        match result {
            Err(Error::LeaseSubsetViolation { capability, .. }) => capability,
            other => panic!("expected a subset violation, got {other:?}"),
        }
    }

    #[test]
    fn narrower_globs_pass() {
        let parent = lease(&[("fs.read", &["/data/**"]), ("tool.call", &["search.*", "calc"])]);
        let child = lease(&[("fs.read", &["/data/reports/*.csv"]), ("tool.call", &["calc"])]);
        let bounds = check_subset(&parent, None, &Budget::new(), &child, None).unwrap();
        assert_eq!(bounds.lease, child);
        assert_eq!(bounds.expires_at, None);
        assert!(bounds.budget.is_empty());
    }

    #[test]
    fn wider_or_foreign_globs_fail() {
        let parent = lease(&[("fs.read", &["/data/*"])]);
        let wider = lease(&[("fs.read", &["/data/**"])]);
        assert_eq!(violation_on(check_subset(&parent, None, &Budget::new(), &wider, None)), "fs.read");
        let other_cap = lease(&[("fs.write", &["/data/x"])]);
        assert_eq!(violation_on(check_subset(&parent, None, &Budget::new(), &other_cap, None)), "fs.write");
        let empty = lease(&[("fs.write", &[])]);
        assert!(check_subset(&parent, None, &Budget::new(), &empty, None).is_ok());
    }

    #[test]
    fn budget_is_bounded_by_the_parents_remaining() {
        let parent = lease(&[("cost.budget", &["USD:10", "EUR:5"])]);
        let mut remaining = parent.budget();
        remaining.apply_cost("cost.llm", Decimal::from(7), Some("USD"));

        let fits = lease(&[("cost.budget", &["USD:1", "USD:2"])]);
        let bounds = check_subset(&parent, None, &remaining, &fits, None).unwrap();
        assert_eq!(bounds.budget.remaining("USD"), Some(Decimal::from(3)));
        assert_eq!(bounds.budget.remaining("EUR"), Some(Decimal::from(5)), "inherited");

        let too_much = lease(&[("cost.budget", &["USD:3.01"])]);
        assert_eq!(violation_on(check_subset(&parent, None, &remaining, &too_much, None)), "cost.budget");
        let foreign = lease(&[("cost.budget", &["GBP:1"])]);
        assert_eq!(violation_on(check_subset(&parent, None, &remaining, &foreign, None)), "cost.budget");
        let no_parent_budget = lease(&[]);
        assert_eq!(violation_on(check_subset(&no_parent_budget, None, &Budget::new(), &fits, None)), "cost.budget");
    }

    #[test]
    fn child_without_budget_inherits_the_parents_remaining() {
        let parent = lease(&[("cost.budget", &["USD:10"])]);
        let bounds = check_subset(&parent, None, &parent.budget(), &lease(&[]), None).unwrap();
        assert_eq!(bounds.budget.remaining("USD"), Some(Decimal::from(10)));
    }

    #[test]
    fn model_use_is_a_subset_and_inherited() {
        let parent = lease(&[("model.use", &["gpt-4o*", "claude-*"])]);
        let ok = lease(&[("model.use", &["claude-sonnet"])]);
        assert!(check_subset(&parent, None, &Budget::new(), &ok, None).is_ok());
        let bad = lease(&[("model.use", &["*"])]);
        assert_eq!(violation_on(check_subset(&parent, None, &Budget::new(), &bad, None)), "model.use");
        let silent = lease(&[("tool.call", &[])]);
        let bounds = check_subset(&parent, None, &Budget::new(), &silent, None).unwrap();
        assert_eq!(bounds.lease.globs(&Capability::MODEL_USE), parent.globs(&Capability::MODEL_USE));
        let child_in_unrestricted = check_subset(&lease(&[]), None, &Budget::new(), &lease(&[]), None).unwrap();
        assert!(child_in_unrestricted.lease.is_empty());
    }

    #[test]
    fn expiry_is_bounded_and_inherited() {
        let parent = lease(&[]);
        let p = at("2030-01-01T00:00:00Z");
        let earlier = at("2029-06-01T00:00:00Z");
        let later = at("2030-01-01T00:00:00.001Z");
        let bounds = check_subset(&parent, Some(&p), &Budget::new(), &lease(&[]), None).unwrap();
        assert_eq!(bounds.expires_at, Some(p), "inherited");
        let bounds = check_subset(&parent, Some(&p), &Budget::new(), &lease(&[]), Some(&earlier)).unwrap();
        assert_eq!(bounds.expires_at, Some(earlier));
        let bounds = check_subset(&parent, Some(&p), &Budget::new(), &lease(&[]), Some(&p)).unwrap();
        assert_eq!(bounds.expires_at, Some(p), "equal is allowed");
        assert_eq!(
            violation_on(check_subset(&parent, Some(&p), &Budget::new(), &lease(&[]), Some(&later))),
            "lease_constraints.expires_at"
        );
        let bounds = check_subset(&parent, None, &Budget::new(), &lease(&[]), Some(&later)).unwrap();
        assert_eq!(bounds.expires_at, Some(later));
    }

    #[test]
    fn delegation_needs_agent_delegate() {
        let now = 1_700_000_000_000;
        let parent = lease(&[("agent.delegate", &["researcher*"]), ("net.fetch", &["https://api.example.com/**"])]);
        let child = lease(&[("net.fetch", &["https://API.example.com:443/v1/*"])]);
        let budget = Budget::new();
        assert!(check_delegation(&parent, None, &budget, "researcher@2", &child, None, now).is_ok());
        assert!(matches!(
            check_delegation(&parent, None, &budget, "writer", &child, None, now),
            Err(Error::PermissionDenied { .. })
        ));
        assert!(matches!(
            check_delegation(&lease(&[]), None, &budget, "researcher", &lease(&[]), None, now),
            Err(Error::PermissionDenied { .. })
        ));
        let past = ExpiresAt::from_unix_millis(now).unwrap();
        assert!(matches!(
            check_delegation(&parent, Some(&past), &budget, "researcher", &child, None, now),
            Err(Error::LeaseExpired { .. })
        ));
        assert!(matches!(
            check_delegation(&parent, None, &budget, "researcher", &child, Some(&past), now),
            Err(Error::InvalidExpiresAt { .. })
        ));
        let spent = lease(&[("agent.delegate", &["*"]), ("cost.budget", &["USD:0"])]);
        assert!(matches!(
            check_delegation(&spent, None, &spent.budget(), "researcher", &lease(&[]), None, now),
            Err(Error::BudgetExhausted { .. })
        ));
    }
}
