//! `cargo xtask conformance [--url ws://… --token T] [--channel http://…] [--filter S]
//! [--write-md]`: runs the ARCP conformance suite against the in-process runtime or any
//! server at a URL, and the channel suite against the in-process port and an in-process
//! `channel-rest` server (HTTP, SSE, WebSocket) or any server at a base URL; prints the
//! reports and optionally regenerates `CONFORMANCE.md`.
//!
//! With neither `--url` nor `--channel` both suites run in-process. `--url` runs the ARCP
//! suite against that server, `--channel` the channel suite (over HTTP, SSE and WebSocket)
//! against that base URL; give both to run both. `--token` is the bearer key for either
//! (default: `$ARCP_TOKEN`); `--other-token` is a key of a second principal, for the
//! cross-principal cases of `--url` (skipped without it). `--max-buffered-events N` and
//! `--max-buffered-bytes B` tell the §14 cap cases the server's caps (`arcp serve` takes the
//! same flags; default 10 000 and 16 MiB, the in-memory store's).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arcp_core::{ManualClock, OsEntropy, SystemClock};
use arcp_server::{Runtime, StaticBearerVerifier};
use async_trait::async_trait;
use channel_core::{Channel, ChannelConfig, MemoryTokenStore};
use conformance::Report;
use conformance::channel::{ChannelTarget, ChannelTransport, FixtureRunner, render_channel_text, run_channel};

/// Parsed arguments.
#[derive(Debug, Default)]
pub(crate) struct Args {
    url: Option<String>,
    channel: Option<String>,
    token: Option<String>,
    other_token: Option<String>,
    filter: Option<String>,
    write_md: bool,
    caps: conformance::BufferCaps,
}

const USAGE: &str = "cargo xtask conformance [--url ws://HOST:PORT/arcp] [--channel http://HOST:PORT] [--token T] [--other-token T2] [--max-buffered-events N] [--max-buffered-bytes B] [--filter S] [--write-md]";

pub(crate) fn parse(args: &[&str]) -> Result<Args> {
    let mut out = Args::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value =
            || it.next().map(|s| (*s).to_owned()).with_context(|| format!("{a} needs a value (usage: {USAGE})"));
        match *a {
            "--url" => out.url = Some(value()?),
            "--channel" => out.channel = Some(value()?),
            "--token" => out.token = Some(value()?),
            "--other-token" => out.other_token = Some(value()?),
            "--filter" => out.filter = Some(value()?),
            "--max-buffered-events" => {
                out.caps.events = value()?.parse().context("--max-buffered-events is a positive integer")?;
            }
            "--max-buffered-bytes" => {
                out.caps.bytes = value()?.parse().context("--max-buffered-bytes is a positive integer")?;
            }
            "--write-md" => out.write_md = true,
            other => bail!("unknown argument {other:?} (usage: {USAGE})"),
        }
    }
    Ok(out)
}

/// The bearer key: `--token`, else `$ARCP_TOKEN`.
fn token(args: &Args) -> Option<String> {
    args.token.clone().or_else(|| std::env::var("ARCP_TOKEN").ok()).filter(|t| !t.is_empty())
}

/// The key of a second principal the in-process runtime accepts (cross-principal cases).
const OTHER_PRINCIPAL_KEY: &str = "conformance-other";

fn arcp_options(args: &Args) -> conformance::RunOptions {
    let other = if args.url.is_some() { args.other_token.clone() } else { Some(OTHER_PRINCIPAL_KEY.to_owned()) };
    let options = conformance::RunOptions::default().with_buffer_caps(args.caps);
    match other {
        Some(t) => options.with_other_principal_token(t),
        None => options,
    }
}

fn arcp_target(args: &Args) -> conformance::Target {
    match &args.url {
        Some(url) => conformance::Target::Url { url: url.clone(), token: token(args).unwrap_or_default() },
        None => {
            let verifier = StaticBearerVerifier::new()
                .with_token("conformance-1", "conformance")
                .with_token("conformance-2", "conformance")
                .with_token(OTHER_PRINCIPAL_KEY, "conformance-other");
            let runtime = Runtime::builder(verifier).agents(conformance::in_process_agents()).build();
            conformance::Target::InProcess {
                runtime,
                token: "conformance-1".into(),
                same_principal_token: Some("conformance-2".into()),
            }
        }
    }
}

