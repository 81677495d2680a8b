//! The `arcp` binary: serves the ARCP runtime of `arcp-server` with the built-in agents over
//! WebSocket and the HTTP channel of `channel-rest` on one listener (`arcp serve`), or ARCP
//! over stdin/stdout (`arcp stdio`).
//!
//! This crate only wires things together: protocol logic lives in the library crates. Exit
//! status: 0 after a clean stop (stdin closed, Ctrl-C, SIGTERM), 2 for a usage error (bad
//! flags, a refused `--listen` address), 1 for anything else (e.g. the address is in use).

mod channel_turns;
mod cli;
mod client_cmd;
mod config;
mod fixture_agent;
mod http;
mod keys_cmd;
mod metrics;
mod rate_limit;
mod store_choice;
mod tls;

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use std::sync::Arc;

use arcp_server::transport::stdio;
use arcp_server::{Runtime, RuntimeConfig, StaticBearerVerifier};
use channel_core::{Channel, ChannelConfig};
use channel_rest::{ChannelService, RestConfig};
use runtime::keys::{self, ApiKey, ApiKeyStore, KeyVerifier, MemoryKeyStore, SharedVerifier};
use runtime::plugins::{self, Plugins};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use crate::channel_turns::{AgentTurns, InProcessKeys, ServeVerifier};
use crate::cli::{AuthArgs, Cli, Command, ServeArgs, StdioArgs};
use crate::http::ARCP_PATH;

/// How often expired sessions, resume and idempotency records are swept.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// How long the process waits for its tasks to stop at exit.
const EXIT_GRACE: Duration = Duration::from_millis(500);

/// Why a command failed; decides the exit status.
#[derive(Debug)]
enum Failure {
    /// The command line asks for something refused (exit status 2).
    Usage(String),
    /// Something went wrong while running (exit status 1).
    Fatal(anyhow::Error),
    /// The command has already said why; exit with this status (client commands: a job that
    /// failed, was cancelled or timed out, a failed conformance case; see `client_cmd`).
    Status(u8),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Fatal(e)
    }
}

fn main() -> ExitCode {
    let applied = match config::apply(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("arcp: error: {e}");
            return ExitCode::from(2);
        }
    };
    let matches = <Cli as clap::CommandFactory>::command().get_matches_from(&applied.argv);
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Command::Serve(args) = &cli.command
        && args.print_config
        && let Some(serve) = matches.subcommand_matches("serve")
    {
        print!("{}", config::print_config(serve, &applied.from_file));
        return ExitCode::SUCCESS;
    }
    // `arcp keys` talks to the user's terminal too: warnings only by default.
    let quiet = client_cmd::is_client(&cli.command) || matches!(cli.command, Command::Keys(_));
    init_logging(quiet, cli.command.log_format());
    let tokio = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("arcp: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = tokio.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Stdio(args) => serve_stdio(args).await,
            Command::Submit(args) => client_cmd::submit(args).await,
            Command::Tail(args) => client_cmd::tail(args).await,
            Command::Jobs(args) => client_cmd::jobs(args).await,
            Command::Conformance(args) => client_cmd::conformance(args).await,
            Command::Keys(args) => keys_cmd::run(args).await,
        }
    });
    // Open connections and jobs are dropped here; a blocked stdin read cannot be interrupted,
    // so do not wait for it.
    tokio.shutdown_timeout(EXIT_GRACE);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("arcp: error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Fatal(e)) => {
            eprintln!("arcp: error: {e:#}");
            ExitCode::FAILURE
        }
        Err(Failure::Status(status)) => ExitCode::from(status),
    }
}

