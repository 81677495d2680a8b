//! The `network` group of `cargo xtask bench`: ARCP over WebSocket against the release
//! `arcp serve`, driven by the separate `arcp-loadgen` process, each workload against a
//! baseline measured in the same run.
//!
//! 1. round trips: `echo` jobs back to back from 8 sessions, vs the bare tokio-tungstenite
//!    baseline of `arcp-loadgen arcp baseline`;
//! 2. streaming: the events of one `count` job to one client, per store (baseline: memory);
//! 3. resume replay: the same stream replayed by `session.resume` vs live, per store;
//! 5. idle sessions: the server's RSS per idle session (network: 1k and 10k; in process: 50k);
//! 7. scaling of 1: 8, 80, 800 sessions, with the server's CPU time per job.
//!
//! A workload that fails is reported as failed in its table (with the error) and the others
//! still run.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::Value;

use super::Ctx;
use super::procs::{self, Server, TOKEN, num, ratio, si};

/// Buffered-event caps for the stream and replay servers: room for a whole replayed job
/// (the memory store's defaults, 10 000 events / 16 MiB per session, are for production).
const BIG_EVENT_CAP: &str = "5000000";
const BIG_BYTES_CAP: &str = "4294967296";

/// Sizes of one run.
#[derive(Debug, Clone)]
struct Plan {
    /// Measured seconds of a round-trip run, and its warm-up.
    rtt_seconds: f64,
    rtt_warmup: f64,
    /// Session counts of the round-trip scaling (the first is workload 1).
    scales: Vec<usize>,
    /// Whether the baseline is measured at every scale (else at the first only).
    baseline_every_scale: bool,
    /// Events of the streaming workload.
    stream_events: u64,
    /// Events of the replay workload.
    replay_events: u64,
    /// Idle session counts over the network.
    idle: Vec<usize>,
    /// Idle sessions in process.
    idle_inproc: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                rtt_seconds: 3.0,
                rtt_warmup: 1.0,
                scales: vec![8, 80],
                baseline_every_scale: false,
                stream_events: 100_000,
                replay_events: 20_000,
                idle: vec![1_000],
                // 50 000 takes minutes: opening a session scans every session (see the
                // idle note), so opening N sessions costs O(N²).
                idle_inproc: 10_000,
            }
        } else {
            Plan {
                rtt_seconds: 10.0,
                rtt_warmup: 2.0,
                scales: vec![8, 80, 800],
                baseline_every_scale: true,
                stream_events: 1_000_000,
                replay_events: 100_000,
                idle: vec![1_000, 10_000],
                idle_inproc: 50_000,
            }
        }
    }
}

/// Runs the group; returns its `docs/benchmarks.md` sections as (name, Markdown).
pub(crate) fn run(ctx: &Ctx) -> Result<Vec<(String, String)>> {
    let plan = Plan::new(ctx.quick);
    let mut md = String::new();
    md.push_str(&intro(ctx.quick));
    md.push_str(&guarded("round trips", || round_trips(ctx, &plan)));
    md.push_str(&guarded("streaming", || streaming(ctx, &plan)));
    md.push_str(&guarded("resume replay", || replay(ctx, &plan)));
    md.push_str(&guarded("idle sessions", || idle(ctx, &plan)));
    Ok(vec![("network".to_owned(), md)])
}

/// The section's heading and the how-to.
fn intro(quick: bool) -> String {
    format!(
        "## Network (ARCP over WebSocket)\n\n\
         Reproduce with `cargo xtask bench --only network [--quick]`. The release `arcp serve` (`--store memory` \
         unless a store is named) and the load generator `arcp-loadgen arcp …` (`benches/loadgen`) are separate \
         processes on the same machine, sharing its cores: every rate includes the load generator's own CPU, \
         and so does its baseline.{}\n\n",
        if quick { " This is a `--quick` run: smaller N, shorter runs." } else { "" }
    )
}

/// `f()`'s Markdown, or a note that the workload failed (also printed).
fn guarded(name: &str, f: impl FnOnce() -> Result<String>) -> String {
    match f() {
        Ok(md) => md,
        Err(e) => {
            eprintln!("network: the {name} workload failed: {e:#}");
            format!("### {name}\n\n**The workload failed**: `{}`\n\n", format!("{e:#}").replace('`', "'"))
        }
    }
}

/// "met" or "**missed**".
fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

