//! Tests of the typed [`Lease`]: wire validation, the round trip and the per-operation check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::*;

fn wire(entries: &[(&str, &[&str])]) -> LeaseMap {
    LeaseMap(
        entries
            .iter()
            .map(|(c, ps)| ((*c).to_owned(), ps.iter().map(|p| (*p).to_owned()).collect()))
            .collect::<BTreeMap<_, _>>(),
    )
}

fn lease(entries: &[(&str, &[&str])]) -> Lease {
    Lease::from_wire(&wire(entries)).unwrap()
}

const NOW: u64 = 1_800_000_000_000;

#[test]
fn from_wire_validates_names_patterns_and_amounts() {
    let err = Lease::from_wire(&wire(&[("fs.delete", &["/x"])])).unwrap_err();
    assert!(matches!(err, Error::InvalidCapability { .. }));
    let err = Lease::from_wire(&wire(&[("", &["/x"])])).unwrap_err();
    assert!(matches!(err, Error::InvalidCapability { .. }));
    let err = Lease::from_wire(&wire(&[("fs.read", &[""])])).unwrap_err();
    assert!(matches!(err, Error::InvalidPattern { ref capability, .. } if capability == "fs.read"));
    let err = Lease::from_wire(&wire(&[("fs.read", &["/../etc"])])).unwrap_err();
    assert!(matches!(err, Error::InvalidPattern { .. }));
    let err = Lease::from_wire(&wire(&[("cost.budget", &["USD:-1"])])).unwrap_err();
    assert!(matches!(err, Error::InvalidAmount { .. }));
    let err = Lease::from_wire(&wire(&[("cost.budget", &["USD:79228162514264337593543950335", "USD:1"])])).unwrap_err();
    assert!(matches!(err, Error::InvalidAmount { .. }));
    assert_eq!(err.code(), crate::ErrorCode::INVALID_REQUEST);
}

#[test]
fn from_wire_bounds_the_lease_size() {
    let many: Vec<String> = (0..=MAX_LEASE_PATTERNS).map(|i| format!("tool{i}")).collect();
    let map = LeaseMap(BTreeMap::from([("tool.call".to_owned(), many)]));
    assert!(matches!(Lease::from_wire(&map), Err(Error::InvalidPattern { .. })));
    let big: Vec<String> = (0..5).map(|i| format!("{i}{}", "x".repeat(4000))).collect();
    let map = LeaseMap(BTreeMap::from([("tool.call".to_owned(), big)]));
    assert!(matches!(Lease::from_wire(&map), Err(Error::InvalidPattern { .. })));
}

#[test]
fn empty_lists_grant_nothing() {
    let l = lease(&[("fs.read", &[])]);
    assert!(!l.is_empty());
    assert!(!l.allows(&Capability::FS_READ, "/x").unwrap());
    assert!(Lease::default().is_empty());
}

#[test]
fn to_wire_round_trips_canonical_patterns() {
    let l = lease(&[
        ("fs.read", &["/data/./x/../**"]),
        ("net.fetch", &["HTTPS://Example.com:443/api/*"]),
        ("cost.budget", &["USD:1.50", "USD:2"]),
        ("x-vendor.acme.gpu", &["a100"]),
    ]);
    let out = l.to_wire();
    assert_eq!(out.0["fs.read"], vec!["/data/**".to_owned()]);
    assert_eq!(out.0["net.fetch"], vec!["https://example.com/api/*".to_owned()]);
    assert_eq!(out.0["cost.budget"], vec!["USD:1.50".to_owned(), "USD:2".to_owned()]);
    assert_eq!(Lease::from_wire(&out).unwrap(), l);
    assert_eq!(l.budget().remaining("USD"), Some(Decimal::new(350, 2)));
    assert_eq!(l.globs(&Capability::COST_BUDGET), &[] as &[Glob]);
    assert_eq!(l.amounts().len(), 2);
    assert_eq!(l.capabilities().count(), 4);
}

