//! `GET /metrics`: the Prometheus metrics of `arcp serve`, in the OpenMetrics text format
//! (`application/openmetrics-text; version=1.0.0; charset=utf-8`, which Prometheus scrapes
//! natively).
//!
//! [`Metrics`] is the runtime's [`arcp_server::Observer`] and the channel's
//! [`channel_rest::ChannelObserver`]; the rate limiter counts its refusals here too. Labels
//! never carry principals, ids or tokens, and every label has a bounded set of values: agent
//! names come from the registry, error codes outside the canonical table are counted as
//! `OTHER`, and channel reasons are the stable reasons of `channel-rest`.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `arcp_sessions_opened_total` | counter | | new ARCP sessions (a welcomed `session.hello` without `resume`) |
//! | `arcp_sessions_attached` | gauge | | sessions currently attached to a connection |
//! | `arcp_resumes_total` | counter | `outcome` | resumes: `ok`, or the refusal's error code (`RESUME_WINDOW_EXPIRED`, `INVALID_REQUEST`, `UNAUTHENTICATED`, `INTERNAL_ERROR`) |
//! | `arcp_jobs_started_total` | counter | `agent` | jobs that started running (submitted or delegated) |
//! | `arcp_jobs_finished_total` | counter | `agent`, `status` | jobs that ended: `success`, `error`, `cancelled`, `timed_out` |
//! | `arcp_job_duration_seconds` | histogram | `status` | time from acceptance to the terminal envelope |
//! | `arcp_events_total` | counter | `type` | sequence-bearing envelopes persisted: `job.event`, `job.result`, `job.error` |
//! | `arcp_idempotent_hits_total` | counter | | identical resubmits answered with the existing job |
//! | `arcp_refusals_total` | counter | `scope`, `code` | request errors (`scope="request"`) and `session.error`s (`scope="session"`) by error code |
//! | `arcp_store_operation_duration_seconds` | histogram | `op` | store latency: `append` (event log), `idempotency_claim`, `job_insert` |
//! | `arcp_store_errors_total` | counter | `op` | store operations that failed |
//! | `arcp_channel_turns_total` | counter | `outcome` | channel turns: `finished`, `parked`, `contended`, `aborted`, `refused`, `failed` |
//! | `arcp_channel_errors_total` | counter | `reason` | channel errors answered (HTTP status, SSE or WebSocket `error`), by reason |
//! | `arcp_rate_limited_total` | counter | `surface` | requests refused by the per-principal rate limit: `arcp` (submits), `channel` |

use std::borrow::Cow;
use std::time::Duration;

use arcp_core::ErrorCode;
use arcp_core::message::JobStatus;
use arcp_server::observe::{RefusalScope, StoreOp, job_status_label};
use channel_rest::TurnEnd;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of `GET /metrics`.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Label = Cow<'static, str>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabels {
    agent: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    agent: Label,
    status: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    r#type: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    scope: Label,
    code: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    op: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SurfaceLabels {
    surface: Label,
}

/// Which request a rate-limit refusal answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Surface {
    /// An ARCP `job.submit`.
    Arcp,
    /// A channel request or WebSocket frame.
    Channel,
}

impl Surface {
    fn as_str(self) -> &'static str {
        match self {
            Surface::Arcp => "arcp",
            Surface::Channel => "channel",
        }
    }
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Job durations: 1 ms to about 4 min (×4 per bucket).
fn job_duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 10))
}

/// Store latencies: 50 µs to about 13 s (×4 per bucket).
fn store_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 4.0, 10))
}

