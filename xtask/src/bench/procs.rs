//! Processes of a benchmark run: building the release binaries, starting servers (`arcp
//! serve`, the baselines of `arcp-loadgen`, the Python reference runtime), running load
//! generators and reading their one-line JSON result, and reading a process's RSS.

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

/// The bearer token every benchmark server accepts.
pub(crate) const TOKEN: &str = "bench-token";

/// How long a server may take to say it is listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The release binaries a run drives.
#[derive(Debug)]
pub(crate) struct Bins {
    /// `target/release/arcp`.
    pub(crate) arcp: PathBuf,
    /// `target/release/arcp-loadgen`.
    pub(crate) loadgen: PathBuf,
}

impl Bins {
    /// `cargo build --release -p runtime -p arcp-loadgen`, then the two paths.
    pub(crate) fn build(root: &Path) -> Result<Bins> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        println!("$ cargo build --release -p runtime -p arcp-loadgen");
        let status = Command::new(cargo)
            .current_dir(root)
            .args(["build", "--release", "-p", "runtime", "-p", "arcp-loadgen"])
            .status()
            .context("running cargo build")?;
        if !status.success() {
            bail!("building the release binaries failed ({status})");
        }
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        let release = target.join("release");
        Ok(Bins { arcp: release.join("arcp"), loadgen: release.join("arcp-loadgen") })
    }
}

/// A running server, killed (and reaped) when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    child: Child,
    /// What followed the listening prefix on its first stdout line (a URL or an address).
    pub(crate) addr: String,
    /// Where its stderr goes.
    pub(crate) log: PathBuf,
}

impl Server {
    /// Spawns `cmd` (stdout piped, stderr to `log`) and waits for a stdout line starting with
    /// `prefix`; `addr` is the rest of that line. Later stdout lines are drained and dropped.
    pub(crate) fn spawn(mut cmd: Command, prefix: &str, log: PathBuf) -> Result<Server> {
        let err = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::from(err));
        let mut child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
        let Some(stdout) = child.stdout.take() else { bail!("stdout of {cmd:?} is not piped") };
        let (tx, rx) = mpsc::channel();
        let wanted = prefix.to_owned();
        std::thread::spawn(move || {
            let mut found = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !found && let Some(rest) = line.strip_prefix(&wanted) {
                    found = true;
                    let _ = tx.send(rest.trim().to_owned());
                }
            }
        });
        let mut server = Server { child, addr: String::new(), log };
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => {
                server.addr = addr;
                Ok(server)
            }
            Err(_) => {
                let tail = server.log_tail();
                bail!("{cmd:?} did not print {prefix:?} within {START_TIMEOUT:?}; its stderr ends with:\n{tail}")
            }
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident set size now, in KiB.
    pub(crate) fn rss_kib(&self) -> Result<u64> {
        rss_kib(self.pid())
    }

    /// The last lines of its stderr (for error messages).
    pub(crate) fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `arcp serve` on a free loopback port with `--token` [`TOKEN`] and `extra` arguments
/// (e.g. `["--store", "memory"]`); `addr` is its `ws://…/arcp` URL. A clean `ARCP_*`
/// environment; stderr goes to `<scratch>/<name>.log`.
pub(crate) fn arcp_serve(ctx: &super::Ctx, name: &str, extra: &[&str]) -> Result<Server> {
    let mut cmd = Command::new(&ctx.bins.arcp);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ARCP_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(&ctx.scratch)
        .args(["serve", "--listen", "127.0.0.1:0", "--token", TOKEN])
        .args(extra)
        .env("ARCP_LOG", "warn");
    Server::spawn(cmd, "arcp listening on ", ctx.scratch.join(format!("{name}.log")))
}

/// `arcp-loadgen ARGS…` as a server (a baseline, or a holder of idle sessions): waits for
/// its `listening on ` line.
pub(crate) fn loadgen_server(ctx: &super::Ctx, name: &str, args: &[&str]) -> Result<Server> {
    let mut cmd = Command::new(&ctx.bins.loadgen);
    cmd.args(args);
    Server::spawn(cmd, "listening on ", ctx.scratch.join(format!("{name}.log")))
}

/// Runs `arcp-loadgen ARGS…` to completion and returns the JSON object of its last stdout
/// line. Its stderr passes through.
pub(crate) fn loadgen(ctx: &super::Ctx, args: &[&str]) -> Result<Value> {
    println!("$ arcp-loadgen {}", args.join(" "));
    let out = Command::new(&ctx.bins.loadgen)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running arcp-loadgen")?;
    if !out.status.success() {
        bail!("arcp-loadgen {} failed ({})", args.join(" "), out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("arcp-loadgen printed no JSON result (last line {last:?})"))
}

/// The resident set size of process `pid`, in KiB (Linux: `/proc/PID/status`, `VmRSS`).
pub(crate) fn rss_kib(pid: u32) -> Result<u64> {
    let status =
        fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// A number from a loadgen result (`0.0` when missing or not a number).
pub(crate) fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

/// `a / b` as `0.52×` (`n/a` when `b` is 0).
pub(crate) fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 { format!("{:.2}×", a / b) } else { "n/a".to_owned() }
}

/// A rate with a unit-less SI suffix: `15.4 M`, `43.8 k`, `950`.
pub(crate) fn si(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1} k", x / 1e3)
    } else if x >= 1e3 {
        format!("{:.2} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(ratio(1.0, 2.0), "0.50×");
        assert_eq!(ratio(1.0, 0.0), "n/a");
        assert_eq!(si(15_400_000.0), "15.40 M");
        assert_eq!(si(43_800.0), "43.8 k");
        assert_eq!(si(3_900.0), "3.90 k");
        assert_eq!(si(950.0), "950");
        assert_eq!(num(&serde_json::json!({"a": 2}), "a"), 2.0);
        assert_eq!(num(&serde_json::json!({}), "a"), 0.0);
    }

    #[test]
    fn rss_of_this_process() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
