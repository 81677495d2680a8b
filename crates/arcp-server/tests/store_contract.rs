//! The store contract (`arcp_server::store::contract`) run against every store in this crate:
//! the in-memory reference stores and the SQLite stores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use arcp_server::store::contract;
use arcp_server::store::memory::{MemoryEventLog, MemoryIdempotencyStore, MemoryJobStore, MemoryResumeStore};

#[tokio::test]
async fn memory_event_log() {
    contract::event_log(&MemoryEventLog::default()).await;
}

#[tokio::test]
async fn memory_event_log_caps() {
    contract::event_log_caps(&MemoryEventLog::with_caps(contract::CAPPED_MAX_EVENTS, contract::CAPPED_MAX_BYTES)).await;
}

#[tokio::test]
async fn memory_resume_store() {
    contract::resume_store(&MemoryResumeStore::default()).await;
}

#[tokio::test]
async fn memory_idempotency_store() {
    contract::idempotency_store(&MemoryIdempotencyStore::default()).await;
}

#[tokio::test]
async fn memory_job_store() {
    contract::job_store(&MemoryJobStore::default()).await;
}
