//! The `arcp` binary. Today it only reports what it is; `arcp serve` arrives with the issue
//! "arcp-server: sessions and jobs".

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("--version") | Some("-V") => {
            println!("arcp {} (ARCP {})", env!("CARGO_PKG_VERSION"), arcp_core::ProtocolVersion::V1_1);
            ExitCode::SUCCESS
        }
        Some("serve") => {
            eprintln!(
                "arcp serve: not built yet. This build contains only arcp-core (the wire format); the server \
                 lands with the issue \"arcp-server: sessions and jobs\" (see README.md, \"Status\")."
            );
            ExitCode::from(2)
        }
        Some(cmd) => {
            eprintln!(
                "arcp: `{cmd}` is not available yet: this build only contains arcp-core (see README.md, \"Status\")"
            );
            ExitCode::from(2)
        }
        None => {
            eprintln!("usage: arcp --version");
            ExitCode::from(2)
        }
    }
}
