//! The `channel` group of `cargo xtask bench`: the HTTP channel of the release `arcp serve`
//! (at `/v1` on the same listener as `ws://…/arcp`), driven by `arcp-loadgen channel …`,
//! against a bare hyper hello-world server (`arcp-loadgen channel baseline`) measured in the
//! same run.
//!
//! Workloads:
//! - **turns**: buffered turns with token rotation, 8 sessions, memory and SQLite token
//!   stores, against the baseline at 8 connections;
//! - **idle**: server RSS as idle channel sessions pile up (1k, 10k, 50k), and whether
//!   expired sessions give their memory back;
//! - **scaling**: the memory turns at 8, 80 and 800 sessions, with the server's CPU time
//!   per turn.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::Ctx;
use super::procs::{self, Server, TOKEN, num, ratio, si};

/// The goal of memory-store turns, as a fraction of the baseline's requests/s.
const GOAL_MEMORY_RATIO: f64 = 0.6;
/// The goal of SQLite-store turns, in turns/s.
const GOAL_SQLITE_TURNS: f64 = 20_000.0;
/// The goal for an idle channel session, in KiB of server RSS.
const GOAL_IDLE_KIB: f64 = 1.0;
/// The idle TTL of the server of the expiry (leak) check, in seconds.
const LEAK_TTL_SECS: u64 = 3;
/// Kernel clock ticks per second (`/proc/PID/stat` times; `USER_HZ` is 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;
/// Per-turn server CPU may grow by this factor over the 8-session run and still count as
/// linear cost (the noise of a 2-core machine).
const LINEAR_SLACK: f64 = 1.5;

/// How big the run is.
#[derive(Debug)]
struct Plan {
    /// The measured window of a turns/hello run, in seconds.
    seconds: f64,
    /// The warm-up before it, in seconds.
    warmup: f64,
    /// How many times each turns/hello run repeats (the median is shown).
    repeat: usize,
    /// The cumulative idle-session counts at which RSS is read.
    idle_steps: Vec<u64>,
    /// How many sessions the expiry check creates.
    leak_sessions: u64,
    /// The most time one idle step may take, in seconds (SQLite creates sessions slowly: a
    /// step that hits it reports the sessions it did create).
    idle_step_secs: f64,
    /// The session counts of the scaling runs.
    scaling: Vec<usize>,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                seconds: 3.0,
                warmup: 1.0,
                repeat: 1,
                idle_steps: vec![1_000, 10_000],
                leak_sessions: 5_000,
                idle_step_secs: 6.0,
                scaling: vec![8, 80],
            }
        } else {
            Plan {
                seconds: 8.0,
                warmup: 2.0,
                repeat: 3,
                idle_steps: vec![1_000, 10_000, 50_000],
                leak_sessions: 20_000,
                idle_step_secs: 60.0,
                scaling: vec![8, 80, 800],
            }
        }
    }
}

/// Runs the group; returns its `docs/benchmarks.md` sections as (name, Markdown).
pub(crate) fn run(ctx: &Ctx) -> Result<Vec<(String, String)>> {
    let plan = Plan::new(ctx.quick);
    let load_before = super::load_average().unwrap_or_else(|| "unknown".into());
    println!("== channel: turns (memory and SQLite token stores) vs a bare hyper server");
    let turns = turns_workload(ctx, &plan)?;
    println!("== channel: idle sessions");
    let idle = idle_workload(ctx, &plan)?;
    println!("== channel: scaling of memory turns");
    let scaling = scaling_workload(ctx, &plan, &turns.memory)?;
    let load_after = super::load_average().unwrap_or_else(|| "unknown".into());

    let mut md = String::from("## Channel\n\n");
    md.push_str(&format!(
        "`cargo xtask bench --only channel{}` (load average before: {load_before}; after: {load_after}).\n\n",
        if ctx.quick { " --quick" } else { "" }
    ));
    md.push_str(&format!(
        "What is measured: the release `arcp serve --token … --store memory|sqlite:PATH` (default agent \
         `echo`, rate limits off) and the separate `arcp-loadgen channel` process, on loopback. A turn is \
         `POST /v1/session/{{id}}/message` with `Authorization: Bearer`, the continuation token in \
         `X-Continuation-Token` and the body `{{\"input\":\"hello\"}}`, answered with JSON (the echo job's \
         output and the next token, which the next turn presents). Each session has its own keep-alive \
         connection and runs its turns back to back. The baseline is a bare hyper 1 server (HTTP/1.1, \
         keep-alive, `TCP_NODELAY`) that reads each request body and answers `200 hello world`, driven by the \
         same client with a request of the same size. Each run warms up {:.0} s, then counts {:.0} s; {}; \
         latencies are per request, client side. Server CPU is utime + stime of its process from \
         `/proc/PID/stat` over the measured window.\n\n",
        plan.warmup,
        plan.seconds,
        if plan.repeat > 1 {
            format!("each runs {} times, interleaved, and the median run is shown with the range", plan.repeat)
        } else {
            "each runs once".to_owned()
        }
    ));
    md.push_str(&turns.markdown);
    md.push_str(&idle);
    md.push_str(&scaling);
    Ok(vec![("channel".to_owned(), md)])
}

