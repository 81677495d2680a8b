//! The v1.1 requirements (of `spec/arcp.md` and the brief's decisions) that no wire case can
//! check, with where each is checked instead: a named unit or integration test of this
//! workspace, or the reason it does not apply. Also the requirements our runtime does not
//! meet yet ([`Checked::Open`]), so the document never claims more than is true.
//!
//! `CONFORMANCE.md` renders this table after the cases ([`render_coverage_md`]);
//! `conformance/tests/in_process.rs` checks that every named test still exists (file and
//! `fn`, under a test attribute), so the table cannot rot silently.

use std::fmt::Write;

/// How a requirement is checked, when not by a conformance case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// By the test function `test` in `file` (relative to the workspace root).
    Test {
        /// The file holding the test, from the workspace root.
        file: &'static str,
        /// The test function's name.
        test: &'static str,
    },
    /// Not applicable, for the stated reason.
    NotApplicable(&'static str),
    /// Not met by our runtime yet: what is wrong and where it must be fixed.
    Open(&'static str),
}

/// One requirement checked outside the wire suite.
#[derive(Debug, Clone, Copy)]
pub struct Requirement {
    /// The section of `spec/arcp.md` (or `decision N`).
    pub section: &'static str,
    /// The requirement, in one line.
    pub text: &'static str,
    /// How it is checked.
    pub checked: Checked,
}

const fn test(section: &'static str, text: &'static str, file: &'static str, test: &'static str) -> Requirement {
    Requirement { section, text, checked: Checked::Test { file, test } }
}

const fn na(section: &'static str, text: &'static str, reason: &'static str) -> Requirement {
    Requirement { section, text, checked: Checked::NotApplicable(reason) }
}

/// Every requirement checked outside the wire suite, in section order.
pub const REQUIREMENTS: &[Requirement] = &[
    test(
        "4",
        "WebSocket carries text frames only: a binary message is refused with INVALID_REQUEST (decision 18)",
        "crates/arcp-server/src/transport/ws.rs",
        "binary_is_refused_and_the_connection_survives",
    ),
    test(
        "4",
        "A frame above the configured maximum (16 MiB) is refused without being parsed or buffered whole",
        "crates/arcp-server/src/transport/ws.rs",
        "oversize_message_is_refused_without_hanging",
    ),
    test(
        "4",
        "stdio: one envelope per line; an oversized line is refused and the next line still arrives",
        "crates/arcp-server/src/transport/stdio.rs",
        "oversize_line_is_refused_and_the_next_line_arrives",
    ),
    test(
        "4",
        "stdio: a line that is not UTF-8 is refused and the next line still arrives",
        "crates/arcp-server/src/transport/stdio.rs",
        "non_utf8_line_is_refused_and_the_next_line_arrives",
    ),
    test(
        "4",
        "Network deployments use TLS: arcp serve listens on plain ws:// only on loopback unless --insecure",
        "crates/runtime/tests/serve.rs",
        "non_loopback_listen_needs_insecure",
    ),
    test(
        "5.3",
        "A runtime sends no message of a feature the session did not negotiate: no back-pressure status without ack",
        "crates/arcp-server/tests/ack.rs",
        "s6_5_no_back_pressure_without_the_ack_feature",
    ),
    test(
        "5.3",
        "A runtime sends no message of a feature the session did not negotiate: no pings without heartbeat",
        "crates/arcp-server/tests/heartbeat.rs",
        "s6_4_without_the_feature_there_are_no_pings_and_no_loss",
    ),
    test(
        "5.4",
        "Identifiers and tokens from peers are opaque strings of at most 256 bytes (prefixes never parsed)",
        "crates/arcp-core/src/ids.rs",
        "opaque_ids_from_peers",
    ),
    test(
        "5.4",
        "decision 8: resume tokens are rt_ + 64 hex (32 CSPRNG bytes), compared in constant time, never printed by Debug",
        "crates/arcp-core/src/ids.rs",
        "resume_tokens",
    ),
    test(
        "5.5",
        "Decoding is total: arbitrary bytes never panic or hang the decoder (decision 18)",
        "crates/arcp-core/src/properties.rs",
        "arbitrary_bytes_never_panic",
    ),
    test(
        "5.5",
        "JSON nesting deeper than 128 is refused without recursion overflow",
        "crates/arcp-core/src/decode/tests.rs",
        "deep_nesting_is_refused_without_overflow",
    ),
    test(
        "5.5",
        "No sequence of frames can panic the runtime",
        "crates/arcp-server/tests/no_panic_from_the_wire.rs",
        "no_frame_sequence_panics_the_runtime",
    ),
    test(
        "6.3",
        "decision 6: event log, resume, idempotency and job records live behind store traits; a durable store keeps them across reopening",
        "crates/arcp-server/tests/store_contract.rs",
        "everything_survives_dropping_every_handle_and_reopening",
    ),
    test(
        "6.3",
        "decision 6: a session resumes on another node sharing the store, and its running job streams live",
        "crates/arcp-server/tests/shared_log.rs",
        "a_session_resumed_on_another_node_streams_the_running_job_live",
    ),
    test(
        "6.3",
        "A resume is refused with RESUME_WINDOW_EXPIRED for an old (rotated) token and for another principal's session, with one message for every case",
        "crates/arcp-server/tests/resume.rs",
        "s6_3_wrong_token_old_token_and_other_principal_are_refused",
    ),
    test(
        "6.3",
        "A detached session stays resumable for resume_window_sec after its last message, then its resume record and events are purged",
        "crates/arcp-server/tests/windows.rs",
        "s6_3_a_session_resumes_within_its_window_and_not_after",
    ),
    test(
        "6.3",
        "Replay is never truncated or gapped: a cursor the log no longer covers is RESUME_WINDOW_EXPIRED",
        "crates/arcp-server/tests/resume.rs",
        "s6_3_purged_events_make_an_old_cursor_expire",
    ),
    test(
        "6.3",
        "A transport cut at any point, then resume: nothing lost, nothing duplicated",
        "crates/arcp-server/tests/resume.rs",
        "s8_3_a_cut_at_any_point_then_resume_loses_and_duplicates_nothing",
    ),
    test(
        "6.3",
        "A resume whose last_event_seq is above the newest issued event_seq is session.error INVALID_REQUEST",
        "crates/arcp-server/tests/resume.rs",
        "s6_3_cursor_beyond_the_newest_event_is_refused",
    ),
    test(
        "6.3",
        "decision 8: a rotated resume token stops working, and the new one keeps working, even when the old connection ends during the resume (the expiry refresh never rewrites the token)",
        "crates/arcp-server/tests/resume.rs",
        "s6_3_a_detach_racing_a_resume_never_restores_the_old_token",
    ),
    test(
        "6.4",
        "Our client answers runtime pings and matches its own pings' pongs",
        "crates/arcp-client/tests/scripted.rs",
        "runtime_pings_are_answered_and_client_pings_matched",
    ),
    test(
        "6.5",
        "Unacknowledged events are never freed before a cap needs the room; acknowledged ones stay replayable by default",
        "crates/arcp-server/tests/ack.rs",
        "s6_5_by_default_acknowledged_events_stay_replayable_until_a_cap_needs_room",
    ),
    test(
        "7.2",
        "decision 5: the idempotency window is 24 h by default; a record past its window frees the key",
        "crates/arcp-server/tests/windows.rs",
        "s7_2_an_idempotency_key_is_free_again_after_its_window",
    ),
    test(
        "7.2",
        "decision 5: an identical resubmit of a finished job sends its terminal envelope again, also when the resubmitting session is the submitting one",
        "crates/arcp-server/tests/idempotency.rs",
        "s7_2_the_submitting_session_resubmitting_a_finished_job_gets_the_terminal_again",
    ),
    test(
        "7.2",
        "decision 5: a resubmit after a restart (durable store) answers from the store and runs nothing",
        "crates/arcp-server/tests/recovery.rs",
        "an_idempotent_resubmit_after_a_restart_replays_from_the_store_and_runs_nothing",
    ),
    test(
        "7.2",
        "decision 5 / §7.4: the session of an identical resubmit gains cancel authority over the job",
        "crates/arcp-server/tests/idempotency.rs",
        "s7_2_the_resubmitting_session_may_cancel_the_running_job",
    ),
    test(
        "7.3",
        "A panicking agent ends its job with INTERNAL_ERROR (and so does its parent)",
        "crates/arcp-server/tests/delegation.rs",
        "s7_3_a_panicking_agent_ends_with_internal_error_and_so_does_its_parent",
    ),
    test(
        "7.3",
        "An agent failing with an ARCP error ends the job with that code and its details",
        "crates/arcp-server/tests/jobs.rs",
        "s7_3_agent_errors_keep_their_code",
    ),
    test(
        "7.4",
        "Cancel grace: an agent ignoring the cancel signal is dropped and job.error CANCELLED sent when the grace (30 s) ends",
        "crates/arcp-server/tests/cancel.rs",
        "s7_4_an_agent_ignoring_cancel_is_dropped_after_the_grace_period",
    ),
    na(
        "7.4",
        "The lease is released at termination",
        "nothing outlives the job that could use it: the lease is part of the job's context, which ends with the agent; there is no lease object on the wire to observe",
    ),
    test(
        "7.5",
        "Bare-name resolution: the default, else the unversioned agent, else the first registered version",
        "crates/arcp-server/src/agent.rs",
        "resolution_follows_default_then_unversioned_then_first",
    ),
    test(
        "7.6",
        "Every subscribe decision is audit-logged (target arcp::audit: subscriber, job, job principal, decision)",
        "crates/arcp-server/src/subscribe.rs",
        "every_subscribe_decision_is_audit_logged",
    ),
    test(
        "7.6",
        "job.subscribed.budget carries the current counters; a subscriber has no cancel authority",
        "crates/arcp-server/tests/subscribe.rs",
        "s7_6_live_fan_out_budget_and_no_cancel_authority",
    ),
    test(
        "7.6",
        "A slow subscriber never slows the job: its bounded queue drops it with a typed error",
        "crates/arcp-server/tests/subscribe.rs",
        "s7_6_a_subscriber_that_stops_reading_does_not_slow_the_owner",
    ),
    test(
        "7.6",
        "SubscriptionPolicy decides for other principals (Allow, Deny → PERMISSION_DENIED, Hide → JOB_NOT_FOUND)",
        "crates/arcp-server/tests/subscribe.rs",
        "s7_6_policy_decides_other_principals",
    ),
    test(
        "8.2",
        "progress: current ≥ 0, total ≥ 0, current ≤ total is enforced on emission (INVALID_REQUEST to the agent)",
        "crates/arcp-server/tests/chunks.rs",
        "s8_2_progress_is_validated",
    ),
    test(
        "8.2",
        "decision 13: metric accepts dimensions or dims and emits dimensions",
        "crates/arcp-core/src/event/mod.rs",
        "metric_accepts_dims_and_emits_dimensions",
    ),
    test(
        "8.2",
        "Unknown and vendor event kinds are kept, counted and passed through verbatim",
        "crates/arcp-server/tests/vendor.rs",
        "s8_2_vendor_event_kinds_pass_through_verbatim",
    ),
    test(
        "8.3",
        "A client that sees an event_seq gap resumes from its cursor",
        "crates/arcp-client/tests/scripted.rs",
        "a_seq_gap_triggers_a_resume_from_the_cursor",
    ),
    test(
        "8.3",
        "decision 7: an event is sent only after its append returned; a failed append sends nothing and is a typed session.error",
        "crates/arcp-server/tests/jobs.rs",
        "s14_a_full_event_log_is_a_session_error_never_a_silent_drop",
    ),
    test(
        "8.4",
        "Chunk (1 MiB) and total (256 MiB) caps refuse the agent with INTERNAL_ERROR; the stream stays where it was",
        "crates/arcp-server/tests/chunks.rs",
        "s14_chunk_and_total_caps_are_internal_errors",
    ),
    test(
        "8.4",
        "Inline result and chunks never mix; an unfinished stream is finalised with its result_id",
        "crates/arcp-server/tests/chunks.rs",
        "s8_4_inline_and_streamed_never_mix_and_unfinished_streams_are_finalised",
    ),
    test(
        "8.4",
        "Raw chunks from an agent: stable result_id, contiguous chunk_seq, nothing after more:false",
        "crates/arcp-server/tests/chunks.rs",
        "s8_4_raw_chunks_follow_the_rules",
    ),
    test(
        "9.3",
        "Every capability is checked on its canonical target (paths, URLs, names) before dispatch",
        "crates/arcp-server/tests/leases.rs",
        "s9_3_every_capability_is_checked_on_its_canonical_target",
    ),
    test(
        "9.3",
        "Checks run in the order expiry → budget → pattern",
        "crates/arcp-core/src/lease/tests.rs",
        "check_operation_order_is_expiry_budget_pattern",
    ),
    test(
        "9.4",
        "decision 19: pattern coverage is proved soundly (property test against every short target)",
        "crates/arcp-core/src/lease/glob.rs",
        "covers_is_sound",
    ),
    test(
        "9.4",
        "model.use of a child is a subset of the parent's and inherited",
        "crates/arcp-core/src/lease/subset.rs",
        "model_use_is_a_subset_and_inherited",
    ),
    test(
        "9.5",
        "An operation at or after expires_at is refused with LEASE_EXPIRED and ends the job at once (monotonic clock)",
        "crates/arcp-server/tests/leases.rs",
        "s9_5_using_an_expired_lease_is_refused_and_ends_the_job_at_once",
    ),
    test(
        "9.6",
        "cost.* metrics in a budgeted unit decrement exactly; cost.budget.remaining is sent on the first decrement, every 5 % and at zero",
        "crates/arcp-server/tests/budget.rs",
        "s9_6_decimal_arithmetic_is_exact_and_reports_are_debounced",
    ),
    test(
        "9.6",
        "Other units, negative values and cost.budget.remaining itself never decrement",
        "crates/arcp-server/tests/budget.rs",
        "s9_6_other_units_and_negative_costs_do_not_count",
    ),
    test(
        "9.6",
        "decision 20: a child's costs decrement every ancestor's budget",
        "crates/arcp-server/tests/delegation.rs",
        "decision_20_child_costs_bound_the_whole_tree",
    ),
    test(
        "9.7",
        "model.use: a model no pattern matches is PERMISSION_DENIED; a matching one is allowed",
        "crates/arcp-server/tests/leases.rs",
        "s9_3_every_capability_is_checked_on_its_canonical_target",
    ),
    test(
        "9.7",
        "model.use: a lease without it grants no model (our default policy)",
        "crates/arcp-server/tests/leases.rs",
        "s9_7_no_model_use_means_no_model",
    ),
    na(
        "9.8",
        "Provisioned credentials: issued by job.accepted, revoked at every terminal state, rotated with credential_rotated, never logged or shown to non-submitters",
        "not built: our runtime has no credential provisioner, so it never advertises provisioned_credentials (a runtime that cannot guarantee revocation MUST NOT); s9_8_credentials_only_when_negotiated checks that no credential appears without the feature",
    ),
    test(
        "10",
        "decision 12: an agent.delegate pattern with @ matches the child's resolved name@version",
        "crates/arcp-server/tests/delegation.rs",
        "s10_agent_delegate_patterns_with_at_match_the_resolved_version",
    ),
    na(
        "11",
        "Runtimes forward the trace context to tools and open a span per job with the arcp.* attributes",
        "not observable on the wire: spans are local to the runtime (tracing); what reaches the wire, the trace_id of every envelope of a job and its children, is checked by s11_the_trace_id_reaches_every_envelope_of_the_job_tree",
    ),
    na(
        "11",
        "Secrets and personal data never go into trace context",
        "the only trace context on the wire is trace_id, 32 hex digits minted from random bytes or copied from the submit (s5_bad_trace_id_is_invalid_request refuses anything else)",
    ),
    test(
        "12.1",
        "decision 17: unknown error codes round-trip; a missing retryable takes the code's default",
        "crates/arcp-core/src/error_payload.rs",
        "missing_retryable_takes_the_default",
    ),
    test(
        "12.1",
        "decision 17: an error payload contradicting a pinned retryable is INVALID_REQUEST on input",
        "crates/arcp-core/src/error_payload.rs",
        "pinned_codes_reject_contradictions",
    ),
    na(
        "14",
        "Stored events are encrypted at rest in untrusted environments",
        "a deployment matter (disk or database encryption); the stores hold what the protocol persists and add no cipher of their own",
    ),
    na(
        "14",
        "Sessions exchanging nothing but heartbeats MAY be disconnected (heartbeat amplification)",
        "a MAY the runtime does not implement yet (spec/arcp.md §14); the per-principal session cap bounds the amplification (s14_sessions_per_principal_cap_refuses_the_hello)",
    ),
    test(
        "14",
        "Acknowledged events are freed before a buffer cap ends a session",
        "crates/arcp-server/tests/caps.rs",
        "s14_acknowledged_events_make_room_under_the_event_cap",
    ),
    test(
        "14",
        "Delegation depth is capped (8): a deeper delegation is a tool_result INTERNAL_ERROR",
        "crates/arcp-server/tests/delegation.rs",
        "s14_delegation_depth_is_capped",
    ),
    na(
        "decision 14",
        "The agent-facing API is Rust-native (async trait, job context with every emitter, lease checks, cancel signal, budget, KV)",
        "not a wire requirement: it is the arcp-server API (`Agent`, `JobContext`), exercised by every test agent",
    ),
];

/// The section "Requirements checked elsewhere or not applicable" of `CONFORMANCE.md`.
pub fn render_coverage_md() -> String {
    let mut out = String::from(
        "## Requirements checked elsewhere or not applicable\n\nGenerated by `cargo xtask conformance --write-md` from `conformance/src/coverage.rs`; do not edit by hand.\nRequirements no wire case can check (or that we deliberately do not build), with the unit or integration test that checks each one (`conformance/tests/in_process.rs` checks that every named test exists), the reason it does not apply, or, marked **open**, what our runtime still gets wrong.\n\n| § | requirement | checked by |\n|---|---|---|\n",
    );
    for r in REQUIREMENTS {
        let how = match r.checked {
            Checked::Test { file, test } => format!("test `{test}` in `{file}`"),
            Checked::NotApplicable(reason) => format!("n/a: {reason}"),
            Checked::Open(what) => format!("**open**: {what}"),
        };
        let _ = writeln!(out, "| {} | {} | {how} |", r.section, r.text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_section_order_and_has_no_pipes() {
        let key = |s: &str| -> Vec<u32> {
            s.trim_start_matches("decision ").split('.').map(|p| p.parse().unwrap_or(0)).collect()
        };
        let sections: Vec<&str> =
            REQUIREMENTS.iter().map(|r| r.section).filter(|s| !s.starts_with("decision")).collect();
        assert!(sections.windows(2).all(|w| key(w[0]) <= key(w[1])), "{sections:?}");
        for r in REQUIREMENTS {
            let how = match r.checked {
                Checked::Test { file, test } => format!("{file}{test}"),
                Checked::NotApplicable(s) | Checked::Open(s) => s.to_owned(),
            };
            assert!(!r.text.contains('|') && !how.contains('|'), "a | would break the Markdown table: {r:?}");
        }
    }
}
