//! [`Glob`]: a compiled, canonical lease pattern, with anchored matching and a sound
//! conservative inclusion check ([`Glob::covers`]).
//!
//! # Grammar
//!
//! The separator is `/` for every target kind, as in the TypeScript reference (it compiles `*`
//! to `[^/]*` whatever the capability). For paths and URLs that is the path separator; names
//! (tools, agents, models) are normally dotted, so there `*` spans dots: `github.*` matches
//! `github.issues.create`. Choosing `.` for names would make the same lease mean something
//! different here than in the reference runtime.
//!
//! The pattern is split at `/` into segments:
//! - a segment that is exactly `**` matches zero or more whole segments: `a/**` matches `a`,
//!   `a/x` and `a/x/y`; `a/**/b` matches `a/b` and `a/x/y/b`. (As in TypeScript, except that
//!   `/**` also matches the root `/`.)
//! - a leading `**/` is not special: `**/b` is "anything, then `/b`" (it does not match `b`),
//!   as in TypeScript;
//! - any other `**` (inside a segment, or the whole pattern) matches any characters,
//!   separators included: `/data/**.txt` matches `/data/a/b.txt`;
//! - `*` matches any characters except `/` (never crosses a separator);
//! - three or more `*` in a row are refused (ambiguous);
//! - everything else is literal, and the match is anchored at both ends.
//!
//! Matching assumes a canonical target (see `canonical.rs`); it deliberately does not
//! canonicalise, which [`super::Lease::allows`] does.

use std::fmt;

use super::canonical::{MAX_TARGET_LEN, canonicalize_pattern};
use super::capability::{Capability, TargetKind};
use super::inclusion::{SEP, Subject, Tok};
use crate::Error;
use crate::error::clip;

/// A compiled lease pattern for one kind of target.
///
/// Two globs are equal when their kind and canonical pattern are equal.
#[derive(Debug, Clone)]
pub struct Glob {
    pattern: String,
    kind: TargetKind,
    toks: Vec<Tok>,
}

impl Glob {
    /// Canonicalises and compiles `pattern` for `capability` (see the module docs).
    ///
    /// Fails with [`Error::InvalidPattern`] when the pattern is empty, longer than
    /// [`super::MAX_PATTERN_LEN`] bytes, holds control characters, cannot be canonicalised,
    /// has `***`, or belongs to `cost.budget` (whose entries are amounts).
    pub fn new(capability: &Capability, pattern: &str) -> Result<Glob, Error> {
        let invalid = |reason: String| Error::InvalidPattern {
            capability: capability.to_string(),
            pattern: clip(pattern),
            reason,
        };
        let kind = capability.target_kind();
        let canonical = canonicalize_pattern(kind, pattern).map_err(invalid)?;
        let toks = tokenize(&canonical).map_err(|r| invalid(r.to_owned()))?;
        Ok(Glob { pattern: canonical, kind, toks })
    }

    /// The canonical pattern (what goes back on the wire).
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// The kind of target this glob matches.
    pub fn target_kind(&self) -> TargetKind {
        self.kind
    }

    /// Whether the pattern has no wildcard (it matches exactly one string).
    pub fn is_literal(&self) -> bool {
        self.toks.iter().all(|t| matches!(t, Tok::Lit(_)))
    }

    /// Whether the *canonical* `target` matches, anchored at both ends.
    ///
    /// Targets longer than [`super::MAX_TARGET_LEN`] never match. Runs in
    /// `O(pattern length × target length / 64)`.
    pub fn matches(&self, target: &str) -> bool {
        target.len() <= MAX_TARGET_LEN && self.accepts(&mut Subject::literal(target))
    }

    /// Whether every string `child` matches is also matched by `self` — proved conservatively:
    /// `false` means "not proved", not "not a subset". Globs of different target kinds never
    /// cover each other.
    ///
    /// The child's wildcards are treated as opaque symbols: a child literal is consumed by an
    /// equal literal, by a parent `*` (unless it is `/`) or by a parent `**`; a child `*` only by
    /// a parent `*` or `**`; a child `**` only by a parent `**` whose language contains it.
    pub fn covers(&self, child: &Glob) -> bool {
        self.kind == child.kind && (self.pattern == child.pattern || self.accepts(&mut child.as_subject()))
    }

    /// This glob's tokens as a subject, for checking it against several parent globs.
    pub(super) fn as_subject(&self) -> Subject {
        Subject::new(self.toks.clone())
    }

    /// Whether this glob accepts a prepared subject (lets one target be checked against many
    /// globs without rebuilding its masks).
    pub(super) fn accepts(&self, subject: &mut Subject) -> bool {
        subject.accepted_by(&self.toks)
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Glob) -> bool {
        self.kind == other.kind && self.pattern == other.pattern
    }
}