// ---------------------------------------------------------------------------------------
// Running things

/// `arcp serve` with the channel on `store` (`memory` or a fresh SQLite file under the
/// scratch directory) and `extra` arguments; returns it and its `http://host:port` root.
fn channel_server(ctx: &Ctx, name: &str, store: Store, extra: &[&str]) -> Result<(Server, String)> {
    let spec = match store {
        Store::Memory => "memory".to_owned(),
        Store::Sqlite => format!("sqlite:{}", ctx.scratch.join(format!("{name}.db")).display()),
    };
    let mut args = vec!["--store", spec.as_str()];
    args.extend_from_slice(extra);
    let server = procs::arcp_serve(ctx, name, &args)?;
    let base = http_root(&server.addr)?;
    Ok((server, base))
}

/// `ws://host:port/arcp` → `http://host:port`.
fn http_root(ws_url: &str) -> Result<String> {
    let Some(rest) = ws_url.strip_prefix("ws://") else { bail!("unexpected arcp serve URL {ws_url:?}") };
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        bail!("unexpected arcp serve URL {ws_url:?}");
    }
    Ok(format!("http://{host}"))
}

/// The token store under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    Memory,
    Sqlite,
}

impl Store {
    fn label(self) -> &'static str {
        match self {
            Store::Memory => "memory",
            Store::Sqlite => "SQLite",
        }
    }
}

/// utime + stime of process `pid`, in clock ticks (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): utime is field 14, stime field 15.
    let field = |n: usize| -> Result<u64> {
        fields.get(n - 3).and_then(|v| v.parse().ok()).with_context(|| format!("no field {n} in /proc/{pid}/stat"))
    };
    Ok(field(14)? + field(15)?)
}

/// A load run's JSON result and the server's CPU seconds during its measured window.
struct Measured {
    result: Value,
    server_cpu_secs: f64,
}

/// Runs `arcp-loadgen ARGS…` (with `--seconds`/`--warmup-seconds` from `plan`) while reading
/// the CPU time of `server` at the start and the end of its measured window.
fn measure(ctx: &Ctx, server: &Server, args: &[&str], plan: &Plan) -> Result<Measured> {
    let (seconds, warmup) = (plan.seconds.to_string(), plan.warmup.to_string());
    let mut args: Vec<&str> = args.to_vec();
    args.extend_from_slice(&["--seconds", &seconds, "--warmup-seconds", &warmup]);
    println!("$ arcp-loadgen {}", args.join(" "));
    let child = Command::new(&ctx.bins.loadgen)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("running arcp-loadgen")?;
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(plan.warmup));
    let cpu_from = cpu_ticks(server.pid())?;
    let window_start = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(plan.seconds));
    let cpu_to = cpu_ticks(server.pid())?;
    let window = window_start.elapsed().as_secs_f64();
    let out = child.wait_with_output().context("waiting for arcp-loadgen")?;
    if !out.status.success() {
        bail!("arcp-loadgen {} failed ({}) after {:.1} s", args.join(" "), out.status, started.elapsed().as_secs_f64());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    let result: Value = serde_json::from_str(last)
        .with_context(|| format!("arcp-loadgen printed no JSON result (last line {last:?})"))?;
    // Scale the sampled CPU to the loadgen's window length (they differ by milliseconds).
    let server_cpu_secs = (cpu_to.saturating_sub(cpu_from)) as f64 / TICKS_PER_SEC * (plan.seconds / window);
    Ok(Measured { result, server_cpu_secs })
}

