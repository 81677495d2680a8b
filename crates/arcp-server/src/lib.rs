//! `arcp-server`: the ARCP session and job runtime.
//!
//! Host named, versioned [`Agent`]s in a [`Runtime`] and serve connections over any
//! [`transport::Transport`] (WebSocket, stdio, in-memory). The runtime implements the
//! handshake and bearer auth, jobs and their events with a session-scoped `event_seq` that is
//! persisted before it is sent, resume with replay and re-attachment of running jobs,
//! idempotent submits, and cancellation. State that must survive lives behind the
//! [`store`] traits. Wire types come from `arcp-core`; this crate converts at that boundary.

mod ack;
mod agent;
mod auth;
mod budget;
pub mod builtin;
mod caps;
mod chunks;
mod config;
mod connection;
mod context;
mod delegate;
mod digest;
mod error;
mod heartbeat;
mod job;
mod lease_guard;
mod lifecycle;
mod limit;
mod listing;
pub mod observe;
mod recovery;
mod resume;
mod runtime;
mod session;
mod shutdown;
pub mod store;
mod submit;
mod subscribe;
pub mod transport;
mod vendor;

pub use agent::{Agent, AgentError, AgentRegistry};
pub use auth::{BearerVerifier, Identity, StaticBearerVerifier};
pub use config::RuntimeConfig;
pub use context::{JobContext, Kv};
pub use error::Error;
pub use lifecycle::{JobLifecycle, LIFECYCLE_CAPACITY, LifecycleKind};
pub use limit::{SubmitLimiter, Unlimited};
pub use observe::{NoObserver, Observer};
pub use recovery::RecoveryReport;
pub use runtime::{Runtime, RuntimeBuilder};
pub use shutdown::ShutdownReport;
pub use subscribe::{SamePrincipalOnly, SubscribeDecision, SubscribeRequest, SubscriptionPolicy};
pub use vendor::{VendorHandler, VendorHandlers, VendorRequest};
