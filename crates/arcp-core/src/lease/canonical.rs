//! Canonicalisation of operation targets (paths, URLs, names) and of lease patterns, done
//! before any matching (§9.2, §14: "paths and URLs MUST be canonicalised").
//!
//! Paths and names are canonicalised here; URLs in `canonical_url.rs`. Everything is lexical:
//! this module deliberately does not touch the filesystem (no symlink resolution, no case
//! folding, no Unicode normalisation) and does not know any working directory. A runtime should
//! perform the operation on the canonical form it checked, not on the raw target.

use super::canonical_url::{canonicalize_url_pattern, canonicalize_url_target};
use super::capability::TargetKind;
use crate::Error;
use crate::error::clip;

/// The longest target (raw or canonical) accepted, in bytes.
pub const MAX_TARGET_LEN: usize = 4096;

/// The longest lease pattern (raw or canonical) accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 4096;

/// Canonicalises `target` the way capabilities of `kind` need it.
///
/// [`TargetKind::Amount`] has no targets and is always [`Error::InvalidTarget`].
pub fn canonicalize_target(kind: TargetKind, target: &str) -> Result<String, Error> {
    match kind {
        TargetKind::Path => canonicalize_path(target),
        TargetKind::Url => canonicalize_url(target),
        TargetKind::Name => canonicalize_name(target),
        TargetKind::Amount => Err(invalid_target(target, "cost.budget has no operation targets")),
    }
}

/// Canonicalises a filesystem path, lexically.
///
/// `.` segments and repeated or trailing `/` are dropped; `..` removes the previous segment. A
/// `..` with nothing left to remove is an error, for absolute *and* relative paths (the
/// TypeScript SDK silently drops it, which turns `../x` into `x`). Empty paths, control
/// characters and `\` are rejected (a `\` is a separator on some hosts, so it could smuggle a
/// `..` past this check). A relative path that resolves to nothing is `.`.
pub fn canonicalize_path(target: &str) -> Result<String, Error> {
    check_text(target, MAX_TARGET_LEN)
        .and_then(|()| check_path_text(target))
        .and_then(|()| resolve_path(target, false))
        .map_err(|reason| invalid_target(target, reason))
}

/// Canonicalises an absolute URL with the `url` crate (WHATWG parsing).
///
/// The scheme and host are lower-cased (hosts also IDNA- and IPv4-normalised), a default port
/// is removed, dot segments (also `%2e`) are resolved, runs of `/` in the path are collapsed to
/// one, and the fragment is dropped (it is never sent). Rejected: relative or non-hierarchical
/// URLs (`mailto:`, `data:`), control characters, surrounding spaces, and an encoded `/` or `\`
/// (`%2F`, `%5C`) in the path, which a server could decode into a separator after our check.
pub fn canonicalize_url(target: &str) -> Result<String, Error> {
    check_text(target, MAX_TARGET_LEN)
        .map_err(|r| r.to_owned())
        .and_then(|()| canonicalize_url_target(target))
        .and_then(|url| fits(url, MAX_TARGET_LEN).map_err(|r| r.to_owned()))
        .map_err(|reason| Error::InvalidTarget { target: clip(target), reason })
}

/// Canonicalises a name (tool, agent, model, vendor target): it is used as given, but must be
/// non-empty, at most [`MAX_TARGET_LEN`] bytes and free of control characters.
pub fn canonicalize_name(target: &str) -> Result<String, Error> {
    check_text(target, MAX_TARGET_LEN).map(|()| target.to_owned()).map_err(|reason| invalid_target(target, reason))
}

