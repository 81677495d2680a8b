//! URL canonicalisation for `net.fetch` targets (with the `url` crate) and `net.fetch` patterns
//! (by hand, because wildcards do not survive WHATWG parsing).
//!
//! Deliberately does not decode percent-escapes (`%61` stays distinct from `a`), resolve hosts
//! or contact anything.

use url::{Host, Url};

/// Canonical form of an absolute URL target; the error is the reason.
pub(super) fn canonicalize_url_target(target: &str) -> Result<String, String> {
    if target.starts_with(' ') || target.ends_with(' ') {
        return Err("surrounding spaces".to_owned());
    }
    let mut url = Url::parse(target).map_err(|e| format!("not an absolute URL: {e}"))?;
    if url.cannot_be_a_base() {
        return Err("not a hierarchical URL".to_owned());
    }
    if has_encoded_separator(url.path()) {
        return Err("encoded `/` or `\\` (%2F, %5C) in the path".to_owned());
    }
    url.set_fragment(None);
    let collapsed = collapse_slashes(url.path());
    if collapsed != url.path() {
        url.set_path(&collapsed);
    }
    Ok(url.into())
}

/// Canonical form of a `net.fetch` pattern; the error is the reason.
///
/// A pattern without wildcards is canonicalised exactly like a target. With wildcards, a
/// pattern that starts with a literal `scheme://` gets: scheme and host lower-cased (a literal
/// host is also IDNA/IPv4-normalised by the `url` crate, a wildcard host must be ASCII), the
/// default port removed, `/` as the path when it has none (as the `url` crate serialises
/// `https://h`), runs of `/` in the path collapsed, path and query percent-encoded like the
/// `url` crate does (space, quotes, `<>`, non-ASCII…), the fragment removed; `.`/`..` path
/// segments are refused. A wildcard pattern not starting with `scheme://` (e.g. `**`) is
/// matched as written. Put `*`, not `**`, in hosts: `**` also crosses into the path.
pub(super) fn canonicalize_url_pattern(pattern: &str) -> Result<String, String> {
    if !pattern.contains('*') {
        return canonicalize_url_target(pattern);
    }
    let Some((scheme, rest)) = pattern.split_once("://").filter(|(s, _)| is_scheme(s)) else {
        return Ok(pattern.to_owned());
    };
    let scheme = scheme.to_ascii_lowercase();
    let (before_fragment, _fragment) = rest.split_once('#').unwrap_or((rest, ""));
    let authority_end = before_fragment.find(['/', '?']).unwrap_or(before_fragment.len());
    let (authority, tail) = before_fragment.split_at(authority_end);
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };

    let authority = canonical_authority(&scheme, authority)?;
    let mut path = percent_encode(&collapse_slashes(path), PATH_SET);
    if path.split('/').any(is_dot_segment) {
        return Err("`.` or `..` segment in a URL pattern".to_owned());
    }
    if path.is_empty() && is_special(&scheme) && !authority.contains("**") {
        path.push('/');
    }
    let mut out = format!("{scheme}://{authority}{path}");
    if let Some(query) = query {
        out.push('?');
        let set = if is_special(&scheme) { SPECIAL_QUERY_SET } else { QUERY_SET };
        out.push_str(&percent_encode(query, set));
    }
    Ok(out)
}

fn canonical_authority(scheme: &str, authority: &str) -> Result<String, String> {
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    let (host, port) = split_host_port(host_port);
    let host = if host.contains('*') {
        if !host.is_ascii() {
            return Err("a wildcard host must be ASCII (write it in punycode)".to_owned());
        }
        host.to_ascii_lowercase()
    } else if host.is_empty() || !is_special(scheme) {
        host.to_owned()
    } else {
        Host::parse(host).map_err(|e| format!("invalid host: {e}"))?.to_string()
    };
    let port = match port {
        None | Some("") => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
            let n: u16 = p.parse().map_err(|_| "port out of range".to_owned())?;
            (Some(n) != default_port(scheme)).then(|| n.to_string())
        }
        Some(p) => Some(p.to_owned()),
    };
    let mut out = String::new();
    if let Some(userinfo) = userinfo {
        out.push_str(userinfo);
        out.push('@');
    }
    out.push_str(&host);
    if let Some(port) = port {
        out.push(':');
        out.push_str(&port);
    }
    Ok(out)
}

