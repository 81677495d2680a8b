//! The command line: `arcp serve`, `arcp stdio`, `arcp --version` (clap derive).

use std::sync::LazyLock;

use clap::{Args, Parser, Subcommand};

/// `arcp --version`: the binary's version and the ARCP version it speaks.
static VERSION: LazyLock<String> =
    LazyLock::new(|| format!("{} (ARCP {})", env!("CARGO_PKG_VERSION"), arcp_core::ProtocolVersion::V1_1));

/// The default `--listen` address.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:8787";

/// ARCP (Agent Runtime Control Protocol) runtime.
#[derive(Debug, Parser)]
#[command(name = "arcp", version = VERSION.as_str(), arg_required_else_help = true)]
#[command(after_help = "Logs go to stderr; set ARCP_LOG (or RUST_LOG) to filter them, e.g. ARCP_LOG=debug.")]
pub(crate) struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once per process; boxing buys nothing")]
pub(crate) enum Command {
    /// Serve ARCP over WebSocket at ws://ADDR/arcp and the HTTP channel at http://ADDR/v1.
    ///
    /// Prints one line `arcp listening on ws://<bound address>/arcp` to stdout (with
    /// `--listen 127.0.0.1:0` it reveals the port the OS picked) and, on the first start of a
    /// store that holds no API key, a line `api key: arcp_sk_…` with the key it created for
    /// --principal (shown only then). Clients authenticate with API keys (`arcp keys`), or
    /// with --token alone when one is given. State is kept in the store named by
    /// --store (by default the SQLite file ./arcp-data/arcp.db): sessions stay resumable and
    /// idempotency keys bound across a restart, even after a crash.
    ///
    /// Ctrl-C or SIGTERM stops accepting connections, tells every session `session.bye`
    /// (sessions stay resumable), lets running jobs finish up to --shutdown-deadline-secs, and
    /// exits with status 0.
    Serve(ServeArgs),
    /// Serve one ARCP connection over stdin/stdout (NDJSON: one envelope per line).
    ///
    /// For use as a child process by IDEs and CLIs. Exits when stdin closes (or on Ctrl-C or
    /// SIGTERM). Only ARCP envelopes are written to stdout; logs, and the API key created for
    /// the process if no token was given, go to stderr.
    Stdio(StdioArgs),
    /// Submit a job and follow it: its events as they come, then its result.
    ///
    /// Events are printed one per line; `progress` events drive a progress bar on stderr when
    /// it is a terminal. With --json, stdout carries NDJSON: one object per message received,
    /// `{"type", "job_id", "event_seq"?, "payload"}` with the wire type and payload
    /// (`job.accepted`, each `job.event`, then `job.result` or `job.error`). The session is
    /// resumed across disconnects without losing or repeating an event. Ctrl-C stops
    /// following; the job goes on (`arcp tail JOB_ID` follows it again).
    #[command(after_help = crate::client_cmd::EXIT_HELP)]
    Submit(crate::client_cmd::SubmitArgs),
    /// Follow a job submitted elsewhere: its events so far, the live ones, its outcome.
    ///
    /// Output as `arcp submit`, starting with `job.subscribed`. The events so far are
    /// replayed while the runtime still buffers them.
    #[command(after_help = crate::client_cmd::EXIT_HELP)]
    Tail(crate::client_cmd::TailArgs),
    /// List the jobs of the key's principal, oldest first (a table, or NDJSON with --json).
    #[command(after_help = crate::client_cmd::EXIT_HELP)]
    Jobs(crate::client_cmd::JobsArgs),
    /// Run the ARCP conformance suite (the cases of `cargo xtask conformance`) against a
    /// runtime.
    #[command(after_help = crate::client_cmd::EXIT_HELP)]
    Conformance(crate::client_cmd::ConformanceArgs),
    /// Manage API keys (`create`, `list`, `revoke`) in the store `arcp serve` uses.
    ///
    /// Keys look like `arcp_sk_…`; the store keeps only their SHA-256 digest and their first
    /// 16 characters (the prefix `list` shows). Run it while the server runs: a revocation
    /// applies to the server's next handshake or request. See docs/keys.md.
    Keys(crate::keys_cmd::KeysArgs),
}

