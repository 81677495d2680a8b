//! The `python` group of `cargo xtask bench`: the peer comparison with the Python ARCP
//! reference runtime (`agentruntimecontrolprotocol`, pinned in
//! `benches/python/requirements.txt`).
//!
//! The same `arcp-loadgen arcp …` workloads run, in the same run, against our release
//! `arcp serve --store memory` and against `benches/python/peer.py` (the reference's
//! `ARCPRuntime` behind its own WebSocket server, with the CLI's `echo` agent and a `count`
//! agent equivalent to ours):
//!
//! 1. round trips: `echo` jobs back to back on 8 sessions (jobs/s, latency);
//! 2. event streaming: one `count` job of N `progress` events to one client (events/s);
//! 5. idle sessions: RSS per idle session, the server's RSS growth while a holder keeps N
//!    sessions open, divided by N (for the peer, the RSS of its Python process).
//!
//! Every workload gets fresh servers, so one workload's leftovers (the reference keeps every
//! event in RAM until it is acked) do not weigh on the next. The Python side lives in a
//! virtualenv under `<target dir>/bench-python-venv`, created on first use and reused while
//! the requirements file is unchanged; without `python3` (or when the virtualenv or the
//! install fails) the group is skipped with a note, and its section says why.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::Ctx;
use super::procs::{self, Server, TOKEN, num, ratio, si};

/// The section this group writes.
const SECTION: &str = "python";

/// The requirements file (pins the reference runtime), relative to the workspace root.
const REQUIREMENTS: &str = "benches/python/requirements.txt";

/// The peer script, relative to the workspace root.
const PEER: &str = "benches/python/peer.py";

/// Where the virtualenv goes, inside the target directory.
const VENV_DIR: &str = "bench-python-venv";

/// A copy of the requirements the virtualenv was built from (reused while they match).
const VENV_STAMP: &str = "arcp-bench-requirements.txt";

/// The interpreter that builds the virtualenv, unless `ARCP_BENCH_PYTHON` names another.
const DEFAULT_PYTHON: &str = "python3";

/// The arguments of our `arcp serve`: the memory store (the reference keeps everything in
/// RAM too), and caps out of the way as the reference has none: sessions per principal (ours
/// defaults to 100, below the idle workload's count) and unacknowledged events (the round
/// trips never ack; ours defaults to 10 000 per session on the memory store).
const OURS: &[&str] = &[
    "--store",
    "memory",
    "--max-sessions-per-principal",
    "1000000",
    "--max-buffered-events",
    "5000000",
    "--max-buffered-bytes",
    "4294967296",
];

/// Sessions of the round-trip workload.
const RTT_SESSIONS: u32 = 8;

/// Sessions a first holder opens before the idle measurement, so one-time allocations on
/// first use (import-time caches, lazily built validators, arenas) do not count per session.
const IDLE_WARMUP_SESSIONS: u32 = 20;

/// How long RSS is left to settle after sessions open.
const IDLE_SETTLE: Duration = Duration::from_millis(1500);

/// The sizes of one run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Measured seconds of the round-trip workload, per server.
    rtt_seconds: u32,
    /// Warm-up seconds before them.
    rtt_warmup: u32,
    /// Events of the streaming workload.
    stream_events: u64,
    /// Idle sessions of the memory workload.
    idle_sessions: u32,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan { rtt_seconds: 4, rtt_warmup: 1, stream_events: 20_000, idle_sessions: 200 }
        } else {
            Plan { rtt_seconds: 15, rtt_warmup: 2, stream_events: 100_000, idle_sessions: 1_000 }
        }
    }
}

/// One workload's results on both servers.
#[derive(Debug)]
struct Outcome {
    /// Against `arcp serve`.
    ours: Value,
    /// Against the Python peer, or why it failed.
    theirs: Result<Value, String>,
}