fn split_host_port(host_port: &str) -> (&str, Option<&str>) {
    if host_port.starts_with('[') {
        if let Some(end) = host_port.find(']') {
            let (host, rest) = host_port.split_at(end + 1);
            return (host, rest.strip_prefix(':'));
        }
        return (host_port, None);
    }
    match host_port.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (host_port, None),
    }
}

fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

fn is_special(scheme: &str) -> bool {
    matches!(scheme, "http" | "https" | "ws" | "wss" | "ftp" | "file")
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "ftp" => Some(21),
        _ => None,
    }
}

fn is_dot_segment(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase();
    matches!(lower.as_str(), "." | ".." | "%2e" | ".%2e" | "%2e." | "%2e%2e")
}

fn has_encoded_separator(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.contains("%2f") || lower.contains("%5c")
}

/// ASCII bytes the WHATWG path state percent-encodes (besides controls and non-ASCII).
const PATH_SET: &[u8] = b" \"#<>?`{}";
/// ASCII bytes the WHATWG query state percent-encodes (besides controls and non-ASCII).
const QUERY_SET: &[u8] = b" \"#<>";
/// [`QUERY_SET`] plus `'`, for special schemes.
const SPECIAL_QUERY_SET: &[u8] = b" \"#<>'";

/// Percent-encodes what the `url` crate would in the same component, so that a wildcard
/// pattern is written like the targets it is meant to match.
fn percent_encode(s: &str, set: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() && !c.is_ascii_control() && !set.contains(&(c as u8)) {
            out.push(c);
        } else {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

fn collapse_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn target(s: &str) -> String {
        canonicalize_url_target(s).unwrap()
    }

    fn pattern(s: &str) -> String {
        canonicalize_url_pattern(s).unwrap()
    }

    #[test]
    fn targets_normalise_case_port_dots_and_slashes() {
        assert_eq!(target("HTTPS://Example.COM:443/a/./b/../c"), "https://example.com/a/c");
        assert_eq!(target("http://example.com:80"), "http://example.com/");
        assert_eq!(target("http://example.com:8080/x"), "http://example.com:8080/x");
        assert_eq!(target("https://h//a///b#frag"), "https://h/a/b");
        assert_eq!(target("https://h/a/%2e%2e/b"), "https://h/b");
        assert_eq!(target("https://h/a/?q=1"), "https://h/a/?q=1");
        assert_eq!(target("http://0x7f.1/"), "http://127.0.0.1/");
        assert_eq!(target("https://BÜCHER.de/"), "https://xn--bcher-kva.de/");
    }

    #[test]
    fn targets_fail_closed() {
        for bad in [
            "/relative",
            "example.com/x",
            "mailto:a@b",
            "https://h/a%2F..%2Fadmin",
            "https://h/a%5c..",
            " https://h/",
            "https://h:99999/",
        ] {
            assert!(canonicalize_url_target(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn patterns_follow_targets() {
        assert_eq!(pattern("HTTPS://API.Example.com:443/v1/**"), "https://api.example.com/v1/**");
        assert_eq!(pattern("https://*.Example.com"), "https://*.example.com/");
        assert_eq!(pattern("https://**"), "https://**");
        assert_eq!(pattern("http://localhost:*/**"), "http://localhost:*/**");
        assert_eq!(pattern("https://h//a//*#x"), "https://h/a/*");
        assert_eq!(pattern("https://h/*?q=*"), "https://h/*?q=*");
        assert_eq!(pattern("**"), "**");
        assert_eq!(pattern("https://example.com/x"), "https://example.com/x");
        assert_eq!(pattern("https://h/a b/é/*?q=a b'*"), "https://h/a%20b/%C3%A9/*?q=a%20b%27*");
        assert_eq!(target("https://h/a b/é/x?q=a b'c"), "https://h/a%20b/%C3%A9/x?q=a%20b%27c");
        assert!(canonicalize_url_pattern("https://h/a/../*").is_err());
        assert!(canonicalize_url_pattern("https://*.bücher.de/").is_err());
    }
}
