//! `cargo xtask schemas [--check]`: JSON Schemas in `spec/schemas/` from `arcp_core::schema`
//! (messages, events, errors) and `plugin_api::schema` (`plugins/`: manifest and policy).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use arcp_core::schema::SchemaFile;

fn schema_dir(root: &Path) -> PathBuf {
    root.join("spec").join("schemas")
}

/// Every schema file the code generates, from every crate that owns one.
fn generated() -> Vec<SchemaFile> {
    let mut files = arcp_core::schema::all_schemas();
    files.extend(
        plugin_api::schema::all_schemas().into_iter().map(|f| SchemaFile { path: f.path.to_owned(), schema: f.schema }),
    );
    files
}

/// Every `.json` file under `dir`, relative, with `/` separators.
fn existing_files(dir: &Path) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let rel = path.strip_prefix(dir)?.to_string_lossy().replace('\\', "/");
                out.insert(rel);
            }
        }
    }
    Ok(out)
}

/// Regenerates every schema file and removes stale ones.
pub(crate) fn write(root: &Path) -> Result<()> {
    let dir = schema_dir(root);
    let files = generated();
    let wanted: BTreeSet<String> = files.iter().map(|f| f.path.clone()).collect();
    for stale in existing_files(&dir)?.difference(&wanted) {
        fs::remove_file(dir.join(stale)).with_context(|| format!("removing {stale}"))?;
    }
    for file in &files {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, file.to_pretty()).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!("wrote {} schema files to {}", files.len(), dir.display());
    Ok(())
}

/// Fails if any schema file is missing, stale or different from what the code generates.
pub(crate) fn check(root: &Path) -> Result<()> {
    let problems = xtask_check(root)?;
    if problems.is_empty() {
        eprintln!("spec/schemas is up to date");
        return Ok(());
    }
    for p in &problems {
        eprintln!("  {p}");
    }
    bail!("spec/schemas drifted from the code ({} problems); run `cargo xtask schemas`", problems.len())
}

pub(crate) fn xtask_check(root: &Path) -> Result<Vec<String>> {
    let dir = schema_dir(root);
    let files = generated();
    let wanted: BTreeSet<String> = files.iter().map(|f| f.path.clone()).collect();
    let mut problems = Vec::new();
    for stale in existing_files(&dir)?.difference(&wanted) {
        problems.push(format!("stale: {stale}"));
    }
    for file in &files {
        match fs::read_to_string(dir.join(&file.path)) {
            Ok(on_disk) if on_disk == file.to_pretty() => {}
            Ok(_) => problems.push(format!("differs: {}", file.path)),
            Err(_) => problems.push(format!("missing: {}", file.path)),
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_schemas_match_the_code() {
        let problems = super::xtask_check(&xtask::project_root()).unwrap();
        assert!(problems.is_empty(), "run `cargo xtask schemas`: {problems:#?}");
    }
}