/// The run with the median `key` of `runs` (sorted in place), and the range of `key`.
fn median(runs: &mut [Measured], key: &str) -> Result<(Measured, f64, f64)> {
    if runs.is_empty() {
        bail!("no runs");
    }
    runs.sort_by(|a, b| num(&a.result, key).total_cmp(&num(&b.result, key)));
    let (lo, hi) = (num(&runs[0].result, key), num(&runs[runs.len() - 1].result, key));
    let mid = &runs[runs.len() / 2];
    Ok((Measured { result: mid.result.clone(), server_cpu_secs: mid.server_cpu_secs }, lo, hi))
}

/// `12.3 k/s (11.9 k–12.6 k)` (the range only when there were several runs).
fn rate_cell(rate: f64, lo: f64, hi: f64, repeat: usize) -> String {
    if repeat > 1 { format!("{} ({}–{})", si(rate), si(lo), si(hi)) } else { si(rate) }
}

/// Microseconds as `85 µs` or `1.24 ms`.
fn us(x: f64) -> String {
    if x >= 1000.0 { format!("{:.2} ms", x / 1000.0) } else { format!("{x:.0} µs") }
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

// ---------------------------------------------------------------------------------------
// Workload: turns

/// The turns workload's results: its Markdown, and the memory run (reused by scaling).
struct Turns {
    markdown: String,
    memory: Measured,
}

fn turns_workload(ctx: &Ctx, plan: &Plan) -> Result<Turns> {
    let baseline = procs::loadgen_server(ctx, "channel-baseline", &["channel", "baseline", "--listen", "127.0.0.1:0"])?;
    let (memory, memory_url) = channel_server(ctx, "channel-turns-memory", Store::Memory, &[])?;
    let (sqlite, sqlite_url) = channel_server(ctx, "channel-turns-sqlite", Store::Sqlite, &[])?;
    let (mut base_runs, mut mem_runs, mut sql_runs) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..plan.repeat {
        if plan.repeat > 1 {
            println!("-- round {} of {}", round + 1, plan.repeat);
        }
        let b = measure(ctx, &baseline, &["channel", "hello", "--url", &baseline.addr, "--connections", "8"], plan)?;
        let base_rate = num(&b.result, "requests_per_sec");
        println!("baseline (hyper hello world, 8 connections): {} requests/s", si(base_rate));
        base_runs.push(b);
        for (server, url, store, runs) in
            [(&memory, &memory_url, Store::Memory, &mut mem_runs), (&sqlite, &sqlite_url, Store::Sqlite, &mut sql_runs)]
        {
            let m =
                measure(ctx, server, &["channel", "turns", "--url", url, "--token", TOKEN, "--sessions", "8"], plan)?;
            let rate = num(&m.result, "turns_per_sec");
            println!(
                "channel turns, {} store, 8 sessions: {} turns/s = {} of the baseline (errors: {})",
                store.label(),
                si(rate),
                ratio(rate, base_rate),
                num(&m.result, "errors")
            );
            runs.push(m);
        }
    }
    drop((baseline, sqlite));
    let (b, b_lo, b_hi) = median(&mut base_runs, "requests_per_sec")?;
    let (m, m_lo, m_hi) = median(&mut mem_runs, "turns_per_sec")?;
    let (s, s_lo, s_hi) = median(&mut sql_runs, "turns_per_sec")?;
    let base_rate = num(&b.result, "requests_per_sec");
    let (m_rate, s_rate) = (num(&m.result, "turns_per_sec"), num(&s.result, "turns_per_sec"));
    let mem_ok = m_rate >= GOAL_MEMORY_RATIO * base_rate;
    let sql_ok = s_rate >= GOAL_SQLITE_TURNS;
    println!(
        "channel turns (median): memory {} turns/s = {} of the baseline's {} requests/s (goal ≥ {:.2}×: {}); \
         SQLite {} turns/s = {} (goal ≥ {}: {})",
        si(m_rate),
        ratio(m_rate, base_rate),
        si(base_rate),
        GOAL_MEMORY_RATIO,
        met(mem_ok),
        si(s_rate),
        ratio(s_rate, base_rate),
        si(GOAL_SQLITE_TURNS),
        met(sql_ok)
    );
    drop(memory);

    let cpu = |m: &Measured, key: &str| -> String {
        let n = num(&m.result, key) * plan.seconds;
        if n > 0.0 { format!("{:.0} µs", m.server_cpu_secs * 1e6 / n) } else { "n/a".to_owned() }
    };
    let mut md = String::from(
        "### Channel turns\n\n8 sessions (8 keep-alive connections), buffered turns back to back; the baseline gets \
         8 connections.\n\n| server | requests or turns/s | p50 | p99 | errors | server CPU per request | vs baseline | \
         goal | |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    md.push_str(&format!(
        "| bare hyper hello world | {} | {} | {} | {} | {} | 1.00× | | |\n",
        rate_cell(base_rate, b_lo, b_hi, plan.repeat),
        us(num(&b.result, "p50_us")),
        us(num(&b.result, "p99_us")),
        num(&b.result, "errors"),
        cpu(&b, "requests_per_sec"),
    ));
    md.push_str(&format!(
        "| channel, memory token store | {} | {} | {} | {} | {} | {} | ≥ {:.2}× the baseline | {} |\n",
        rate_cell(m_rate, m_lo, m_hi, plan.repeat),
        us(num(&m.result, "p50_us")),
        us(num(&m.result, "p99_us")),
        num(&m.result, "errors"),
        cpu(&m, "turns_per_sec"),
        ratio(m_rate, base_rate),
        GOAL_MEMORY_RATIO,
        met(mem_ok)
    ));
    md.push_str(&format!(
        "| channel, SQLite token store | {} | {} | {} | {} | {} | {} | ≥ {} turns/s | {} |\n\n",
        rate_cell(s_rate, s_lo, s_hi, plan.repeat),
        us(num(&s.result, "p50_us")),
        us(num(&s.result, "p99_us")),
        num(&s.result, "errors"),
        cpu(&s, "turns_per_sec"),
        ratio(s_rate, base_rate),
        si(GOAL_SQLITE_TURNS),
        met(sql_ok)
    ));
    Ok(Turns { markdown: md, memory: m })
}