/// `arcp serve` for the workloads: `--store STORE`, room for `sessions` sessions, `extra`.
fn serve(ctx: &Ctx, name: &str, store: &str, sessions: usize, extra: &[&str]) -> Result<Server> {
    let cap = sessions.max(100).to_string();
    let mut args = vec!["--store", store, "--max-sessions-per-principal", &cap];
    args.extend_from_slice(extra);
    procs::arcp_serve(ctx, name, &args)
}

// ---------------------------------------------------------------------------------------
// 1 and 7: round trips and their scaling

/// One round-trip measurement.
#[derive(Debug)]
struct Rtt {
    jobs_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    errors: f64,
    /// Server CPU µs per job (measured for `arcp serve` only).
    cpu_us_per_job: Option<f64>,
}

fn rtt(ctx: &Ctx, server: &Server, sessions: usize, plan: &Plan, cpu: bool) -> Result<Rtt> {
    let (sessions_s, seconds, warmup, pid) =
        (sessions.to_string(), plan.rtt_seconds.to_string(), plan.rtt_warmup.to_string(), server.pid().to_string());
    let mut args = vec![
        "arcp",
        "rtt",
        "--url",
        &server.addr,
        "--token",
        TOKEN,
        "--sessions",
        &sessions_s,
        "--seconds",
        &seconds,
        "--warmup-seconds",
        &warmup,
    ];
    if cpu {
        args.extend(["--server-pid", &pid]);
    }
    let v = procs::loadgen(ctx, &args).with_context(|| format!("log of the server: {}", server.log.display()))?;
    Ok(Rtt {
        jobs_per_sec: num(&v, "jobs_per_sec"),
        p50_us: num(&v, "p50_us"),
        p99_us: num(&v, "p99_us"),
        errors: num(&v, "errors"),
        cpu_us_per_job: cpu.then(|| num(&v, "server_cpu_us_per_job")),
    })
}

fn round_trips(ctx: &Ctx, plan: &Plan) -> Result<String> {
    let max_sessions = plan.scales.iter().copied().max().unwrap_or(8);
    let baseline = procs::loadgen_server(ctx, "arcp-baseline", &["arcp", "baseline", "--listen", "127.0.0.1:0"])?;
    let server = serve(ctx, "serve-rtt", "memory", max_sessions + 16, &[])?;
    let mut rows = Vec::new();
    for (i, &sessions) in plan.scales.iter().enumerate() {
        let base =
            if i == 0 || plan.baseline_every_scale { Some(rtt(ctx, &baseline, sessions, plan, false)?) } else { None };
        let ours = rtt(ctx, &server, sessions, plan, true)?;
        if let Some(b) = &base {
            println!(
                "network: round trips, {sessions} sessions: arcp serve {} jobs/s vs baseline {} jobs/s = {}",
                si(ours.jobs_per_sec),
                si(b.jobs_per_sec),
                ratio(ours.jobs_per_sec, b.jobs_per_sec)
            );
        } else {
            println!("network: round trips, {sessions} sessions: arcp serve {} jobs/s", si(ours.jobs_per_sec));
        }
        rows.push((sessions, base, ours));
    }
    drop(server);
    drop(baseline);

    let mut md = String::from(
        "### Round trips (workloads 1 and 7)\n\n\
         N sessions, each on its own WebSocket connection (`TCP_NODELAY`), each submitting `echo` jobs back \
         to back: send `job.submit`, read frames until its `job.result`, repeat. jobs/s counts the round trips \
         completed in the measured window (after a warm-up); p50/p99 is the latency from sending the submit to \
         receiving the result. The baseline (`arcp-loadgen arcp baseline`) is a bare tokio-tungstenite server \
         keeping no state: it answers each submit with the same four frames `arcp serve` sends for `echo` \
         (`job.accepted`, `job.event` status running, `job.event` log, `job.result`), each sent and flushed on \
         its own like `arcp serve`'s writer, and persists nothing. Server CPU is the user + system time of the \
         `arcp serve` process over the measured window (`/proc/PID/stat`) divided by the jobs.\n\n\
         | sessions | server | jobs/s | p50 | p99 | errors | server CPU per job | vs baseline | goal |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for (sessions, base, ours) in &rows {
        if let Some(b) = base {
            let _ = writeln!(
                md,
                "| {sessions} | baseline | {} | {:.0} µs | {:.0} µs | {:.0} | | | |",
                si(b.jobs_per_sec),
                b.p50_us,
                b.p99_us,
                b.errors
            );
        }
        let (vs, goal) = match base {
            Some(b) if *sessions == plan.scales[0] => (
                ratio(ours.jobs_per_sec, b.jobs_per_sec),
                format!("≥ 0.50×: {}", verdict(ours.jobs_per_sec >= 0.5 * b.jobs_per_sec)),
            ),
            Some(b) => (ratio(ours.jobs_per_sec, b.jobs_per_sec), String::new()),
            None => (String::new(), String::new()),
        };
        let _ = writeln!(
            md,
            "| {sessions} | arcp serve (memory) | {} | {:.0} µs | {:.0} µs | {:.0} | {:.1} µs | {vs} | {goal} |",
            si(ours.jobs_per_sec),
            ours.p50_us,
            ours.p99_us,
            ours.errors,
            ours.cpu_us_per_job.unwrap_or(0.0)
        );
    }
    md.push('\n');
    md.push_str(&scaling_note(&rows));
    Ok(md)
}