/// Logs go to stderr (stdout belongs to the protocol in `arcp stdio`), filtered by `ARCP_LOG`
/// or else `RUST_LOG` (default `info`; `warn` for the client commands, whose stderr is the
/// user's terminal, not a server log).
fn init_logging(client: bool, format: cli::LogFormat) {
    let default = if client { "warn" } else { "info" };
    let spec = std::env::var("ARCP_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| default.to_owned());
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|e| {
        eprintln!("arcp: ignoring the log filter {spec:?}: {e}");
        EnvFilter::new(default)
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // JSON: one object per line, with the current span and the span list (`arcp.session_id`,
    // `arcp.job_id`, `arcp.agent`).
    let _ = match format {
        cli::LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        cli::LogFormat::Json => builder.json().try_init(),
    };
}

/// `arcp serve`: ARCP over WebSocket and the HTTP channel, until Ctrl-C or SIGTERM.
async fn serve(args: ServeArgs) -> Result<(), Failure> {
    let addrs = resolve_listen(&args.listen).await?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key).map_err(|e| Failure::Usage(format!("{e:#}")))?),
        _ => None,
    };
    if !args.insecure
        && tls.is_none()
        && let Some(public) = addrs.iter().find(|a| !is_loopback(a))
    {
        return Err(Failure::Usage(format!(
            "refusing to listen on {public}: it is not a loopback address, and without --tls-cert/--tls-key \
             ARCP is served over plain ws://, which sends bearer tokens in cleartext. Give a certificate, or \
             pass --insecure to listen there anyway (behind a TLS-terminating proxy)."
        )));
    }
    let static_token = static_token(&args.auth)?;
    let spec = store_choice::StoreSpec::parse(&args.store).map_err(Failure::Usage)?;
    if args.node_id.is_empty() {
        return Err(Failure::Usage("--node-id (or ARCP_NODE_ID) must not be empty".to_owned()));
    }
    if args.node_dead_after_secs <= args.node_heartbeat_secs {
        return Err(Failure::Usage(format!(
            "--node-dead-after-secs ({}) must exceed --node-heartbeat-secs ({}): a live node would count as dead",
            args.node_dead_after_secs, args.node_heartbeat_secs
        )));
    }
    let quota =
        rate_limit::quota(args.limits.rate_limit_per_sec, args.limits.rate_limit_burst).map_err(Failure::Usage)?;
    let stores = store_choice::open(&spec, &args.session_limits).await?;
    tracing::info!(store = %spec.describe(), node = %args.node_id, "store open");
    let (verifier, first_key) = verifier(static_token, &args.auth.principal, &stores.keys).await?;
    let plugins = Arc::new(load_plugins(args.plugins_policy.as_deref(), &stores).await?);
    let front = match build_front(verifier, &args, plugins.clone(), stores, quota) {
        Ok(front) => front,
        Err(e) => {
            plugins.teardown().await;
            return Err(e);
        }
    };
    let mut shutdown = Shutdown::install().context("cannot install the signal handlers")?;
    let listener = TcpListener::bind(&addrs[..]).await.with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr().context("cannot read the bound address")?;
    let liveness = Liveness {
        heartbeat: Duration::from_secs(args.node_heartbeat_secs),
        dead_after: Duration::from_secs(args.node_dead_after_secs),
    };
    recover(&front, liveness).await?;
    front.runtime.start_sweeper(SWEEP_INTERVAL);
    if args.insecure && !is_loopback(&local) {
        tracing::warn!(%local, "listening on a non-loopback address over plain HTTP: bearer tokens travel in cleartext");
    }
    announce(&local, tls.is_some(), first_key.as_ref());
    tracing::info!(%local, principal = %args.auth.principal, "serving ARCP at {ARCP_PATH} and the channel at /v1");
    // On a signal: stop accepting, say bye to every session (closing their transports, so
    // the HTTP drain is quick) and give running jobs the deadline; the process exits after.
    let deadline = Duration::from_secs(args.shutdown_deadline_secs);
    let runtime = front.runtime.clone();
    let (graceful_tx, graceful_rx) = tokio::sync::oneshot::channel();
    let stop = async move {
        let signal = shutdown.wait().await;
        tracing::info!(
            signal,
            deadline_secs = deadline.as_secs(),
            "stopping: sessions get session.bye, jobs get the deadline"
        );
        let _ = graceful_tx.send(tokio::spawn(async move { runtime.shutdown(deadline).await }));
    };
    http::serve(listener, Arc::new(front), tls, stop).await;
    if let Ok(task) = graceful_rx.await {
        match task.await {
            Ok(report) => tracing::info!(
                sessions = report.sessions_closed,
                jobs_left_running = report.jobs_left_running,
                "stopped"
            ),
            Err(e) => tracing::warn!(error = %e, "the graceful shutdown task failed"),
        }
    }
    plugins.teardown().await;
    Ok(())
}

