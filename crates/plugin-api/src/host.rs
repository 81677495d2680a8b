//! Outbound host patterns: normalisation ([`normalize_host_pattern`], [`normalize_host`]),
//! [`HostPattern`] matching and intersection (the effective allowlist is manifest ∩ policy).
//!
//! Normalisation, in order: trim surrounding whitespace; lowercase; strip **one** trailing
//! dot; refuse any of `/ : ? # @` or whitespace; split off at most one leading `*.` (any other
//! `*` is refused); refuse empty labels; IDNA-encode (UTS 46, STD3 ASCII rules, DNS lengths,
//! no leading or trailing hyphen in a label). Two rules of ours on top: the last label may not
//! be all digits (IP literals are not hostnames; IPv6 literals already fail on `:`), and a
//! wildcard needs at least two labels after `*.` (`*.com` would allow a whole TLD).
//!
//! A wildcard matches **exactly one** extra label: `*.x.com` matches `a.x.com`, not
//! `a.b.x.com` nor `x.com`. Hosts are normalised the same way (without the wildcard) before
//! matching; a host that does not normalise matches nothing.

use std::fmt;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

use crate::error::Error;

const FORBIDDEN: [char; 5] = ['/', ':', '?', '#', '@'];

fn invalid(input: &str, reason: impl Into<String>) -> Error {
    Error::InvalidHostPattern { input: input.chars().take(256).collect(), reason: reason.into() }
}

/// Normalises a host pattern (see the module docs) to its canonical string: `*.` + ASCII base,
/// or an ASCII host.
pub fn normalize_host_pattern(input: &str) -> Result<String, Error> {
    HostPattern::parse(input).map(|p| p.to_string())
}

/// Normalises a host (no wildcard allowed) to ASCII, as matching does.
pub fn normalize_host(input: &str) -> Result<String, Error> {
    let (wildcard, base) = normalize(input)?;
    if wildcard {
        return Err(invalid(input, "a host cannot be a wildcard"));
    }
    Ok(base)
}

fn normalize(input: &str) -> Result<(bool, String), Error> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(invalid(input, "empty"));
    }
    let lower = trimmed.to_lowercase();
    let lower = lower.strip_suffix('.').unwrap_or(&lower);
    if let Some(c) = lower.chars().find(|c| FORBIDDEN.contains(c) || c.is_whitespace()) {
        let what = if c.is_whitespace() { "whitespace".to_owned() } else { format!("`{c}`") };
        return Err(invalid(input, format!("contains {what}; only a hostname is allowed")));
    }
    let (wildcard, rest) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower),
    };
    if rest.contains('*') {
        return Err(invalid(input, "`*` is only allowed as one leading `*.`"));
    }
    if rest.is_empty() || rest.split('.').any(str::is_empty) {
        return Err(invalid(input, "empty label"));
    }
    let ascii = Uts46::new()
        .to_ascii(rest.as_bytes(), AsciiDenyList::STD3, Hyphens::CheckFirstLast, DnsLength::Verify)
        .map_err(|_| invalid(input, "not a valid (internationalised) hostname"))?
        .into_owned();
    // UTS 46 maps some characters to `.` (U+3002 and friends): re-check the labels.
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Err(invalid(input, "empty label"));
    }
    if labels.last().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return Err(invalid(input, "an IP address is not a hostname"));
    }
    if wildcard && labels.len() < 2 {
        return Err(invalid(input, "`*.` needs at least two labels after it"));
    }
    Ok((wildcard, ascii))
}

/// A normalised host pattern: an exact host, or `*.` + a base matching one extra label.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostPattern {
    wildcard: bool,
    base: String,
}

impl HostPattern {
    /// Parses and normalises a pattern (see the module docs).
    pub fn parse(input: &str) -> Result<Self, Error> {
        let (wildcard, base) = normalize(input)?;
        Ok(Self { wildcard, base })
    }

    /// Whether the pattern starts with `*.`.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// The ASCII host (for an exact pattern) or the part after `*.`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether `host` (normalised first) matches. A host that does not normalise never matches.
    pub fn matches(&self, host: &str) -> bool {
        normalize_host(host).is_ok_and(|h| self.matches_normalized(&h))
    }