/// Whether the cost per job stays flat (linear total cost) as sessions grow 10× and 100×.
fn scaling_note(rows: &[(usize, Option<Rtt>, Rtt)]) -> String {
    let Some((first_n, _, first)) = rows.first() else { return String::new() };
    let first_cpu = first.cpu_us_per_job.unwrap_or(0.0);
    let mut parts = Vec::new();
    let mut linear = true;
    for (n, _, r) in rows.iter().skip(1) {
        let cpu = r.cpu_us_per_job.unwrap_or(0.0);
        let growth = if first_cpu > 0.0 { cpu / first_cpu } else { 0.0 };
        // Linear total cost = a flat cost per job; allow 1.5× for the noise of a shared machine
        // and the larger working set.
        linear &= growth <= 1.5;
        parts.push(format!(
            "{n} sessions: {} jobs/s ({} of {first_n} sessions' rate), {cpu:.1} µs of server CPU per job ({growth:.2}× that of {first_n})",
            si(r.jobs_per_sec),
            ratio(r.jobs_per_sec, first.jobs_per_sec)
        ));
    }
    if parts.is_empty() {
        return String::new();
    }
    println!("network: scaling: {}", parts.join("; "));
    format!(
        "Scaling (goal: 10× sessions costs at most ~10× — a flat CPU cost per job): {}. Cost {} linearly. \
         In a closed loop each session has one job in flight, so p50 ≈ sessions ÷ jobs/s grows with the \
         session count by construction; the throughput and the CPU per job are what show whether the cost \
         grows faster than the load.\n\n",
        parts.join("; "),
        if linear { "grows" } else { "**grows faster than**" }
    )
}

// ---------------------------------------------------------------------------------------
// 2: streaming

/// A PostgreSQL scratch database for one server, dropped with this value.
struct PgDb<'a> {
    ctx: &'a Ctx,
    admin_url: String,
    name: String,
    /// The new database's URL.
    url: String,
}

impl<'a> PgDb<'a> {
    fn create(ctx: &'a Ctx, admin_url: &str) -> Result<PgDb<'a>> {
        let v = procs::loadgen(ctx, &["arcp", "pgdb", "create", "--url", admin_url])?;
        let name = v["name"].as_str().context("pgdb create printed no name")?.to_owned();
        let url = v["url"].as_str().context("pgdb create printed no url")?.to_owned();
        Ok(PgDb { ctx, admin_url: admin_url.to_owned(), name, url })
    }
}

impl Drop for PgDb<'_> {
    fn drop(&mut self) {
        if let Err(e) =
            procs::loadgen(self.ctx, &["arcp", "pgdb", "drop", "--url", &self.admin_url, "--name", &self.name])
        {
            eprintln!("network: could not drop the scratch database {} ({e:#}); drop it by hand", self.name);
        }
    }
}

