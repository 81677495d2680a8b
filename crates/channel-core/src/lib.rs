//! `channel-core`: the transport-agnostic two-identifier session protocol (not yet built).
//!
//! This crate will own the sans-IO port of the HTTP channel: a stable `sessionId` plus a
//! single-use `continuationToken` that rotates on every committed turn, the refusal taxonomy,
//! constant-time token comparison, and the `TokenStore` trait. It will do no IO and depend on no
//! async runtime. Tracked by the issue "channel-core and channel-rest".