/// Ends the jobs this node was running when it last died (before any connection is served),
/// and on PostgreSQL starts the node heartbeat that lets live nodes end a dead node's jobs.
async fn recover(front: &http::Front, liveness: Liveness) -> Result<(), Failure> {
    let report = front.runtime.recover().await.context("cannot recover the jobs of the previous run")?;
    if !report.orphaned.is_empty() || !report.already_ended.is_empty() {
        tracing::warn!(
            orphaned = report.orphaned.len(),
            already_ended = report.already_ended.len(),
            "ended the jobs the previous run left unfinished"
        );
    }
    if let Some(pg) = front.health.postgres() {
        node_liveness(front.runtime.clone(), pg.clone(), liveness);
    }
    Ok(())
}

/// How a PostgreSQL node tells it is alive and decides that another one is dead.
#[derive(Debug, Clone, Copy)]
struct Liveness {
    heartbeat: Duration,
    dead_after: Duration,
}

/// PostgreSQL: records this node as alive every `liveness.heartbeat`, and ends the unfinished
/// jobs of nodes silent for `liveness.dead_after` (each dead node is adopted by exactly one
/// live node).
fn node_liveness(runtime: Runtime, pg: arcp_server::store::postgres::PgStore, liveness: Liveness) {
    tokio::spawn(async move {
        let node = runtime.config().node_id.clone();
        let mut tick = tokio::time::interval(liveness.heartbeat);
        loop {
            tick.tick().await;
            let now = arcp_core::Clock::now_millis(&arcp_core::SystemClock);
            if let Err(e) = pg.heartbeat(&node, now).await {
                tracing::warn!(error = %e, "could not record the node heartbeat");
                continue;
            }
            let dead_before = now.saturating_sub(u64::try_from(liveness.dead_after.as_millis()).unwrap_or(u64::MAX));
            let dead = match pg.dead_nodes(dead_before).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "could not list dead nodes");
                    continue;
                }
            };
            for dead_node in dead.into_iter().filter(|d| *d != node) {
                match pg.adopt(&dead_node, &node, dead_before).await {
                    Ok(true) => match runtime.recover_node(&dead_node).await {
                        Ok(report) => tracing::warn!(
                            node = %dead_node,
                            orphaned = report.orphaned.len(),
                            "ended the unfinished jobs of a dead node"
                        ),
                        Err(e) => tracing::warn!(node = %dead_node, error = %e, "could not end a dead node's jobs"),
                    },
                    Ok(false) => {}
                    Err(e) => tracing::warn!(node = %dead_node, error = %e, "could not adopt a dead node"),
                }
            }
        }
    });
}

/// The plugins the policy at `path` grants (none without a policy). A refused plugin or an
/// invalid policy is a usage error: the operator asked for something that cannot run.
async fn load_plugins(path: Option<&std::path::Path>, stores: &store_choice::OpenStores) -> Result<Plugins, Failure> {
    let Some(path) = path else { return Ok(Plugins::none()) };
    let policy = plugins::read_policy(path).map_err(|e| Failure::Usage(format!("plugin policy: {e}")))?;
    let candidates = plugins::builtin_plugins().into_iter().map(|p| (p, plugin_api::Origin::Builtin)).collect();
    let host = plugins::HostConfig::for_runtime_store(stores.arcp.as_ref().map(|a| a.kv.clone()));
    let loaded =
        Plugins::load_in(&policy, candidates, host).await.map_err(|e| Failure::Usage(format!("plugins: {e}")))?;
    tracing::info!(plugins = ?loaded.names(), policy = %path.display(), "plugins loaded");
    Ok(loaded)
}