/// Runs the group; returns its `docs/benchmarks.md` sections as (name, Markdown).
pub(crate) fn run(ctx: &Ctx) -> Result<Vec<(String, String)>> {
    let plan = Plan::new(ctx.quick);
    let env = match setup(ctx) {
        Ok(env) => env,
        Err(e) => {
            let reason = format!("{e:#}");
            eprintln!("note: skipping the python group: {reason}");
            return Ok(vec![(SECTION.to_owned(), skipped_section(&reason))]);
        }
    };
    println!("python group: {} with {}", env.python_version, env.package);

    let rtt_args = |url: &str| -> Vec<String> {
        let mut args =
            vec!["arcp", "rtt", "--url", url, "--token", TOKEN].into_iter().map(String::from).collect::<Vec<_>>();
        args.extend([
            "--sessions".to_owned(),
            RTT_SESSIONS.to_string(),
            "--seconds".to_owned(),
            plan.rtt_seconds.to_string(),
            "--warmup-seconds".to_owned(),
            plan.rtt_warmup.to_string(),
        ]);
        args
    };
    let rtt = measure(ctx, &env, "rtt", |_server, url| loadgen(ctx, &rtt_args(url)))?;

    let stream_args = |url: &str| -> Vec<String> {
        ["arcp", "stream", "--url", url, "--token", TOKEN, "--events"]
            .into_iter()
            .map(String::from)
            .chain([plan.stream_events.to_string()])
            .collect()
    };
    let stream = measure(ctx, &env, "stream", |_server, url| loadgen(ctx, &stream_args(url)))?;

    let idle = measure(ctx, &env, "idle", |server, url| idle_rss(ctx, server, url, plan.idle_sessions))?;

    let section = section(&env, plan, &rtt, &stream, &idle);
    println!("{section}");
    Ok(vec![(SECTION.to_owned(), section)])
}

// ---------------------------------------------------------------------------------------
// The Python environment

/// The virtualenv, ready to run the peer.
#[derive(Debug)]
struct PyEnv {
    /// `<venv>/bin/python`.
    python: PathBuf,
    /// `Python 3.x.y`.
    python_version: String,
    /// `agentruntimecontrolprotocol 1.1.3` (what pip actually installed).
    package: String,
}

/// Creates (or reuses) the virtualenv and installs the requirements into it.
fn setup(ctx: &Ctx) -> Result<PyEnv> {
    let base = std::env::var_os("ARCP_BENCH_PYTHON").unwrap_or_else(|| DEFAULT_PYTHON.into());
    let base_name = base.to_string_lossy().into_owned();
    let requirements_path = ctx.root.join(REQUIREMENTS);
    let requirements =
        fs::read_to_string(&requirements_path).with_context(|| format!("reading {}", requirements_path.display()))?;
    let venv = target_dir(ctx).join(VENV_DIR);
    let python = venv.join("bin").join("python");
    let stamp = venv.join(VENV_STAMP);

    let fresh = python.exists() && fs::read_to_string(&stamp).is_ok_and(|s| s == requirements);
    if fresh {
        println!("python group: reusing the virtualenv {}", venv.display());
    } else {
        version_of(Command::new(&base).arg("--version"))
            .with_context(|| format!("{base_name} is not available (set ARCP_BENCH_PYTHON to another interpreter)"))?;
        if venv.exists() {
            fs::remove_dir_all(&venv).with_context(|| format!("removing the stale {}", venv.display()))?;
        }
        let built = (|| -> Result<()> {
            println!("$ {base_name} -m venv {}", venv.display());
            quiet(Command::new(&base).arg("-m").arg("venv").arg(&venv)).with_context(|| {
                format!("{base_name} -m venv failed (is the venv module installed, e.g. python3-venv?)")
            })?;
            println!("$ {} -m pip install -r {REQUIREMENTS}", python.display());
            quiet(
                Command::new(&python)
                    .args(["-m", "pip", "install", "--disable-pip-version-check", "--quiet", "-r"])
                    .arg(&requirements_path),
            )
            .context("pip could not install the requirements (is PyPI reachable?)")?;
            fs::write(&stamp, &requirements).with_context(|| format!("writing {}", stamp.display()))
        })();
        if let Err(e) = built {
            // Leave nothing half-built behind: the next run starts over.
            let _ = fs::remove_dir_all(&venv);
            return Err(e);
        }
    }

    let python_version = version_of(Command::new(&python).arg("--version"))?;
    let package = version_of(Command::new(&python).args([
        "-c",
        "import importlib.metadata as m; print('agentruntimecontrolprotocol', m.version('agentruntimecontrolprotocol'))",
    ]))
    .context("the reference runtime is not importable in the virtualenv")?;
    Ok(PyEnv { python, python_version, package })
}