/// Canonicalises a glob pattern of `kind` the same way its targets are, keeping wildcards.
/// The error is the reason only; the caller knows the capability.
pub(super) fn canonicalize_pattern(kind: TargetKind, pattern: &str) -> Result<String, String> {
    check_text(pattern, MAX_PATTERN_LEN).map_err(str::to_owned)?;
    let canonical = match kind {
        TargetKind::Path => {
            check_path_text(pattern).and_then(|()| resolve_path(pattern, true)).map_err(str::to_owned)?
        }
        TargetKind::Url => canonicalize_url_pattern(pattern)?,
        TargetKind::Name => pattern.to_owned(),
        TargetKind::Amount => return Err("cost.budget entries are amounts, not globs".to_owned()),
    };
    fits(canonical, MAX_PATTERN_LEN).map_err(str::to_owned)
}

/// Non-empty, bounded, no control characters.
pub(super) fn check_text(s: &str, max: usize) -> Result<(), &'static str> {
    if s.is_empty() {
        Err("empty")
    } else if s.len() > max {
        Err("too long")
    } else if s.chars().any(char::is_control) {
        Err("contains a control character")
    } else {
        Ok(())
    }
}

fn check_path_text(s: &str) -> Result<(), &'static str> {
    if s.contains('\\') { Err("contains `\\`, which some hosts treat as a separator") } else { Ok(()) }
}

fn fits(s: String, max: usize) -> Result<String, &'static str> {
    if s.len() > max { Err("too long once canonicalised") } else { Ok(s) }
}

/// Resolves `.`, `..` and empty segments of a `/`-separated path. With `pattern`, a `..` may
/// not remove a segment holding a wildcard (what it would mean is unclear, so it is refused).
fn resolve_path(path: &str, pattern: bool) -> Result<String, &'static str> {
    let absolute = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => match out.pop() {
                Some(prev) if pattern && prev.contains('*') => {
                    return Err("`..` after a wildcard segment");
                }
                Some(_) => {}
                None => return Err("`..` climbs above the start of the path"),
            },
            _ => out.push(segment),
        }
    }
    let joined = out.join("/");
    Ok(match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    })
}

fn invalid_target(target: &str, reason: &str) -> Error {
    Error::InvalidTarget { target: clip(target), reason: reason.to_owned() }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn path(s: &str) -> String {
        canonicalize_path(s).unwrap()
    }

    #[test]
    fn paths_resolve_dots_and_slashes() {
        assert_eq!(path("/data/../etc/passwd"), "/etc/passwd");
        assert_eq!(path("/data/./a//b/"), "/data/a/b");
        assert_eq!(path("//data"), "/data");
        assert_eq!(path("/"), "/");
        assert_eq!(path("/a/.."), "/");
        assert_eq!(path("a/b/../c"), "a/c");
        assert_eq!(path("./"), ".");
        assert_eq!(path("a/.."), ".");
    }

    #[test]
    fn paths_fail_closed() {
        for bad in ["", "/..", "/data/../../etc", "../x", "a/../..", "/a\0b", "/a\nb", "/a\\..\\b"] {
            let err = canonicalize_path(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidTarget { .. }), "{bad:?}");
        }
        assert!(canonicalize_path(&"/a".repeat(MAX_TARGET_LEN)).is_err());
    }

    #[test]
    fn names_are_kept_but_checked() {
        assert_eq!(canonicalize_name("github.create_issue").unwrap(), "github.create_issue");
        assert_eq!(canonicalize_name("a/../b").unwrap(), "a/../b");
        assert!(canonicalize_name("").is_err());
        assert!(canonicalize_name("tool\u{7f}").is_err());
        assert!(canonicalize_target(TargetKind::Amount, "USD:1").is_err());
    }

    #[test]
    fn path_patterns_keep_wildcards() {
        let p = |s| canonicalize_pattern(TargetKind::Path, s);
        assert_eq!(p("/data//**/").unwrap(), "/data/**");
        assert_eq!(p("/data/./x/../*.txt").unwrap(), "/data/*.txt");
        assert!(p("/data/*/../secret").is_err());
        assert!(p("/..").is_err());
        assert_eq!(p("**").unwrap(), "**");
        assert!(canonicalize_pattern(TargetKind::Amount, "USD:1").is_err());
    }
}