impl Eq for Glob {}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

/// Splits a canonical pattern into tokens (see the module docs for the segment rules).
fn tokenize(pattern: &str) -> Result<Vec<Tok>, &'static str> {
    if pattern.contains("***") {
        return Err("three or more `*` in a row");
    }
    let segments: Vec<&str> = pattern.split('/').collect();
    let last = segments.len().saturating_sub(1);
    let mut toks = Vec::with_capacity(pattern.len());
    // Whether the separator before the current segment is already inside a `SlashAny`.
    let mut separator_consumed = false;
    for (i, segment) in segments.iter().enumerate() {
        let globstar = *segment == "**" && last > 0;
        if !globstar || i == 0 {
            if i > 0 && !separator_consumed {
                toks.push(Tok::Lit(SEP));
            }
            separator_consumed = false;
            if globstar {
                // A leading `**/` is "anything" then the separator, as in TypeScript.
                toks.push(Tok::Any);
            } else {
                push_segment(&mut toks, segment);
            }
            continue;
        }
        // A `**` segment after the first absorbs the separator before it; `/**/**` is the
        // same language as `/**`, so a preceding `SlashAny` is merged into this token.
        if separator_consumed && toks.last() == Some(&Tok::SlashAny) {
            toks.pop();
        }
        toks.push(if i == last { Tok::OptTail } else { Tok::SlashAny });
        separator_consumed = i < last;
    }
    Ok(toks)
}

