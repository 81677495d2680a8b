//! The SQLite [`JobStore`]: `arcp_jobs`, one row per job; a listing is one keyset range scan
//! of the `(principal, created_at_millis, job_id)` index.

use std::sync::Arc;

use arcp_core::message::{JobStatus, LeaseConstraints, LeaseMap};
use arcp_core::{EventSeq, JobId, SessionId, TraceId};
use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::writer::ApplyError;
use super::{Shared, corrupt, millis, unavailable, unsigned};
use crate::store::{AgentMatch, JobQuery, JobRecord, JobStore, JobUpdate, StoreError};

/// The SQLite [`JobStore`]. Unbounded (the retention sweep,
/// [`JobStore::purge_finished`], bounds it); `update` never lowers `last_event_seq`.
#[derive(Debug, Clone)]
pub struct SqliteJobStore {
    shared: Arc<Shared>,
}

impl SqliteJobStore {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        SqliteJobStore { shared }
    }
}

const COLUMNS: &str = "job_id, principal, session_id, agent, status, lease, lease_constraints, parent_job_id, \
                       created_at_millis, trace_id, last_event_seq, ended_at_millis, node";

/// A job's state as stored (`pending`, `running`, `success`, …: its wire name).
fn status_name(status: JobStatus) -> Result<String, StoreError> {
    match serde_json::to_value(status) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        other => Err(StoreError::Unavailable(format!("cannot encode the job status {status:?}: {other:?}"))),
    }
}

fn status_from(name: &str) -> Result<JobStatus, StoreError> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|e| corrupt("job status", e))
}

fn encode_err(what: &str, e: serde_json::Error) -> StoreError {
    StoreError::Unavailable(format!("cannot encode the {what}: {e}"))
}

/// A record as column values, in [`COLUMNS`] order.
struct Encoded {
    values: [Value; 13],
}

impl Encoded {
    fn new(r: &JobRecord) -> Result<Encoded, StoreError> {
        let lease = serde_json::to_string(&r.lease).map_err(|e| encode_err("lease", e))?;
        let constraints = r
            .lease_constraints
            .as_ref()
            .map(|c| serde_json::to_string(c).map_err(|e| encode_err("lease constraints", e)))
            .transpose()?;
        let text = |s: &str| Value::Text(s.to_owned());
        let opt_text = |s: Option<&str>| s.map_or(Value::Null, text);
        Ok(Encoded {
            values: [
                text(r.job_id.as_str()),
                text(&r.principal),
                text(r.session_id.as_str()),
                text(&r.agent),
                Value::Text(status_name(r.status)?),
                Value::Text(lease),
                constraints.map_or(Value::Null, Value::Text),
                opt_text(r.parent_job_id.as_ref().map(JobId::as_str)),
                Value::Integer(millis(r.created_at_millis)),
                opt_text(r.trace_id.as_ref().map(TraceId::as_str)),
                Value::Integer(millis(r.last_event_seq.get())),
                r.ended_at_millis.map_or(Value::Null, |t| Value::Integer(millis(t))),
                text(&r.node),
            ],
        })
    }
}

/// A row as read, before decoding.
struct RawJob {
    job_id: String,
    principal: String,
    session_id: String,
    agent: String,
    status: String,
    lease: String,
    lease_constraints: Option<String>,
    parent_job_id: Option<String>,
    created_at_millis: i64,
    trace_id: Option<String>,
    last_event_seq: i64,
    ended_at_millis: Option<i64>,
    node: String,
}

impl RawJob {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<RawJob> {
        Ok(RawJob {
            job_id: r.get(0)?,
            principal: r.get(1)?,
            session_id: r.get(2)?,
            agent: r.get(3)?,
            status: r.get(4)?,
            lease: r.get(5)?,
            lease_constraints: r.get(6)?,
            parent_job_id: r.get(7)?,
            created_at_millis: r.get(8)?,
            trace_id: r.get(9)?,
            last_event_seq: r.get(10)?,
            ended_at_millis: r.get(11)?,
            node: r.get(12)?,
        })
    }