/// `arcp serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The configuration file (TOML; keys are the long flag names). Default: ./arcp.toml when
    /// it exists. Precedence: flag > ARCP_* variable > file > default. See
    /// docs/configuration.md.
    #[arg(long, env = "ARCP_CONFIG", value_name = "PATH")]
    pub(crate) config: Option<std::path::PathBuf>,
    /// Print the effective configuration (secrets redacted) as TOML and exit.
    #[arg(long)]
    pub(crate) print_config: bool,
    /// Address to listen on (HOST:PORT; port 0 lets the OS pick one).
    #[arg(long, env = "ARCP_LISTEN", value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub(crate) listen: String,
    /// Allow listening on a non-loopback address without TLS. Plain ws:// and http:// send
    /// bearer tokens in cleartext: prefer --tls-cert/--tls-key, or a TLS-terminating proxy.
    #[arg(long)]
    pub(crate) insecure: bool,
    /// The TLS certificate chain (PEM). With --tls-key, the listener speaks TLS (wss://,
    /// https://) and may bind any address.
    #[arg(long, env = "ARCP_TLS_CERT", value_name = "PATH", requires = "tls_key")]
    pub(crate) tls_cert: Option<std::path::PathBuf>,
    /// The TLS private key (PEM) of --tls-cert.
    #[arg(long, env = "ARCP_TLS_KEY", value_name = "PATH", requires = "tls_cert")]
    pub(crate) tls_key: Option<std::path::PathBuf>,
    /// Who may connect.
    #[command(flatten)]
    pub(crate) auth: AuthArgs,
    /// The HTTP channel at /v1.
    #[command(flatten)]
    pub(crate) channel: ChannelArgs,
    /// Where state that must survive is kept: `sqlite:PATH` (one process; created on first
    /// start), `postgres://USER@HOST/DB` (several processes share it; give each its own
    /// --node-id) or `memory` (lost when the process exits).
    #[arg(long, env = "ARCP_STORE", value_name = "STORE", default_value = crate::store_choice::DEFAULT_STORE)]
    pub(crate) store: String,
    /// This process's name among the nodes sharing a store. Keep it stable across restarts:
    /// on start, the node ends the jobs it was running when it died (and, on PostgreSQL, a
    /// live node ends those of a node that stopped heart-beating).
    #[arg(long, env = "ARCP_NODE_ID", value_name = "NAME", default_value = "local")]
    pub(crate) node_id: String,
    /// PostgreSQL only: how often this node records that it is alive, in seconds.
    #[arg(long, env = "ARCP_NODE_HEARTBEAT_SECS", value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) node_heartbeat_secs: u64,
    /// PostgreSQL only: after how many seconds without a heartbeat a node counts as dead; a
    /// live node then ends the jobs it left unfinished. Must exceed --node-heartbeat-secs.
    #[arg(long, env = "ARCP_NODE_DEAD_AFTER_SECS", value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(2..))]
    pub(crate) node_dead_after_secs: u64,
    /// On SIGTERM/SIGINT, how long running jobs may take to finish, in seconds. Sessions are
    /// told `session.bye` at once and stay resumable; jobs still running at the deadline are
    /// ended on the next start (their events so far are kept).
    #[arg(long, env = "ARCP_SHUTDOWN_DEADLINE_SECS", value_name = "SECS", default_value_t = 30)]
    pub(crate) shutdown_deadline_secs: u64,
    /// The operator plugin policy (`.json` or `.toml`): which compiled-in plugins (`demo`,
    /// `webhooks`) load and what each is granted. Without it, no plugin loads. See
    /// docs/plugins.md.
    #[arg(long, env = "ARCP_PLUGINS_POLICY", value_name = "PATH")]
    pub(crate) plugins_policy: Option<std::path::PathBuf>,
    /// Per-principal rate limits.
    #[command(flatten)]
    pub(crate) limits: RateLimitArgs,
    /// Per-session resource caps (§14).
    #[command(flatten)]
    pub(crate) session_limits: SessionLimitArgs,
    /// How logs are written.
    #[command(flatten)]
    pub(crate) log: LogArgs,
}

