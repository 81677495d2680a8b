//! [`JobContext`]: what an agent gets — typed emitters for every event kind, the
//! cancellation signal, lease enforcement, budgets, delegation, result streaming, and the
//! job's identity.
//!
//! Every authority-bearing operation goes through the context, which checks the lease first
//! (§9.3: expiry, budget, pattern): [`JobContext::authorize`] and its helpers
//! ([`JobContext::tool_call`], [`JobContext::fs_read`], [`JobContext::fs_write`],
//! [`JobContext::net_fetch`], [`JobContext::use_model`]) and [`JobContext::delegate`]. A
//! refusal is emitted as a `tool_result` error for the operation's `call_id` and returned to
//! the agent (routine, not fatal), except that using an expired lease ends the job with
//! `LEASE_EXPIRED` (§9.5).
//!
//! [`JobContext::emit`] validates what it is given the same way: a `tool_call` is authorised,
//! a `progress` must have `0 ≤ current ≤ total`, a `result_chunk` must follow §8.4 (see
//! `chunks`), a `metric` with a `cost.*` name decrements the budget (§9.6), and a raw
//! `delegate` event is refused (use [`JobContext::delegate`], which acts on it).

use std::sync::Arc;

use arcp_core::event::{
    ArtifactRef, ChunkEncoding, EventBody, JobEvent, Log, LogLevel, Metric, Progress, ResultChunk, Status, Thought,
    ToolCall, ToolResult,
};
use arcp_core::lease::{Budget, Capability, ExpiresAt, Lease};
use arcp_core::message::{LeaseConstraints, LeaseMap, Message};
use arcp_core::negotiate::Feature;
use arcp_core::{ErrorCode, ErrorPayload, JobId, TraceId};
use serde_json::Value;

use crate::Error;
use crate::job::Job;
use crate::lease_guard::{deny, payload};
use crate::runtime::Inner;

/// The agent's handle on its job. Cheap to clone.
#[derive(Clone)]
pub struct JobContext {
    rt: Arc<Inner>,
    job: Arc<Job>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext").field("job_id", &self.job.id).finish_non_exhaustive()
    }
}

impl JobContext {
    pub(crate) fn new(rt: Arc<Inner>, job: Arc<Job>) -> Self {
        JobContext { rt, job }
    }

    /// The job's id.
    pub fn job_id(&self) -> &JobId {
        &self.job.id
    }

    /// The job's trace id.
    pub fn trace_id(&self) -> &TraceId {
        &self.job.trace_id
    }

    /// The submitting principal.
    pub fn principal(&self) -> &str {
        &self.job.principal
    }

    /// The key-value store of the submitting principal ([`JobContext::principal`]): JSON
    /// values under UTF-8 keys (at most 512 bytes; values at most 1 MiB encoded), listed in
    /// key order by prefix with a cursor, each with an optional TTL that every `get` slides.
    /// Every job of one principal sees the same keys; no job ever sees another principal's.
    /// It lives in the runtime's [`KvStore`](crate::store::KvStore) (set with
    /// [`RuntimeBuilder::kv_store`](crate::RuntimeBuilder::kv_store); `arcp serve` keeps it
    /// in its `--store`; by default in memory, capped with least-recently-used eviction).
    pub fn kv(&self) -> Kv {
        Kv { store: self.rt.kv.clone(), clock: self.rt.clock.clone(), principal: self.job.principal.clone() }
    }

    /// The effective lease.
    pub fn lease(&self) -> &Lease {
        &self.job.lease
    }

    /// The lease's effective expiry, if it has one.
    pub fn expires_at(&self) -> Option<ExpiresAt> {
        self.job.expires_at
    }

    /// The remaining `cost.budget` counters (§9.6; empty when the lease has no budget).
    pub fn budget(&self) -> Budget {
        self.job.budget.lock().remaining().clone()
    }

    /// The delegating job, for a delegated child (§10).
    pub fn parent_job_id(&self) -> Option<&JobId> {
        self.job.parent.as_ref().map(|p| &p.id)
    }

    /// The parent's `delegate_id` for this job, for a delegated child (§10).
    pub fn delegate_id(&self) -> Option<&str> {
        self.job.delegate_id.as_deref()
    }

    /// Whether the job was cancelled (or timed out).
    pub fn is_cancelled(&self) -> bool {
        self.job.cancel.is_cancelled()
    }

