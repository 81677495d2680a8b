//! `cargo xtask bench [--quick] [--only GROUP,…]`: runs the benchmark workloads in release
//! and records them in `docs/benchmarks.md`.
//!
//! Groups (each a module below; `--only` picks some):
//! - `stores`: the in-process store bench (`crates/arcp-server/benches/stores.rs`, events/s
//!   appended, streamed and replayed on memory, SQLite and PostgreSQL; PostgreSQL from
//!   `ARCP_BENCH_DATABASE_URL` or `ARCP_TEST_DATABASE_URL`);
//! - `network` ([`network`]): ARCP over WebSocket against the release `arcp serve`, driven by
//!   the separate `arcp-loadgen` process, each against a bare baseline run in the same run;
//! - `channel` ([`channel`]): the HTTP channel against a bare hyper server;
//! - `python` ([`python`]): the same ARCP workloads against the Python reference runtime.
//!
//! The file is made of sections between markers, `<!-- bench:NAME:begin -->` …
//! `<!-- bench:NAME:end -->`: this command rewrites the `machine` section and those of the
//! groups it ran, and leaves everything else alone.

mod channel;
mod network;
mod procs;
mod python;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

const USAGE: &str = "cargo xtask bench [--quick] [--only stores,network,channel,python]";

/// Every group, in the order they run.
const GROUPS: [&str; 4] = ["stores", "network", "channel", "python"];

/// The document the results go to, relative to the workspace root.
const DOC: &str = "docs/benchmarks.md";

/// Parsed arguments.
#[derive(Debug, Default)]
pub(crate) struct Args {
    quick: bool,
    /// The groups to run (all when empty).
    only: Vec<String>,
}

pub(crate) fn parse(args: &[&str]) -> Result<Args> {
    let mut out = Args::default();
    let mut args = args.iter();
    while let Some(a) = args.next() {
        match *a {
            "--quick" => out.quick = true,
            "--only" => {
                let Some(list) = args.next() else { bail!("--only needs a list (usage: {USAGE})") };
                for group in list.split(',').filter(|g| !g.is_empty()) {
                    if !GROUPS.contains(&group) {
                        bail!("unknown group {group:?}: the groups are {}", GROUPS.join(", "));
                    }
                    out.only.push(group.to_owned());
                }
            }
            other => bail!("unknown argument {other:?} (usage: {USAGE})"),
        }
    }
    Ok(out)
}

impl Args {
    fn runs(&self, group: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|g| g == group)
    }
}

/// What every group gets: where things are and how big to go.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// The workspace root.
    pub(crate) root: PathBuf,
    /// `--quick`: smaller loads, fewer repeats (the whole run in under 5 minutes).
    pub(crate) quick: bool,
    /// The release binaries.
    pub(crate) bins: procs::Bins,
    /// A scratch directory for this run (stores, logs), removed at the end.
    pub(crate) scratch: PathBuf,
}

pub(crate) fn run(root: &Path, args: Args) -> Result<()> {
    let machine = machine_section();
    println!("{machine}");
    warn_if_busy();

    let mut sections: Vec<(String, String)> = vec![("machine".into(), machine)];
    if args.runs("stores") {
        sections.push(("stores".into(), run_stores_bench(root, args.quick)?));
    }
    if ["network", "channel", "python"].iter().any(|g| args.runs(g)) {
        let scratch = temp_path("scratch");
        fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
        let ctx = Ctx { root: root.to_owned(), quick: args.quick, bins: procs::Bins::build(root)?, scratch };
        let result = (|| -> Result<()> {
            if args.runs("network") {
                sections.extend(network::run(&ctx)?);
            }
            if args.runs("channel") {
                sections.extend(channel::run(&ctx)?);
            }
            if args.runs("python") {
                sections.extend(python::run(&ctx)?);
            }
            Ok(())
        })();
        let _ = fs::remove_dir_all(&ctx.scratch);
        result?;
    }

    let doc_path = root.join(DOC);
    let mut doc = match fs::read_to_string(&doc_path) {
        Ok(doc) => doc,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => skeleton(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", doc_path.display())),
    };
    for (name, body) in &sections {
        doc = replace_section(&doc, name, body)?;
    }
    fs::write(&doc_path, doc).with_context(|| format!("writing {}", doc_path.display()))?;
    let names: Vec<&str> = sections.iter().map(|(n, _)| n.as_str()).collect();
    println!("updated {DOC} (sections: {})", names.join(", "));
    Ok(())
}

/// Builds and runs the stores bench in release; returns its Markdown section.
fn run_stores_bench(root: &Path, quick: bool) -> Result<String> {
    let markdown = temp_path("stores.md");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root).args(["bench", "-p", "arcp-server", "--bench", "stores", "--"]);
    if quick {
        cmd.arg("--quick");
    }
    cmd.arg("--markdown").arg(&markdown);
    println!(
        "$ cargo bench -p arcp-server --bench stores --{} --markdown {}",
        if quick { " --quick" } else { "" },
        markdown.display()
    );
    let status = cmd.status().context("running cargo bench")?;
    let section = fs::read_to_string(&markdown);
    let _ = fs::remove_file(&markdown);
    if !status.success() {
        bail!("the stores bench failed ({status}); {DOC} is unchanged");
    }
    section.with_context(|| format!("the stores bench wrote no table to {}", markdown.display()))
}

