//! [`JobContext`]: what an agent gets — typed emitters for every event kind, the
//! cancellation signal, the lease check, and the job's identity.

use std::sync::Arc;

use arcp_core::event::{
    ArtifactRef, EventBody, JobEvent, Log, LogLevel, Metric, Progress, Status, Thought, ToolCall, ToolResult,
};
use arcp_core::lease::{Capability, Lease};
use arcp_core::message::Message;
use arcp_core::{ErrorPayload, JobId, TraceId};
use serde_json::Value;

use crate::Error;
use crate::job::Job;
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

    /// The effective lease.
    pub fn lease(&self) -> &Lease {
        &self.job.lease
    }

    /// Whether the job was cancelled (or timed out).
    pub fn is_cancelled(&self) -> bool {
        self.job.cancel.is_cancelled()
    }

    /// Resolves when the job is cancelled or times out.
    pub async fn cancelled(&self) {
        self.job.cancel.cancelled().await;
    }

    /// Checks an authority-bearing operation against the lease (expiry, then pattern).
    pub fn check(&self, capability: &Capability, target: &str) -> Result<(), Error> {
        self.job
            .lease
            .check_operation(capability, target, self.job.expires_at.as_ref(), None, self.rt.now_millis())
            .map_err(Error::Protocol)
    }

    /// Emits an event of any kind. Persisted before it is sent; fails once the job ended.
    pub async fn emit(&self, body: impl Into<EventBody>) -> Result<(), Error> {
        let event = JobEvent { ts: self.rt.now_timestamp(), body: body.into() };
        self.job.emit(&self.rt, Message::JobEvent(event)).await
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

    /// `progress`: `current` of `total`. Delivered only to sessions that negotiated it.
    pub async fn progress(&self, current: u64, total: Option<u64>, units: Option<&str>) -> Result<(), Error> {
        if let Some(t) = total
            && current > t
        {
            return Err(Error::Protocol(arcp_core::Error::InvalidField {
                field: "progress",
                reason: format!("current {current} exceeds total {t}"),
            }));
        }
        self.emit(Progress { units: units.map(str::to_owned), ..Progress::of(current, total) }).await
    }

    /// `metric`.
    pub async fn metric(
        &self,
        name: impl Into<String>,
        value: serde_json::Number,
        unit: Option<&str>,
    ) -> Result<(), Error> {
        self.emit(Metric { name: name.into(), value, unit: unit.map(str::to_owned), dimensions: None }).await
    }

    /// `tool_call`.
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