/// The runtime (built-in agents, the opened stores, `verifier`) and the channel in front of
/// it.
fn build_front(
    verifier: SharedVerifier,
    args: &ServeArgs,
    plugins: Arc<Plugins>,
    stores: store_choice::OpenStores,
    quota: Option<governor::Quota>,
) -> Result<http::Front, Failure> {
    let metrics = Arc::new(metrics::Metrics::new());
    let limiter = quota.map(|q| Arc::new(rate_limit::PrincipalLimiter::new(q, metrics.clone())));
    let keys = Arc::new(InProcessKeys::new().context("cannot generate the in-process keys")?);
    let mut agents = arcp_server::builtin::registry().context("cannot register the built-in agents")?;
    if args.channel.conformance_fixtures {
        fixture_agent::register(&mut agents).context("cannot register the conformance fixture agent")?;
        arcp_server::builtin::register_versioned_fixture(&mut agents)
            .context("cannot register the versioned conformance fixture agent")?;
    }
    plugins.register_agents(&mut agents).map_err(|e| Failure::Usage(format!("plugins: {e}")))?;
    let names = agents.names();
    let default_agent = &args.channel.default_agent;
    let known = arcp_core::agent::AgentRef::parse(default_agent).is_ok_and(|a| names.iter().any(|n| n == a.name()));
    if !known {
        return Err(Failure::Usage(format!(
            "--default-agent {default_agent:?} is not a registered agent (registered: {})",
            names.join(", ")
        )));
    }
    let defaults = RuntimeConfig::default();
    // The in-memory log's caps (the durable stores got theirs when they were opened).
    let (max_buffered_events, max_buffered_bytes) =
        args.session_limits.event_caps(defaults.max_buffered_events, defaults.max_buffered_bytes);
    let config = RuntimeConfig {
        node_id: args.node_id.clone(),
        max_buffered_events,
        max_buffered_bytes,
        max_sessions_per_principal: usize::try_from(args.session_limits.max_sessions_per_principal)
            .unwrap_or(usize::MAX),
        ..defaults
    };
    let mut builder =
        Runtime::builder(ServeVerifier { keys: keys.clone(), inner: verifier.clone() }).config(config).agents(agents);
    if let Some(arcp) = stores.arcp {
        builder = builder
            .event_log(arcp.events)
            .resume_store(arcp.resumes)
            .idempotency_store(arcp.idempotency)
            .job_store(arcp.jobs)
            .kv_store(arcp.kv);
    }
    builder = builder.observer(metrics.clone());
    if let Some(limiter) = &limiter {
        tracing::info!(
            per_sec = args.limits.rate_limit_per_sec,
            burst = quota.map(|q| q.burst_size().get()),
            "per-principal rate limit on"
        );
        limiter.start_housekeeping();
        builder = builder.submit_limiter(limiter.clone());
    }
    let runtime = builder.build();
    plugins.attach(&runtime);
    let turns = AgentTurns::new(runtime.clone(), keys, default_agent.clone(), names);
    let channel = Channel::new(
        stores.tokens.clone(),
        Arc::new(arcp_core::SystemClock),
        Arc::new(arcp_core::OsEntropy),
        ChannelConfig { idle_ttl: Duration::from_secs(args.channel.channel_idle_ttl_secs), ..ChannelConfig::default() },
    );
    let rest = RestConfig { max_body_bytes: args.channel.channel_max_body_bytes, ..RestConfig::default() };
    let mut service = ChannelService::new(channel, Arc::new(turns), rest)
        .with_authenticator(Arc::new(http::BearerAuth(verifier)))
        .with_observer(metrics.clone());
    if let Some(limiter) = limiter {
        service = service.with_limiter(limiter);
    }
    let max_frame_bytes = runtime.config().max_frame_bytes;
    Ok(http::Front {
        runtime,
        channel: service,
        max_frame_bytes,
        plugins,
        health: stores.health,
        metrics,
        _lock: stores.lock,
    })
}

