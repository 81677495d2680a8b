//! Golden vectors (`spec/vectors/*.jsonl`): every vector decodes to its expected result, every
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! valid one re-encodes to its expected JSON and validates against its committed schema, and
//! every message type, event kind and error code has at least one valid and one invalid vector.
//!
//! Vector format (one JSON object per line; `//`-prefixed lines are comments):
//! ```text
//! {"name": "...", "covers": "<message type> | event:<kind> | error:<CODE> | envelope",
//!  "frame": {...} | "frame_text": "..." | "frame_base64": "...",
//!  "expect": {"ok": true, "reencoded"?: {...}} | {"error": "<Error::kind()>"}}
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use arcp_core::event::EventKind;
use arcp_core::{CANONICAL_CODES, DecodeOptions, MessageType, decode};
use serde_json::Value;

fn spec_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spec")
}

struct Vector {
    file: String,
    line: usize,
    name: String,
    covers: String,
    bytes: Vec<u8>,
    frame: Option<Value>,
    expect: Value,
}

fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = ALPHABET.iter().position(|a| *a == c).expect("base64 alphabet") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn load_vectors() -> Vec<Vector> {
    let dir = spec_dir().join("vectors");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("spec/vectors exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with("//") {
                continue;
            }
            let v: Value = serde_json::from_str(trimmed).unwrap_or_else(|e| panic!("{file}:{}: not JSON: {e}", i + 1));
            let (bytes, frame) = if let Some(f) = v.get("frame") {
                (serde_json::to_vec(f).unwrap(), Some(f.clone()))
            } else if let Some(t) = v.get("frame_text").and_then(Value::as_str) {
                (t.as_bytes().to_vec(), None)
            } else if let Some(b) = v.get("frame_base64").and_then(Value::as_str) {
                (base64_decode(b), None)
            } else {
                panic!("{file}:{}: no frame", i + 1)
            };
            out.push(Vector {
                file: file.clone(),
                line: i + 1,
                name: v["name"].as_str().unwrap_or_else(|| panic!("{file}:{}: no name", i + 1)).to_owned(),
                covers: v["covers"].as_str().unwrap_or_else(|| panic!("{file}:{}: no covers", i + 1)).to_owned(),
                bytes,
                frame,
                expect: v["expect"].clone(),
            });
        }
    }
    out
}

fn schema<'a>(rel: &str, cache: &'a mut BTreeMap<String, jsonschema::Validator>) -> &'a jsonschema::Validator {
    if !cache.contains_key(rel) {
        let text =
            fs::read_to_string(spec_dir().join("schemas").join(rel)).unwrap_or_else(|_| panic!("schema {rel} exists"));
        let value: Value = serde_json::from_str(&text).unwrap();
        let validator = jsonschema::validator_for(&value).unwrap_or_else(|e| panic!("schema {rel} compiles: {e}"));
        cache.insert(rel.to_owned(), validator);
    }
    &cache[rel]
}

fn schemas_for(covers: &str, frame: &Value) -> Vec<(String, Value)> {
    let message = |t: &str| (format!("messages/{t}.json"), frame.clone());
    if let Some(kind) = covers.strip_prefix("event:") {
        vec![message("job.event"), (format!("events/{kind}.json"), frame.clone())]
    } else if let Some(code) = covers.strip_prefix("error:") {
        let ty = frame["type"].as_str().unwrap_or_default().to_owned();
        let payload =
            if ty == "job.event" { frame["payload"]["body"]["error"].clone() } else { frame["payload"].clone() };
        vec![message(&ty), (format!("errors/{code}.json"), payload)]
    } else if covers == "envelope" {
        vec![("envelope.json".to_owned(), frame.clone())]
    } else {
        vec![message(covers)]
    }
}

#[test]
fn every_vector_decodes_as_expected_and_valid_ones_match_their_schemas() {
    let vectors = load_vectors();
    assert!(!vectors.is_empty());
    let mut cache = BTreeMap::new();
    let mut failures = Vec::new();
    for v in &vectors {
        let at = format!("{}:{} {}", v.file, v.line, v.name);
        let result = decode(&v.bytes, &DecodeOptions::default());
        match (v.expect.get("ok"), v.expect.get("error").and_then(Value::as_str), result) {
            (Some(_), _, Ok(env)) => {
                let frame = v.frame.as_ref().expect("valid vectors carry a JSON frame");
                let want = v.expect.get("reencoded").unwrap_or(frame);
                let got = serde_json::to_value(&env).unwrap();
                if &got != want {
                    failures.push(format!("{at}: re-encoded {got} != expected {want}"));
                }
                for (rel, instance) in schemas_for(&v.covers, frame) {
                    let validator = schema(&rel, &mut cache);
                    let errors: Vec<String> =
                        validator.iter_errors(&instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
                    if !errors.is_empty() {
                        failures.push(format!("{at}: not valid against {rel}: {errors:?}"));
                    }
                }
            }
            (Some(_), _, Err(f)) => failures.push(format!("{at}: expected ok, got {} ({})", f.error.kind(), f.error)),
            (None, Some(kind), Err(f)) if f.error.kind() == kind => {}
            (None, Some(kind), Err(f)) => {
                failures.push(format!("{at}: expected {kind}, got {} ({})", f.error.kind(), f.error))
            }
            (None, Some(kind), Ok(_)) => failures.push(format!("{at}: expected {kind}, decoded fine")),
            (None, None, _) => failures.push(format!("{at}: expect must have `ok` or `error`")),
        }
    }
    assert!(failures.is_empty(), "{} of {} vectors failed:\n{}", failures.len(), vectors.len(), failures.join("\n"));
}

#[test]
fn every_type_kind_and_code_has_a_valid_and_an_invalid_vector() {
    let vectors = load_vectors();
    let mut valid = BTreeSet::new();
    let mut invalid = BTreeSet::new();
    for v in &vectors {
        if v.expect.get("ok").is_some() {
            valid.insert(v.covers.clone())
        } else {
            invalid.insert(v.covers.clone())
        };
    }
    let mut wanted: Vec<String> = MessageType::ALL.iter().map(|t| t.as_str().to_owned()).collect();
    wanted.extend(EventKind::ALL.iter().map(|k| format!("event:{}", k.as_str())));
    wanted.extend(CANONICAL_CODES.iter().map(|c| format!("error:{}", c.code)));
    let missing: Vec<String> = wanted
        .iter()
        .flat_map(|w| {
            let mut m = Vec::new();
            if !valid.contains(w) {
                m.push(format!("{w}: no valid vector"));
            }
            if !invalid.contains(w) {
                m.push(format!("{w}: no invalid vector"));
            }
            m
        })
        .collect();
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn every_schema_file_compiles() {
    let mut cache = BTreeMap::new();
    for file in arcp_core::schema::all_schemas() {
        schema(&file.path, &mut cache);
    }
}
