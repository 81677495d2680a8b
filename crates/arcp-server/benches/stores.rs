//! Store benchmarks (issue 6; the stores workload of `cargo xtask bench`): events per second
//! appended and streamed on the memory, SQLite and PostgreSQL stores.
//!
//! ```text
//! cargo bench -p arcp-server --bench stores -- [--quick] [--markdown PATH] [--n N] [--repeat K]
//!     [--only memory,sqlite,sqlite-full,postgres]
//! ```
//!
//! For each store — memory (the baseline), SQLite in WAL mode with `synchronous=NORMAL` (the
//! default) and `FULL`, PostgreSQL in a fresh schema of `ARCP_BENCH_DATABASE_URL` (else
//! `ARCP_TEST_DATABASE_URL`; skipped, saying why, without either) — on a fresh store per
//! workload, after a warm-up on that store:
//!
//! - **append, 1 session**: N sequential [`EventLog::append`]s to one session (the runtime's
//!   pattern: one event at a time per session, persisted before it is sent);
//! - **append, 64 sessions**: N events over 64 sessions appended concurrently (group commit
//!   on SQLite, the pool on PostgreSQL);
//! - **stream end to end**: a [`Runtime`] on the store, one agent emitting N `log` events
//!   (`ctx.info`), a raw client over the in-memory transport from `job.submit` to the
//!   terminal `job.result`, every frame received and its `event_seq` checked gap-free;
//! - **resume replay**: a second connection resumes that session from `event_seq` 0 and
//!   receives every event again.
//!
//! Every workload runs `--repeat` times (default 3), each on a fresh store; the median run is
//! reported, with the range. Prints a table (store, workload, N, seconds, events/s, ratio to
//! the memory baseline of the same run, notes); `--markdown PATH` also writes it as a Markdown
//! section. Combinations that would take minutes at full N (one disk flush per event on SQLite
//! FULL and PostgreSQL; PostgreSQL's concurrent appends) run with N/10, and say so. Temporary
//! files and schemas are removed at the end, also after an error.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arcp_core::{EventSeq, JobId, OsEntropy, SessionId, SystemClock};
use arcp_server::store::memory::{MemoryEventLog, MemoryIdempotencyStore, MemoryJobStore, MemoryResumeStore};
use arcp_server::store::postgres::{PgOptions, PgStore};
use arcp_server::store::sqlite::{SqliteOptions, SqliteStats, SqliteStore, Synchronous};
use arcp_server::store::{EventLog, IdempotencyStore, JobStore, ResumeStore, StoredEvent};
use arcp_server::transport::memory::{MemoryTransport, pair};
use arcp_server::{AgentRegistry, JobContext, Runtime, StaticBearerVerifier};
use serde::Deserialize;
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

const USAGE: &str = "cargo bench -p arcp-server --bench stores -- [--quick] [--markdown PATH] [--n N] [--repeat K] \
                     [--only memory,sqlite,sqlite-full,postgres]";

