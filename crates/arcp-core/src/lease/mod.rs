//! Leases (§9): the typed, validated [`Lease`] (capability → canonical globs or budget
//! amounts) and the per-operation check, plus re-exports of capabilities, globs,
//! canonicalisation, expiry, budgets and the delegation subset check.
//!
//! What deliberately is not here: reading clocks ("now" is passed in as Unix milliseconds),
//! touching the filesystem or network (canonicalisation is lexical), emitting events or
//! deciding how a failure is reported on the wire (errors map to codes via
//! [`crate::Error::code`]).
//!
//! Order of the operation check, as in the reference runtime: expiry
//! ([`Error::LeaseExpired`]), then budget ([`Error::BudgetExhausted`]), then the pattern
//! ([`Error::PermissionDenied`]).

mod amount;
mod bitset;
mod budget;
mod canonical;
mod canonical_url;
mod capability;
mod expiry;
mod glob;
mod inclusion;
mod json_decimal;
mod subset;

use std::collections::BTreeMap;

pub use amount::Amount;
pub use budget::{BUDGET_REMAINING_METRIC, Budget};
pub use canonical::{
    MAX_PATTERN_LEN, MAX_TARGET_LEN, canonicalize_name, canonicalize_path, canonicalize_target, canonicalize_url,
};
pub use capability::{Capability, CapabilityKind, TargetKind};
pub use expiry::ExpiresAt;
pub use glob::Glob;
pub use json_decimal::{decimal_from_json_number, decimal_to_json_number};
pub use subset::{ChildBounds, check_delegation, check_subset};

use crate::Error;
use crate::error::clip;
use crate::message::LeaseMap;
use inclusion::Subject;

/// The most patterns (amounts included) one lease may hold.
pub const MAX_LEASE_PATTERNS: usize = 256;

/// The most bytes of capability names and patterns one lease may hold (this bounds the cost
/// of the subset check, which is quadratic in it).
pub const MAX_LEASE_BYTES: usize = 16 * 1024;

/// What a lease grants for one capability.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Grant {
    /// Canonical globs (every capability except `cost.budget`). Empty grants nothing.
    Globs(Vec<Glob>),
    /// `cost.budget` amounts, in wire order.
    Amounts(Vec<Amount>),
}

/// A validated lease: capability → canonical globs (or, for `cost.budget`, amounts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lease {
    entries: BTreeMap<Capability, Grant>,
}

impl Lease {
    /// Validates a wire lease: every capability name must be reserved or a vendor name
    /// ([`Error::InvalidCapability`]), every pattern a valid glob for its capability
    /// ([`Error::InvalidPattern`]; patterns are canonicalised), every `cost.budget` entry a
    /// `currency:decimal` amount whose per-currency totals fit ([`Error::InvalidAmount`]).
    /// An empty pattern list is allowed and grants nothing. Leases larger than
    /// [`MAX_LEASE_PATTERNS`] patterns or [`MAX_LEASE_BYTES`] bytes are refused.
    pub fn from_wire(wire: &LeaseMap) -> Result<Lease, Error> {
        let mut entries = BTreeMap::new();
        let mut patterns = 0usize;
        let mut bytes = 0usize;
        for (name, raw) in &wire.0 {
            let capability = Capability::parse(name)?;
            bytes = bytes.saturating_add(name.len());
            for pattern in raw {
                patterns += 1;
                bytes = bytes.saturating_add(pattern.len());
                if patterns > MAX_LEASE_PATTERNS || bytes > MAX_LEASE_BYTES {
                    return Err(Error::InvalidPattern {
                        capability: capability.to_string(),
                        pattern: clip(pattern),
                        reason: format!("the lease exceeds {MAX_LEASE_PATTERNS} patterns or {MAX_LEASE_BYTES} bytes"),
                    });
                }
            }
            let grant = if capability == Capability::COST_BUDGET {
                let amounts = raw.iter().map(|a| Amount::parse(a)).collect::<Result<Vec<_>, _>>()?;
                Budget::from_amounts(&amounts)?;
                Grant::Amounts(amounts)
            } else {
                Grant::Globs(raw.iter().map(|p| Glob::new(&capability, p)).collect::<Result<_, _>>()?)
            };
            entries.insert(capability, grant);
        }
        Ok(Lease { entries })
    }

    /// The wire form, with canonical patterns (what `job.accepted.lease` echoes).
    pub fn to_wire(&self) -> LeaseMap {
        LeaseMap(
            self.entries
                .iter()
                .map(|(capability, grant)| {
                    let patterns = match grant {
                        Grant::Globs(globs) => globs.iter().map(|g| g.as_str().to_owned()).collect(),
                        Grant::Amounts(amounts) => amounts.iter().map(Amount::to_string).collect(),
                    };
                    (capability.to_string(), patterns)
                })
                .collect(),
        )
    }