#[test]
fn canonicalisation_defeats_dot_dot_escapes() {
    let l = lease(&[("fs.read", &["/data/**"])]);
    assert!(l.allows(&Capability::FS_READ, "/data/reports/q1.csv").unwrap());
    assert!(l.allows(&Capability::FS_READ, "/data//reports/./q1.csv").unwrap());
    assert!(l.allows(&Capability::FS_READ, "/data").unwrap());
    assert!(!l.allows(&Capability::FS_READ, "/data/../etc/passwd").unwrap());
    assert!(!l.allows(&Capability::FS_READ, "/data/x/../../etc/passwd").unwrap());
    assert!(!l.allows(&Capability::FS_READ, "/database").unwrap());
    assert!(l.allows(&Capability::FS_READ, "/data/../../etc/passwd").is_err());
    let err = l.check_operation(&Capability::FS_READ, "/data/../etc/passwd", None, None, NOW).unwrap_err();
    assert_eq!(err, Error::PermissionDenied { capability: "fs.read".to_owned(), target: "/etc/passwd".to_owned() });
    let err = l.check_operation(&Capability::FS_READ, "/data/../../etc/passwd", None, None, NOW).unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "uncanonicalisable = not covered");
}

#[test]
fn urls_are_normalised_before_matching() {
    let l = lease(&[("net.fetch", &["https://api.example.com/v1/**"])]);
    let ok = |t: &str| l.allows(&Capability::NET_FETCH, t).unwrap();
    assert!(ok("https://api.example.com/v1/users"));
    assert!(ok("HTTPS://API.EXAMPLE.COM:443/v1/users"));
    assert!(ok("https://api.example.com/v2/../v1/users"));
    assert!(ok("https://api.example.com//v1//users#frag"));
    assert!(!ok("https://api.example.com/v1/../admin"));
    assert!(!ok("https://api.example.com:8443/v1/users"));
    assert!(!ok("http://api.example.com/v1/users"));
    assert!(!ok("https://api.example.com.evil.com/v1/x"));
    assert!(!ok("https://api.example.com@evil.com/v1/x"));
    assert!(l.allows(&Capability::NET_FETCH, "https://api.example.com/v1/..%2Fadmin").is_err());
}

#[test]
fn names_match_as_given() {
    let l = lease(&[("tool.call", &["search.*", "calc"]), ("model.use", &["claude-*"])]);
    assert!(l.allows(&Capability::TOOL_CALL, "search.web").unwrap());
    assert!(l.allows(&Capability::TOOL_CALL, "calc").unwrap());
    assert!(!l.allows(&Capability::TOOL_CALL, "calculator").unwrap());
    assert!(!l.allows(&Capability::TOOL_CALL, "shell").unwrap());
    assert!(l.allows(&Capability::MODEL_USE, "claude-sonnet-4").unwrap());
    assert!(!l.allows(&Capability::MODEL_USE, "gpt-4o").unwrap());
    assert!(!l.allows(&Capability::FS_READ, "/x").unwrap(), "capability absent");
    assert!(matches!(l.allows(&Capability::COST_BUDGET, "USD:1"), Err(Error::InvalidCapability { .. })));
}

#[test]
fn check_operation_order_is_expiry_budget_pattern() {
    let l = lease(&[("tool.call", &["calc"]), ("cost.budget", &["USD:1"])]);
    let expired = ExpiresAt::from_unix_millis(NOW).unwrap();
    let later = ExpiresAt::from_unix_millis(NOW + 1).unwrap();
    let mut spent = l.budget();
    spent.apply_cost("cost.llm", Decimal::ONE, Some("USD"));

    // Everything wrong at once: expiry wins.
    let err = l.check_operation(&Capability::TOOL_CALL, "shell", Some(&expired), Some(&spent), NOW);
    assert!(matches!(err, Err(Error::LeaseExpired { .. })));
    assert_eq!(err.unwrap_err().code(), crate::ErrorCode::LEASE_EXPIRED);
    // Not expired, budget exhausted and pattern wrong: budget wins.
    let err = l.check_operation(&Capability::TOOL_CALL, "shell", Some(&later), Some(&spent), NOW);
    assert_eq!(err, Err(Error::BudgetExhausted { currency: "USD".to_owned() }));
    // Only the pattern is wrong.
    let err = l.check_operation(&Capability::TOOL_CALL, "shell", Some(&later), Some(&l.budget()), NOW);
    assert!(matches!(err, Err(Error::PermissionDenied { .. })));
    // All fine.
    assert!(l.check_operation(&Capability::TOOL_CALL, "calc", Some(&later), Some(&l.budget()), NOW).is_ok());
    assert!(l.check_operation(&Capability::TOOL_CALL, "calc", None, None, NOW).is_ok());
    assert!(matches!(
        l.check_operation(&Capability::COST_BUDGET, "USD:1", None, None, NOW),
        Err(Error::InvalidCapability { .. })
    ));
}