/// Prints where the server listens (and the API key created on a store's first start) to
/// stdout. A closed stdout is not a reason to stop serving, so write errors are ignored.
fn announce(local: &SocketAddr, tls: bool, first_key: Option<&ApiKey>) {
    let mut out = std::io::stdout().lock();
    let (ws, http) = if tls { ("wss", "https") } else { ("ws", "http") };
    let _ = writeln!(out, "arcp listening on {ws}://{local}{ARCP_PATH}");
    if let Some(key) = first_key {
        let _ = writeln!(out, "api key: {}", key.expose());
    }
    let _ = writeln!(out, "channel at {http}://{local}/v1/session");
    let _ = out.flush();
}

/// `arcp stdio`: one ARCP connection over stdin/stdout until stdin closes.
async fn serve_stdio(args: StdioArgs) -> Result<(), Failure> {
    let static_token = static_token(&args.auth)?;
    // No store here: without --token, the process's one key lives in memory.
    let keys: Arc<dyn ApiKeyStore> = Arc::new(MemoryKeyStore::new());
    let (verifier, key) = verifier(static_token, &args.auth.principal, &keys).await?;
    let runtime = build_runtime(verifier)?;
    let mut shutdown = Shutdown::install().context("cannot install the signal handlers")?;
    runtime.start_sweeper(SWEEP_INTERVAL);
    if let Some(key) = key {
        // stdout carries only envelopes in this mode.
        eprintln!("api key: {}", key.expose());
    }
    tracing::info!(principal = %args.auth.principal, "serving ARCP over stdin/stdout");
    let transport = stdio::stdio(runtime.config().max_frame_bytes);
    tokio::select! {
        () = runtime.serve(transport) => tracing::info!("stdin closed: stopping"),
        signal = shutdown.wait() => tracing::info!(signal, "stopping"),
    }
    Ok(())
}

/// The runtime with the built-in agents, in-memory stores and `verifier`.
fn build_runtime(verifier: SharedVerifier) -> Result<Runtime, Failure> {
    let agents = arcp_server::builtin::registry().context("cannot register the built-in agents")?;
    Ok(Runtime::builder(verifier).config(RuntimeConfig::default()).agents(agents).build())
}

/// The fixed token `--token` (or `ARCP_TOKEN`) gives, if any.
fn static_token(auth: &AuthArgs) -> Result<Option<String>, Failure> {
    if auth.principal.is_empty() {
        return Err(Failure::Usage("--principal must not be empty".to_owned()));
    }
    match &auth.token {
        Some(t) if t.is_empty() => Err(Failure::Usage("--token (or ARCP_TOKEN) must not be empty".to_owned())),
        other => Ok(other.clone()),
    }
}