/// N of a full run and of `--quick`.
const FULL_N: u64 = 200_000;
const QUICK_N: u64 = 20_000;
/// Runs of every workload (each on a fresh store); the median is reported.
const DEFAULT_REPEAT: u32 = 3;
/// Sessions of the concurrent append workload.
const SESSIONS: u64 = 64;
/// Stores that commit (and `fsync`) once per sequential event run those workloads with N
/// divided by this.
const SLOW_DIVISOR: u64 = 10;
/// The longest the client waits for the next frame before the run counts as stuck.
const FRAME_WAIT: Duration = Duration::from_secs(60);
/// The bearer key of the benchmark's runtime.
const TOKEN: &str = "bench-token";
/// The benchmark agent: emits `input.n` `log` events, then returns.
const AGENT: &str = "bench.emit";

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("usage: {USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("stores bench: {e}\nusage: {USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("stores bench: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("stores bench: some workloads failed (see the table)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("stores bench: {}", chain(&*e));
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------
// Arguments

#[derive(Debug)]
struct Args {
    quick: bool,
    n: u64,
    repeat: u32,
    markdown: Option<PathBuf>,
    only: Option<Vec<Backend>>,
}

impl Args {
    /// `Ok(None)`: `--help`.
    fn parse(args: impl Iterator<Item = String>) -> Result<Option<Args>> {
        let mut quick = false;
        let mut n = None;
        let mut markdown = None;
        let mut only = None;
        let mut repeat = DEFAULT_REPEAT;
        let mut it = args;
        while let Some(a) = it.next() {
            match a.as_str() {
                "--quick" => quick = true,
                // `cargo bench` passes `--bench` to every bench binary.
                "--bench" => {}
                "--markdown" => markdown = Some(PathBuf::from(it.next().ok_or("--markdown needs a path")?)),
                "--n" => {
                    let v = it.next().ok_or("--n needs a number")?;
                    let v: u64 = v.replace('_', "").parse().map_err(|e| format!("--n {v:?}: {e}"))?;
                    if v < SESSIONS * SLOW_DIVISOR {
                        return Err(format!("--n must be at least {}", SESSIONS * SLOW_DIVISOR).into());
                    }
                    n = Some(v);
                }
                "--repeat" => {
                    let v = it.next().ok_or("--repeat needs a number")?;
                    repeat = v.parse().map_err(|e| format!("--repeat {v:?}: {e}"))?;
                    if repeat == 0 {
                        return Err("--repeat must be at least 1".into());
                    }
                }
                "--only" => {
                    let v = it.next().ok_or("--only needs a list of stores")?;
                    let list = v
                        .split(',')
                        .map(|k| Backend::ALL.into_iter().find(|b| b.key() == k).ok_or(format!("unknown store {k:?}")))
                        .collect::<Result<Vec<_>, _>>()?;
                    only = Some(list);
                }
                "-h" | "--help" => return Ok(None),
                other => return Err(format!("unknown argument {other:?}").into()),
            }
        }
        let n = n.unwrap_or(if quick { QUICK_N } else { FULL_N });
        Ok(Some(Args { quick, n, repeat, markdown, only }))
    }

    fn wants(&self, backend: Backend) -> bool {
        self.only.as_ref().is_none_or(|l| l.contains(&backend))
    }
}

// ---------------------------------------------------------------------------------------
// Stores

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Memory,
    SqliteNormal,
    SqliteFull,
    Postgres,
}

impl Backend {
    const ALL: [Backend; 4] = [Backend::Memory, Backend::SqliteNormal, Backend::SqliteFull, Backend::Postgres];

    fn label(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::SqliteNormal => "SQLite (NORMAL)",
            Backend::SqliteFull => "SQLite (FULL)",
            Backend::Postgres => "PostgreSQL",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::SqliteNormal => "sqlite",
            Backend::SqliteFull => "sqlite-full",
            Backend::Postgres => "postgres",
        }
    }

    /// Why `workload` runs with N/[`SLOW_DIVISOR`] on this store, if it does: it would take
    /// minutes at full N.
    fn reduced(self, workload: Workload) -> Option<&'static str> {
        match (self, workload) {
            (Backend::SqliteFull | Backend::Postgres, Workload::AppendOne | Workload::Stream) => {
                Some("one commit and flush per event")
            }
            (Backend::SqliteFull | Backend::Postgres, Workload::Replay) => Some("replays the stream"),
            (Backend::Postgres, Workload::AppendMany) => Some("concurrent commits serialise on NOTIFY"),
            _ => None,
        }
    }

    /// N of `workload` on this store.
    fn n(self, workload: Workload, n: u64) -> u64 {
        if self.reduced(workload).is_some() { n / SLOW_DIVISOR } else { n }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    AppendOne,
    AppendMany,
    Stream,
    Replay,
}

impl Workload {
    fn label(self) -> &'static str {
        match self {
            Workload::AppendOne => "append, 1 session",
            Workload::AppendMany => "append, 64 sessions",
            Workload::Stream => "stream end to end",
            Workload::Replay => "resume replay",
        }
    }
}

/// Where the temporary SQLite files go and the PostgreSQL database to use.
struct Env {
    dir: TempDir,
    pg_url: Option<String>,
    files: AtomicU64,
}

/// One fresh store: the four store traits over it, and what removes it.
struct Stores {
    events: Arc<dyn EventLog>,
    resumes: Arc<dyn ResumeStore>,
    idempotency: Arc<dyn IdempotencyStore>,
    jobs: Arc<dyn JobStore>,
    sqlite: Option<SqliteStore>,
    // Declared last: dropped after every handle above.
    _cleanup: Cleanup,
}

impl Stores {
    fn sqlite_stats(&self) -> Option<SqliteStats> {
        self.sqlite.as_ref().map(SqliteStore::stats)
    }
}

