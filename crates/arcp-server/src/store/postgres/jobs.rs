//! [`PgJobStore`]: job records in `arcp_jobs`, one row per job; a listing is one keyset
//! query over the `(principal, created_at_millis, job_id)` index.

use std::sync::Arc;

use arcp_core::message::{JobStatus, LeaseConstraints, LeaseMap};
use arcp_core::{EventSeq, JobId, SessionId, TraceId};
use async_trait::async_trait;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{Shared, corrupt, db_error, to_i64, to_u64};
use crate::store::{AgentMatch, JobQuery, JobRecord, JobStore, JobUpdate, StoreError};

/// The columns [`decode`] reads, in order.
pub(super) const COLUMNS: &str = "job_id, principal, session_id, agent, status, lease, lease_constraints, \
     parent_job_id, created_at_millis, trace_id, last_event_seq, ended_at_millis, node";

/// The `status` values of unfinished jobs, as in the partial index.
pub(super) const UNFINISHED: &str = "status IN ('pending', 'running')";

/// A PostgreSQL [`JobStore`] (from [`PgStore::job_store`](super::PgStore::job_store)).
/// Unbounded: records stay until [`JobStore::purge_finished`] or [`JobStore::remove`].
/// Lease, constraints and status are kept as the JSON serde writes.
#[derive(Clone)]
pub struct PgJobStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PgJobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgJobStore").finish_non_exhaustive()
    }
}

impl PgJobStore {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        PgJobStore { shared }
    }
}

#[async_trait]
impl JobStore for PgJobStore {
    async fn insert(&self, record: JobRecord) -> Result<(), StoreError> {
        let lease = encode("lease", &record.lease)?;
        let constraints = record.lease_constraints.as_ref().map(|c| encode("lease_constraints", c)).transpose()?;
        let status = status_text(record.status)?;
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO arcp_jobs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            ))
            .await
            .map_err(db_error)?;
        client
            .execute(
                &statement,
                &[
                    &record.job_id.as_str(),
                    &record.principal,
                    &record.session_id.as_str(),
                    &record.agent,
                    &status,
                    &lease,
                    &constraints,
                    &record.parent_job_id.as_ref().map(JobId::as_str),
                    &to_i64(record.created_at_millis),
                    &record.trace_id.as_ref().map(TraceId::as_str),
                    &to_i64(record.last_event_seq.get()),
                    &record.ended_at_millis.map(to_i64),
                    &record.node,
                ],
            )
            .await
            .map_err(|e| match db_error(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("job {} is already stored", record.job_id)),
                other => other,
            })?;
        Ok(())
    }

    async fn update(&self, job_id: &JobId, update: JobUpdate) -> Result<(), StoreError> {
        let status = status_text(update.status)?;
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(
                "UPDATE arcp_jobs SET status = $2, last_event_seq = GREATEST(last_event_seq, $3), \
                 ended_at_millis = COALESCE($4, ended_at_millis) WHERE job_id = $1",
            )
            .await
            .map_err(db_error)?;
        client
            .execute(
                &statement,
                &[&job_id.as_str(), &status, &to_i64(update.last_event_seq.get()), &update.ended_at_millis.map(to_i64)],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn get(&self, job_id: &JobId) -> Result<Option<JobRecord>, StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(&format!("SELECT {COLUMNS} FROM arcp_jobs WHERE job_id = $1"))
            .await
            .map_err(db_error)?;
        client.query_opt(&statement, &[&job_id.as_str()]).await.map_err(db_error)?.as_ref().map(decode).transpose()
    }

    async fn remove(&self, job_id: &JobId) -> Result<(), StoreError> {
        let client = self.shared.client().await?;
        let statement = client.prepare_cached("DELETE FROM arcp_jobs WHERE job_id = $1").await.map_err(db_error)?;
        client.execute(&statement, &[&job_id.as_str()]).await.map_err(db_error)?;
        Ok(())
    }

    async fn list(&self, query: &JobQuery) -> Result<Vec<JobRecord>, StoreError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let (sql, params) = list_sql(query)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let client = self.shared.client().await?;
        let statement = client.prepare_cached(&sql).await.map_err(db_error)?;
        let rows = client.query(&statement, &refs).await.map_err(db_error)?;
        rows.iter().map(decode).collect()
    }

    async fn purge_finished(&self, ended_before_millis: u64) -> Result<usize, StoreError> {
        let client = self.shared.client().await?;
        let statement =
            client.prepare_cached("DELETE FROM arcp_jobs WHERE ended_at_millis <= $1").await.map_err(db_error)?;
        let n = client.execute(&statement, &[&to_i64(ended_before_millis)]).await.map_err(db_error)?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    async fn unfinished(&self, node: &str) -> Result<Vec<JobRecord>, StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM arcp_jobs WHERE node = $1 AND {UNFINISHED} ORDER BY created_at_millis, job_id"
            ))
            .await
            .map_err(db_error)?;
        let rows = client.query(&statement, &[&node]).await.map_err(db_error)?;
        rows.iter().map(decode).collect()
    }
}

/// A parameter of a listing query.
type Param = Box<dyn ToSql + Sync + Send>;

