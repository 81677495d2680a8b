//! Node liveness for jobs orphaned by a dead node: heartbeats in `arcp_nodes`, and
//! one-statement claims so exactly one live node handles a dead node's unfinished jobs.
//! The protocol is described in the [module docs](super#node-liveness).

use super::jobs::{COLUMNS, UNFINISHED, decode};
use super::{PgStore, db_error, to_i64};
use crate::store::{JobRecord, StoreError};

/// Whether the `arcp_nodes` row `d` may be adopted with cut-off `$3`: its heartbeat is older,
/// and nobody adopted it or its adopter is itself dead (or gone).
const ADOPTABLE: &str = "d.heartbeat_at_millis < $3 AND (d.adopted_by IS NULL OR NOT EXISTS (
        SELECT 1 FROM arcp_nodes a WHERE a.node_id = d.adopted_by AND a.heartbeat_at_millis >= $3))";

impl PgStore {
    /// Records that `node_id` is alive at `now_millis` (never moves its heartbeat back; clears
    /// an adoption of it).
    pub async fn heartbeat(&self, node_id: &str, now_millis: u64) -> Result<(), StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO arcp_nodes AS n (node_id, heartbeat_at_millis) VALUES ($1, $2) \
                 ON CONFLICT (node_id) DO UPDATE \
                 SET heartbeat_at_millis = GREATEST(n.heartbeat_at_millis, EXCLUDED.heartbeat_at_millis), \
                     adopted_by = NULL",
            )
            .await
            .map_err(db_error)?;
        client.execute(&statement, &[&node_id, &to_i64(now_millis)]).await.map_err(db_error)?;
        Ok(())
    }

    /// The nodes to adopt at `cutoff_millis`: a heartbeat before it, and no live adopter
    /// (see the [module docs](super#node-liveness)), by id.
    pub async fn dead_nodes(&self, cutoff_millis: u64) -> Result<Vec<String>, StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT d.node_id FROM arcp_nodes d WHERE {} ORDER BY d.node_id",
                ADOPTABLE.replace("$3", "$1")
            ))
            .await
            .map_err(db_error)?;
        let rows = client.query(&statement, &[&to_i64(cutoff_millis)]).await.map_err(db_error)?;
        rows.iter().map(|r| r.try_get(0).map_err(db_error)).collect()
    }

    /// Claims `dead_node` for `by_node` if it is still adoptable at `cutoff_millis` (pass the
    /// cut-off given to [`dead_nodes`](Self::dead_nodes), not the current time). `true`: the
    /// caller won and now ends the dead node's unfinished jobs (they stay recorded under
    /// `dead_node`). `false`: another node adopted it, it heartbeated again, or it had no
    /// unfinished jobs (then it is forgotten). One statement: of racing callers at most one
    /// gets `true`.
    pub async fn adopt(&self, dead_node: &str, by_node: &str, cutoff_millis: u64) -> Result<bool, StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "WITH target AS (
                    SELECT d.node_id FROM arcp_nodes d WHERE d.node_id = $1 AND {ADOPTABLE} FOR UPDATE
                 ), busy AS (
                    SELECT EXISTS (SELECT 1 FROM arcp_jobs WHERE node = $1 AND {UNFINISHED}) AS has_unfinished
                 ), forgotten AS (
                    DELETE FROM arcp_nodes WHERE node_id IN (SELECT node_id FROM target)
                        AND NOT (SELECT has_unfinished FROM busy)
                 ), claimed AS (
                    UPDATE arcp_nodes SET adopted_by = $2 WHERE node_id IN (SELECT node_id FROM target)
                        AND (SELECT has_unfinished FROM busy)
                    RETURNING 1
                 )
                 SELECT EXISTS (SELECT 1 FROM claimed)"
            ))
            .await
            .map_err(db_error)?;
        let row =
            client.query_one(&statement, &[&dead_node, &by_node, &to_i64(cutoff_millis)]).await.map_err(db_error)?;
        row.try_get(0).map_err(db_error)
    }

    /// Takes over `dead_node` if it is still adoptable at `cutoff_millis`: deletes its
    /// `arcp_nodes` row and moves its `pending`/`running` jobs to `by_node`, returning them
    /// (in key order) so the caller ends them as its own. One statement: of racing adopters
    /// exactly one gets the jobs, the others an empty list (as does a node that heartbeated
    /// again in time).
    pub async fn adopt_orphans(
        &self,
        dead_node: &str,
        by_node: &str,
        cutoff_millis: u64,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let client = self.shared.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "WITH target AS (
                    SELECT d.node_id FROM arcp_nodes d WHERE d.node_id = $1 AND {ADOPTABLE} FOR UPDATE
                 ), dead AS (
                    DELETE FROM arcp_nodes WHERE node_id IN (SELECT node_id FROM target) RETURNING node_id
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