/// How clients authenticate. A `--token` is then the only credential (tests, development):
/// API keys are not consulted. Otherwise the API keys of `keys` are; if the store has never
/// held a key, one is created for `principal` and returned, to be shown once.
async fn verifier(
    static_token: Option<String>,
    principal: &str,
    keys: &Arc<dyn ApiKeyStore>,
) -> Result<(SharedVerifier, Option<ApiKey>), Failure> {
    if let Some(token) = static_token {
        tracing::info!(principal, "authenticating with --token only: API keys are not consulted");
        return Ok((SharedVerifier::new(StaticBearerVerifier::new().with_token(token, principal)), None));
    }
    let now = arcp_core::Clock::now_millis(&arcp_core::SystemClock);
    let first = keys::ensure_first_key(&**keys, principal, &arcp_core::OsEntropy, now).await.map_err(|e| match e {
        keys::KeyError::Invalid(why) => Failure::Usage(format!("--principal: {why}")),
        other => Failure::Fatal(anyhow::Error::new(other).context("cannot create the first API key")),
    })?;
    if let Some((_, record)) = &first {
        tracing::info!(key = %record.id, prefix = %record.prefix, principal, "created the first API key");
    }
    let verifier = KeyVerifier::new(keys.clone(), Arc::new(arcp_core::SystemClock));
    Ok((SharedVerifier::new(verifier), first.map(|(key, _)| key)))
}

/// Every address `--listen` stands for (a host name may resolve to several).
async fn resolve_listen(listen: &str) -> Result<Vec<SocketAddr>, Failure> {
    let invalid =
        |why: String| Failure::Usage(format!("invalid --listen address {listen:?} (expected HOST:PORT): {why}"));
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(listen).await.map_err(|e| invalid(e.to_string()))?.collect();
    if addrs.is_empty() {
        return Err(invalid("it resolves to no address".to_owned()));
    }
    Ok(addrs)
}

/// Whether `addr` is reachable only from this machine (`127.0.0.0/8`, `::1`, or
/// `::ffff:127.x.y.z`).
fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().to_canonical().is_loopback()
}

/// Ctrl-C and SIGTERM, registered up front so a signal that arrives early is not lost (and
/// does not kill the process with the default action).
struct Shutdown {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Shutdown {
    #[cfg(unix)]
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Shutdown { interrupt: signal(SignalKind::interrupt())?, terminate: signal(SignalKind::terminate())? })
    }

    #[cfg(not(unix))]
    fn install() -> std::io::Result<Self> {
        Ok(Shutdown {})
    }

    /// Resolves with the signal's name once one arrives.
    #[cfg(unix)]
    async fn wait(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }

    /// Resolves once Ctrl-C is pressed.
    #[cfg(not(unix))]
    async fn wait(&mut self) -> &'static str {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "Ctrl-C",
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending().await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses() {
        for a in ["127.0.0.1:1", "127.8.9.10:1", "[::1]:1", "[::ffff:127.0.0.1]:1"] {
            assert!(is_loopback(&a.parse().unwrap()), "{a}");
        }
        for a in ["0.0.0.0:1", "[::]:1", "10.0.0.1:1", "192.168.1.1:1", "[::ffff:10.0.0.1]:1", "8.8.8.8:1"] {
            assert!(!is_loopback(&a.parse().unwrap()), "{a}");
        }
    }

    #[tokio::test]
    async fn listen_addresses_resolve() {
        assert_eq!(resolve_listen("127.0.0.1:0").await.unwrap(), vec!["127.0.0.1:0".parse::<SocketAddr>().unwrap()]);
        for bad in ["", "8787", "127.0.0.1", "127.0.0.1:99999", "[::1"] {
            assert!(matches!(resolve_listen(bad).await, Err(Failure::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn empty_tokens_and_principals_are_refused() {
        let auth = |token: Option<&str>, principal: &str| AuthArgs {
            token: token.map(str::to_owned),
            principal: principal.to_owned(),
        };
        assert!(matches!(static_token(&auth(Some(""), "p")), Err(Failure::Usage(_))));
        assert!(matches!(static_token(&auth(Some("t"), "")), Err(Failure::Usage(_))));
        assert!(matches!(static_token(&auth(None, "")), Err(Failure::Usage(_))));
        assert_eq!(static_token(&auth(Some("t"), "p")).unwrap(), Some("t".to_owned()));
        assert_eq!(static_token(&auth(None, "p")).unwrap(), None);
    }
}
