//! Tests of the typed [`Lease`]: wire validation and the per-operation check.
