//! Vendor message types (§15): handlers for `x-vendor.<vendor>.<name>` messages.
//!
//! Classification of an inbound vendor type (the same rules as the TS SDK):
//!
//! | situation | outcome |
//! |---|---|
//! | a handler is registered for the type | the handler runs; its reply (if any) is sent |
//! | no handler, `extensions.optional: true` | dropped silently |
//! | no handler, `optional` absent or false | `session.error INVALID_REQUEST`, close |
//!
//! Handlers run on the connection's reader, in order with the session's other messages. A
//! reply is a vendor message without `event_seq` (not persisted, not replayed); a handler
//! error becomes `session.error` with its code and closes the transport (decision 9), like
//! any session-level refusal. Vendor `extensions` keys on core messages need no handler:
//! the message is understood, so they are ignored (§5.1). Vendor *event kinds* are a job's
//! business ([`JobContext::vendor_event`](crate::JobContext::vendor_event)) and pass through
//! with their body verbatim.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use arcp_core::message::VendorMessage;
use arcp_core::{ErrorPayload, MessageId, SessionId};
use async_trait::async_trait;

/// One inbound vendor message, with who sent it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VendorRequest {
    /// The authenticated principal of the session.
    pub principal: String,
    /// The session it arrived on.
    pub session_id: SessionId,
    /// The envelope's `id`.
    pub id: MessageId,
    /// The type and the verbatim payload.
    pub message: VendorMessage,
}

/// Handles one vendor message type.
#[async_trait]
pub trait VendorHandler: Send + Sync + 'static {
    /// Handles `request`. `Ok(Some(reply))` sends `reply` on the session (its type must be a
    /// vendor name, otherwise it is dropped with a warning); `Err(e)` ends the transport with
    /// `session.error e`.
    async fn handle(&self, request: VendorRequest) -> Result<Option<VendorMessage>, ErrorPayload>;
}

#[async_trait]
impl<F, Fut> VendorHandler for F
where
    F: Fn(VendorRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<VendorMessage>, ErrorPayload>> + Send + 'static,
{
    async fn handle(&self, request: VendorRequest) -> Result<Option<VendorMessage>, ErrorPayload> {
        self(request).await
    }
}

/// The vendor message handlers of a runtime, by type.
#[derive(Clone, Default)]
pub struct VendorHandlers(HashMap<String, Arc<dyn VendorHandler>>);

impl std::fmt::Debug for VendorHandlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl VendorHandlers {
    /// No handlers: every vendor message is dropped (optional) or refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for `type_name`, which must be a vendor name
    /// (`x-vendor.<vendor>.<name>`); replaces an earlier handler of the same type.
    pub fn register(&mut self, type_name: &str, handler: impl VendorHandler) -> Result<(), arcp_core::Error> {
        if !arcp_core::names::is_vendor_name(type_name) {
            return Err(arcp_core::Error::InvalidField {
                field: "type",
                reason: format!("{type_name:?} is not an x-vendor.<vendor>.<name> type"),
            });
        }
        self.0.insert(type_name.to_owned(), Arc::new(handler));
        Ok(())
    }

    /// The handler of `type_name`, if any.
    pub(crate) fn get(&self, type_name: &str) -> Option<Arc<dyn VendorHandler>> {
        self.0.get(type_name).cloned()
    }
}
