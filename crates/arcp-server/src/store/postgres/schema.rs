//! The tables of the ARCP stores, as migration steps (append-only: add a step, never edit
//! one that shipped).
//!
//! Text compared or ordered like Rust strings (`job_id`, `agent`) uses `COLLATE "C"`, so
//! ordering is bytewise as in [`ListKey`](crate::store::ListKey)'s `Ord`. JSON is kept as
//! `text` (exactly what serde wrote, numbers included). Frames are `bytea` holding UTF-8:
//! PostgreSQL `text` cannot hold a NUL character, a frame may.

/// The steps; step `i` brings the component to version `i + 1`.
pub(super) const STEPS: &[&str] = &[V1, V2, V3];

const V1: &str = r#"
CREATE TABLE arcp_events (
    session_id text NOT NULL,
    seq bigint NOT NULL,
    job_id text NOT NULL,
    frame bytea NOT NULL,
    frame_bytes bigint NOT NULL,
    PRIMARY KEY (session_id, seq)
);

-- One row per session with kept events: the newest seq and the buffered totals the caps
-- apply to. The append statement updates it and inserts the event together.
CREATE TABLE arcp_event_sessions (
    session_id text PRIMARY KEY,
    newest_seq bigint NOT NULL,
    events bigint NOT NULL,
    bytes bigint NOT NULL
);

CREATE TABLE arcp_resume (
    session_id text PRIMARY KEY,
    token_digest bytea NOT NULL,
    principal text NOT NULL,
    expires_at_millis bigint NOT NULL
);
CREATE INDEX arcp_resume_expiry ON arcp_resume (expires_at_millis);

CREATE TABLE arcp_idempotency (
    principal text NOT NULL,
    key text NOT NULL,
    digest bytea NOT NULL,
    job_id text NOT NULL,
    accepted text NOT NULL,
    expires_at_millis bigint NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE INDEX arcp_idempotency_expiry ON arcp_idempotency (expires_at_millis);

CREATE TABLE arcp_jobs (
    job_id text COLLATE "C" PRIMARY KEY,
    principal text NOT NULL,
    session_id text NOT NULL,
    agent text COLLATE "C" NOT NULL,
    status text NOT NULL,
    lease text NOT NULL,
    lease_constraints text,
    parent_job_id text,
    created_at_millis bigint NOT NULL,
    trace_id text,
    last_event_seq bigint NOT NULL,
    ended_at_millis bigint,
    node text NOT NULL
);
CREATE INDEX arcp_jobs_listing ON arcp_jobs (principal, created_at_millis, job_id);
CREATE INDEX arcp_jobs_ended ON arcp_jobs (ended_at_millis) WHERE ended_at_millis IS NOT NULL;
CREATE INDEX arcp_jobs_unfinished ON arcp_jobs (node, created_at_millis, job_id)
    WHERE status IN ('pending', 'running');

CREATE TABLE arcp_nodes (
    node_id text PRIMARY KEY,
    heartbeat_at_millis bigint NOT NULL
);
"#;

/// Adoption of a dead node by a live one ([`PgStore::adopt`](super::PgStore::adopt)).
const V2: &str = r#"
ALTER TABLE arcp_nodes ADD COLUMN adopted_by text;
"#;

/// The agents' key-value store ([`PgKvStore`](super::PgKvStore)); keys ordered bytewise.
const V3: &str = r#"
CREATE TABLE arcp_kv (
    principal text NOT NULL,
    key text COLLATE "C" NOT NULL,
    value text NOT NULL,
    ttl_ms bigint,
    expires_at_millis bigint,
    PRIMARY KEY (principal, key)
);
CREATE INDEX arcp_kv_expiry ON arcp_kv (expires_at_millis) WHERE expires_at_millis IS NOT NULL;
"#;