pub(crate) fn temp_path(name: &str) -> PathBuf {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    std::env::temp_dir().join(format!("arcp-xtask-bench-{}-{nanos}-{name}", std::process::id()))
}

/// Says so when the machine is busy: the numbers then measure the neighbours too.
fn warn_if_busy() {
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1) as f64;
    if let Some(load) = load_average().and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok())
        && load > cores / 2.0
    {
        eprintln!(
            "note: the 1-minute load average is {load:.2} on {cores} cores: other work is running, the numbers will be \
             noisy (re-run when the machine is idle)"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The document

fn begin_marker(name: &str) -> String {
    format!("<!-- bench:{name}:begin -->")
}

fn end_marker(name: &str) -> String {
    format!("<!-- bench:{name}:end -->")
}

/// `doc` with the text between the markers of section `name` replaced by `body`; a section
/// that is not there yet is appended at the end.
fn replace_section(doc: &str, name: &str, body: &str) -> Result<String> {
    let (begin, end) = (begin_marker(name), end_marker(name));
    let body = body.trim_matches('\n');
    match (doc.find(&begin), doc.find(&end)) {
        (Some(b), Some(e)) if b < e => Ok(format!("{}{begin}\n{body}\n{}", &doc[..b], &doc[e..])),
        (None, None) => {
            let mut out = doc.trim_end_matches('\n').to_owned();
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(&format!("{begin}\n{body}\n{end}\n"));
            Ok(out)
        }
        _ => bail!("{DOC}: the markers {begin} and {end} are unbalanced or out of order; fix them by hand"),
    }
}

/// The document before its first run: the intro and empty sections.
fn skeleton() -> String {
    format!(
        "# Benchmarks\n\n{}\n{}\n\n{}\n{}\n",
        begin_marker("machine"),
        end_marker("machine"),
        begin_marker("stores"),
        end_marker("stores")
    )
}

// ---------------------------------------------------------------------------------------
// The machine

/// A Markdown section describing this machine, read from `/proc` and `/sys` (Linux; other
/// systems get "unknown" where those are missing).
fn machine_section() -> String {
    let cores = std::thread::available_parallelism().map(usize::from).map_or_else(|_| "?".into(), |n| n.to_string());
    let cpu = cpu_model().unwrap_or_else(|| "unknown CPU".into());
    let rows = [
        ("CPU", format!("{cpu}, {cores} cores available to the process")),
        ("RAM", memory().unwrap_or_else(|| "unknown".into())),
        ("disk (temporary directory)", disk(&std::env::temp_dir()).unwrap_or_else(|| "unknown".into())),
        ("OS", os().unwrap_or_else(|| std::env::consts::OS.into())),
        ("rustc", rustc_version().unwrap_or_else(|| "unknown".into())),
        ("load average at start (1/5/15 min)", load_average().unwrap_or_else(|| "unknown".into())),
    ];
    let mut out = format!("## Machine\n\nMeasured on {} (UTC).\n\n| | |\n|---|---|\n", today());
    for (k, v) in rows {
        out.push_str(&format!("| {k} | {} |\n", v.replace('|', "\\|")));
    }
    out
}

fn cpu_model() -> Option<String> {
    let info = fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_owned())
}

fn memory() -> Option<String> {
    let info = fs::read_to_string("/proc/meminfo").ok()?;
    let kib: f64 = info.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.1} GiB", kib / (1024.0 * 1024.0)))
}

