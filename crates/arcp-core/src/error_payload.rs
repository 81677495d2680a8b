//! The error payload `{code, message, retryable, details?}` (§12), shared by
//! `session.error`, `job.error` and `tool_result` bodies.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error_code::{ErrorCode, Retryable};

/// `{code, message, retryable, details?}`.
///
/// `retryable` is always emitted. On input a missing `retryable` takes the code's default;
/// a value contradicting a pinned code (decision 10) is rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "ErrorPayloadWire")]
pub struct ErrorPayload {
    /// The error code.
    pub code: ErrorCode,
    /// Human-readable description.
    pub message: String,
    /// Whether retrying the same request may succeed.
    pub retryable: bool,
    /// Structured context, e.g. `existing_job_id` for `DUPLICATE_KEY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl ErrorPayload {
    /// A payload whose `retryable` follows the code's rule.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let retryable = code.retryable_rule().default_value();
        ErrorPayload { code, message: message.into(), retryable, details: None }
    }

    /// Sets `retryable`, unless the code pins it (then the pinned value stays).
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        if let Retryable::Default(_) = self.code.retryable_rule() {
            self.retryable = retryable;
        }
        self
    }

    /// Attaches `details`.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

/// The payload as received: `retryable` may be absent (v1.0-era peers).
#[derive(Deserialize, JsonSchema)]
#[schemars(rename = "ErrorPayload")]
pub(crate) struct ErrorPayloadWire {
    code: ErrorCode,
    message: String,
    #[serde(default)]
    retryable: Option<bool>,
    #[serde(default)]
    details: Option<serde_json::Value>,
}

impl TryFrom<ErrorPayloadWire> for ErrorPayload {
    type Error = String;

    fn try_from(w: ErrorPayloadWire) -> Result<Self, String> {
        let retryable = resolve_retryable(&w.code, w.retryable)?;
        Ok(ErrorPayload { code: w.code, message: w.message, retryable, details: w.details })
    }
}

/// Applies the retryable rule of `code` to a received flag.
pub(crate) fn resolve_retryable(code: &ErrorCode, received: Option<bool>) -> Result<bool, String> {
    match (code.retryable_rule(), received) {
        (Retryable::Pinned(pinned), Some(got)) if got != pinned => {
            Err(format!("{code} must have retryable: {pinned} (got {got})"))
        }
        (rule, None) => Ok(rule.default_value()),
        (_, Some(got)) => Ok(got),
    }
}

#[cfg(any(test, feature = "proptest"))]
impl proptest::arbitrary::Arbitrary for ErrorPayload {
    type Parameters = ();
    type Strategy = proptest::strategy::BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        use proptest::prelude::*;
        (any::<ErrorCode>(), ".{0,20}", any::<bool>(), proptest::option::of(crate::message::arb::non_null_value()))
            .prop_map(|(code, message, retryable, details)| ErrorPayload {
                details,
                ..ErrorPayload::new(code, message).with_retryable(retryable)
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_codes_reject_contradictions() {
        let bad = r#"{"code":"LEASE_EXPIRED","message":"x","retryable":true}"#;
        assert!(serde_json::from_str::<ErrorPayload>(bad).is_err());
        let bad = r#"{"code":"INTERNAL_ERROR","message":"x","retryable":false}"#;
        assert!(serde_json::from_str::<ErrorPayload>(bad).is_err());
    }

    #[test]
    fn missing_retryable_takes_the_default() {
        let p: ErrorPayload = serde_json::from_str(r#"{"code":"TIMEOUT","message":"slow"}"#).unwrap();
        assert!(p.retryable);
        let p: ErrorPayload = serde_json::from_str(r#"{"code":"CANCELLED","message":"bye"}"#).unwrap();
        assert!(!p.retryable);
        assert_eq!(serde_json::to_value(&p).unwrap()["retryable"], false);
    }

    #[test]
    fn with_retryable_respects_pins() {
        assert!(ErrorPayload::new(ErrorCode::INTERNAL_ERROR, "x").with_retryable(false).retryable);
        assert!(ErrorPayload::new(ErrorCode::PERMISSION_DENIED, "x").with_retryable(true).retryable);
    }
}
