//! The agent-facing API (decision 14): the [`Agent`] trait (with a blanket impl for async
//! closures), [`AgentError`], and the versioned [`AgentRegistry`] (§7.5).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use arcp_core::agent::{AgentEntry, AgentRef};
use arcp_core::{ErrorCode, ErrorPayload};
use async_trait::async_trait;
use serde_json::Value;

use crate::context::JobContext;

/// How an agent fails: becomes the job's `job.error` (`final_status: "error"`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {}", .0.code, .0.message)]
pub struct AgentError(pub ErrorPayload);

impl AgentError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AgentError(ErrorPayload::new(code, message))
    }

    /// `INTERNAL_ERROR` (retryable).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::INTERNAL_ERROR, message)
    }

    /// `INVALID_REQUEST`: the input was not what the agent accepts.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::INVALID_REQUEST, message)
    }

    /// Attaches `details`.
    pub fn with_details(self, details: Value) -> Self {
        AgentError(self.0.with_details(details))
    }
}

impl From<crate::Error> for AgentError {
    fn from(e: crate::Error) -> Self {
        AgentError(e.to_payload())
    }
}

impl From<arcp_core::Error> for AgentError {
    fn from(e: arcp_core::Error) -> Self {
        AgentError(e.to_payload())
    }
}

/// An agent: receives the job's context and input, returns the result.
///
/// Cancellation and timeouts are cooperative: watch [`JobContext::cancelled`]. An agent that
/// ignores it is dropped after the cancel grace period (or at `max_runtime_sec`).
#[async_trait]
pub trait Agent: Send + Sync + 'static {
    /// Runs one job.
    async fn run(&self, ctx: JobContext, input: Value) -> Result<Value, AgentError>;
}

#[async_trait]
impl<F, Fut> Agent for F
where
    F: Fn(JobContext, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Value, AgentError>> + Send + 'static,
{
    async fn run(&self, ctx: JobContext, input: Value) -> Result<Value, AgentError> {
        self(ctx, input).await
    }
}

/// An agent resolved from a reference.
#[derive(Clone)]
pub(crate) struct Resolved {
    /// `name@version`, or the bare name for an unversioned agent.
    pub(crate) label: String,
    pub(crate) agent: Arc<dyn Agent>,
}

#[derive(Default)]
struct Versions {
    unversioned: Option<Arc<dyn Agent>>,
    versions: Vec<(String, Arc<dyn Agent>)>,
    default: Option<String>,
}

/// Named, versioned agents. Bare names resolve to the default version if one is set, else
/// the unversioned agent, else the first version registered.
#[derive(Default)]
pub struct AgentRegistry {
    order: Vec<String>,
    agents: HashMap<String, Versions>,
}

impl std::fmt::Debug for AgentRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentRegistry").field("agents", &self.order).finish()
    }
}