/// The PostgreSQL URL of the environment (`ARCP_BENCH_DATABASE_URL`, else
/// `ARCP_TEST_DATABASE_URL`).
fn pg_url() -> Option<String> {
    ["ARCP_BENCH_DATABASE_URL", "ARCP_TEST_DATABASE_URL"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

/// The stores a workload runs on.
struct Stores<'a> {
    /// (label, `--store` value).
    list: Vec<(String, String)>,
    /// The scratch PostgreSQL database, dropped with this value.
    _pg: Option<PgDb<'a>>,
    /// Why PostgreSQL is missing, if it is.
    note: Option<String>,
}

/// memory, SQLite (a file in the scratch directory) and, with `with_pg` and a database URL
/// in the environment, PostgreSQL in a fresh database.
fn stores<'a>(ctx: &'a Ctx, name: &str, with_pg: bool) -> Result<Stores<'a>> {
    let sqlite = ctx.scratch.join(format!("{name}-{}.db", std::process::id()));
    let mut list =
        vec![("memory".to_owned(), "memory".to_owned()), ("SQLite".to_owned(), format!("sqlite:{}", sqlite.display()))];
    if !with_pg {
        return Ok(Stores { list, _pg: None, note: None });
    }
    match pg_url() {
        Some(url) => {
            let db = PgDb::create(ctx, &url)?;
            list.push(("PostgreSQL".to_owned(), db.url.clone()));
            Ok(Stores { list, _pg: Some(db), note: None })
        }
        None => {
            let note =
                "PostgreSQL skipped: neither ARCP_BENCH_DATABASE_URL nor ARCP_TEST_DATABASE_URL is set.".to_owned();
            println!("network: {note}");
            Ok(Stores { list, _pg: None, note: Some(note) })
        }
    }
}

fn streaming(ctx: &Ctx, plan: &Plan) -> Result<String> {
    let stores = stores(ctx, "stream", true)?;
    let mut results: Vec<(String, Result<Value>)> = Vec::new();
    for (label, store) in &stores.list {
        // The durable stores commit every event before it is sent (one session: one event
        // at a time); N/10 (SQLite) and N/100 (PostgreSQL) keep their runs to seconds.
        let n = (plan.stream_events / stream_divisor(label)).to_string();
        let server = serve(
            ctx,
            &format!("serve-stream-{}", label.to_lowercase()),
            store,
            100,
            &["--max-buffered-events", BIG_EVENT_CAP, "--max-buffered-bytes", BIG_BYTES_CAP],
        )?;
        let r = procs::loadgen(ctx, &["arcp", "stream", "--url", &server.addr, "--token", TOKEN, "--events", &n])
            .with_context(|| format!("log of the server: {}", server.log.display()));
        if let Ok(v) = &r {
            println!("network: streaming {n} events, {label}: {} events/s", si(num(v, "events_per_sec")));
        }
        results.push((label.clone(), r));
    }
    let memory = results.first().and_then(|(_, r)| r.as_ref().ok()).map_or(0.0, |v| num(v, "events_per_sec"));
    let mut md = format!(
        "### Streaming (workload 2)\n\n\
         One session (negotiating `ack`, acknowledging every 1 000 events) submits `count {{\"n\": {}}}` and \
         reads every frame; events/s is the `job.event` frames received (the `n` progress events and the \
         `running` status) divided by the time from sending the submit to receiving the `job.result`. Every \
         event is persisted in the store before it is sent. The baseline is the memory store; the servers run \
         with buffered-event caps large enough for the whole job. SQLite streams N/10 events and PostgreSQL \
         N/100 (each event is committed before it is sent, one at a time for one session, so their runs at \
         full N would take minutes).\n\n\
         | store | events | seconds | events/s | vs memory | goal |\n|---|---:|---:|---:|---:|---|\n",
        plan.stream_events
    );
    for (label, r) in &results {
        match r {
            Ok(v) => {
                let eps = num(v, "events_per_sec");
                let goal = match label.as_str() {
                    "memory" => format!("≥ 300 k/s: {}", verdict(eps >= 300_000.0)),
                    "SQLite" => format!("≥ 100 k/s: {}", verdict(eps >= 100_000.0)),
                    _ => String::new(),
                };
                if label != "memory" {
                    println!("network: streaming, {label} vs memory = {}", ratio(eps, memory));
                }
                let _ = writeln!(
                    md,
                    "| {label} | {:.0} | {:.2} | {} | {} | {goal} |",
                    num(v, "events"),
                    num(v, "seconds"),
                    si(eps),
                    ratio(eps, memory)
                );
            }
            Err(e) => {
                eprintln!("network: streaming on {label} failed: {e:#}");
                let _ =
                    writeln!(md, "| {label} | failed: `{}` | | | | |", format!("{e:#}").replace(['`', '|', '\n'], " "));
            }
        }
    }
    if let Some(note) = &stores.note {
        let _ = writeln!(md, "\n{note}");
    }
    md.push('\n');
    Ok(md)
}

/// How much smaller than N a store's stream is (memory 1, SQLite 10, PostgreSQL 100).
fn stream_divisor(label: &str) -> u64 {
    match label {
        "memory" => 1,
        "SQLite" => 10,
        _ => 100,
    }
}

// ---------------------------------------------------------------------------------------
// 3: resume replay