// ---------------------------------------------------------------------------------------
// Workload: idle sessions

/// Creates `n` idle sessions on the server at `url` (for at most `max_secs`); returns the
/// loadgen result (`sessions` is how many were created).
fn create_idle(ctx: &Ctx, url: &str, n: u64, max_secs: f64) -> Result<Value> {
    let (n, max) = (n.to_string(), max_secs.to_string());
    let r = procs::loadgen(
        ctx,
        &["channel", "idle", "--url", url, "--token", TOKEN, "--sessions", &n, "--max-seconds", &max],
    )?;
    if num(&r, "errors") > 0.0 {
        eprintln!("note: {} errors while creating idle sessions", num(&r, "errors"));
    }
    Ok(r)
}

fn idle_workload(ctx: &Ctx, plan: &Plan) -> Result<String> {
    let mut md = format!(
        "### Idle channel sessions\n\nServer RSS (`VmRSS`) as sessions are created (`POST /v1/session`, whose first \
         turn runs the echo agent) over 4 connections that then close: the sessions live on only in the token \
         store. \"before\" is read after 100 warm-up sessions; KiB per session is the growth since then divided by \
         the sessions created since then. A step stops after {} s (a slow store then shows how many it created). Goal: ≤ {GOAL_IDLE_KIB} KiB per idle session.\n\n| store | sessions | \
         created/s | RSS | growth | KiB per session | goal | |\n|---|---|---|---|---|---|---|---|\n",
        plan.idle_step_secs
    );
    for store in [Store::Memory, Store::Sqlite] {
        let (server, url) = channel_server(ctx, &format!("channel-idle-{}", store.label()), store, &[])?;
        create_idle(ctx, &url, 100, plan.idle_step_secs)?;
        let before = server.rss_kib()?;
        println!("idle, {} store: RSS before {} KiB", store.label(), before);
        md.push_str(&format!("| {} | before | | {} KiB | | | | |\n", store.label(), before));
        let mut have = 0u64;
        for (i, &target) in plan.idle_steps.iter().enumerate() {
            let r = create_idle(ctx, &url, target - have, plan.idle_step_secs)?;
            let created = num(&r, "sessions") as u64;
            have += created;
            let rss = server.rss_kib()?;
            let per = (rss.saturating_sub(before)) as f64 / have.max(1) as f64;
            let capped = created < target.saturating_sub(have - created);
            let last = capped || i + 1 == plan.idle_steps.len();
            println!(
                "idle, {} store, {have} sessions{}: RSS {rss} KiB, {per:.2} KiB per session (goal ≤ {GOAL_IDLE_KIB}: {})",
                store.label(),
                if capped {
                    format!(" (of {target}: the {} s cap was hit)", plan.idle_step_secs)
                } else {
                    String::new()
                },
                met(per <= GOAL_IDLE_KIB)
            );
            md.push_str(&format!(
                "| {} | {have}{} | {} | {rss} KiB | +{} KiB | {per:.2} | {} | {} |\n",
                store.label(),
                if capped { format!(" (of {target}; {} s cap)", plan.idle_step_secs) } else { String::new() },
                si(num(&r, "sessions") / num(&r, "seconds").max(1e-9)),
                rss.saturating_sub(before),
                if last { format!("≤ {GOAL_IDLE_KIB} KiB") } else { String::new() },
                if last { met(per <= GOAL_IDLE_KIB) } else { "" },
            ));
            if capped {
                break;
            }
        }
    }
    md.push('\n');
    md.push_str(&leak_check(ctx, plan)?);
    Ok(md)
}