/// The per-session caps of every store, set out of the way (the benchmark never acknowledges
/// or purges).
const NO_CAP: usize = 1 << 40;

impl Env {
    async fn open(&self, backend: Backend) -> Result<Stores> {
        match backend {
            Backend::Memory => Ok(Stores {
                events: Arc::new(MemoryEventLog::with_caps(NO_CAP, NO_CAP)),
                resumes: Arc::new(MemoryResumeStore::default()),
                idempotency: Arc::new(MemoryIdempotencyStore::default()),
                jobs: Arc::new(MemoryJobStore::default()),
                sqlite: None,
                _cleanup: Cleanup::None,
            }),
            Backend::SqliteNormal | Backend::SqliteFull => {
                let synchronous = if backend == Backend::SqliteFull { Synchronous::Full } else { Synchronous::Normal };
                let path = self.dir.path.join(format!("bench-{}.db", self.files.fetch_add(1, Ordering::Relaxed)));
                let cleanup = Cleanup::Files(path.clone());
                let options = SqliteOptions {
                    synchronous,
                    max_events_per_session: NO_CAP,
                    max_bytes_per_session: NO_CAP,
                    ..SqliteOptions::default()
                };
                let store = SqliteStore::open(&path, options).await.map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(Stores {
                    events: Arc::new(store.event_log()),
                    resumes: Arc::new(store.resume_store()),
                    idempotency: Arc::new(store.idempotency_store()),
                    jobs: Arc::new(store.job_store()),
                    sqlite: Some(store),
                    _cleanup: cleanup,
                })
            }
            Backend::Postgres => {
                let url = self.pg_url.as_deref().ok_or("no PostgreSQL URL")?;
                let schema = fresh_schema_name();
                admin(url).await?.batch_execute(&format!("CREATE SCHEMA \"{schema}\"")).await?;
                let cleanup = Cleanup::Schema { url: url.to_owned(), schema: schema.clone() };
                let options = PgOptions::default().with_schema(&schema).with_event_caps(NO_CAP, NO_CAP);
                let store = PgStore::connect(url, options).await?;
                Ok(Stores {
                    events: Arc::new(store.event_log()),
                    resumes: Arc::new(store.resume_store()),
                    idempotency: Arc::new(store.idempotency_store()),
                    jobs: Arc::new(store.job_store()),
                    sqlite: None,
                    _cleanup: cleanup,
                })
            }
        }
    }
}

/// Removes a store's files or schema when dropped (after an error or a panic too).
enum Cleanup {
    None,
    Files(PathBuf),
    Schema { url: String, schema: String },
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        match self {
            Cleanup::None => {}
            Cleanup::Files(path) => {
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(p));
                }
            }
            Cleanup::Schema { url, schema } => {
                let (url, schema) = (url.clone(), schema.clone());
                // `Drop` cannot await, and the benchmark's runtime may be shutting down: a
                // thread of its own with a runtime of its own.
                let dropped = std::thread::spawn(move || -> Result<()> {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                    rt.block_on(async move {
                        admin(&url)
                            .await?
                            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                            .await?;
                        Ok(())
                    })
                })
                .join();
                if !matches!(dropped, Ok(Ok(()))) {
                    eprintln!(
                        "stores bench: could not drop the PostgreSQL schema (drop schemas named bench_* by hand)"
                    );
                }
            }
        }
    }
}