/// The listing query for `query`: exactly the filters of [`JobQuery::matches`], in key
/// order, limited. Only the filters present become conditions (better plans than
/// `$n IS NULL OR …`); the statement text depends only on which are present, so the
/// per-connection statement cache stays small.
fn list_sql(query: &JobQuery) -> Result<(String, Vec<Param>), StoreError> {
    let mut sql = format!("SELECT {COLUMNS} FROM arcp_jobs WHERE principal = $1");
    let mut params: Vec<Param> = vec![Box::new(query.principal.clone())];
    let next = |params: &mut Vec<Param>, p: Param| {
        params.push(p);
        params.len()
    };
    if let Some(statuses) = &query.statuses {
        let texts = statuses.iter().map(|s| status_text(*s)).collect::<Result<Vec<String>, _>>()?;
        let n = next(&mut params, Box::new(texts));
        sql.push_str(&format!(" AND status = ANY(${n}::text[])"));
    }
    match &query.agent {
        Some(AgentMatch::Exact(exact)) => {
            let n = next(&mut params, Box::new(exact.clone()));
            sql.push_str(&format!(" AND agent = ${n}"));
        }
        Some(AgentMatch::Name(name)) => {
            let n = next(&mut params, Box::new(name.clone()));
            let m = next(&mut params, Box::new(format!("{}@%", like_escape(name))));
            sql.push_str(&format!(" AND (agent = ${n} OR agent LIKE ${m} ESCAPE '\\')"));
        }
        None => {}
    }
    if let Some(after) = query.created_after_millis {
        let n = next(&mut params, Box::new(after));
        sql.push_str(&format!(" AND created_at_millis > ${n}"));
    }
    if let Some(before) = query.created_before_millis {
        let n = next(&mut params, Box::new(before));
        sql.push_str(&format!(" AND created_at_millis < ${n}"));
    }
    if let Some(key) = &query.after {
        let n = next(&mut params, Box::new(to_i64(key.created_at_millis)));
        let m = next(&mut params, Box::new(key.job_id.as_str().to_owned()));
        sql.push_str(&format!(" AND (created_at_millis, job_id) > (${n}, ${m})"));
    }
    let n = next(&mut params, Box::new(to_i64(query.limit)));
    sql.push_str(&format!(" ORDER BY created_at_millis, job_id LIMIT ${n}"));
    Ok((sql, params))
}

/// Escapes `\`, `%` and `_` for a `LIKE … ESCAPE '\'` pattern.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A status as its wire name (`pending`, `timed_out`, …).
pub(super) fn status_text(status: JobStatus) -> Result<String, StoreError> {
    match serde_json::to_value(status) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        other => Err(StoreError::Unavailable(format!("cannot encode job status {status:?}: {other:?}"))),
    }
}

fn encode<T: serde::Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Unavailable(format!("cannot encode {what}: {e}")))
}

/// A stored record (the columns of [`COLUMNS`]).
pub(super) fn decode(row: &Row) -> Result<JobRecord, StoreError> {
    let bad = |e: &dyn std::fmt::Display| corrupt("arcp_jobs", e);
    let text = |i: usize| -> Result<&str, StoreError> { row.try_get(i).map_err(db_error) };
    let opt_text = |i: usize| -> Result<Option<&str>, StoreError> { row.try_get(i).map_err(db_error) };
    let int = |i: usize| -> Result<i64, StoreError> { row.try_get(i).map_err(db_error) };
    let status: JobStatus =
        serde_json::from_value(serde_json::Value::String(text(4)?.to_owned())).map_err(|e| bad(&e))?;
    let lease: LeaseMap = serde_json::from_str(text(5)?).map_err(|e| bad(&e))?;
    let lease_constraints: Option<LeaseConstraints> =
        opt_text(6)?.map(serde_json::from_str).transpose().map_err(|e| bad(&e))?;
    let last_event_seq = int(10)?;
    Ok(JobRecord {
        job_id: JobId::parse(text(0)?).map_err(|e| bad(&e))?,
        principal: text(1)?.to_owned(),
        session_id: SessionId::parse(text(2)?).map_err(|e| bad(&e))?,
        agent: text(3)?.to_owned(),
        status,
        lease,
        lease_constraints,
        parent_job_id: opt_text(7)?.map(JobId::parse).transpose().map_err(|e| bad(&e))?,
        created_at_millis: to_u64(int(8)?),
        trace_id: opt_text(9)?.map(TraceId::parse).transpose().map_err(|e| bad(&e))?,
        last_event_seq: EventSeq::new(to_u64(last_event_seq))
            .ok_or_else(|| bad(&format!("last_event_seq {last_event_seq}")))?,
        ended_at_millis: row.try_get::<_, Option<i64>>(11).map_err(db_error)?.map(to_u64),
        node: text(12)?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(like_escape("a_b%c\\d"), "a\\_b\\%c\\\\d");
        assert_eq!(like_escape("sum"), "sum");
    }

    #[test]
    fn statuses_use_their_wire_names() {
        assert_eq!(status_text(JobStatus::TimedOut).ok().as_deref(), Some("timed_out"));
        assert_eq!(status_text(JobStatus::Pending).ok().as_deref(), Some("pending"));
    }
}