/// The expiry check: a memory-store server with a short idle TTL; RSS after N sessions, after
/// they all expired, and after N more (if expired sessions were reclaimed, the second N reuse
/// their memory and RSS stays flat).
fn leak_check(ctx: &Ctx, plan: &Plan) -> Result<String> {
    let ttl = LEAK_TTL_SECS.to_string();
    let (server, url) =
        channel_server(ctx, "channel-idle-expiry", Store::Memory, &["--channel-idle-ttl-secs", ttl.as_str()])?;
    create_idle(ctx, &url, 100, plan.idle_step_secs)?;
    let before = server.rss_kib()?;
    let n = plan.leak_sessions;
    create_idle(ctx, &url, n, plan.idle_step_secs)?;
    let full = server.rss_kib()?;
    std::thread::sleep(Duration::from_secs(LEAK_TTL_SECS + 1));
    let expired = server.rss_kib()?;
    create_idle(ctx, &url, n, plan.idle_step_secs)?;
    let again = server.rss_kib()?;
    let per_first = full.saturating_sub(before) as f64 / n as f64;
    let per_second = again.saturating_sub(expired) as f64 / n as f64;
    // Reclaimed: the second batch costs at most a quarter of the first.
    let reclaimed = per_second <= per_first / 4.0;
    println!(
        "idle expiry (memory, TTL {LEAK_TTL_SECS} s): RSS before {before} KiB, after {n} sessions {full} KiB, once \
         expired {expired} KiB, after {n} more {again} KiB ({per_second:.2} KiB per session vs {per_first:.2} the \
         first time: {})",
        if reclaimed { "expired sessions are reclaimed" } else { "expired sessions are NOT reclaimed" }
    );
    Ok(format!(
        "Expiry (leak check), memory store, `--channel-idle-ttl-secs {LEAK_TTL_SECS}`: RSS {before} KiB before, \
         {full} KiB after {n} sessions, {expired} KiB once they had all expired ({} s later), {again} KiB after {n} \
         more ({per_second:.2} KiB per session the second time vs {per_first:.2} the first): {}.\n\n",
        LEAK_TTL_SECS + 1,
        if reclaimed {
            "the expired sessions' memory is reused (an allocator seldom returns memory to the OS, so RSS is not \
             expected to drop)"
        } else {
            "**the expired sessions' memory is not reused**: nothing purges expired channel sessions while the \
             store has room (the memory store drops an expired session only when it is met again, or purges when \
             it is full)"
        }
    ))
}

// ---------------------------------------------------------------------------------------
// Workload: scaling