fn push_segment(toks: &mut Vec<Tok>, segment: &str) {
    let bytes = segment.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'*' && bytes.get(i + 1) == Some(&b'*') {
            toks.push(Tok::Any);
            i += 2;
        } else {
            toks.push(if b == b'*' { Tok::Star } else { Tok::Lit(b) });
            i += 1;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    fn glob(cap: &Capability, p: &str) -> Glob {
        Glob::new(cap, p).unwrap()
    }

    fn path(p: &str) -> Glob {
        glob(&Capability::FS_READ, p)
    }

    fn name(p: &str) -> Glob {
        glob(&Capability::TOOL_CALL, p)
    }

    #[test]
    fn literals_are_anchored() {
        let g = path("/data/a.txt");
        assert!(g.is_literal());
        assert!(g.matches("/data/a.txt"));
        assert!(!g.matches("/data/a.txt2"));
        assert!(!g.matches("/x/data/a.txt"));
        assert!(!g.matches("/data/a_txt"), "`.` is literal, not a regex");
        assert!(!name("a?").matches("ab"), "`?` is literal");
        assert!(name("a?").matches("a?"));
    }

    #[test]
    fn star_stays_in_one_segment() {
        let g = path("/data/*");
        assert!(g.matches("/data/x"));
        assert!(g.matches("/data/"), "`*` may be empty");
        assert!(!g.matches("/data/x/y"));
        assert!(!g.matches("/data"));
        let g = path("/data/*.csv");
        assert!(g.matches("/data/report.csv"));
        assert!(!g.matches("/data/sub/report.csv"));
        assert!(name("github.*").matches("github.issues.create"), "`*` crosses dots in names");
        assert!(!name("github.*").matches("github/issues"));
    }

    #[test]
    fn globstar_segment_is_zero_or_more_segments() {
        let g = path("/a/**");
        assert!(g.matches("/a"), "`a/**` matches `a` itself (zero segments)");
        assert!(g.matches("/a/x"));
        assert!(g.matches("/a/x/y"));
        assert!(!g.matches("/ab"));
        assert!(!g.matches("/b/a/x"));
        let g = path("/a/**/b");
        assert!(g.matches("/a/b"));
        assert!(g.matches("/a/x/y/b"));
        assert!(!g.matches("/a/xb"));
        assert!(!g.matches("/a/x/b/c"));
        let root = path("/**");
        assert!(root.matches("/"));
        assert!(root.matches("/etc/passwd"));
        assert!(!root.matches("etc"));
    }

    #[test]
    fn other_globstars() {
        assert!(path("**").matches("/etc/passwd"));
        assert!(path("**").matches("relative/x"));
        let g = path("/data/**.txt");
        assert!(g.matches("/data/a/b.txt"));
        assert!(!g.matches("/data/a/b.csv"));
        let lead = name("**/x");
        assert!(lead.matches("a/b/x"));
        assert!(lead.matches("/x"));
        assert!(!lead.matches("x"), "a leading `**/` needs a separator, as in TypeScript");
        assert!(Glob::new(&Capability::FS_READ, "/a/***").is_err());
    }

    #[test]
    fn consecutive_globstars_merge() {
        assert_eq!(name("a/**/**/b").toks, name("a/**/b").toks);
        assert_eq!(name("a/**/**").toks, name("a/**").toks);
        assert!(name("a/**/**/b").matches("a/b"));
    }

    #[test]
    fn patterns_are_canonicalised() {
        assert_eq!(path("/data/./x//../**/").as_str(), "/data/**");
        assert_eq!(glob(&Capability::NET_FETCH, "HTTPS://Example.com:443/a/**").as_str(), "https://example.com/a/**");
        assert!(Glob::new(&Capability::FS_READ, "").is_err());
        assert!(Glob::new(&Capability::COST_BUDGET, "USD:1").is_err());
        assert!(Glob::new(&Capability::FS_READ, &"a".repeat(MAX_TARGET_LEN + 1)).is_err());
    }

    #[test]
    fn long_targets_never_match() {
        assert!(!path("**").matches(&"a".repeat(MAX_TARGET_LEN + 1)));
    }

    #[test]
    fn covers_basic_cases() {
        assert!(path("/data/**").covers(&path("/data/x/*.csv")));
        assert!(path("/data/**").covers(&path("/data/**")));
        assert!(path("/data/**").covers(&path("/data")));
        assert!(path("/data/**").covers(&path("/data/a/**/b")));
        assert!(path("/a/**/c").covers(&path("/a/b/c")));
        assert!(path("/a/**/c").covers(&path("/a/c")));
        assert!(path("/a/*").covers(&path("/a/b*")));
        assert!(name("*").covers(&name("x")));
        assert!(name("**").covers(&name("a/**/b")));
        assert!(!path("/data/**").covers(&path("/etc/**")));
        assert!(!path("/data/*").covers(&path("/data/a/b")));
        assert!(!name("a*").covers(&name("**")));
        assert!(!path("/data/**").covers(&glob(&Capability::NET_FETCH, "**")), "kinds differ");
    }

    /// The TypeScript check (parent compiled to a regex, run on the child *pattern string*)
    /// accepts this, because `[^/]*` matches the text `**`. It is not a subset: the child
    /// matches `a/x/y`, the parent does not.
    #[test]
    fn star_does_not_cover_globstar() {
        let parent = name("a/*");
        let child = name("a/**");
        assert!(parent.matches("a/**"), "what TypeScript's regex check sees");
        assert!(child.matches("a/x/y") && !parent.matches("a/x/y"));
        assert!(!parent.covers(&child));
        assert!(!path("/a/*").covers(&path("/a/**")));
        assert!(!name("*").covers(&name("*/*")) || name("*").matches("x/y"));
    }

    #[test]
    fn bitset_engine_handles_long_inputs_across_words() {
        let target = format!("/{}/{}", "a".repeat(200), "b".repeat(70));
        assert!(path("/*/*").matches(&target));
        assert!(path("/**/b*").matches(&target));
        assert!(!path("/*").matches(&target));
        let long_pattern = format!("/{}", "*/".repeat(300)) + "x";
        let long_target = format!("/{}", "y/".repeat(300)) + "x";
        assert!(path(&long_pattern).matches(&long_target));
        assert!(path("/**").covers(&path(&long_pattern)));
    }

    /// A pathological pattern for backtracking matchers finishes quickly here.
    #[test]
    fn no_exponential_backtracking() {
        let pattern = format!("{}b", "*a".repeat(1000));
        let target = "a".repeat(4000);
        assert!(!name(&pattern).matches(&target));
        let pattern = format!("{}b", "**a".repeat(1000));
        assert!(!name(&pattern).matches(&target));
        assert!(!name(&pattern).covers(&name(&format!("{}c", "**a".repeat(1000)))));
    }

    // ---- properties, over a tiny alphabet so that interesting overlaps are common ----

    fn pattern_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("/"), Just("*"), Just("**")], 1..8)
            .prop_map(|parts| parts.concat())
            .prop_filter("no ***", |p| !p.contains("***"))
    }

    fn target_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("/")], 0..10).prop_map(|parts| parts.concat())
    }

    /// Every string over `{a, b, /}` of length at most 6.
    fn all_targets() -> &'static [String] {
        static ALL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        ALL.get_or_init(build_all_targets)
    }

    fn build_all_targets() -> Vec<String> {
        let mut all = vec![String::new()];
        let mut frontier = vec![String::new()];
        for _ in 0..6 {
            frontier = frontier.iter().flat_map(|s| ["a", "b", "/"].map(|c| format!("{s}{c}"))).collect();
            all.extend(frontier.iter().cloned());
        }
        all
    }

    /// Applies edits to a pattern: replace the i-th `*`/`**` with a literal or `*`, or insert a
    /// literal.
    fn narrow(pattern: &str, edits: &[(usize, usize)]) -> String {
        let mut s = pattern.to_owned();
        for &(at, what) in edits {
            let stars: Vec<usize> = s.match_indices('*').map(|(i, _)| i).collect();
            let replacement = ["a", "b", "/", "*", ""][what];
            match stars.get(at % stars.len().max(1)) {
                Some(&i) => s.replace_range(i..=i, replacement),
                None => s.insert_str(s.len().min(at), replacement),
            }
        }
        s
    }

    #[test]
    fn soundness_properties_are_not_vacuous() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut covered, mut total) = (0, 0);
        for _ in 0..2000 {
            let p = pattern_strategy().new_tree(&mut runner).unwrap().current();
            let c = pattern_strategy().new_tree(&mut runner).unwrap().current();
            total += 1;
            if name(&p).covers(&name(&c)) && p != c {
                covered += 1;
            }
        }
        assert!(covered * 20 > total, "only {covered} of {total} random pairs are covered");
    }

    /// Reference semantics for `matches`, by plain recursion over the tokens (exponential,
    /// fine for tiny inputs).
    fn reference(toks: &[Tok], t: &[u8]) -> bool {
        match toks.split_first() {
            None => t.is_empty(),
            Some((Tok::Lit(b), rest)) => t.first() == Some(b) && reference(rest, &t[1..]),
            Some((Tok::Star, rest)) => {
                (0..=t.len()).take_while(|&k| k == 0 || t[k - 1] != b'/').any(|k| reference(rest, &t[k..]))
            }
            Some((Tok::Any, rest)) => (0..=t.len()).any(|k| reference(rest, &t[k..])),
            Some((Tok::OptTail, rest)) => {
                reference(rest, t) || (t.first() == Some(&b'/') && (1..=t.len()).any(|k| reference(rest, &t[k..])))
            }
            Some((Tok::SlashAny, rest)) => {
                t.first() == Some(&b'/') && (1..=t.len()).any(|k| t[k - 1] == b'/' && reference(rest, &t[k..]))
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn matches_agrees_with_the_reference(p in pattern_strategy(), t in target_strategy()) {
            let g = name(&p);
            prop_assert_eq!(g.matches(&t), reference(&g.toks, t.as_bytes()), "pattern {:?} target {:?}", p, t);
        }

        #[test]
        fn a_pattern_covers_itself(p in pattern_strategy()) {
            let g = name(&p);
            prop_assert!(g.covers(&g));
            prop_assert!(g.accepts(&mut g.as_subject()), "also without the equality shortcut");
        }

        #[test]
        fn covers_is_sound(parent in pattern_strategy(), child in pattern_strategy()) {
            let (parent, child) = (name(&parent), name(&child));
            if parent.covers(&child) {
                for t in all_targets() {
                    prop_assert!(!child.matches(t) || parent.matches(t), "{} covers {} but not {:?}", parent, child, t);
                }
            }
        }

        #[test]
        fn covers_is_sound_for_derived_children(parent in pattern_strategy(), edits in prop::collection::vec((0usize..8, 0usize..5), 1..4)) {
            // Children made by narrowing edits of the parent are often covered, which
            // exercises the interesting cases more than independent random pairs.
            let child = narrow(&parent, &edits);
            let (Ok(parent), Ok(child)) = (Glob::new(&Capability::TOOL_CALL, &parent), Glob::new(&Capability::TOOL_CALL, &child)) else {
                return Ok(());
            };
            if parent.covers(&child) {
                for t in all_targets() {
                    prop_assert!(!child.matches(t) || parent.matches(t), "{} covers {} but not {:?}", parent, child, t);
                }
            }
        }

        #[test]
        fn covers_is_sound_for_paths(parent in pattern_strategy(), child in pattern_strategy(), t in target_strategy()) {
            let (Ok(parent), Ok(child)) = (Glob::new(&Capability::FS_READ, &parent), Glob::new(&Capability::FS_READ, &child)) else {
                return Ok(());
            };
            let Ok(t) = crate::lease::canonicalize_path(&t) else { return Ok(()) };
            if parent.covers(&child) && child.matches(&t) {
                prop_assert!(parent.matches(&t), "{} covers {} but not {:?}", parent, child, t);
            }
        }

        #[test]
        fn covers_is_transitive(a in pattern_strategy(), b in pattern_strategy(), c in pattern_strategy()) {
            let (a, b, c) = (name(&a), name(&b), name(&c));
            if a.covers(&b) && b.covers(&c) {
                prop_assert!(a.covers(&c), "{} ⊇ {} ⊇ {} but not {} ⊇ {}", a, b, c, a, c);
            }
        }

        #[test]
        fn a_literal_child_is_covered_exactly_when_matched(p in pattern_strategy(), t in "[ab/]{1,10}") {
            let (parent, child) = (name(&p), name(&t));
            prop_assert_eq!(parent.covers(&child), parent.matches(&t));
        }
    }
}
