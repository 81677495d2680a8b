//! The schema of the ARCP stores, as migration steps (never edit a released step: append a
//! new one).

/// Step 1: events (with their per-session totals), resume records, idempotency records,
/// job records.
const V1: &str = "
CREATE TABLE arcp_events (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    frame TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
);

-- One row per session holding events: what the caps and the conflict check need without
-- scanning the log.
CREATE TABLE arcp_event_sessions (
    session_id TEXT PRIMARY KEY NOT NULL,
    events INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    newest_seq INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE arcp_resume (
    session_id TEXT PRIMARY KEY NOT NULL,
    token_digest BLOB NOT NULL,
    principal TEXT NOT NULL,
    expires_at_millis INTEGER NOT NULL
);
CREATE INDEX arcp_resume_expiry ON arcp_resume (expires_at_millis);

CREATE TABLE arcp_idempotency (
    principal TEXT NOT NULL,
    key TEXT NOT NULL,
    digest BLOB NOT NULL,
    job_id TEXT NOT NULL,
    accepted TEXT NOT NULL,
    expires_at_millis INTEGER NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE INDEX arcp_idempotency_expiry ON arcp_idempotency (expires_at_millis);

CREATE TABLE arcp_jobs (
    job_id TEXT PRIMARY KEY NOT NULL,
    principal TEXT NOT NULL,
    session_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    status TEXT NOT NULL,
    lease TEXT NOT NULL,
    lease_constraints TEXT,
    parent_job_id TEXT,
    created_at_millis INTEGER NOT NULL,
    trace_id TEXT,
    last_event_seq INTEGER NOT NULL,
    ended_at_millis INTEGER,
    node TEXT NOT NULL
);
CREATE INDEX arcp_jobs_listing ON arcp_jobs (principal, created_at_millis, job_id);
CREATE INDEX arcp_jobs_unfinished ON arcp_jobs (node, created_at_millis, job_id)
    WHERE status IN ('pending', 'running');
CREATE INDEX arcp_jobs_ended ON arcp_jobs (ended_at_millis) WHERE ended_at_millis IS NOT NULL;
";

/// Step 2: the agents' key-value store ([`SqliteKvStore`](super::SqliteKvStore)). Keys are
/// compared bytewise (the default `BINARY` collation), as Rust orders strings.
const V2: &str = "
CREATE TABLE arcp_kv (
    principal TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    ttl_ms INTEGER,
    expires_at_millis INTEGER,
    PRIMARY KEY (principal, key)
) WITHOUT ROWID;
CREATE INDEX arcp_kv_expiry ON arcp_kv (expires_at_millis) WHERE expires_at_millis IS NOT NULL;
";

/// Every step, in order.
pub(super) const STEPS: &[&str] = &[V1, V2];
