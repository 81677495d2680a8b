//! `conformance`: the shared ARCP conformance suite (not yet built).
//!
//! This crate will hold cases named by spec section (`s6_3_resume_replays_…`), a scripted
//! raw peer, and `run(target) -> Report`, so that `cargo xtask conformance` and each
//! transport's tests are thin callers, and any implementation (ours in-process, or another at a
//! URL) can be checked section by section. The wire-format part of conformance already exists:
//! the golden vectors in `spec/vectors/`, checked by `arcp-core`'s `tests/vectors.rs`. Tracked by
//! the issue "arcp-server: sessions and jobs".