    /// Whether the lease names no capability at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The capabilities named by the lease, in wire order.
    pub fn capabilities(&self) -> impl Iterator<Item = &Capability> {
        self.entries.keys()
    }

    /// Every capability with its grant, in wire order.
    pub fn grants(&self) -> impl Iterator<Item = (&Capability, &Grant)> {
        self.entries.iter()
    }

    /// What the lease grants for `capability`, if it names it.
    pub fn grant(&self, capability: &Capability) -> Option<&Grant> {
        self.entries.get(capability)
    }

    /// The globs granted for `capability` (empty if none).
    pub fn globs(&self, capability: &Capability) -> &[Glob] {
        match self.entries.get(capability) {
            Some(Grant::Globs(globs)) => globs,
            _ => &[],
        }
    }

    /// The `cost.budget` amounts (empty if none).
    pub fn amounts(&self) -> &[Amount] {
        match self.entries.get(&Capability::COST_BUDGET) {
            Some(Grant::Amounts(amounts)) => amounts,
            _ => &[],
        }
    }

    /// The initial budget counters (duplicate currencies summed; validated by
    /// [`Lease::from_wire`], so this cannot overflow).
    pub fn budget(&self) -> Budget {
        Budget::from_amounts(self.amounts()).unwrap_or_default()
    }

    /// Whether the lease lets `capability` act on `target`, after canonicalising the target
    /// for the capability's [`TargetKind`]. [`Error::InvalidTarget`] if the target cannot be
    /// canonicalised; [`Error::InvalidCapability`] for `cost.budget`, which has no targets.
    pub fn allows(&self, capability: &Capability, target: &str) -> Result<bool, Error> {
        if capability.kind() == CapabilityKind::CostBudget {
            return Err(no_targets(capability));
        }
        let canonical = canonicalize_target(capability.target_kind(), target)?;
        Ok(self.allows_canonical(capability, &canonical))
    }

    /// Whether some glob of `capability` matches an already canonical target.
    fn allows_canonical(&self, capability: &Capability, canonical: &str) -> bool {
        let globs = self.globs(capability);
        if globs.is_empty() || canonical.len() > MAX_TARGET_LEN {
            return false;
        }
        let mut subject = Subject::literal(canonical);
        globs.iter().any(|glob| glob.accepts(&mut subject))
    }

    /// The full per-operation check (§9.3, §9.5, §9.6), in the reference order:
    /// 1. `expires` reached at `now_millis` → [`Error::LeaseExpired`];
    /// 2. a `budget` currency at or below zero → [`Error::BudgetExhausted`];
    /// 3. no glob of `capability` matches the canonical `target` → [`Error::PermissionDenied`]
    ///    (also when the target cannot be canonicalised, e.g. `/..`: it cannot be proved
    ///    covered). `cost.budget` → [`Error::InvalidCapability`].
    ///
    /// Perform the operation on [`canonicalize_target`]'s output, not on the raw `target`.
    pub fn check_operation(
        &self,
        capability: &Capability,
        target: &str,
        expires: Option<&ExpiresAt>,
        budget: Option<&Budget>,
        now_millis: u64,
    ) -> Result<(), Error> {
        if let Some(expires) = expires {
            expires.check(now_millis)?;
        }
        if let Some(budget) = budget {
            budget.check()?;
        }
        if capability.kind() == CapabilityKind::CostBudget {
            return Err(no_targets(capability));
        }
        let denied =
            |target: &str| Error::PermissionDenied { capability: capability.to_string(), target: clip(target) };
        match canonicalize_target(capability.target_kind(), target) {
            Ok(canonical) if self.allows_canonical(capability, &canonical) => Ok(()),
            Ok(canonical) => Err(denied(&canonical)),
            Err(_) => Err(denied(target)),
        }
    }

    /// A copy with `capability` granted `grant` (replacing any existing grant).
    fn with_grant(&self, capability: Capability, grant: Grant) -> Lease {
        let mut entries = self.entries.clone();
        entries.insert(capability, grant);
        Lease { entries }
    }
}

/// The error for asking whether `cost.budget` covers a target.
fn no_targets(capability: &Capability) -> Error {
    Error::InvalidCapability {
        name: capability.to_string(),
        reason: "cost.budget is not checked against operation targets".to_owned(),
    }
}

#[cfg(test)]
mod tests;