    fn decode(self) -> Result<JobRecord, StoreError> {
        let job_id = |s: &str| JobId::parse(s).map_err(|e| corrupt("job_id", e));
        Ok(JobRecord {
            job_id: job_id(&self.job_id)?,
            principal: self.principal,
            session_id: SessionId::parse(&self.session_id).map_err(|e| corrupt("session_id", e))?,
            agent: self.agent,
            status: status_from(&self.status)?,
            lease: serde_json::from_str::<LeaseMap>(&self.lease).map_err(|e| corrupt("lease", e))?,
            lease_constraints: self
                .lease_constraints
                .map(|c| serde_json::from_str::<LeaseConstraints>(&c).map_err(|e| corrupt("lease constraints", e)))
                .transpose()?,
            parent_job_id: self.parent_job_id.as_deref().map(job_id).transpose()?,
            created_at_millis: unsigned("created_at_millis", self.created_at_millis)?,
            trace_id: self.trace_id.map(|t| TraceId::parse(&t).map_err(|e| corrupt("trace_id", e))).transpose()?,
            last_event_seq: unsigned("last_event_seq", self.last_event_seq)
                .ok()
                .and_then(EventSeq::new)
                .ok_or_else(|| corrupt("last_event_seq", self.last_event_seq))?,
            ended_at_millis: self.ended_at_millis.map(|t| unsigned("ended_at_millis", t)).transpose()?,
            node: self.node,
        })
    }
}

/// Runs `sql` with `args` and decodes every row.
fn query_jobs(conn: &Connection, sql: &str, args: &[Value]) -> Result<Vec<JobRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(unavailable)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), RawJob::from_row).map_err(unavailable)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(unavailable)?.decode()?);
    }
    Ok(out)
}

/// The listing as one SQL statement: every [`JobQuery`] filter, exactly as
/// [`JobQuery::matches`] (`None` when the query cannot match anything).
fn listing_sql(query: &JobQuery) -> Result<Option<(String, Vec<Value>)>, StoreError> {
    if query.limit == 0 {
        return Ok(None);
    }
    let mut sql = format!("SELECT {COLUMNS} FROM arcp_jobs WHERE principal = ?");
    let mut args = vec![Value::Text(query.principal.clone())];
    if let Some(after) = &query.after {
        sql.push_str(" AND (created_at_millis, job_id) > (?, ?)");
        args.push(Value::Integer(millis(after.created_at_millis)));
        args.push(Value::Text(after.job_id.as_str().to_owned()));
    }
    if let Some(statuses) = &query.statuses {
        if statuses.is_empty() {
            return Ok(None);
        }
        let marks = vec!["?"; statuses.len()].join(", ");
        sql.push_str(&format!(" AND status IN ({marks})"));
        for s in statuses {
            args.push(Value::Text(status_name(*s)?));
        }
    }
    match &query.agent {
        None => {}
        Some(AgentMatch::Exact(label)) => {
            sql.push_str(" AND agent = ?");
            args.push(Value::Text(label.clone()));
        }
        Some(AgentMatch::Name(name)) => {
            // The bare name, or `name@…`: every string starting with `name@` sorts in
            // [`name@`, `nameA`) (`A` follows `@`), and only those do — no LIKE, so `%` and
            // `_` in names are literal.
            sql.push_str(" AND (agent = ? OR (agent >= ? AND agent < ?))");
            args.push(Value::Text(name.clone()));
            args.push(Value::Text(format!("{name}@")));
            args.push(Value::Text(format!("{name}A")));
        }
    }
    if let Some(t) = query.created_after_millis {
        sql.push_str(" AND created_at_millis > ?");
        args.push(Value::Integer(t));
    }
    if let Some(t) = query.created_before_millis {
        sql.push_str(" AND created_at_millis < ?");
        args.push(Value::Integer(t));
    }
    sql.push_str(" ORDER BY created_at_millis, job_id LIMIT ?");
    args.push(Value::Integer(i64::try_from(query.limit).unwrap_or(i64::MAX)));
    Ok(Some((sql, args)))
}