impl AgentRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&mut self, name: &str) -> Result<&mut Versions, arcp_core::Error> {
        AgentRef::parse(name)?;
        if !self.agents.contains_key(name) {
            self.order.push(name.to_owned());
        }
        Ok(self.agents.entry(name.to_owned()).or_default())
    }

    /// Registers an unversioned agent under `name` (replacing an earlier one).
    pub fn register(&mut self, name: &str, agent: impl Agent) -> Result<&mut Self, arcp_core::Error> {
        self.entry(name)?.unversioned = Some(Arc::new(agent));
        Ok(self)
    }

    /// Registers `name@version` (replacing an earlier registration of that version).
    pub fn register_version(
        &mut self,
        name: &str,
        version: &str,
        agent: impl Agent,
    ) -> Result<&mut Self, arcp_core::Error> {
        AgentRef::new(name, Some(version))?;
        let entry = self.entry(name)?;
        let agent: Arc<dyn Agent> = Arc::new(agent);
        match entry.versions.iter_mut().find(|(v, _)| v == version) {
            Some(slot) => slot.1 = agent,
            None => entry.versions.push((version.to_owned(), agent)),
        }
        Ok(self)
    }

    /// Sets the version a bare `name` resolves to.
    pub fn set_default(&mut self, name: &str, version: &str) -> Result<&mut Self, arcp_core::Error> {
        self.entry(name)?.default = Some(version.to_owned());
        Ok(self)
    }

    pub(crate) fn resolve(&self, agent: &AgentRef) -> Result<Resolved, ErrorPayload> {
        let not_available = || {
            ErrorPayload::new(ErrorCode::AGENT_NOT_AVAILABLE, format!("Agent \"{}\" is not registered", agent.name()))
        };
        let version_not_available = |v: &str| {
            ErrorPayload::new(
                ErrorCode::AGENT_VERSION_NOT_AVAILABLE,
                format!("Agent \"{}@{v}\" is not registered", agent.name()),
            )
        };
        let entry = self.agents.get(agent.name()).ok_or_else(not_available)?;
        let versioned = |v: &str| entry.versions.iter().find(|(have, _)| have == v).map(|(_, a)| a.clone());
        let label = |v: &str| format!("{}@{v}", agent.name());
        match agent.version() {
            Some(v) => {
                versioned(v).map(|a| Resolved { label: label(v), agent: a }).ok_or_else(|| version_not_available(v))
            }
            None => {
                if let Some(d) = &entry.default {
                    return versioned(d)
                        .map(|a| Resolved { label: label(d), agent: a })
                        .ok_or_else(|| version_not_available(d));
                }
                if let Some(a) = &entry.unversioned {
                    return Ok(Resolved { label: agent.name().to_owned(), agent: a.clone() });
                }
                entry
                    .versions
                    .first()
                    .map(|(v, a)| Resolved { label: label(v), agent: a.clone() })
                    .ok_or_else(not_available)
            }
        }
    }

    /// The rich (v1.1) inventory: `{name, versions, default?}` in registration order.
    pub fn inventory(&self) -> Vec<AgentEntry> {
        self.order
            .iter()
            .filter_map(|name| {
                let e = self.agents.get(name)?;
                let versions: Vec<String> = e.versions.iter().map(|(v, _)| v.clone()).collect();
                let default = e.default.clone().filter(|d| versions.contains(d));
                Some(AgentEntry { name: name.clone(), versions, default })
            })
            .collect()
    }

    /// The flat (v1.0) inventory: agent names in registration order.
    pub fn names(&self) -> Vec<String> {
        self.order.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn noop(_: JobContext, input: Value) -> Result<Value, AgentError> {
        Ok(input)
    }

    fn r(s: &str) -> AgentRef {
        AgentRef::parse(s).unwrap()
    }

    #[test]
    fn resolution_follows_default_then_unversioned_then_first() {
        let mut reg = AgentRegistry::new();
        reg.register_version("summarizer", "1.0.0", noop).unwrap();
        reg.register_version("summarizer", "2.0.0", noop).unwrap();
        assert_eq!(reg.resolve(&r("summarizer")).map(|x| x.label).unwrap(), "summarizer@1.0.0");
        reg.set_default("summarizer", "2.0.0").unwrap();
        assert_eq!(reg.resolve(&r("summarizer")).map(|x| x.label).unwrap(), "summarizer@2.0.0");
        assert_eq!(reg.resolve(&r("summarizer@1.0.0")).map(|x| x.label).unwrap(), "summarizer@1.0.0");
        let e = reg.resolve(&r("summarizer@9.9.9")).err().unwrap();
        assert_eq!(e.code, ErrorCode::AGENT_VERSION_NOT_AVAILABLE);
        assert!(!e.retryable);
        assert_eq!(reg.resolve(&r("nosuch")).err().unwrap().code, ErrorCode::AGENT_NOT_AVAILABLE);
        reg.register("counter", noop).unwrap();
        assert_eq!(reg.resolve(&r("counter")).map(|x| x.label).unwrap(), "counter");
        let inv = reg.inventory();
        assert_eq!(inv[0].default.as_deref(), Some("2.0.0"));
        assert_eq!(inv[1].versions, Vec::<String>::new());
        assert!(reg.register("Bad Name", noop).is_err());
    }
}