/// The target directory the release binaries were built in.
fn target_dir(ctx: &Ctx) -> PathBuf {
    ctx.bins.arcp.parent().and_then(Path::parent).map_or_else(|| ctx.root.join("target"), Path::to_path_buf)
}

/// Runs `cmd`, fails with its output when it fails.
fn quiet(cmd: &mut Command) -> Result<()> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The first line a version command prints (stdout, else stderr: old Pythons print
/// `--version` there).
fn version_of(cmd: &mut Command) -> Result<String> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = if out.stdout.is_empty() { out.stderr } else { out.stdout };
    Ok(String::from_utf8_lossy(&text).lines().next().unwrap_or_default().trim().to_owned())
}

// ---------------------------------------------------------------------------------------
// Servers and workloads

/// The Python peer on a free loopback port; `addr` is its `ws://…/arcp` URL.
fn python_peer(ctx: &Ctx, env: &PyEnv, name: &str) -> Result<Server> {
    let mut cmd = Command::new(&env.python);
    cmd.current_dir(&ctx.scratch)
        .arg(ctx.root.join(PEER))
        .args(["--port", "0", "--token", TOKEN])
        .env("PYTHONUNBUFFERED", "1")
        .env_remove("PYTHONPATH");
    Server::spawn(cmd, "listening on ", ctx.scratch.join(format!("{name}.log")))
}

/// Runs `work` against a fresh `arcp serve --store memory`, then against a fresh Python peer.
/// A failure against our server fails the run; one against the peer is recorded (it is
/// another implementation: the table says what went wrong, the other workloads still run).
fn measure(ctx: &Ctx, env: &PyEnv, workload: &str, work: impl Fn(&Server, &str) -> Result<Value>) -> Result<Outcome> {
    let ours = {
        let server = procs::arcp_serve(ctx, &format!("python-{workload}-arcp"), OURS)?;
        let url = server.addr.clone();
        work(&server, &url).with_context(|| {
            format!("{workload} against arcp serve failed; its stderr ends with:\n{}", server.log_tail())
        })?
    };
    let theirs = (|| -> Result<Value> {
        let server = python_peer(ctx, env, &format!("python-{workload}-peer"))?;
        let url = server.addr.clone();
        work(&server, &url).with_context(|| {
            format!("{workload} against the Python peer failed; its stderr ends with:\n{}", server.log_tail())
        })
    })()
    .map_err(|e| {
        eprintln!("warning: {e:#}");
        format!("{e:#}")
    });
    Ok(Outcome { ours, theirs })
}

/// `arcp-loadgen` with owned arguments.
fn loadgen(ctx: &Ctx, args: &[String]) -> Result<Value> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    procs::loadgen(ctx, &args)
}

/// Holds `sessions` idle sessions on `server` and returns
/// `{"sessions", "rss_before_kib", "rss_after_kib", "kib_per_session"}`.
fn idle_rss(ctx: &Ctx, server: &Server, url: &str, sessions: u32) -> Result<Value> {
    let _warmup = idle_holder(ctx, url, IDLE_WARMUP_SESSIONS, "idle-warmup")?;
    thread::sleep(IDLE_SETTLE);
    let before = server.rss_kib()?;
    let holder = idle_holder(ctx, url, sessions, "idle")?;
    thread::sleep(IDLE_SETTLE);
    let after = server.rss_kib()?;
    drop(holder);
    let per = after.saturating_sub(before) as f64 / f64::from(sessions.max(1));
    println!("  RSS {before} KiB → {after} KiB with {sessions} idle sessions: {per:.1} KiB each");
    Ok(serde_json::json!({
        "sessions": sessions,
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_session": per,
    }))
}