fn replay(ctx: &Ctx, plan: &Plan) -> Result<String> {
    let n = plan.replay_events.to_string();
    let stores = stores(ctx, "replay", false)?;
    let mut md = format!(
        "### Resume replay (workload 3)\n\n\
         Live: a fresh session streams `count {{\"n\": {}}}` as in workload 2. Replay: a fresh session submits \
         the same job, drops its connection right after `job.accepted`, waits (polling `session.list_jobs` \
         from another session) until the job has finished, then reconnects with `session.resume` from \
         `event_seq` 0; timed from sending the resume to receiving the replayed `job.result`. The baseline is \
         the live stream on the same store.\n\n\
         | store | events | live events/s | replayed events/s | replay vs live | goal |\n|---|---:|---:|---:|---:|---|\n",
        plan.replay_events
    );
    for (label, store) in &stores.list {
        let server = serve(
            ctx,
            &format!("serve-replay-{}", label.to_lowercase()),
            store,
            100,
            &["--max-buffered-events", BIG_EVENT_CAP, "--max-buffered-bytes", BIG_BYTES_CAP],
        )?;
        let r = procs::loadgen(ctx, &["arcp", "replay", "--url", &server.addr, "--token", TOKEN, "--events", &n])
            .with_context(|| format!("log of the server: {}", server.log.display()));
        match r {
            Ok(v) => {
                let (live, replayed) = (num(&v, "live_events_per_sec"), num(&v, "replay_events_per_sec"));
                println!(
                    "network: replay {n} events, {label}: replayed {} events/s vs live {} events/s = {}",
                    si(replayed),
                    si(live),
                    ratio(replayed, live)
                );
                let _ = writeln!(
                    md,
                    "| {label} | {:.0} | {} | {} | {} | ≥ 1.00×: {} |",
                    num(&v, "events"),
                    si(live),
                    si(replayed),
                    ratio(replayed, live),
                    verdict(replayed >= live)
                );
            }
            Err(e) => {
                eprintln!("network: replay on {label} failed: {e:#}");
                let _ =
                    writeln!(md, "| {label} | failed: `{}` | | | | |", format!("{e:#}").replace(['`', '|', '\n'], " "));
            }
        }
    }
    md.push('\n');
    Ok(md)
}

// ---------------------------------------------------------------------------------------
// 5: idle sessions

/// Source addresses for `n` connections: the ephemeral port range (32768–60999, 28 232 ports)
/// allows that many connections per source address to one server port.
fn source_ips(n: usize) -> usize {
    n.div_ceil(20_000).max(1)
}

/// One network idle measurement: server RSS before, with the sessions open, after the holder
/// is gone.
#[derive(Debug)]
struct IdleRss {
    sessions: usize,
    before: u64,
    open: u64,
    after: u64,
}

fn idle_over_network(ctx: &Ctx, sessions: usize) -> Result<IdleRss> {
    let server = serve(ctx, &format!("serve-idle-{sessions}"), "memory", sessions + 16, &[])?;
    std::thread::sleep(Duration::from_millis(300));
    let before = server.rss_kib()?;
    let mut cmd = Command::new(&ctx.bins.loadgen);
    cmd.args([
        "arcp",
        "idle",
        "--url",
        &server.addr,
        "--token",
        TOKEN,
        "--sessions",
        &sessions.to_string(),
        "--source-ips",
        &source_ips(sessions).to_string(),
    ]);
    println!("$ arcp-loadgen arcp idle --sessions {sessions}");
    let holder = Server::spawn(cmd, "idle sessions open: ", ctx.scratch.join(format!("idle-{sessions}.log")))
        .with_context(|| format!("log of the server: {}", server.log.display()))?;
    std::thread::sleep(Duration::from_millis(500));
    let open = server.rss_kib()?;
    drop(holder);
    std::thread::sleep(Duration::from_secs(2));
    let after = server.rss_kib()?;
    let r = IdleRss { sessions, before, open, after };
    println!(
        "network: {sessions} idle sessions: server RSS {before} KiB → {open} KiB ({:.2} KiB/session), {after} KiB after they closed",
        per_session(&r)
    );
    Ok(r)
}

fn per_session(r: &IdleRss) -> f64 {
    r.open.saturating_sub(r.before) as f64 / r.sessions.max(1) as f64
}