/// The bearer key of the in-process channel server.
const CHANNEL_KEY: &str = "conformance-channel";

/// Accepts `Authorization: Bearer conformance-channel` as the principal `conformance`.
struct StaticKey;

#[async_trait]
impl channel_rest::Authenticator for StaticKey {
    async fn authenticate(&self, headers: &http::HeaderMap) -> Option<String> {
        let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        (value == format!("Bearer {CHANNEL_KEY}")).then(|| "conformance".to_owned())
    }
}

/// The in-process port: memory store, manual clock, a second port over the same store.
fn port_target() -> ChannelTarget {
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let store = Arc::new(MemoryTokenStore::default());
    let config = ChannelConfig::default();
    let a = Channel::new(store.clone(), clock.clone(), Arc::new(OsEntropy), config);
    let b = Channel::new(store, clock.clone(), Arc::new(OsEntropy), config);
    ChannelTarget::port(a, Arc::new(FixtureRunner), "conformance").with_clock(clock).with_second_port(b)
}

/// Runs the channel suite on the in-process port and on an in-process channel-rest server.
async fn channel_in_process(filter: Option<&str>) -> Result<Vec<(ChannelTransport, Report)>> {
    let mut reports = vec![(ChannelTransport::Port, run_channel(&port_target(), filter).await)];
    let channel = Channel::new(
        Arc::new(MemoryTokenStore::default()),
        Arc::new(SystemClock),
        Arc::new(OsEntropy),
        ChannelConfig::default(),
    );
    let service =
        channel_rest::ChannelService::new(channel, Arc::new(FixtureRunner), channel_rest::RestConfig::default())
            .with_authenticator(Arc::new(StaticKey));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(channel_rest::serve(listener, service, async {
        let _ = stopped.await;
    }));
    for target in ChannelTarget::network(&base, Some(CHANNEL_KEY.to_owned())) {
        reports.push((target.transport(), run_channel(&target, filter).await));
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), server).await;
    Ok(reports)
}

pub(crate) fn run(root: &Path, args: Args) -> Result<()> {
    let in_process = args.url.is_none() && args.channel.is_none();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let filter = args.filter.as_deref();
    let arcp = (in_process || args.url.is_some())
        .then(|| rt.block_on(conformance::run_with(arcp_target(&args), filter, arcp_options(&args))));
    if let Some(report) = &arcp {
        print!("{}", report.render_text());
    }
    let channel = match &args.channel {
        Some(base) => rt.block_on(async {
            let mut out = Vec::new();
            for target in ChannelTarget::network(base, token(&args)) {
                out.push((target.transport(), run_channel(&target, filter).await));
            }
            out
        }),
        None if in_process => rt.block_on(channel_in_process(filter))?,
        None => Vec::new(),
    };
    for (_, report) in &channel {
        print!("\n{}", render_channel_text(report));
    }
    if args.write_md {
        let mut md = conformance::render_conformance_md(&conformance::all_cases(), arcp.as_ref());
        md.push('\n');
        md.push_str(&conformance::coverage::render_coverage_md());
        let by_transport: Vec<(ChannelTransport, &Report)> = channel.iter().map(|(t, r)| (*t, r)).collect();
        md.push('\n');
        md.push_str(&conformance::channel::render_channel_md(
            &conformance::channel::all_channel_cases(),
            &by_transport,
        ));
        std::fs::write(root.join("CONFORMANCE.md"), md)?;
        eprintln!("wrote CONFORMANCE.md");
    }
    if !arcp.iter().chain(channel.iter().map(|(_, r)| r)).all(Report::passed) {
        bail!("conformance failures");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let a = parse(&["--channel", "http://127.0.0.1:1", "--token", "k", "--filter", "rule1", "--write-md"]);
        let a = a.ok().unwrap_or_default();
        assert_eq!(a.channel.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(a.token.as_deref(), Some("k"));
        assert_eq!(a.filter.as_deref(), Some("rule1"));
        assert!(a.write_md && a.url.is_none());
        assert!(parse(&["--channel"]).is_err());
        assert!(parse(&["--nope"]).is_err());
    }
}