/// Per-session and per-principal resource caps (spec §14). Hitting one is a typed error
/// (`session.error INTERNAL_ERROR`, retryable), never a silent drop.
#[derive(Debug, Args)]
pub(crate) struct SessionLimitArgs {
    /// Events a session may hold unacknowledged (buffered for replay) before it is ended with
    /// `session.error INTERNAL_ERROR`. Default: 10000 with --store memory (they live in RAM),
    /// 100000000 with SQLite and PostgreSQL (they live on disk).
    #[arg(long, env = "ARCP_MAX_BUFFERED_EVENTS", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_buffered_events: Option<u64>,
    /// Bytes of encoded events a session may hold unacknowledged. Default: 16777216 (16 MiB)
    /// with --store memory, 68719476736 (64 GiB) with SQLite and PostgreSQL.
    #[arg(long, env = "ARCP_MAX_BUFFERED_BYTES", value_name = "BYTES",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_buffered_bytes: Option<u64>,
    /// Sessions one principal may have open (attached) at once; a further `session.hello` is
    /// refused with `session.error INTERNAL_ERROR`. Resuming is not limited.
    #[arg(long, env = "ARCP_MAX_SESSIONS_PER_PRINCIPAL", value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_sessions_per_principal: u64,
}

impl SessionLimitArgs {
    /// The buffered-events and buffered-bytes caps for a store whose defaults are
    /// (`events`, `bytes`): the flags where given.
    pub(crate) fn event_caps(&self, events: usize, bytes: usize) -> (usize, usize) {
        let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        (self.max_buffered_events.map_or(events, to_usize), self.max_buffered_bytes.map_or(bytes, to_usize))
    }
}

/// Per-principal rate limits (a token bucket per principal, shared by its ARCP submits and its
/// channel requests). See docs/observability.md.
#[derive(Debug, Args)]
pub(crate) struct RateLimitArgs {
    /// Requests per second each principal may make (ARCP `job.submit`s and channel requests
    /// together; fractions allowed, e.g. 0.5). Over the limit, a submit gets a retryable
    /// `INTERNAL_ERROR` with `details.retry_after_ms` and a channel request `429` with
    /// `Retry-After`. 0: no limit.
    #[arg(long, env = "ARCP_RATE_LIMIT_PER_SEC", value_name = "RATE", default_value_t = 0.0)]
    pub(crate) rate_limit_per_sec: f64,
    /// How many requests a principal may make at once before the rate applies (the bucket's
    /// size). 0: one second's worth (at least 1).
    #[arg(long, env = "ARCP_RATE_LIMIT_BURST", value_name = "N", default_value_t = 0)]
    pub(crate) rate_limit_burst: u32,
}

/// The format of the log lines written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `target`, `span`, `spans`).
    Json,
}

/// How logs are written (stderr; filtered by ARCP_LOG or RUST_LOG).
#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// The format of the log lines on stderr: `text` or `json` (one object per line, with the
    /// span fields `arcp.session_id`, `arcp.job_id`, `arcp.agent`).
    #[arg(long, env = "ARCP_LOG_FORMAT", value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}

impl Command {
    /// The `--log-format` of the server commands; the client commands log as text.
    pub(crate) fn log_format(&self) -> LogFormat {
        match self {
            Command::Serve(args) => args.log.log_format,
            Command::Stdio(args) => args.log.log_format,
            _ => LogFormat::Text,
        }
    }
}

