//! Node liveness for jobs orphaned by a dead node: heartbeats in `arcp_nodes`, and the
//! one-statement adoption of a dead node's unfinished jobs.
//!
//! The protocol, for a runtime on a shared database:
//!
//! 1. every node calls [`PgStore::heartbeat`] periodically (say every 10 s);
//! 2. every node periodically asks [`PgStore::dead_nodes`] for nodes whose heartbeat is older
//!    than a cut-off (say `now - 60 s`, well above the heartbeat period and the clock skew
//!    between nodes: times are the nodes' wall clocks);
//! 3. for each, it calls [`PgStore::adopt_orphans`]; exactly one caller gets the dead node's
//!    unfinished jobs (now recorded as its own) and ends them with a durable terminal error,
//!    as after its own restart ([`JobStore::unfinished`](crate::store::JobStore::unfinished)
//!    would list them on its next start if it died before).
//!
//! A node that never sent a heartbeat is never presumed dead (its own restart recovers its
//! jobs). A node presumed dead that comes back simply heartbeats again; its adopted jobs are
//! no longer its own in the store.

use super::jobs::{COLUMNS, UNFINISHED, decode};
use super::{PgStore, db_error, to_i64};
use crate::store::{JobRecord, StoreError};

impl PgStore {
    /// Records that `node_id` is alive at `now_millis` (never moves its heartbeat back).
    pub async fn heartbeat(&self, node_id: &str, now_millis: u64) -> Result<(), StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO arcp_nodes AS n (node_id, heartbeat_at_millis) VALUES ($1, $2) \
                 ON CONFLICT (node_id) DO UPDATE \
                 SET heartbeat_at_millis = GREATEST(n.heartbeat_at_millis, EXCLUDED.heartbeat_at_millis)",
            )
            .await
            .map_err(db_error)?;
        client.execute(&statement, &[&node_id, &to_i64(now_millis)]).await.map_err(db_error)?;
        Ok(())
    }

    /// The nodes whose last heartbeat is before `cutoff_millis`, by id.
    pub async fn dead_nodes(&self, cutoff_millis: u64) -> Result<Vec<String>, StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached("SELECT node_id FROM arcp_nodes WHERE heartbeat_at_millis < $1 ORDER BY node_id")
            .await
            .map_err(db_error)?;
        let rows = client.query(&statement, &[&to_i64(cutoff_millis)]).await.map_err(db_error)?;
        rows.iter().map(|r| r.try_get(0).map_err(db_error)).collect()
    }

    /// Atomically takes over `dead_node`, if its heartbeat is still before `cutoff_millis`:
    /// deletes its `arcp_nodes` row and moves its `pending`/`running` jobs to `by_node`,
    /// returning them (in key order) so the caller ends them. One statement: of racing
    /// adopters exactly one gets the jobs, the others an empty list (as does a node that
    /// heartbeated again in time).
    pub async fn adopt_orphans(
        &self,
        dead_node: &str,
        by_node: &str,
        cutoff_millis: u64,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "WITH dead AS (
                    DELETE FROM arcp_nodes WHERE node_id = $1 AND heartbeat_at_millis < $3 RETURNING node_id
                 ), moved AS (
                    UPDATE arcp_jobs SET node = $2 FROM dead
                    WHERE arcp_jobs.node = dead.node_id AND {UNFINISHED}
                    RETURNING arcp_jobs.*
                 )
                 SELECT {COLUMNS} FROM moved ORDER BY created_at_millis, job_id"
            ))
            .await
            .map_err(db_error)?;
        let rows = client.query(&statement, &[&dead_node, &by_node, &to_i64(cutoff_millis)]).await.map_err(db_error)?;
        rows.iter().map(decode).collect()
    }
}