/// Every metric of `arcp serve` (see the module docs), and the registry that encodes them.
pub(crate) struct Metrics {
    registry: Registry,
    sessions_opened: Counter,
    sessions_attached: Gauge,
    resumes: Family<OutcomeLabels, Counter>,
    jobs_started: Family<AgentLabels, Counter>,
    jobs_finished: Family<JobLabels, Counter>,
    job_duration: HistogramFamily<StatusLabels>,
    events: Family<TypeLabels, Counter>,
    /// `arcp_events_total` of the three persisted types, fetched once: the hot path only adds.
    events_by_type: [(&'static str, Counter); 3],
    idempotent_hits: Counter,
    refusals: Family<RefusalLabels, Counter>,
    store_duration: HistogramFamily<OpLabels>,
    /// The `append` series, fetched once (one per persisted event).
    append_duration: Histogram,
    store_errors: Family<OpLabels, Counter>,
    channel_turns: Family<OutcomeLabels, Counter>,
    channel_errors: Family<ReasonLabels, Counter>,
    rate_limited: Family<SurfaceLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// A code as a label: the canonical codes as they are, anything else (agents' business codes,
/// vendor codes) as `OTHER`, so the label's values stay bounded.
fn code_label(code: &ErrorCode) -> Label {
    if code.is_canonical() { Cow::Owned(code.as_str().to_owned()) } else { Cow::Borrowed("OTHER") }
}

impl Metrics {
    /// Every metric at zero, registered.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("arcp");
        let sessions_opened = Counter::default();
        registry.register(
            "sessions_opened",
            "New ARCP sessions (welcomed session.hello without resume)",
            sessions_opened.clone(),
        );
        let sessions_attached = Gauge::default();
        registry.register(
            "sessions_attached",
            "ARCP sessions currently attached to a connection",
            sessions_attached.clone(),
        );
        let resumes = Family::<OutcomeLabels, Counter>::default();
        registry.register("resumes", "ARCP resumes by outcome: ok, or the refusal's error code", resumes.clone());
        let jobs_started = Family::<AgentLabels, Counter>::default();
        registry.register(
            "jobs_started",
            "Jobs that started running (submitted or delegated), by agent",
            jobs_started.clone(),
        );
        let jobs_finished = Family::<JobLabels, Counter>::default();
        registry.register("jobs_finished", "Jobs that ended, by agent and final status", jobs_finished.clone());
        let job_duration: HistogramFamily<StatusLabels> = Family::new_with_constructor(job_duration_histogram);
        registry.register_with_unit(
            "job_duration",
            "Time from a job's acceptance to its terminal envelope, by final status",
            Unit::Seconds,
            job_duration.clone(),
        );
        let events = Family::<TypeLabels, Counter>::default();
        registry.register(
            "events",
            "Sequence-bearing envelopes persisted to session event logs, by type",
            events.clone(),
        );
        let events_by_type = ["job.event", "job.result", "job.error"]
            .map(|t| (t, events.get_or_create(&TypeLabels { r#type: Cow::Borrowed(t) }).clone()));
        let idempotent_hits = Counter::default();
        registry.register(
            "idempotent_hits",
            "Identical resubmits answered with the existing job (the agent did not run again)",
            idempotent_hits.clone(),
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "refusals",
            "ARCP refusals: request errors (scope=request) and session.error (scope=session), by error code",
            refusals.clone(),
        );
        let store_duration: HistogramFamily<OpLabels> = Family::new_with_constructor(store_histogram);
        registry.register_with_unit(
            "store_operation_duration",
            "Latency of store operations: append (event log), idempotency_claim, job_insert",
            Unit::Seconds,
            store_duration.clone(),
        );
        let append_duration =
            store_duration.get_or_create(&OpLabels { op: Cow::Borrowed(StoreOp::Append.as_str()) }).clone();
        let store_errors = Family::<OpLabels, Counter>::default();
        registry.register("store_errors", "Store operations that failed, by operation", store_errors.clone());
        let channel_turns = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "channel_turns",
            "Channel turns by outcome: finished, parked, contended, aborted, refused, failed",
            channel_turns.clone(),
        );
        let channel_errors = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "channel_errors",
            "Channel errors answered (HTTP status, SSE or WebSocket error), by stable reason",
            channel_errors.clone(),
        );
        let rate_limited = Family::<SurfaceLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused by the per-principal rate limit, by surface: arcp (job.submit), channel",
            rate_limited.clone(),
        );
        Metrics {
            registry,
            sessions_opened,
            sessions_attached,
            resumes,
            jobs_started,
            jobs_finished,
            job_duration,
            events,
            events_by_type,
            idempotent_hits,
            refusals,
            store_duration,
            append_duration,
            store_errors,
            channel_turns,
            channel_errors,
            rate_limited,
        }
    }

    /// The OpenMetrics text exposition of every metric (ends with `# EOF`).
    pub(crate) fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// A request of `surface` was refused by the rate limit.
    pub(crate) fn rate_limited(&self, surface: Surface) {
        self.rate_limited.get_or_create(&SurfaceLabels { surface: Cow::Borrowed(surface.as_str()) }).inc();
    }
}

impl arcp_server::Observer for Metrics {
    fn session_opened(&self) {
        self.sessions_opened.inc();
        self.sessions_attached.inc();
    }

    fn resume_succeeded(&self) {
        self.resumes.get_or_create(&OutcomeLabels { outcome: Cow::Borrowed("ok") }).inc();
        self.sessions_attached.inc();
    }

    fn resume_refused(&self, code: &ErrorCode) {
        self.resumes.get_or_create(&OutcomeLabels { outcome: code_label(code) }).inc();
    }

    fn session_detached(&self) {
        self.sessions_attached.dec();
    }

    fn job_started(&self, agent: &str) {
        self.jobs_started.get_or_create(&AgentLabels { agent: Cow::Owned(agent.to_owned()) }).inc();
    }

    fn job_ended(&self, agent: &str, status: JobStatus, elapsed: Duration) {
        let status = Cow::Borrowed(job_status_label(status));
        self.jobs_finished
            .get_or_create(&JobLabels { agent: Cow::Owned(agent.to_owned()), status: status.clone() })
            .inc();
        self.job_duration.get_or_create(&StatusLabels { status }).observe(elapsed.as_secs_f64());
    }

    fn event_persisted(&self, message_type: &'static str) {
        match self.events_by_type.iter().find(|(t, _)| *t == message_type) {
            Some((_, counter)) => {
                counter.inc();
            }
            None => {
                self.events.get_or_create(&TypeLabels { r#type: Cow::Borrowed(message_type) }).inc();
            }
        }
    }

    fn idempotent_replay(&self) {
        self.idempotent_hits.inc();
    }

    fn refused(&self, scope: RefusalScope, code: &ErrorCode) {
        let labels = RefusalLabels { scope: Cow::Borrowed(scope.as_str()), code: code_label(code) };
        self.refusals.get_or_create(&labels).inc();
    }

    fn store_operation(&self, op: StoreOp, elapsed: Duration, ok: bool) {
        let secs = elapsed.as_secs_f64();
        let labels = OpLabels { op: Cow::Borrowed(op.as_str()) };
        if op == StoreOp::Append {
            self.append_duration.observe(secs);
        } else {
            self.store_duration.get_or_create(&labels).observe(secs);
        }
        if !ok {
            self.store_errors.get_or_create(&labels).inc();
        }
    }
}

impl channel_rest::ChannelObserver for Metrics {
    fn turn_ended(&self, end: TurnEnd) {
        self.channel_turns.get_or_create(&OutcomeLabels { outcome: Cow::Borrowed(end.as_str()) }).inc();
    }

    fn error_answered(&self, reason: &str) {
        self.channel_errors.get_or_create(&ReasonLabels { reason: Cow::Owned(reason.to_owned()) }).inc();
    }
}

#[cfg(test)]
mod tests {
    use arcp_server::Observer as _;
    use channel_rest::ChannelObserver as _;

    use super::*;

    /// The value of the sample `name{labels}` in `text` (labels as encoded, `""` for none).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn every_hook_lands_in_its_series() {
        let m = Metrics::new();
        m.session_opened();
        m.session_opened();
        m.resume_succeeded();
        m.session_detached();
        m.resume_refused(&ErrorCode::RESUME_WINDOW_EXPIRED);
        m.job_started("echo");
        m.job_ended("echo", JobStatus::Success, Duration::from_millis(3));
        m.job_ended("echo", JobStatus::Cancelled, Duration::from_secs(2));
        m.event_persisted("job.event");
        m.event_persisted("job.event");
        m.event_persisted("job.result");
        m.idempotent_replay();
        m.refused(RefusalScope::Request, &ErrorCode::AGENT_NOT_AVAILABLE);
        m.refused(RefusalScope::Session, &ErrorCode::parse("x-vendor.acme.nope").unwrap());
        m.store_operation(StoreOp::Append, Duration::from_micros(100), true);
        m.store_operation(StoreOp::JobInsert, Duration::from_millis(1), false);
        m.turn_ended(TurnEnd::Outcome("finished"));
        m.turn_ended(TurnEnd::Refused);
        m.error_answered("stale-token");
        m.rate_limited(Surface::Channel);
        let text = m.encode().unwrap();
        let expect = [
            ("arcp_sessions_opened_total", 2.0),
            ("arcp_sessions_attached", 2.0),
            ("arcp_resumes_total{outcome=\"ok\"}", 1.0),
            ("arcp_resumes_total{outcome=\"RESUME_WINDOW_EXPIRED\"}", 1.0),
            ("arcp_jobs_started_total{agent=\"echo\"}", 1.0),
            ("arcp_jobs_finished_total{agent=\"echo\",status=\"success\"}", 1.0),
            ("arcp_jobs_finished_total{agent=\"echo\",status=\"cancelled\"}", 1.0),
            ("arcp_job_duration_seconds_count{status=\"success\"}", 1.0),
            ("arcp_job_duration_seconds_bucket{le=\"0.004\",status=\"success\"}", 1.0),
            ("arcp_job_duration_seconds_bucket{le=\"1.024\",status=\"cancelled\"}", 0.0),
            ("arcp_events_total{type=\"job.event\"}", 2.0),
            ("arcp_events_total{type=\"job.result\"}", 1.0),
            ("arcp_events_total{type=\"job.error\"}", 0.0),
            ("arcp_idempotent_hits_total", 1.0),
            ("arcp_refusals_total{scope=\"request\",code=\"AGENT_NOT_AVAILABLE\"}", 1.0),
            ("arcp_refusals_total{scope=\"session\",code=\"OTHER\"}", 1.0),
            ("arcp_store_operation_duration_seconds_count{op=\"append\"}", 1.0),
            ("arcp_store_operation_duration_seconds_count{op=\"job_insert\"}", 1.0),
            ("arcp_store_errors_total{op=\"job_insert\"}", 1.0),
            ("arcp_channel_turns_total{outcome=\"finished\"}", 1.0),
            ("arcp_channel_turns_total{outcome=\"refused\"}", 1.0),
            ("arcp_channel_errors_total{reason=\"stale-token\"}", 1.0),
            ("arcp_rate_limited_total{surface=\"channel\"}", 1.0),
        ];
        for (series, value) in expect {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
        assert!(text.contains("# TYPE arcp_job_duration_seconds histogram"), "{text}");
        assert!(text.contains("# UNIT arcp_store_operation_duration_seconds seconds"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(sample(&text, "arcp_store_errors_total{op=\"append\"}"), None, "{text}");
    }
}
