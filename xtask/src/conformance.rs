//! `cargo xtask conformance [--url ws://… --token T] [--filter S] [--write-md]`: runs the
//! conformance suite against the in-process runtime (default) or any server at a URL, prints
//! a per-section table, and optionally regenerates `CONFORMANCE.md`.

use std::path::Path;

use anyhow::{Result, bail};
use arcp_server::{Runtime, StaticBearerVerifier};

/// Parsed arguments.
#[derive(Debug, Default)]
pub(crate) struct Args {
    url: Option<String>,
    token: Option<String>,
    filter: Option<String>,
    write_md: bool,
}

pub(crate) fn parse(args: &[&str]) -> Result<Args> {
    let mut out = Args::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match *a {
            "--url" => out.url = it.next().map(|s| (*s).to_owned()),
            "--token" => out.token = it.next().map(|s| (*s).to_owned()),
            "--filter" => out.filter = it.next().map(|s| (*s).to_owned()),
            "--write-md" => out.write_md = true,
            other => bail!(
                "unknown argument {other:?} (usage: cargo xtask conformance [--url URL --token T] [--filter S] [--write-md])"
            ),
        }
    }
    Ok(out)
}

pub(crate) fn run(root: &Path, args: Args) -> Result<()> {
    let target = match &args.url {
        Some(url) => conformance::Target::Url {
            url: url.clone(),
            token: args.token.clone().or_else(|| std::env::var("ARCP_TOKEN").ok()).unwrap_or_default(),
        },
        None => {
            let verifier = StaticBearerVerifier::new()
                .with_token("conformance-1", "conformance")
                .with_token("conformance-2", "conformance");
            let runtime = Runtime::builder(verifier).agents(conformance::reference_agents()).build();
            conformance::Target::InProcess {
                runtime,
                token: "conformance-1".into(),
                same_principal_token: Some("conformance-2".into()),
            }
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let report = rt.block_on(conformance::run(target, args.filter.as_deref()));
    print!("{}", report.render_text());
    if args.write_md {
        let md = conformance::render_conformance_md(&conformance::all_cases(), Some(&report));
        std::fs::write(root.join("CONFORMANCE.md"), md)?;
        eprintln!("wrote CONFORMANCE.md");
    }
    if !report.passed() {
        bail!("conformance failures");
    }
    Ok(())
}