/// The HTTP channel (`POST /v1/session`, `POST /v1/session/{id}/message`, `GET /v1/ws`).
#[derive(Debug, Args)]
pub(crate) struct ChannelArgs {
    /// The agent a channel turn runs when its body names none.
    #[arg(long, env = "ARCP_DEFAULT_AGENT", value_name = "AGENT", default_value = "echo")]
    pub(crate) default_agent: String,
    /// How long a channel conversation lives without a turn, in seconds.
    #[arg(long, env = "ARCP_CHANNEL_IDLE_TTL_SECS", value_name = "SECS", default_value_t = 86_400)]
    pub(crate) channel_idle_ttl_secs: u64,
    /// The largest request body the channel accepts, in bytes.
    #[arg(long, env = "ARCP_CHANNEL_MAX_BODY_BYTES", value_name = "BYTES", default_value_t = 1024 * 1024)]
    pub(crate) channel_max_body_bytes: usize,
    /// Also host the conformance fixture agents: `conformance.channel`, which `cargo xtask
    /// conformance --channel URL` drives to force every turn outcome, and
    /// `conformance.versioned` (versions 1.0.0 and 2.0.0, default 2.0.0) for the §7.5 version
    /// cases. For testing; off by default.
    #[arg(long, env = "ARCP_CONFORMANCE_FIXTURES")]
    pub(crate) conformance_fixtures: bool,
}

/// `arcp stdio`.
#[derive(Debug, Args)]
pub(crate) struct StdioArgs {
    /// Who may connect.
    #[command(flatten)]
    pub(crate) auth: AuthArgs,
    /// How logs are written.
    #[command(flatten)]
    pub(crate) log: LogArgs,
}

/// The bearer token clients must present, and the principal it stands for.
#[derive(Debug, Args)]
pub(crate) struct AuthArgs {
    /// A fixed bearer token (for tests and development). When given, it is the ONLY token
    /// accepted, as --principal, and API keys are not consulted. Without it, `serve`
    /// authenticates with the API keys of --store (`arcp keys`), and `stdio` creates a key
    /// for this process and prints it to stderr (`api key: arcp_sk_…`). Prefer ARCP_TOKEN:
    /// command lines are visible to other local users.
    #[arg(long, env = "ARCP_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub(crate) token: Option<String>,
    /// The principal --token authenticates as, or (without --token) the principal of the API
    /// key created on a store's first start (it scopes jobs, idempotency keys and cancel
    /// authority).
    #[arg(long, env = "ARCP_PRINCIPAL", value_name = "NAME", default_value = "local")]
    pub(crate) principal: String,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn version_names_the_protocol() {
        assert_eq!(VERSION.as_str(), format!("{} (ARCP 1.1)", env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn serve_defaults_to_loopback() {
        // Only when the environment does not override it.
        if std::env::var_os("ARCP_LISTEN").is_none() {
            let cli = Cli::try_parse_from(["arcp", "serve"]).unwrap();
            let Command::Serve(args) = cli.command else { panic!("{cli:?}") };
            assert_eq!(args.listen, DEFAULT_LISTEN);
            assert!(!args.insecure);
        }
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from(["arcp", "stdio", "--token", "t", "--principal", "me"]).unwrap();
        let Command::Stdio(args) = cli.command else { panic!("{cli:?}") };
        assert_eq!((args.auth.token.as_deref(), args.auth.principal.as_str()), (Some("t"), "me"));
    }

    #[test]
    fn log_format_and_rate_limits_parse() {
        if std::env::var_os("ARCP_LOG_FORMAT").is_some() || std::env::var_os("ARCP_RATE_LIMIT_PER_SEC").is_some() {
            return;
        }
        let cli = Cli::try_parse_from(["arcp", "stdio", "--log-format", "json"]).unwrap();
        assert_eq!(cli.command.log_format(), LogFormat::Json);
        let cli =
            Cli::try_parse_from(["arcp", "serve", "--rate-limit-per-sec", "0.5", "--rate-limit-burst", "3"]).unwrap();
        assert_eq!(cli.command.log_format(), LogFormat::Text);
        let Command::Serve(args) = cli.command else { panic!("{cli:?}") };
        assert_eq!((args.limits.rate_limit_per_sec, args.limits.rate_limit_burst), (0.5, 3));
        assert!(Cli::try_parse_from(["arcp", "serve", "--log-format", "xml"]).is_err());
    }
}
