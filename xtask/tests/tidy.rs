//! Repository checks that run with `cargo test` ("tidy", after rust-analyzer): layering
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! invariants and file conventions that no compiler enforces.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Crates that must stay sans-IO: no async runtime, no HTTP, no sockets in their normal
/// (non-dev) dependency graph.
const SANS_IO: &[&str] = &["arcp-core", "channel-core", "plugin-api"];
const FORBIDDEN: &[&str] =
    &["tokio", "hyper", "mio", "socket2", "tokio-tungstenite", "tungstenite", "reqwest", "async-std"];

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(xtask::project_root())
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

#[test]
fn sans_io_crates_have_no_io_dependencies() {
    let meta = metadata();
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: BTreeMap<&str, &Value> =
        meta["resolve"]["nodes"].as_array().unwrap().iter().map(|n| (n["id"].as_str().unwrap(), n)).collect();
    for root in SANS_IO {
        let root_id = names.iter().find(|(_, n)| *n == root).map(|(id, _)| *id).expect("crate is in the workspace");
        let mut seen = BTreeSet::new();
        let mut stack = vec![root_id];
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            for dep in nodes[id]["deps"].as_array().unwrap() {
                let normal = dep["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null());
                if normal {
                    stack.push(dep["pkg"].as_str().unwrap());
                }
            }
        }
        let bad: Vec<&str> = seen.iter().map(|id| names[id]).filter(|n| FORBIDDEN.contains(n)).collect();
        assert!(bad.is_empty(), "{root} must do no IO but depends on {bad:?}");
    }
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.is_dir() && name != "target" && !name.starts_with('.') {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_file_says_what_it_holds() {
    let root = xtask::project_root();
    let mut files = Vec::new();
    for dir in ["crates", "conformance", "xtask"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(!files.is_empty());
    let missing: Vec<String> = files
        .iter()
        .filter(|p| !fs::read_to_string(p).unwrap_or_default().starts_with("//!"))
        .map(|p| p.strip_prefix(&root).unwrap_or(p).display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a leading `//!` line: {missing:#?}");
}