/// `arcp-loadgen arcp idle …`, running until dropped, once it says its sessions are open.
fn idle_holder(ctx: &Ctx, url: &str, sessions: u32, name: &str) -> Result<Server> {
    let n = sessions.to_string();
    let args = ["arcp", "idle", "--url", url, "--token", TOKEN, "--sessions", n.as_str()];
    println!("$ arcp-loadgen {}", args.join(" "));
    let mut cmd = Command::new(&ctx.bins.loadgen);
    cmd.args(args);
    Server::spawn(cmd, "idle sessions open: ", ctx.scratch.join(format!("python-{name}-loadgen.log")))
}

// ---------------------------------------------------------------------------------------
// The section

/// A figure of one side: `f(result)` formatted, or `error` when that side failed.
fn cell(side: Result<&Value, &String>, f: impl Fn(&Value) -> String) -> String {
    match side {
        Ok(v) => f(v),
        Err(_) => "error".to_owned(),
    }
}

/// A ratio of the figures `key` of both sides (`n/a` when either is missing).
fn ratio_of(outcome: &Outcome, key: &str) -> String {
    match &outcome.theirs {
        Ok(theirs) => ratio(num(&outcome.ours, key), num(theirs, key)),
        Err(_) => "n/a".to_owned(),
    }
}

/// The Markdown section of a run.
fn section(env: &PyEnv, plan: Plan, rtt: &Outcome, stream: &Outcome, idle: &Outcome) -> String {
    let row =
        |o: &Outcome, f: &dyn Fn(&Value) -> String| -> (String, String) { (f(&o.ours), cell(o.theirs.as_ref(), f)) };
    let us = |v: &Value, key: &str| format!("{:.0}", num(v, key));

    let mut out = String::from("## Python reference runtime\n\n");
    let _ = writeln!(
        out,
        "{} run: the same `arcp-loadgen` workloads against our release `arcp serve --store memory` and \
         against the Python reference runtime ({}, {}; `benches/python/peer.py`: its `ARCPRuntime` \
         behind its own WebSocket server as its `arcp serve` CLI runs it, in-memory event log, plain \
         asyncio), one after the other, each workload on fresh servers. The reference runs on one \
         core (one asyncio loop); ours uses every core. Ratios are arcp-rs ÷ Python: above 1× is \
         better for rates, below 1× for latency and memory.\n",
        if plan.stream_events >= 100_000 { "Full" } else { "Quick" },
        env.package,
        env.python_version,
    );

    out.push_str("| workload | arcp-rs | Python reference | arcp-rs ÷ Python |\n|---|--:|--:|--:|\n");
    let (a, b) = row(rtt, &|v| si(num(v, "jobs_per_sec")));
    let _ = writeln!(
        out,
        "| ARCP round trips, `echo`, {RTT_SESSIONS} sessions, {} s (jobs/s) | {a} | {b} | {} |",
        plan.rtt_seconds,
        ratio_of(rtt, "jobs_per_sec")
    );
    let (a, b) = row(rtt, &|v| format!("{} / {}", us(v, "p50_us"), us(v, "p99_us")));
    let _ = writeln!(out, "| round-trip latency p50 / p99 (µs) | {a} | {b} | {} |", ratio_of(rtt, "p50_us"));
    let (a, b) = row(stream, &|v| si(num(v, "events_per_sec")));
    let _ = writeln!(
        out,
        "| event streaming, one `count` job of {} events to one client (events/s) | {a} | {b} | {} |",
        group_digits(plan.stream_events),
        ratio_of(stream, "events_per_sec")
    );
    let (a, b) = row(idle, &|v| format!("{:.1}", num(v, "kib_per_session")));
    let _ = writeln!(
        out,
        "| RSS per idle session, {} sessions (KiB) | {a} | {b} | {} |",
        group_digits(u64::from(plan.idle_sessions)),
        ratio_of(idle, "kib_per_session")
    );

    out.push('\n');
    let mut notes = Vec::new();
    for (name, o) in [("round trips", rtt), ("streaming", stream)] {
        let errors = |v: &Value| num(v, "errors");
        if errors(&o.ours) > 0.0 {
            notes.push(format!("{name}: {} errors against arcp-rs", errors(&o.ours)));
        }
        if let Ok(v) = &o.theirs
            && errors(v) > 0.0
        {
            notes.push(format!("{name}: {} errors against the Python reference", errors(v)));
        }
    }
    for (name, o) in [("round trips", rtt), ("streaming", stream), ("idle sessions", idle)] {
        if let Err(e) = &o.theirs {
            let first = e.lines().next().unwrap_or_default();
            notes.push(format!("{name} failed against the Python reference: {first}"));
        }
    }
    if let Ok(theirs) = &idle.theirs {
        let ours = &idle.ours;
        notes.push(format!(
            "idle RSS (KiB, before → after opening the sessions, after a warm-up of {IDLE_WARMUP_SESSIONS} sessions): \
             arcp-rs {} → {}, Python {} → {}",
            num(ours, "rss_before_kib"),
            num(ours, "rss_after_kib"),
            num(theirs, "rss_before_kib"),
            num(theirs, "rss_after_kib")
        ));
    }
    notes.push(
        "arcp-rs runs with its per-principal session cap and its unacknowledged-event caps raised \
         (`--max-sessions-per-principal`, `--max-buffered-events`, `--max-buffered-bytes`): the reference has no \
         such caps, and the round trips never ack"
            .to_owned(),
    );
    notes.push(
        "the brief's reference points for the Python runtime, on a 2-core machine: ~3 900 jobs/s, ~26 KiB per idle session"
            .to_owned(),
    );
    notes.push(
        "the peer's `echo` is the reference CLI's (one `log` event, result `{\"echoed\": input}`); its `count` \
         mirrors ours (`progress` events, then `{\"count\": n}`)"
            .to_owned(),
    );
    for note in notes {
        let _ = writeln!(out, "- {note}");
    }
    out
}