mod subset_properties {
    //! Lease-level properties of the §9.4 subset check over small random leases.

    use proptest::prelude::*;

    use super::*;

    fn path_pattern() -> impl Strategy<Value = String> {
        proptest::collection::vec(proptest::sample::select(vec!["a", "b", "*", "**", "a*"]), 1..4)
            .prop_map(|segs| format!("/{}", segs.join("/")))
    }

    fn small_lease() -> impl Strategy<Value = Lease> {
        (
            proptest::collection::vec(path_pattern(), 0..3),
            proptest::collection::vec(proptest::sample::select(vec!["x", "y", "*", "x*"]), 0..3),
            proptest::option::of(0u32..10),
        )
            .prop_filter_map("valid lease", |(paths, tools, usd)| {
                let mut map = BTreeMap::new();
                if !paths.is_empty() {
                    map.insert("fs.read".to_owned(), paths);
                }
                if !tools.is_empty() {
                    map.insert("tool.call".to_owned(), tools.into_iter().map(str::to_owned).collect());
                }
                if let Some(usd) = usd {
                    map.insert("cost.budget".to_owned(), vec![format!("USD:{usd}")]);
                }
                Lease::from_wire(&LeaseMap(map)).ok()
            })
    }

    fn targets() -> Vec<String> {
        let mut out = vec!["/".to_owned()];
        for a in ["a", "b", "ab"] {
            out.push(format!("/{a}"));
            for b in ["a", "b"] {
                out.push(format!("/{a}/{b}"));
                out.push(format!("/{a}/{b}/a"));
            }
        }
        out
    }

    fn is_subset(parent: &Lease, child: &Lease) -> bool {
        check_subset(parent, None, &parent.budget(), child, None).is_ok()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

        #[test]
        fn a_lease_is_a_subset_of_itself(l in small_lease()) {
            prop_assert!(is_subset(&l, &l));
        }

        #[test]
        fn subset_is_transitive(a in small_lease(), b in small_lease(), c in small_lease()) {
            if is_subset(&a, &b) && is_subset(&b, &c) {
                prop_assert!(is_subset(&a, &c));
            }
        }

        #[test]
        fn a_subset_never_allows_what_its_parent_denies(parent in small_lease(), child in small_lease()) {
            if !is_subset(&parent, &child) {
                return Ok(());
            }
            for t in targets() {
                if child.allows(&Capability::FS_READ, &t).unwrap_or(false) {
                    prop_assert!(parent.allows(&Capability::FS_READ, &t).unwrap_or(false), "{t}");
                }
            }
            for t in ["x", "y", "xx", "z"] {
                if child.allows(&Capability::TOOL_CALL, t).unwrap_or(false) {
                    prop_assert!(parent.allows(&Capability::TOOL_CALL, t).unwrap_or(false), "{t}");
                }
            }
        }
    }

    #[test]
    fn the_generator_produces_real_subset_pairs() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let mut nontrivial = 0;
        for _ in 0..2000 {
            let parent = small_lease().new_tree(&mut runner).unwrap().current();
            let child = small_lease().new_tree(&mut runner).unwrap().current();
            if !child.is_empty() && is_subset(&parent, &child) {
                nontrivial += 1;
            }
        }
        assert!(nontrivial >= 40, "only {nontrivial} non-trivial subset pairs in 2000");
    }
}