fn scaling_workload(ctx: &Ctx, plan: &Plan, eight: &Measured) -> Result<String> {
    let mut rows: Vec<(usize, Measured, f64, f64)> = Vec::new();
    for &sessions in &plan.scaling {
        if sessions == 8 {
            let r = num(&eight.result, "turns_per_sec");
            rows.push((8, Measured { result: eight.result.clone(), server_cpu_secs: eight.server_cpu_secs }, r, r));
            continue;
        }
        // A fresh server per size: every size starts from the same state.
        let (server, url) = channel_server(ctx, &format!("channel-scaling-{sessions}"), Store::Memory, &[])?;
        let n = sessions.to_string();
        let mut runs = Vec::new();
        for _ in 0..plan.repeat {
            runs.push(measure(
                ctx,
                &server,
                &["channel", "turns", "--url", &url, "--token", TOKEN, "--sessions", &n],
                plan,
            )?);
        }
        let (m, lo, hi) = median(&mut runs, "turns_per_sec")?;
        println!(
            "channel turns, memory store, {sessions} sessions: {} turns/s, p50 {}, p99 {}, errors {}",
            si(num(&m.result, "turns_per_sec")),
            us(num(&m.result, "p50_us")),
            us(num(&m.result, "p99_us")),
            num(&m.result, "errors")
        );
        rows.push((sessions, m, lo, hi));
    }
    let cpu_per_turn = |m: &Measured| {
        let turns = num(&m.result, "turns");
        if turns > 0.0 { m.server_cpu_secs * 1e6 / turns } else { f64::NAN }
    };
    let first = rows.first().map(|(_, m, _, _)| cpu_per_turn(m)).unwrap_or(f64::NAN);
    let mut md = String::from(
        "### Scaling of channel turns\n\nThe turns workload on the memory token store at growing numbers of \
         concurrent sessions (one connection each; the 8-session row is the run above). Server CPU per turn is \
         the server's utime + stime over the measured window divided by the turns in it: flat means cost grows \
         linearly with the work.\n\n| sessions | turns/s | p50 | p99 | errors | server CPU per turn | vs 8 \
         sessions |\n|---|---|---|---|---|---|---|\n",
    );
    let mut linear = true;
    for (sessions, m, lo, hi) in &rows {
        let c = cpu_per_turn(m);
        let growth = c / first;
        if growth.is_finite() && growth > LINEAR_SLACK {
            linear = false;
        }
        println!("scaling, {sessions} sessions: {:.1} µs server CPU per turn = {:.2}× the 8-session cost", c, growth);
        md.push_str(&format!(
            "| {sessions} | {} | {} | {} | {} | {c:.1} µs | {growth:.2}× |\n",
            rate_cell(num(&m.result, "turns_per_sec"), *lo, *hi, plan.repeat),
            us(num(&m.result, "p50_us")),
            us(num(&m.result, "p99_us")),
            num(&m.result, "errors"),
        ));
    }
    let verdict = if linear {
        format!(
            "Cost grows linearly: the server's CPU per turn stays within {LINEAR_SLACK}× of the 8-session cost up to \
             {} sessions.",
            plan.scaling.last().copied().unwrap_or(8)
        )
    } else {
        format!(
            "**Cost grows faster than linearly**: the server's CPU per turn rises above {LINEAR_SLACK}× the \
             8-session cost."
        )
    };
    println!("{verdict}");
    md.push_str(&format!("\n{verdict} Latency grows with the sessions by design: they all queue on 2 cores.\n"));
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_and_cells() {
        assert_eq!(http_root("ws://127.0.0.1:4321/arcp").unwrap(), "http://127.0.0.1:4321");
        assert!(http_root("wss://x/arcp").is_err());
        assert_eq!(us(85.2), "85 µs");
        assert_eq!(us(1240.0), "1.24 ms");
        assert_eq!(rate_cell(12_300.0, 11_900.0, 12_600.0, 3), "12.3 k (11.9 k–12.6 k)");
        assert_eq!(rate_cell(950.0, 950.0, 950.0, 1), "950");
    }

    #[test]
    fn cpu_of_this_process() {
        assert!(cpu_ticks(std::process::id()).is_ok());
    }
}