/// A temporary directory, removed when dropped.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new() -> Result<TempDir> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let path = std::env::temp_dir().join(format!("arcp-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(TempDir { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// `bench_` + pid + counter + clock: unique, a valid unquoted identifier, well under 63 bytes.
fn fresh_schema_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("bench_{}_{}_{nanos:08x}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A plain connection for creating and dropping schemas and reading settings.
async fn admin(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The PostgreSQL URL: `ARCP_BENCH_DATABASE_URL`, else `ARCP_TEST_DATABASE_URL`.
fn pg_url() -> Option<(&'static str, String)> {
    ["ARCP_BENCH_DATABASE_URL", "ARCP_TEST_DATABASE_URL"]
        .into_iter()
        .find_map(|var| std::env::var(var).ok().filter(|u| !u.trim().is_empty()).map(|u| (var, u)))
}

/// Host, port and database of `url`, without credentials.
fn describe_url(url: &str) -> String {
    let Ok(config) = url.parse::<tokio_postgres::Config>() else { return "(unparsable URL)".into() };
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or("(default)"))
}

// ---------------------------------------------------------------------------------------
// Workloads

/// One measured workload.
struct Row {
    backend: Backend,
    workload: Workload,
    outcome: Outcome,
}

enum Outcome {
    Measured { n: u64, seconds: f64, note: String },
    Failed(String),
}

impl Row {
    fn rate(&self) -> Option<f64> {
        match &self.outcome {
            Outcome::Measured { n, seconds, .. } if *seconds > 0.0 => Some(rate(*n, *seconds)),
            _ => None,
        }
    }
}

fn seq(n: u64) -> Result<EventSeq> {
    EventSeq::new(n).ok_or_else(|| format!("event_seq {n} is out of range").into())
}

fn fresh_session() -> Result<SessionId> {
    Ok(SessionId::mint(&SystemClock, &OsEntropy)?)
}

fn fresh_job() -> Result<JobId> {
    Ok(JobId::mint(&SystemClock, &OsEntropy)?)
}

/// A frame shaped like the runtime's `log` events (same fields, ids and size), so the
/// stores write realistic rows.
fn frame(session: &SessionId, job: &JobId, seq: u64) -> Arc<str> {
    Arc::from(format!(
        concat!(
            r#"{{"arcp":"1.1","id":"msg_01JZ6T4W5G8N2Q7R3V9X0B1C2D","type":"job.event","session_id":"{session}","#,
            r#""trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","job_id":"{job}","event_seq":{seq},"#,
            r#""payload":{{"kind":"log","ts":"2026-01-01T00:00:00.000Z","body":{{"level":"info","message":"line {seq}"}}}}}}"#
        ),
        session = session.as_str(),
        job = job.as_str(),
        seq = seq,
    ))
}

/// `count` ready-made events of one session, seq 1 to `count`.
fn events_for(session: &SessionId, count: u64) -> Result<Vec<StoredEvent>> {
    let job = fresh_job()?;
    (1..=count).map(|s| Ok(StoredEvent { seq: seq(s)?, job_id: job.clone(), frame: frame(session, &job, s) })).collect()
}

/// Appends `events` to `session` one after the other.
async fn append_all(log: &dyn EventLog, session: &SessionId, events: Vec<StoredEvent>) -> Result<()> {
    for event in events {
        log.append(session, event).await?;
    }
    Ok(())
}

/// `per_session` events to each of `sessions` fresh sessions, concurrently (one task each);
/// returns the elapsed time (the events are built before the clock starts).
async fn append_concurrently(log: &Arc<dyn EventLog>, sessions: u64, total: u64) -> Result<Duration> {
    let mut work = Vec::new();
    for i in 0..sessions {
        // `total` spread as evenly as possible.
        let count = total / sessions + u64::from(i < total % sessions);
        let session = fresh_session()?;
        let events = events_for(&session, count)?;
        work.push((session, events));
    }
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (session, events) in work {
        let log = log.clone();
        tasks.spawn(async move { append_all(&*log, &session, events).await });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(start.elapsed())
}

/// Warms a fresh store: its caches, prepared statements and pooled connections.
async fn warm_up_appends(log: &Arc<dyn EventLog>) -> Result<()> {
    let session = fresh_session()?;
    append_all(&**log, &session, events_for(&session, 200)?).await?;
    append_concurrently(log, SESSIONS, SESSIONS * 10).await?;
    Ok(())
}

/// What a SQLite store's writer did during a workload, for the notes column.
fn batch_note(before: Option<SqliteStats>, after: Option<SqliteStats>) -> String {
    match (before, after) {
        (Some(b), Some(a)) => {
            let ops = a.operations - b.operations;
            let txns = (a.transactions - b.transactions).max(1);
            format!("{} commits, {:.1} writes/commit", group(txns), ops as f64 / txns as f64)
        }
        _ => String::new(),
    }
}

async fn append_one(env: &Env, backend: Backend, n: u64) -> Result<(u64, Duration, String)> {
    let stores = env.open(backend).await?;
    warm_up_appends(&stores.events).await?;
    let session = fresh_session()?;
    let events = events_for(&session, n)?;
    let before = stores.sqlite_stats();
    let start = Instant::now();
    append_all(&*stores.events, &session, events).await?;
    let elapsed = start.elapsed();
    Ok((n, elapsed, batch_note(before, stores.sqlite_stats())))
}

async fn append_many(env: &Env, backend: Backend, n: u64) -> Result<(u64, Duration, String)> {
    let stores = env.open(backend).await?;
    warm_up_appends(&stores.events).await?;
    let before = stores.sqlite_stats();
    let elapsed = append_concurrently(&stores.events, SESSIONS, n).await?;
    Ok((n, elapsed, batch_note(before, stores.sqlite_stats())))
}

/// The stream and the resume replay of one store: `(stream, replay)` as `(events, elapsed)`.
async fn stream_and_replay(env: &Env, backend: Backend, n: u64) -> Result<((u64, Duration, String), (u64, Duration))> {
    let stores = env.open(backend).await?;
    let mut agents = AgentRegistry::new();
    agents.register(AGENT, |ctx: JobContext, input: Value| async move {
        let n = input["n"].as_u64().unwrap_or(0);
        for i in 1..=n {
            ctx.info(format!("line {i}")).await?;
        }
        Ok(json!({ "lines": n }))
    })?;
    let runtime = Runtime::builder(StaticBearerVerifier::new().with_token(TOKEN, "bench"))
        .agents(agents)
        .event_log(stores.events.clone())
        .resume_store(stores.resumes.clone())
        .idempotency_store(stores.idempotency.clone())
        .job_store(stores.jobs.clone())
        .build();

    // Warm-up: a session of its own with a short job, then gone.
    {
        let mut warm = RawClient::connect(&runtime);
        warm.hello(None).await?;
        warm.run_job(500).await?;
    }

    let mut client = RawClient::connect(&runtime);
    client.hello(None).await?;
    let before = stores.sqlite_stats();
    let start = Instant::now();
    let received = client.run_job(n).await?;
    let streamed = start.elapsed();
    let note = batch_note(before, stores.sqlite_stats());
    let (session, token, newest) = (client.session_id.clone(), client.resume_token.clone(), client.last_seq);
    drop(client);

    let mut again = RawClient::connect(&runtime);
    let start = Instant::now();
    again.hello(Some((&session, &token))).await?;
    let replayed = again.read_through(newest).await?;
    let replay = start.elapsed();
    drop(again);
    drop(runtime);
    Ok(((received, streamed, note), (replayed, replay)))
}

// ---------------------------------------------------------------------------------------
// A raw client over the in-memory transport

/// The envelope fields the client looks at (the rest of each frame is skipped by the parser).
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    ty: &'a str,
    event_seq: Option<u64>,
}

struct RawClient {
    t: MemoryTransport,
    ids: u64,
    session_id: String,
    resume_token: String,
    last_seq: u64,
}

impl RawClient {
    fn connect(runtime: &Runtime) -> RawClient {
        let (client, server) = pair();
        runtime.spawn(server);
        RawClient { t: client, ids: 0, session_id: String::new(), resume_token: String::new(), last_seq: 0 }
    }

    fn send(&mut self, ty: &str, payload: Value) -> Result<()> {
        self.ids += 1;
        let mut envelope =
            json!({ "arcp": "1.1", "id": format!("msg_bench_{}", self.ids), "type": ty, "payload": payload });
        if !self.session_id.is_empty() {
            envelope["session_id"] = json!(self.session_id);
        }
        self.t.send(envelope.to_string())?;
        Ok(())
    }

    async fn next(&mut self) -> Result<String> {
        match tokio::time::timeout(FRAME_WAIT, self.t.recv()).await {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err("the runtime closed the connection".into()),
            Err(_) => Err(format!("no frame within {FRAME_WAIT:?} (after event_seq {})", self.last_seq).into()),
        }
    }

    /// `session.hello`, resuming `(session, token)` from `event_seq` 0 if given; waits for the
    /// welcome and keeps its session id and resume token.
    async fn hello(&mut self, resume: Option<(&str, &str)>) -> Result<()> {
        let mut payload = json!({
            "client": { "name": "arcp-bench", "version": "0" },
            "auth": { "scheme": "bearer", "token": TOKEN },
        });
        if let Some((session, token)) = resume {
            payload["resume"] = json!({ "session_id": session, "resume_token": token, "last_event_seq": 0 });
            self.last_seq = 0;
        }
        self.send("session.hello", payload)?;
        let frame = self.next().await?;
        let welcome: Value = serde_json::from_str(&frame)?;
        if welcome["type"] != "session.welcome" {
            return Err(format!("expected session.welcome, got {frame}").into());
        }
        self.session_id = welcome["session_id"].as_str().ok_or("welcome without session_id")?.to_owned();
        self.resume_token =
            welcome["payload"]["resume_token"].as_str().ok_or("welcome without resume_token")?.to_owned();
        Ok(())
    }

    /// Reads one frame; checks that `event_seq`s are gap-free. `Ok(Some(type))` for a frame
    /// carrying a sequence number, `Ok(None)` for one without.
    async fn read_one(&mut self) -> Result<(bool, String)> {
        let frame = self.next().await?;
        let head: Head<'_> = serde_json::from_str(&frame).map_err(|e| format!("bad frame ({e}): {frame}"))?;
        if matches!(head.ty, "job.error" | "session.error") {
            return Err(format!("the runtime answered {frame}").into());
        }
        let sequenced = match head.event_seq {
            Some(s) if s == self.last_seq + 1 => {
                self.last_seq = s;
                true
            }
            Some(s) => return Err(format!("event_seq gap: {} then {s}", self.last_seq).into()),
            None => false,
        };
        Ok((sequenced, head.ty.to_owned()))
    }

    /// Submits a job emitting `n` events and reads every frame through its `job.result`;
    /// returns how many sequence-bearing frames arrived.
    async fn run_job(&mut self, n: u64) -> Result<u64> {
        self.send("job.submit", json!({ "agent": AGENT, "input": { "n": n } }))?;
        let mut received = 0;
        loop {
            let (sequenced, ty) = self.read_one().await?;
            received += u64::from(sequenced);
            if ty == "job.result" {
                return Ok(received);
            }
        }
    }

    /// Reads every frame through `event_seq` `newest`; returns how many sequence-bearing
    /// frames arrived.
    async fn read_through(&mut self, newest: u64) -> Result<u64> {
        let mut received = 0;
        while self.last_seq < newest {
            let (sequenced, _) = self.read_one().await?;
            received += u64::from(sequenced);
        }
        Ok(received)
    }
}

// ---------------------------------------------------------------------------------------
// The run

async fn run(args: Args) -> Result<bool> {
    let pg = pg_url();
    let env = Env { dir: TempDir::new()?, pg_url: pg.as_ref().map(|(_, u)| u.clone()), files: AtomicU64::new(0) };
    let load_before = load_average();
    let mode = if args.quick { "quick" } else { "full" };
    println!(
        "arcp-server store benchmarks ({mode}: N = {}; every workload run {}x, each on a fresh store, median \
         reported; {} worker threads)",
        group(args.n),
        args.repeat,
        worker_threads()
    );
    println!("  slow combinations run with N/{SLOW_DIVISOR} = {} (marked in the notes)", group(args.n / SLOW_DIVISOR));

    let sample = {
        let session = fresh_session()?;
        frame(&session, &fresh_job()?, 12_345).len()
    };
    let mut info = vec![
        format!(
            "append workloads write ~{sample}-byte frames shaped like the runtime's `log` events; the client of the \
             stream parses each frame's `type` and `event_seq`"
        ),
        format!(
            "SQLite {} (bundled with rusqlite), WAL, temporary files in `{}`",
            rusqlite::version(),
            std::env::temp_dir().display()
        ),
    ];
    let mut skipped = Vec::new();
    if args.wants(Backend::Postgres) {
        match &pg {
            Some((var, url)) => match pg_settings(url).await {
                Ok(s) => info.push(format!(
                    "PostgreSQL {s}, server {} (from `{var}`), pool of {} connections",
                    describe_url(url),
                    PgOptions::default().pool_size
                )),
                Err(e) => {
                    let why =
                        format!("PostgreSQL skipped: cannot reach {} (from {var}): {}", describe_url(url), chain(&*e));
                    println!("  {why}");
                    skipped.push(why);
                }
            },
            None => {
                let why =
                    "PostgreSQL skipped: neither ARCP_BENCH_DATABASE_URL nor ARCP_TEST_DATABASE_URL is set".to_owned();
                println!("  {why}");
                skipped.push(why);
            }
        }
    }
    for line in &info {
        println!("  {line}");
    }
    println!();

    let mut rows = Vec::new();
    for backend in Backend::ALL {
        if !args.wants(backend) || (backend == Backend::Postgres && !skipped.is_empty()) {
            continue;
        }
        let mut runs = Runs::default();
        for _ in 0..args.repeat {
            let r = append_one(&env, backend, backend.n(Workload::AppendOne, args.n)).await;
            runs.record(backend, Workload::AppendOne, r);
            let r = append_many(&env, backend, backend.n(Workload::AppendMany, args.n)).await;
            runs.record(backend, Workload::AppendMany, r);
            match stream_and_replay(&env, backend, backend.n(Workload::Stream, args.n)).await {
                Ok((stream, (n, elapsed))) => {
                    runs.record(backend, Workload::Stream, Ok(stream));
                    runs.record(backend, Workload::Replay, Ok((n, elapsed, String::new())));
                }
                Err(e) => {
                    runs.record(backend, Workload::Stream, Err(e));
                    runs.record(backend, Workload::Replay, Err("not run: the stream failed".into()));
                }
            }
        }
        rows.extend(runs.rows(backend));
    }
    let load_after = load_average();

    println!();
    print!("{}", render_text(&rows));
    println!("load average (1/5/15 min) before: {load_before}; after: {load_after}");

    if let Some(path) = &args.markdown {
        let md = render_markdown(&rows, &args, &info, &skipped, &load_before, &load_after);
        std::fs::write(path, md).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(rows.iter().all(|r| matches!(r.outcome, Outcome::Measured { .. })))
}

/// One measured run of a workload: events, elapsed time, a note.
type Sample = (u64, Duration, String);

/// The repeated runs of one store's workloads.
#[derive(Default)]
struct Runs {
    samples: Vec<(Workload, Sample)>,
    failures: Vec<(Workload, String)>,
}

impl Runs {
    /// Prints one finished run as it completes (a full run takes minutes) and keeps it.
    fn record(&mut self, backend: Backend, workload: Workload, result: Result<Sample>) {
        match result {
            Ok((n, elapsed, note)) => {
                let seconds = elapsed.as_secs_f64();
                println!(
                    "  {:<16} {:<20} {:>9} events in {seconds:>9.4} s: {:>11} events/s",
                    backend.label(),
                    workload.label(),
                    group(n),
                    group(rate(n, seconds).round() as u64)
                );
                self.samples.push((workload, (n, elapsed, note)));
            }
            Err(e) => {
                let e = chain(&*e);
                println!("  {:<16} {:<20} FAILED: {e}", backend.label(), workload.label());
                self.failures.push((workload, e));
            }
        }
    }

    /// One row per workload: the median run (by rate), with the range when repeated; a
    /// workload with a failed run is a failed row.
    fn rows(&self, backend: Backend) -> Vec<Row> {
        [Workload::AppendOne, Workload::AppendMany, Workload::Stream, Workload::Replay]
            .into_iter()
            .map(|workload| {
                if let Some((_, e)) = self.failures.iter().find(|(w, _)| *w == workload) {
                    return Row { backend, workload, outcome: Outcome::Failed(e.clone()) };
                }
                let mut runs: Vec<&Sample> =
                    self.samples.iter().filter(|(w, _)| *w == workload).map(|(_, s)| s).collect();
                runs.sort_by(|a, b| rate(a.0, a.1.as_secs_f64()).total_cmp(&rate(b.0, b.1.as_secs_f64())));
                let outcome = match runs.get(runs.len() / 2) {
                    Some((n, elapsed, note)) => {
                        let mut note = note.clone();
                        if let (Some(low), Some(high)) = (runs.first(), runs.last())
                            && runs.len() > 1
                        {
                            if !note.is_empty() {
                                note.push_str("; ");
                            }
                            let _ = write!(
                                note,
                                "median of {}: {}–{}/s",
                                runs.len(),
                                group(rate(low.0, low.1.as_secs_f64()).round() as u64),
                                group(rate(high.0, high.1.as_secs_f64()).round() as u64)
                            );
                        }
                        Outcome::Measured { n: *n, seconds: elapsed.as_secs_f64(), note }
                    }
                    None => Outcome::Failed("no run".into()),
                };
                Row { backend, workload, outcome }
            })
            .collect()
    }
}

fn rate(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 { n as f64 / seconds } else { 0.0 }
}

async fn pg_settings(url: &str) -> Result<String> {
    let client = admin(url).await?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('synchronous_commit'), current_setting('fsync')",
            &[],
        )
        .await?;
    let (version, sync, fsync): (String, String, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    Ok(format!("{version} (synchronous_commit={sync}, fsync={fsync})"))
}

/// An error and its sources, `: `-separated.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn worker_threads() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}

/// `/proc/loadavg`'s three averages, or `n/a`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "n/a".into())
}

/// `1234567` as `1 234 567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// The ratio of `row`'s rate to the memory row of the same workload.
fn ratio(rows: &[Row], row: &Row) -> String {
    let base = rows.iter().find(|r| r.backend == Backend::Memory && r.workload == row.workload).and_then(Row::rate);
    match (row.rate(), base) {
        (Some(rate), Some(base)) if base > 0.0 => {
            let r = rate / base;
            // Two significant digits, however small.
            let decimals = if r >= 1.0 { 2 } else { (1.0 - r.log10().floor()).clamp(2.0, 9.0) as usize };
            format!("{r:.decimals$}×")
        }
        _ => "–".into(),
    }
}

/// One table line per row: `[store, workload, N, seconds, events/s, vs memory, note]`.
fn cells(rows: &[Row]) -> Vec<[String; 7]> {
    rows.iter()
        .map(|row| {
            let (n, secs, rate, note) = match &row.outcome {
                Outcome::Measured { n, seconds, note } => (
                    group(*n),
                    format!("{seconds:.4}"),
                    row.rate().map_or("–".into(), |r| group(r.round() as u64)),
                    reduced_note(row, note),
                ),
                Outcome::Failed(e) => ("–".into(), "–".into(), "–".into(), format!("FAILED: {e}")),
            };
            [row.backend.label().into(), row.workload.label().into(), n, secs, rate, ratio(rows, row), note]
        })
        .collect()
}

fn reduced_note(row: &Row, note: &str) -> String {
    let mut out = note.to_owned();
    if let Some(why) = row.backend.reduced(row.workload) {
        if !out.is_empty() {
            out.push_str("; ");
        }
        let _ = write!(out, "N/{SLOW_DIVISOR}: {why}");
    }
    out
}

const HEADERS: [&str; 7] = ["store", "workload", "N", "seconds", "events/s", "vs memory", "notes"];

fn render_text(rows: &[Row]) -> String {
    let cells = cells(rows);
    let mut widths = HEADERS.map(|h| h.chars().count());
    for line in &cells {
        for (w, c) in widths.iter_mut().zip(line) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |values: [&str; 7]| {
        let mut s = String::new();
        for (i, (v, w)) in values.iter().zip(widths).enumerate() {
            let pad = w.saturating_sub(v.chars().count());
            // Numbers right-aligned, text left-aligned.
            if (2..=5).contains(&i) {
                s.push_str(&" ".repeat(pad));
                s.push_str(v);
            } else {
                s.push_str(v);
                s.push_str(&" ".repeat(pad));
            }
            s.push_str("  ");
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(HEADERS);
    let rule = widths.map(|w| "-".repeat(w));
    line([&rule[0], &rule[1], &rule[2], &rule[3], &rule[4], &rule[5], &rule[6]].map(String::as_str));
    for c in &cells {
        line([&c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6]].map(String::as_str));
    }
    out
}

fn render_markdown(
    rows: &[Row],
    args: &Args,
    info: &[String],
    skipped: &[String],
    load_before: &str,
    load_after: &str,
) -> String {
    let mut md = String::new();
    let mode = if args.quick { "`--quick` run" } else { "Full run" };
    let _ = writeln!(md, "## Stores\n");
    let _ = writeln!(
        md,
        "{mode}: N = {}; the combinations marked N/{SLOW_DIVISOR} ran with {} events (they would take minutes \
         at full N). Every workload ran {}, each time on a fresh store; the table shows the median run. {} tokio \
         worker threads; load average (1/5/15 min) {load_before} before, {load_after} after (the later figure \
         counts the benchmark's own threads).\n",
        group(args.n),
        group(args.n / SLOW_DIVISOR),
        if args.repeat == 1 { "once".to_owned() } else { format!("{} times", args.repeat) },
        worker_threads()
    );
    for line in info.iter().chain(skipped) {
        let _ = writeln!(md, "- {line}");
    }
    md.push('\n');
    let _ = writeln!(md, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(md, "|---|---|--:|--:|--:|--:|---|");
    for c in cells(rows) {
        let c = c.map(|s| s.replace('|', "\\|"));
        let _ = writeln!(md, "| {} |", c.join(" | "));
    }
    md
}