fn idle(ctx: &Ctx, plan: &Plan) -> Result<String> {
    let mut md = String::from(
        "### Idle sessions (workload 5)\n\n\
         Over the network: a fresh `arcp serve --store memory`; its RSS (`VmRSS`) is read before, with N idle \
         sessions open (one WebSocket connection each, `session.hello` → `session.welcome`, no features so no \
         heartbeats, then nothing), and 2 s after the process holding them was killed. KiB per session is the \
         growth divided by N: the connection's tasks and buffers (user space; the kernel's socket buffers are \
         not in RSS), the session and its resume record. The \"after\" column keeps the closed sessions: they \
         stay resumable for the resume window (600 s) by design, so what came back is the connections' share; \
         allocators also keep freed memory. The network runs stop at 10 000 sessions: the open-files limit of \
         this machine is 20 000 per process (hard), so the holder and the server each need one descriptor per \
         session. The largest point runs in process (`arcp-loadgen arcp idle-inproc`): an `arcp_server::Runtime` \
         with the memory store over the in-memory transport, the RSS of that process (runtime + client ends), \
         then the sessions are closed, their resume window (1 s there) passes and the sweep drops them.\n\n\
         | sessions | where | RSS before | RSS with the sessions | KiB per session | RSS after closing | came back | goal |\n\
         |---:|---|---:|---:|---:|---:|---:|---|\n",
    );
    for &n in &plan.idle {
        match idle_over_network(ctx, n) {
            Ok(r) => {
                let kib = per_session(&r);
                let grown = r.open.saturating_sub(r.before);
                let back = if grown > 0 { 100.0 * r.open.saturating_sub(r.after) as f64 / grown as f64 } else { 0.0 };
                let _ = writeln!(
                    md,
                    "| {n} | `arcp serve`, WebSocket | {} KiB | {} KiB | {kib:.2} | {} KiB | {back:.0} % | ≤ 4 KiB: {} |",
                    r.before,
                    r.open,
                    r.after,
                    verdict(kib <= 4.0)
                );
            }
            Err(e) => {
                eprintln!("network: {n} idle sessions failed: {e:#}");
                let _ =
                    writeln!(md, "| {n} | failed: `{}` | | | | | | |", format!("{e:#}").replace(['`', '|', '\n'], " "));
            }
        }
    }
    let n = plan.idle_inproc.to_string();
    match procs::loadgen(ctx, &["arcp", "idle-inproc", "--sessions", &n]) {
        Ok(v) => {
            let kib = num(&v, "kib_per_session");
            println!(
                "network: {n} idle sessions in process: {kib:.2} KiB/session, {:.0} % came back",
                num(&v, "returned_pct")
            );
            let _ = writeln!(
                md,
                "| {n} | in process, memory transport | {:.0} KiB | {:.0} KiB | {kib:.2} | {:.0} KiB | {:.0} % | ≤ 4 KiB: {} |",
                num(&v, "rss_before_kib"),
                num(&v, "rss_open_kib"),
                num(&v, "rss_after_kib"),
                num(&v, "returned_pct"),
                verdict(kib <= 4.0)
            );
            let _ = writeln!(
                md,
                "\nOpening the {n} in-process sessions took {:.1} s ({:.0} µs per session). The in-process RSS \
                 includes the client ends of the in-memory transports.",
                num(&v, "seconds_to_open"),
                1e6 * num(&v, "seconds_to_open") / plan.idle_inproc.max(1) as f64
            );
        }
        Err(e) => {
            eprintln!("network: idle-inproc failed: {e:#}");
            let _ = writeln!(
                md,
                "| {n} | in process: failed: `{}` | | | | | | |",
                format!("{e:#}").replace(['`', '|', '\n'], " ")
            );
        }
    }
    md.push('\n');
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        let quick = Plan::new(true);
        assert_eq!(quick.scales, [8, 80]);
        assert_eq!((quick.idle.as_slice(), quick.idle_inproc), ([1_000].as_slice(), 10_000));
        let full = Plan::new(false);
        assert_eq!(full.scales, [8, 80, 800]);
        assert_eq!(full.stream_events, 1_000_000);
        assert_eq!(full.replay_events, 100_000);
    }

    #[test]
    fn helpers() {
        assert_eq!(verdict(true), "met");
        assert_eq!(verdict(false), "**missed**");
        assert_eq!(source_ips(1_000), 1);
        assert_eq!([stream_divisor("memory"), stream_divisor("SQLite"), stream_divisor("PostgreSQL")], [1, 10, 100]);
        assert_eq!(source_ips(20_001), 2);
        let r = IdleRss { sessions: 1000, before: 10_000, open: 13_000, after: 11_000 };
        assert_eq!(per_session(&r), 3.0);
    }
}