    /// Resolves when the job is cancelled or times out.
    pub async fn cancelled(&self) {
        self.job.cancel.cancelled().await;
    }

    /// Checks an operation against the lease without performing or reporting anything (§9.3:
    /// expiry, then budget, then pattern). A query: unlike [`JobContext::authorize`] it emits
    /// nothing and never ends the job.
    pub fn check(&self, capability: &Capability, target: &str) -> Result<(), Error> {
        self.job.check_lease(capability, target).map(drop).map_err(|e| Error::Refused(payload(&e)))
    }

    /// Authorises one authority-bearing operation (§9.3) identified by `call_id`: checks
    /// expiry, budget and the capability's patterns, and returns the canonical target to
    /// operate on. A refusal (`PERMISSION_DENIED`, `BUDGET_EXHAUSTED`, `LEASE_EXPIRED`) is
    /// emitted as `tool_result {call_id, error}` and returned; after `LEASE_EXPIRED` the job
    /// is ended (§9.5), so the agent should stop.
    pub async fn authorize(&self, capability: &Capability, target: &str, call_id: &str) -> Result<String, Error> {
        match self.job.check_lease(capability, target) {
            Ok(canonical) => Ok(canonical),
            Err(e) => Err(deny(&self.rt, &self.job, call_id, payload(&e)).await),
        }
    }

    /// A fresh `call_` + ULID id for an operation.
    pub fn mint_call_id(&self) -> Result<String, Error> {
        crate::delegate::mint_id(&self.rt, "call_")
    }

    /// Authorises reading the file at `path` (`fs.read`); returns the canonical path.
    pub async fn fs_read(&self, path: &str, call_id: &str) -> Result<String, Error> {
        self.authorize(&Capability::FS_READ, path, call_id).await
    }

    /// Authorises writing the file at `path` (`fs.write`); returns the canonical path.
    pub async fn fs_write(&self, path: &str, call_id: &str) -> Result<String, Error> {
        self.authorize(&Capability::FS_WRITE, path, call_id).await
    }

    /// Authorises fetching `url` (`net.fetch`); returns the canonical URL.
    pub async fn net_fetch(&self, url: &str, call_id: &str) -> Result<String, Error> {
        self.authorize(&Capability::NET_FETCH, url, call_id).await
    }

    /// Authorises invoking `model` (`model.use`, §9.7); a lease without `model.use` grants no
    /// model. Returns the model identifier.
    pub async fn use_model(&self, model: &str, call_id: &str) -> Result<String, Error> {
        self.authorize(&Capability::MODEL_USE, model, call_id).await
    }

    /// Delegates to `agent` (§10): emits the `delegate` event, checks the parent lease
    /// (`agent.delegate` first, then the §9.4 subset rules against the remaining budget),
    /// starts the child job in this session and waits for it. Returns the child's inline
    /// result, `{"result_id", "result_size"}` if the child streamed its result, or the child's
    /// error. A refused delegation (e.g. `LEASE_SUBSET_VIOLATION`) creates no job and is
    /// reported as a `tool_result` error with `call_id` = the `delegate_id`. Cancelling this
    /// job cancels the child.
    pub async fn delegate(
        &self,
        agent: &str,
        input: Value,
        lease_request: Option<LeaseMap>,
        lease_constraints: Option<LeaseConstraints>,
    ) -> Result<Value, Error> {
        let request = crate::delegate::Request { agent: agent.to_owned(), input, lease_request, lease_constraints };
        crate::delegate::delegate(&self.rt, &self.job, request).await
    }

    /// Emits an event. Persisted before it is sent; fails once the job ended. Bodies are
    /// validated as the module docs say (a `tool_call` is authorised, `progress`,
    /// `result_chunk` and `delegate` are checked, `cost.*` metrics are accounted).
    pub async fn emit(&self, body: impl Into<EventBody>) -> Result<(), Error> {
        match body.into() {
            EventBody::ToolCall(call) => {
                self.authorize(&Capability::TOOL_CALL, &call.tool, &call.call_id).await?;
                self.emit_unchecked(call).await
            }
            EventBody::Progress(p) => {
                check_progress(&p)?;
                self.emit_unchecked(p).await
            }
            EventBody::ResultChunk(chunk) => self.emit_chunk(chunk).await,
            EventBody::Metric(metric) => {
                self.emit_unchecked(metric.clone()).await?;
                crate::budget::account(&self.rt, &self.job, &metric).await;
                Ok(())
            }
            EventBody::Delegate(_) => Err(Error::refused(
                ErrorCode::INVALID_REQUEST,
                "a delegate event is emitted by JobContext::delegate, which also starts the child",
            )),
            other => self.emit_unchecked(other).await,
        }
    }

