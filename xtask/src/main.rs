//! `cargo xtask`: repository automation, kept small (in the style of rust-analyzer's xtask).
//!
//! - `cargo xtask schemas` regenerates `spec/schemas/` from `arcp-core`'s and `plugin-api`'s types;
//! - `cargo xtask schemas --check` fails if the committed files differ (CI runs it);
//! - `cargo xtask conformance` runs the ARCP and channel conformance suites (in-process, or
//!   `--url ws://…` / `--channel http://…`);
//! - `cargo xtask bench [--quick]` runs the benchmarks in release and rewrites their sections
//!   of `docs/benchmarks.md`.

mod bench;
mod conformance;
mod schemas;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["schemas"] => schemas::write(&xtask::project_root()),
        ["schemas", "--check"] => schemas::check(&xtask::project_root()),
        ["conformance", rest @ ..] => {
            conformance::parse(rest).and_then(|a| conformance::run(&xtask::project_root(), a))
        }
        ["bench", rest @ ..] => bench::parse(rest).and_then(|a| bench::run(&xtask::project_root(), a)),
        _ => {
            eprintln!(
                "usage: cargo xtask schemas [--check] | cargo xtask conformance [--url URL] [--channel BASE_URL] [--token T] [--filter S] [--write-md] | cargo xtask bench [--quick]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
