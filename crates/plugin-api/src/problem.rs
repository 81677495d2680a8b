//! [`Problem`]: one validation finding (a JSON-pointer-ish `path` and a `message`), and the
//! structural reader that turns a JSON value into typed fields while collecting **every**
//! problem instead of stopping at the first (serde stops at the first).
//!
//! This module does not know what a manifest or a policy is; it only knows JSON shapes.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

/// One thing wrong with a manifest or a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where: an RFC 6901 JSON pointer into the document (`""` is the whole document,
    /// `/capabilities/2`, `/plugins/webhooks/grant/0`). TOML documents use the same pointers.
    pub path: String,
    /// What is wrong, for a human.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() { "(document)" } else { &self.path };
        write!(f, "{path}: {}", self.message)
    }
}

/// Appends one RFC 6901 reference token (escaping `~` and `/`) to `base`.
pub(crate) fn child(base: &str, token: &str) -> String {
    let mut out = String::with_capacity(base.len() + token.len() + 1);
    out.push_str(base);
    out.push('/');
    for c in token.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

/// The document format of a manifest or a policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// JSON (`.json`).
    Json,
    /// TOML (`.toml`).
    Toml,
}

impl Format {
    /// The format for a file extension (`json` or `toml`, any case), if it is one of ours.
    pub fn from_extension(ext: &str) -> Option<Self> {
        if ext.eq_ignore_ascii_case("json") {
            Some(Self::Json)
        } else if ext.eq_ignore_ascii_case("toml") {
            Some(Self::Toml)
        } else {
            None
        }
    }

    /// Parses `text` into a JSON value (TOML tables become objects), or a problem at `""`.
    pub(crate) fn parse(self, text: &str) -> Result<Value, Problem> {
        match self {
            Self::Json => serde_json::from_str(text).map_err(|e| Problem::new("", format!("not valid JSON: {e}"))),
            Self::Toml => toml::from_str(text).map_err(|e| {
                let e = e.to_string();
                Problem::new("", format!("not valid TOML: {}", e.trim_end()))
            }),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Collects problems while reading a JSON value field by field.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    pub(crate) problems: Vec<Problem>,
}

impl Reader {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    /// `v` as an object whose keys are all in `allowed` and which has every `required` key.
    /// Every unknown and every missing key is reported.
    pub(crate) fn object<'v>(
        &mut self,
        v: &'v Value,
        path: &str,
        allowed: &[&str],
        required: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Value::Object(map) = v else {
            self.push(path, format!("expected an object, found {}", kind(v)));
            return None;
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.push(child(path, key), format!("unknown key `{key}` (allowed: {})", allowed.join(", ")));
            }
        }
        for key in required {
            if !map.contains_key(*key) {
                self.push(child(path, key), format!("missing required key `{key}`"));
            }
        }
        Some(map)
    }

    /// An optional field: absent and `null` both read as `None`.
    fn present<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
        map.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn string(&mut self, map: &Map<String, Value>, key: &str, path: &str) -> Option<String> {
        let v = Self::present(map, key)?;
        self.as_string(v, &child(path, key))
    }

    fn as_string(&mut self, v: &Value, path: &str) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            other => {
                self.push(path, format!("expected a string, found {}", kind(other)));
                None
            }
        }
    }

    pub(crate) fn boolean(&mut self, map: &Map<String, Value>, key: &str, path: &str) -> Option<bool> {
        match Self::present(map, key)? {
            Value::Bool(b) => Some(*b),
            other => {
                self.push(child(path, key), format!("expected a boolean, found {}", kind(other)));
                None
            }
        }
    }

    /// An array field; `Some` only if the value is an array (items are not checked).
    pub(crate) fn array<'v>(&mut self, map: &'v Map<String, Value>, key: &str, path: &str) -> Option<&'v [Value]> {
        match Self::present(map, key)? {
            Value::Array(items) => Some(items),
            other => {
                self.push(child(path, key), format!("expected an array, found {}", kind(other)));
                None
            }
        }
    }

    /// An array of strings; every non-string item is reported with its index.
    pub(crate) fn strings(&mut self, map: &Map<String, Value>, key: &str, path: &str) -> Option<Vec<String>> {
        let items = self.array(map, key, path)?;
        let base = child(path, key);
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.as_string(item, &child(&base, &i.to_string())) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// An object field used as a map; `Some` only if the value is an object.
    pub(crate) fn map<'v>(
        &mut self,
        map: &'v Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<&'v Map<String, Value>> {
        match Self::present(map, key)? {
            Value::Object(m) => Some(m),
            other => {
                self.push(child(path, key), format!("expected an object, found {}", kind(other)));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pointer_tokens_are_escaped() {
        assert_eq!(child("/plugins", "a/b~c"), "/plugins/a~1b~0c");
        assert_eq!(child("", "name"), "/name");
    }

    #[test]
    fn reader_reports_every_unknown_and_missing_key() {
        let mut r = Reader::default();
        let v = json!({"a": 1, "x": 2, "y": 3});
        assert!(r.object(&v, "", &["a", "b"], &["a", "b"]).is_some());
        let paths: Vec<&str> = r.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["/x", "/y", "/b"]);
    }

    #[test]
    fn reader_reports_each_bad_array_item() {
        let mut r = Reader::default();
        let v = json!({"list": ["ok", 1, true]});
        let map = v.as_object().unwrap();
        assert_eq!(r.strings(map, "list", ""), None);
        let paths: Vec<&str> = r.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["/list/1", "/list/2"]);
    }

    #[test]
    fn null_reads_as_absent() {
        let mut r = Reader::default();
        let v = json!({"s": null});
        assert_eq!(r.string(v.as_object().unwrap(), "s", ""), None);
        assert!(r.problems.is_empty());
    }

    #[test]
    fn formats_parse_and_report_syntax_errors() {
        assert!(Format::Json.parse("{").is_err());
        assert!(Format::Toml.parse("a = ").is_err());
        assert_eq!(Format::Toml.parse("a = 1").unwrap(), json!({"a": 1}));
        assert_eq!(Format::from_extension("TOML"), Some(Format::Toml));
        assert_eq!(Format::from_extension("yaml"), None);
    }
}