/// The section of a run that could not set Python up.
fn skipped_section(reason: &str) -> String {
    let reason = reason.lines().next().unwrap_or_default();
    format!(
        "## Python reference runtime\n\nNot measured on the last run: {reason}. The group needs `python3` with \
         the `venv` module and access to PyPI (once: the virtualenv is kept under `target/{VENV_DIR}`); run \
         `cargo xtask bench --only python` where they are available.\n"
    )
}

/// `100000` → `100 000`.
fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits() {
        assert_eq!(group_digits(100_000), "100 000");
        assert_eq!(group_digits(1_000), "1 000");
        assert_eq!(group_digits(200), "200");
    }

    #[test]
    fn a_section_with_a_failed_peer() {
        let env = PyEnv {
            python: PathBuf::from("python"),
            python_version: "Python 3.11.7".into(),
            package: "agentruntimecontrolprotocol 1.1.3".into(),
        };
        let rtt = Outcome {
            ours: serde_json::json!({"jobs_per_sec": 40_000.0, "p50_us": 190.0, "p99_us": 400.0, "errors": 0}),
            theirs: Ok(serde_json::json!({"jobs_per_sec": 4_000.0, "p50_us": 1900.0, "p99_us": 4000.0, "errors": 0})),
        };
        let stream = Outcome {
            ours: serde_json::json!({"events_per_sec": 400_000.0}),
            theirs: Err("stream against the Python peer failed\nmore".into()),
        };
        let idle = Outcome {
            ours: serde_json::json!({"kib_per_session": 3.0, "rss_before_kib": 10, "rss_after_kib": 610}),
            theirs: Ok(serde_json::json!({"kib_per_session": 30.0, "rss_before_kib": 100, "rss_after_kib": 6100})),
        };
        let s = section(&env, Plan::new(true), &rtt, &stream, &idle);
        assert!(s.contains("| 40.0 k | 4.00 k | 10.00× |"), "{s}");
        assert!(s.contains("| 400.0 k | error | n/a |"), "{s}");
        assert!(s.contains("| 3.0 | 30.0 | 0.10× |"), "{s}");
        assert!(s.contains("streaming failed against the Python reference: stream against the Python peer failed\n"));
        assert!(skipped_section("python3 is not available\nx").contains("python3 is not available. The group"));
    }
}
