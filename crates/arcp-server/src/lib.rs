//! `arcp-server`: the ARCP session and job runtime (not yet built).
//!
//! This crate will own the IO side of ARCP: the handshake and bearer authentication, jobs and
//! their events, resume with replay, idempotency, heartbeat, ack and back-pressure, job listing
//! and subscription, lease enforcement, budgets and delegation, and the store traits (event log,
//! resume records, idempotency records, job records). Wire types come from `arcp-core`; this
//! crate converts at that boundary. Tracked by the issue "arcp-server: sessions and jobs".