    async fn emit_unchecked(&self, body: impl Into<EventBody>) -> Result<(), Error> {
        let event = JobEvent { ts: self.rt.now_timestamp(), body: body.into() };
        self.job.emit(&self.rt, Message::JobEvent(event)).await
    }

    /// Streams the next chunk of the job's result as text (§8.4, feature `result_chunk`); the
    /// runtime assigns `result_id` and `chunk_seq`. `more: false` marks the last chunk; the
    /// job's `job.result` then carries the `result_id` and the assembled size, and the agent
    /// must return `null`.
    pub async fn result_chunk_text(&self, text: &str, more: bool) -> Result<(), Error> {
        self.stream_chunk(text.to_owned(), ChunkEncoding::Utf8, more).await
    }

    /// [`JobContext::result_chunk_text`] for binary data (sent as padded base64).
    pub async fn result_chunk_bytes(&self, bytes: &[u8], more: bool) -> Result<(), Error> {
        self.stream_chunk(crate::chunks::base64_encode(bytes), ChunkEncoding::Base64, more).await
    }

    /// The streamed result's id, once the first chunk was emitted.
    pub async fn result_id(&self) -> Option<String> {
        self.job.stream.lock().await.result_id.clone()
    }

    /// The `summary` of the streamed result's `job.result`.
    pub async fn result_summary(&self, summary: impl Into<String>) {
        self.job.stream.lock().await.summary = Some(summary.into());
    }

    async fn stream_chunk(&self, data: String, encoding: ChunkEncoding, more: bool) -> Result<(), Error> {
        let (result_id, chunk_seq) = {
            let st = self.job.stream.lock().await;
            let id = match &st.result_id {
                Some(id) => id.clone(),
                None => crate::delegate::mint_id(&self.rt, "res_")?,
            };
            (id, st.next_seq())
        };
        self.emit_chunk(ResultChunk { result_id, chunk_seq, data, encoding, more }).await
    }

    /// Validates `chunk` against the job's stream (§8.4), emits it, and records it; all under
    /// the stream lock so concurrent writers cannot interleave.
    async fn emit_chunk(&self, chunk: ResultChunk) -> Result<(), Error> {
        if !self.job.owner.has_feature(&Feature::RESULT_CHUNK) {
            return Err(Error::refused(
                ErrorCode::INVALID_REQUEST,
                "the session did not negotiate result_chunk; return the result inline",
            ));
        }
        let mut st = self.job.stream.lock().await;
        let config = &self.rt.config;
        let admitted =
            st.admit(&chunk, config.max_result_chunk_bytes, config.max_result_bytes).map_err(Error::Refused)?;
        self.emit_unchecked(chunk).await?;
        st.commit(admitted);
        Ok(())
    }

    /// `log` at `level`.
    pub async fn log(&self, level: LogLevel, message: impl Into<String>) -> Result<(), Error> {
        self.emit(Log { level, message: message.into(), attributes: None }).await
    }

    /// `log` at `info`.
    pub async fn info(&self, message: impl Into<String>) -> Result<(), Error> {
        self.log(LogLevel::Info, message).await
    }

    /// `thought`.
    pub async fn thought(&self, text: impl Into<String>) -> Result<(), Error> {
        self.emit(Thought { text: text.into() }).await
    }

    /// `status` with a phase and optional message.
    pub async fn status(&self, phase: impl Into<String>, message: Option<String>) -> Result<(), Error> {
        self.emit(Status { message, ..Status::phase(phase) }).await
    }

    /// `progress`: `current` of `total` (`current > total` is refused with `INVALID_REQUEST`).
    /// Delivered only to sessions that negotiated `progress` (decision 23).
    pub async fn progress(&self, current: u64, total: Option<u64>, units: Option<&str>) -> Result<(), Error> {
        self.emit(Progress { units: units.map(str::to_owned), ..Progress::of(current, total) }).await
    }

    /// `metric`. A `cost.*` metric whose unit is a budgeted currency decrements the budget
    /// (§9.6) of this job and its ancestors, and may be followed by a `cost.budget.remaining`
    /// metric; exhaustion surfaces at the next authority-bearing operation.
    pub async fn metric(
        &self,
        name: impl Into<String>,
        value: serde_json::Number,
        unit: Option<&str>,
    ) -> Result<(), Error> {
        self.emit(Metric { name: name.into(), value, unit: unit.map(str::to_owned), dimensions: None }).await
    }

