//! `arcp conformance`: runs the ARCP conformance suite (the `conformance` crate, the same
//! cases `cargo xtask conformance --url` runs) against the runtime at `--url`, and with
//! `--channel BASE_URL` the channel suite over HTTP, SSE and WebSocket too; prints the
//! reports; exit status 3 when a case failed.
//!
//! A session is opened first with the same URL and key, so an unreachable runtime or a
//! refused key is one clear error (exit status 1) instead of every case failing alike.

use std::io::Write as _;

use conformance::channel::{ChannelTarget, render_channel_text, run_channel};
use conformance::{Report, RunOptions, Target};

use super::args::ConformanceArgs;
use super::{EXIT_FAILED, connect, key, output_failed};
use crate::Failure;

/// Runs `arcp conformance`.
pub(crate) async fn run(args: ConformanceArgs) -> Result<(), Failure> {
    if let Some(base) = &args.channel {
        check_channel_url(base)?;
    }
    if args.connect.url.starts_with("wss:") {
        // The suite's peer opens plain WebSockets.
        return Err(Failure::Usage("the conformance suite runs over ws:// only (not wss://)".to_owned()));
    }
    let client = connect(&args.connect).await?;
    let _ = client.close().await;
    let token = key(&args.connect).unwrap_or_default().to_owned();
    let caps = conformance::BufferCaps { events: args.max_buffered_events, bytes: args.max_buffered_bytes };
    let mut options = RunOptions::default().with_buffer_caps(caps);
    if let Some(other) = args.other_key.as_deref().filter(|k| !k.is_empty()) {
        options = options.with_other_principal_token(other);
    }
    let filter = args.filter.as_deref();
    let target = Target::Url { url: args.connect.url.clone(), token: token.clone() };
    let report = conformance::run_with(target, filter, options).await;
    print(&report.render_text())?;
    let mut reports = vec![report];
    if let Some(base) = &args.channel {
        let bearer = (!token.is_empty()).then_some(token);
        for target in ChannelTarget::network(base.trim_end_matches('/'), bearer) {
            let report = run_channel(&target, filter).await;
            print(&format!("\n{}", render_channel_text(&report)))?;
            reports.push(report);
        }
    }
    if reports.iter().all(Report::passed) { Ok(()) } else { Err(Failure::Status(EXIT_FAILED)) }
}

fn print(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(output_failed)
}

/// `--channel` must be an `http://` base URL.
fn check_channel_url(base: &str) -> Result<(), Failure> {
    let parsed = url::Url::parse(base).map_err(|e| Failure::Usage(format!("invalid --channel {base:?}: {e}")))?;
    if parsed.scheme() != "http" || parsed.host_str().is_none() {
        return Err(Failure::Usage(format!(
            "--channel {base:?} is not an http:// base URL (e.g. http://127.0.0.1:8787)"
        )));
    }
    if parsed.path() != "/" || parsed.query().is_some() {
        return Err(Failure::Usage(format!(
            "--channel {base:?}: give the base URL only (no path: the suite adds /v1/…)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_urls_are_http_bases() {
        assert!(check_channel_url("http://127.0.0.1:8787").is_ok());
        assert!(check_channel_url("http://127.0.0.1:8787/").is_ok());
        for bad in ["127.0.0.1:8787", "https://example.com", "ws://127.0.0.1:8787", "http://h/v1", ""] {
            assert!(check_channel_url(bad).is_err(), "{bad}");
        }
    }
}