#[async_trait]
impl JobStore for SqliteJobStore {
    async fn insert(&self, record: JobRecord) -> Result<(), StoreError> {
        let encoded = Encoded::new(&record)?;
        self.shared
            .writer
            .write(move |conn| {
                let inserted = conn
                    .prepare_cached(&format!(
                        "INSERT INTO arcp_jobs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                         ON CONFLICT (job_id) DO NOTHING"
                    ))?
                    .execute(params_from_iter(encoded.values.iter()))?;
                if inserted == 0 {
                    return Err(ApplyError::Refused(StoreError::Conflict(format!(
                        "job {} is already stored",
                        record.job_id
                    ))));
                }
                Ok(())
            })
            .await
    }

    async fn update(&self, job_id: &JobId, update: JobUpdate) -> Result<(), StoreError> {
        let job_id = job_id.as_str().to_owned();
        let status = status_name(update.status)?;
        let seq = millis(update.last_event_seq.get());
        let ended = update.ended_at_millis.map(millis);
        self.shared
            .writer
            .write(move |conn| {
                conn.prepare_cached(
                    "UPDATE arcp_jobs SET status = ?2, last_event_seq = MAX(last_event_seq, ?3),
                         ended_at_millis = COALESCE(?4, ended_at_millis)
                     WHERE job_id = ?1",
                )?
                .execute(params![job_id, status, seq, ended])?;
                Ok(())
            })
            .await
    }

    async fn get(&self, job_id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        let job_id = job_id.as_str().to_owned();
        self.shared
            .readers
            .read(move |conn| {
                conn.prepare_cached(&format!("SELECT {COLUMNS} FROM arcp_jobs WHERE job_id = ?1"))
                    .and_then(|mut s| s.query_row([job_id], RawJob::from_row).optional())
                    .map_err(unavailable)?
                    .map(RawJob::decode)
                    .transpose()
            })
            .await
    }

    async fn remove(&self, job_id: &JobId) -> Result<(), StoreError> {
        let job_id = job_id.as_str().to_owned();
        self.shared
            .writer
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM arcp_jobs WHERE job_id = ?1")?.execute([job_id])?;
                Ok(())
            })
            .await
    }

    async fn list(&self, query: &JobQuery) -> Result<Vec<JobRecord>, StoreError> {
        let Some((sql, args)) = listing_sql(query)? else { return Ok(Vec::new()) };
        self.shared.readers.read(move |conn| query_jobs(conn, &sql, &args)).await
    }

    async fn purge_finished(&self, ended_before_millis: u64) -> Result<usize, StoreError> {
        let before = millis(ended_before_millis);
        self.shared
            .writer
            .write(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "DELETE FROM arcp_jobs WHERE ended_at_millis IS NOT NULL AND ended_at_millis <= ?1",
                    )?
                    .execute([before])?)
            })
            .await
    }

    async fn unfinished(&self, node: &str) -> Result<Vec<JobRecord>, StoreError> {
        let node = node.to_owned();
        self.shared
            .readers
            .read(move |conn| {
                query_jobs(
                    conn,
                    &format!(
                        "SELECT {COLUMNS} FROM arcp_jobs WHERE node = ?1 AND status IN ('pending', 'running')
                         ORDER BY created_at_millis, job_id"
                    ),
                    &[Value::Text(node)],
                )
            })
            .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_stored_by_their_wire_names() {
        let all = [
            JobStatus::Pending,
            JobStatus::Running,
            JobStatus::Success,
            JobStatus::Error,
            JobStatus::Cancelled,
            JobStatus::TimedOut,
        ];
        let names: Vec<String> = all.iter().map(|s| status_name(*s).unwrap()).collect();
        // `unfinished` and its partial index spell the non-terminal ones out.
        assert_eq!(names, ["pending", "running", "success", "error", "cancelled", "timed_out"]);
        for (s, n) in all.iter().zip(&names) {
            assert_eq!(status_from(n).unwrap(), *s);
        }
        assert!(status_from("paused").is_err());
    }
}