    /// `tool_call`, after authorising `tool.call` on `tool` (a refusal is emitted as a
    /// `tool_result` error for `call_id` instead, and returned).
    pub async fn tool_call(
        &self,
        tool: impl Into<String>,
        args: Option<Value>,
        call_id: impl Into<String>,
    ) -> Result<(), Error> {
        self.emit(ToolCall { tool: tool.into(), args, call_id: call_id.into() }).await
    }

    /// `tool_result`: a result or an error for `call_id`.
    pub async fn tool_result(
        &self,
        call_id: impl Into<String>,
        result: Result<Value, ErrorPayload>,
    ) -> Result<(), Error> {
        let (result, error) = match result {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e)),
        };
        self.emit(ToolResult { call_id: call_id.into(), result, error }).await
    }

    /// `artifact_ref`.
    pub async fn artifact_ref(&self, artifact: ArtifactRef) -> Result<(), Error> {
        self.emit(artifact).await
    }

    /// A vendor event (`x-vendor.*` kind) with a raw body.
    pub async fn vendor_event(&self, kind: &str, body: Value) -> Result<(), Error> {
        if !arcp_core::names::is_vendor_kind(kind) {
            return Err(Error::Protocol(arcp_core::Error::InvalidField {
                field: "kind",
                reason: format!("{kind:?} is not an x-vendor.* kind"),
            }));
        }
        self.emit(EventBody::Vendor { kind: kind.to_owned(), body }).await
    }
}

/// §8.2: `current` and `total` are not negative and `current ≤ total`.
fn check_progress(p: &Progress) -> Result<(), Error> {
    let invalid = |reason: String| Error::Protocol(arcp_core::Error::InvalidField { field: "progress", reason });
    let value = |n: &serde_json::Number| n.as_f64().unwrap_or(f64::NAN);
    let current = value(&p.current);
    if current.is_nan() || current < 0.0 {
        return Err(invalid(format!("current {} is negative", p.current)));
    }
    if let Some(total) = &p.total {
        let t = value(total);
        if t.is_nan() || t < 0.0 {
            return Err(invalid(format!("total {total} is negative")));
        }
        if current > t {
            return Err(invalid(format!("current {} exceeds total {total}", p.current)));
        }
    }
    Ok(())
}

/// A principal's key-value store, from [`JobContext::kv`]. Cheap to clone; times come from
/// the runtime's clock.
#[derive(Clone)]
pub struct Kv {
    store: Arc<dyn crate::store::KvStore>,
    clock: Arc<dyn arcp_core::Clock>,
    principal: String,
}

impl std::fmt::Debug for Kv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kv").field("principal", &self.principal).finish_non_exhaustive()
    }
}

impl Kv {
    /// The principal whose keys these are.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// The value under `key`, if present and not expired (sliding its TTL).
    pub async fn get(&self, key: &str) -> Result<Option<Value>, crate::store::KvError> {
        let now = self.clock.now_millis();
        Ok(self.store.get(&self.principal, key, now).await?.and_then(|e| e.value))
    }

    /// The entry under `key` (value and expiry), if present and not expired (sliding its TTL).
    pub async fn get_entry(&self, key: &str) -> Result<Option<crate::store::KvEntry>, crate::store::KvError> {
        self.store.get(&self.principal, key, self.clock.now_millis()).await
    }

    /// Stores `value` under `key`, expiring `ttl` after its last `set` or `get` (`None`:
    /// never).
    pub async fn set(
        &self,
        key: &str,
        value: Value,
        ttl: Option<std::time::Duration>,
    ) -> Result<(), crate::store::KvError> {
        self.store.set(&self.principal, key, value, ttl, self.clock.now_millis()).await
    }

    /// Removes `key`; `true` if a live entry was removed.
    pub async fn delete(&self, key: &str) -> Result<bool, crate::store::KvError> {
        self.store.delete(&self.principal, key, self.clock.now_millis()).await
    }

    /// A page of entries matching `query` (prefix, cursor, limit, keys only), in key order.
    pub async fn list(&self, query: crate::store::KvQuery) -> Result<crate::store::KvPage, crate::store::KvError> {
        self.store.list(&self.principal, query, self.clock.now_millis()).await
    }
}