    /// Whether an already-normalised ASCII host matches.
    pub fn matches_normalized(&self, host: &str) -> bool {
        if !self.wildcard {
            return host == self.base;
        }
        host.strip_suffix(self.base.as_str())
            .and_then(|head| head.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.'))
    }

    /// The pattern matching exactly the hosts both match, if any. Two patterns intersect as
    /// patterns: equal ones in themselves, a wildcard and an exact host it matches in that
    /// host; two different wildcards never intersect (each adds exactly one label).
    pub fn intersect(&self, other: &Self) -> Option<Self> {
        match (self.wildcard, other.wildcard) {
            _ if self == other => Some(self.clone()),
            (true, false) if self.matches_normalized(&other.base) => Some(other.clone()),
            (false, true) if other.matches_normalized(&self.base) => Some(self.clone()),
            _ => None,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.base)
    }
}

impl serde::Serialize for HostPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Whether `host` matches any of `patterns`.
pub fn match_outbound_host<'a>(patterns: impl IntoIterator<Item = &'a HostPattern>, host: &str) -> bool {
    let Ok(host) = normalize_host(host) else { return false };
    patterns.into_iter().any(|p| p.matches_normalized(&host))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn norm(s: &str) -> String {
        normalize_host_pattern(s).unwrap()
    }

    #[test]
    fn normalisation_steps() {
        assert_eq!(norm("  Example.COM.  "), "example.com");
        assert_eq!(norm("*.Example.com"), "*.example.com");
        assert_eq!(norm("bücher.example"), "xn--bcher-kva.example");
        assert_eq!(norm("BÜCHER.example."), "xn--bcher-kva.example");
        assert_eq!(norm("xn--bcher-kva.example"), "xn--bcher-kva.example");
        assert_eq!(norm("a-b.example"), "a-b.example");
        assert_eq!(norm("localhost"), "localhost");
    }

    #[test]
    fn invalid_patterns() {
        for bad in [
            "",
            "   ",
            ".",
            "example.com..",
            ".example.com",
            "a..b.com",
            "*",
            "*.",
            "*.com",
            "**.x.com",
            "*.*.x.com",
            "a.*.x.com",
            "*x.com",
            "x*.com",
            "x.com*",
            "https://x.com",
            "x.com/path",
            "x.com:443",
            "x.com?q",
            "x.com#f",
            "user@x.com",
            "a b.com",
            "a\tb.com",
            "[::1]",
            "127.0.0.1",
            "10.0.0.1.",
            "-x.com",
            "x-.com",
            "under_score.com",
            "x.com。",
            &format!("{}.com", "a".repeat(64)),
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?} should be invalid");
        }
    }

    #[test]
    fn wildcard_matches_exactly_one_extra_label() {
        let p = HostPattern::parse("*.x.com").unwrap();
        assert!(p.matches("a.x.com"));
        assert!(p.matches("A.X.COM."));
        assert!(!p.matches("x.com"));
        assert!(!p.matches("a.b.x.com"));
        assert!(!p.matches("ax.com"));
        assert!(!p.matches("a.x.com.evil"));
        assert!(!p.matches("*.x.com"));
        let exact = HostPattern::parse("x.com").unwrap();
        assert!(exact.matches("X.com"));
        assert!(!exact.matches("a.x.com"));
        assert!(match_outbound_host([&exact, &p], "b.x.com"));
        assert!(!match_outbound_host([&exact, &p], "not a host"));
    }

    #[test]
    fn intersection_of_patterns() {
        let p = |s: &str| HostPattern::parse(s).unwrap();
        assert_eq!(p("*.x.com").intersect(&p("a.x.com")), Some(p("a.x.com")));
        assert_eq!(p("a.x.com").intersect(&p("*.x.com")), Some(p("a.x.com")));
        assert_eq!(p("*.x.com").intersect(&p("*.x.com")), Some(p("*.x.com")));
        assert_eq!(p("*.x.com").intersect(&p("*.a.x.com")), None);
        assert_eq!(p("*.x.com").intersect(&p("x.com")), None);
        assert_eq!(p("*.x.com").intersect(&p("a.b.x.com")), None);
        assert_eq!(p("x.com").intersect(&p("y.com")), None);
    }

    fn label() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,10}"
    }

    proptest! {
        #[test]
        fn normalisation_is_idempotent(input in "\\PC{0,40}") {
            if let Ok(once) = normalize_host_pattern(&input) {
                prop_assert_eq!(normalize_host_pattern(&once).ok(), Some(once.clone()));
                prop_assert!(once.is_ascii());
            }
        }

        #[test]
        fn normalisation_is_idempotent_on_hostlike_input(
            wildcard in any::<bool>(),
            labels in proptest::collection::vec("[a-zA-Z0-9äöüß-]{1,8}", 1..5),
            dot in any::<bool>(),
            pad in "[ \t]{0,2}",
        ) {
            let input = format!("{pad}{}{}{}{pad}", if wildcard { "*." } else { "" }, labels.join("."), if dot { "." } else { "" });
            if let Ok(once) = normalize_host_pattern(&input) {
                prop_assert_eq!(normalize_host_pattern(&once).ok(), Some(once.clone()));
            }
        }

        #[test]
        fn wildcard_never_matches_the_base_or_two_extra_labels(
            base in proptest::collection::vec(label(), 2..4),
            a in label(),
            b in label(),
        ) {
            let base = format!("{}.com", base.join("."));
            prop_assume!(HostPattern::parse(&base).is_ok());
            let p = HostPattern::parse(&format!("*.{base}")).unwrap();
            let two = format!("{a}.{b}.{base}");
            let one = format!("{a}.{base}");
            prop_assert!(!p.matches(&base));
            prop_assert!(!p.matches(&two));
            prop_assert!(p.matches(&one));
        }
    }
}