/// The device and file system holding `dir`, and what the kernel says about the device.
fn disk(dir: &Path) -> Option<String> {
    let dir = dir.canonicalize().ok()?;
    let mounts = fs::read_to_string("/proc/mounts").ok()?;
    let (device, fstype) = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (device, mount, fstype) = (f.next()?, f.next()?, f.next()?);
            dir.starts_with(mount).then_some((device, fstype, mount.len()))
        })
        .max_by_key(|(_, _, len)| *len)
        .map(|(d, f, _)| (d.to_owned(), f.to_owned()))?;
    let Some(name) = device.strip_prefix("/dev/").map(block_device) else {
        return Some(format!("`{device}` ({fstype})"));
    };
    let rotational = fs::read_to_string(format!("/sys/block/{name}/queue/rotational")).ok();
    let model = fs::read_to_string(format!("/sys/block/{name}/device/model")).ok().map(|m| m.trim().to_owned());
    let kind = if name.starts_with("vd") {
        "virtio block device (a virtual machine's disk: the backing storage is unknown; the kernel's \
         `rotational` flag means nothing for it)"
            .to_owned()
    } else if name.starts_with("nvme") {
        "NVMe SSD".to_owned()
    } else {
        match rotational.as_deref().map(str::trim) {
            Some("0") => "non-rotational (SSD)".to_owned(),
            Some("1") => "rotational (HDD)".to_owned(),
            _ => "unknown type".to_owned(),
        }
    };
    let model = model.filter(|m| !m.is_empty()).map(|m| format!(", model {m}")).unwrap_or_default();
    Some(format!("`{device}` ({fstype}), {kind}{model}"))
}

/// The whole-disk name of a block device (`vda1` → `vda`, `nvme0n1p2` → `nvme0n1`).
fn block_device(name: &str) -> String {
    let sys = Path::new("/sys/class/block").join(name);
    if sys.join("partition").exists()
        && let Some(parent) = sys
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()))
    {
        return parent;
    }
    name.to_owned()
}

fn os() -> Option<String> {
    let release = fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim_matches('"').to_owned()));
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|k| format!("Linux {}", k.trim()));
    match (release, kernel) {
        (Some(r), Some(k)) => Some(format!("{r}, {k}")),
        (r, k) => r.or(k),
    }
}

fn rustc_version() -> Option<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc).arg("--version").output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub(crate) fn load_average() -> Option<String> {
    let s = fs::read_to_string("/proc/loadavg").ok()?;
    Some(s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// Today's date in UTC, `YYYY-MM-DD`.
fn today() -> String {
    let days = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, u32::try_from(m).unwrap_or(1), u32::try_from(d).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_replaced_and_the_rest_kept() {
        let doc =
            "# B\n\nintro\n<!-- bench:stores:begin -->\nold\ntable\n<!-- bench:stores:end -->\n\n## Later\ntext\n";
        let out = replace_section(doc, "stores", "\nnew\n\n").unwrap();
        assert_eq!(
            out,
            "# B\n\nintro\n<!-- bench:stores:begin -->\nnew\n<!-- bench:stores:end -->\n\n## Later\ntext\n"
        );
        // Idempotent, and other sections untouched.
        assert_eq!(replace_section(&out, "stores", "new").unwrap(), out);
    }

    #[test]
    fn a_missing_section_is_appended() {
        let out = replace_section("# B\n\nintro\n", "network", "numbers").unwrap();
        assert_eq!(out, "# B\n\nintro\n\n<!-- bench:network:begin -->\nnumbers\n<!-- bench:network:end -->\n");
        let fresh = replace_section(&skeleton(), "stores", "t").unwrap();
        assert!(fresh.contains("<!-- bench:stores:begin -->\nt\n<!-- bench:stores:end -->"));
        assert!(fresh.contains("<!-- bench:machine:begin -->"));
    }

    #[test]
    fn unbalanced_markers_are_refused() {
        assert!(replace_section("<!-- bench:stores:begin -->\nx\n", "stores", "y").is_err());
        assert!(replace_section("<!-- bench:stores:end -->\n<!-- bench:stores:begin -->\n", "stores", "y").is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn arguments() {
        assert!(parse(&["--quick"]).unwrap().quick);
        assert!(!parse(&[]).unwrap().quick);
        assert!(parse(&["--fast"]).is_err());
        let a = parse(&["--only", "network,channel"]).unwrap();
        assert!(a.runs("network") && a.runs("channel") && !a.runs("stores"));
        assert!(parse(&["--only", "nope"]).is_err());
        assert!(parse(&["--only"]).is_err());
    }
}
