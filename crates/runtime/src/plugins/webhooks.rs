//! The `webhooks` plugin: POSTs job lifecycle events (`accepted`, `result`, `error`, from
//! `session.events`) to the URLs the operator configures, signed with
//! `X-Arcp-Signature: sha256=<hex HMAC-SHA256 of the body>`, retried with exponential
//! backoff (through `scheduler`), each delivery recorded in the plugin's key/value namespace
//! (the newest [`MAX_DELIVERIES`]) and listed at `GET /plugins/webhooks/deliveries`.
//!
//! Configuration: the policy entry's `config` object.
//!
//! ```toml
//! [plugins.webhooks]
//! enabled = true
//! grant = ["http.outbound", "session.events", "storage.kv", "scheduler", "routes"]
//! outboundHosts = ["hooks.example.com"]
//!
//! [plugins.webhooks.config]
//! maxAttempts = 5          # 1..=20, default 5
//! initialBackoffMs = 1000  # default 1000; doubles each retry
//! maxBackoffMs = 60000     # default 60000
//! timeoutMs = 10000        # per attempt, default 10000 (the runtime caps it at 30 s)
//!
//! [[plugins.webhooks.config.endpoints]]
//! url = "http://hooks.example.com/arcp"
//! secret = "…"             # the HMAC key the receiver shares
//! events = ["result", "error"]   # default: all three
//! ```
//!
//! The manifest asks for exactly the hosts of the configured URLs (so the operator's
//! `outboundHosts` must list them too: the grant is manifest ∩ policy). The body is
//! `{"id", "event", "job_id", "session_id", "principal", "agent", "at_millis", "payload"}`,
//! `payload` being the envelope payload as on the wire; the same bytes (and signature) are
//! sent on every attempt, with `X-Arcp-Delivery: <id>` and `X-Arcp-Event: <event>`.
//! A 2xx answer is a delivery; anything else (or no answer) is retried until `maxAttempts`.
//! URLs may be `http` or `https` (verified against the runtime's trusted CAs; see
//! `plugins::tls`).
//!
//! Delivery records live in `storage.kv`, so on a durable store (`arcp serve --store
//! sqlite:…` or PostgreSQL) they survive a restart; numbering continues after the newest
//! record. A delivery still `pending` or `retrying` when the runtime stopped is not resumed
//! (its body is not stored): at the next start it is recorded as `interrupted`.
//!
//! The delays between attempts are waited with [`Webhooks::with_sleep`]'s function when one
//! is given (tests record them and return at once), else on the `scheduler`'s timer.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arcp_server::{JobLifecycle, LifecycleKind};
use async_trait::async_trait;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use hyper::StatusCode;
use plugin_api::Format;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::events::EventsError;
use super::outbound::OutboundRequest;
use super::{ManifestSource, Plugin, PluginContext, PluginError, RouteRequest, RouteResponse};

/// The newest deliveries kept in the store.
pub const MAX_DELIVERIES: u64 = 1000;
/// The most endpoints.
pub const MAX_ENDPOINTS: usize = 32;
/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Arcp-Signature";

/// One endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Where to POST.
    pub url: String,
    /// The HMAC-SHA256 key.
    pub secret: String,
    /// Which events (`accepted`, `result`, `error`); all if absent.
    #[serde(default)]
    pub events: Option<Vec<String>>,
}

/// The plugin's configuration (the policy entry's `config`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// The endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Attempts per delivery (1..=20).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// The first retry's delay; doubles each retry.
    #[serde(default = "default_initial")]
    pub initial_backoff_ms: u64,
    /// The longest delay between attempts.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_ms: u64,
    /// Each attempt's time limit.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_attempts() -> u32 {
    5
}
fn default_initial() -> u64 {
    1000
}
fn default_max_backoff() -> u64 {
    60_000
}
fn default_timeout() -> u64 {
    10_000
}

impl Config {
    /// Reads and checks the configuration.
    pub fn from_value(config: Option<&Value>) -> Result<Self, String> {
        let value = config.ok_or("the webhooks plugin needs a `config` with `endpoints`")?;
        let c: Self = serde_json::from_value(value.clone()).map_err(|e| format!("invalid webhooks config: {e}"))?;
        if c.endpoints.is_empty() || c.endpoints.len() > MAX_ENDPOINTS {
            return Err(format!("`endpoints` must hold 1..={MAX_ENDPOINTS} endpoints"));
        }
        if !(1..=20).contains(&c.max_attempts) {
            return Err("`maxAttempts` is 1..=20".to_owned());
        }
        for e in &c.endpoints {
            url::Url::parse(&e.url).map_err(|err| format!("endpoint url {:?}: {err}", e.url))?;
            if e.secret.is_empty() {
                return Err(format!("endpoint {:?}: `secret` must not be empty", e.url));
            }
            for ev in e.events.iter().flatten() {
                if !["accepted", "result", "error"].contains(&ev.as_str()) {
                    return Err(format!("endpoint {:?}: unknown event {ev:?}", e.url));
                }
            }
        }
        Ok(c)
    }

    /// The delay before attempt `n + 1` (after `n ≥ 1` failed attempts).
    pub fn backoff(&self, failed: u32) -> Duration {
        let factor = 1u64.checked_shl(failed.saturating_sub(1)).unwrap_or(u64::MAX);
        Duration::from_millis(self.initial_backoff_ms.saturating_mul(factor).min(self.max_backoff_ms))
    }
}

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut out = String::from("sha256=");
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) {
        mac.update(body);
        for b in mac.finalize().into_bytes() {
            let _ = write!(out, "{b:02x}");
        }
    }
    out
}

/// Waits out a retry delay (see [`Webhooks::with_sleep`]).
pub type Sleep = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The webhooks plugin.
#[derive(Default)]
pub struct Webhooks {
    seq: Arc<AtomicU64>,
    sleep: Option<Sleep>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").field("custom_sleep", &self.sleep.is_some()).finish_non_exhaustive()
    }
}

impl Webhooks {
    /// A webhooks plugin that waits out each retry delay with `sleep` instead of the
    /// scheduler's timer: tests record the delays and return at once, so the backoff
    /// schedule is checked without waiting for it.
    pub fn with_sleep<F, Fut>(sleep: F) -> Self
    where
        F: Fn(Duration) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Self { seq: Arc::default(), sleep: Some(Arc::new(move |d| Box::pin(sleep(d)))) }
    }
}

/// What every delivery of one loaded plugin shares.
struct Deliverer {
    ctx: PluginContext,
    config: Config,
    sleep: Option<Sleep>,
}

/// The number of the newest stored delivery (0 if none); records left `pending` or
/// `retrying` by a previous run become `interrupted`.
async fn recover(ctx: &PluginContext) -> Result<u64, PluginError> {
    let mut newest = 0;
    for (key, mut record) in ctx.storage().list("d/", MAX_DELIVERIES as usize).await? {
        if let Some(n) = key.strip_prefix("d/").and_then(|n| n.parse::<u64>().ok()) {
            newest = newest.max(n);
        }
        if matches!(record["status"].as_str(), Some("pending" | "retrying")) {
            record["status"] = json!("interrupted");
            ctx.storage().set(&key, record).await?;
        }
    }
    Ok(newest)
}

#[async_trait]
impl Plugin for Webhooks {
    fn name(&self) -> &str {
        "webhooks"
    }

    fn manifest(&self, config: Option<&Value>) -> ManifestSource {
        let hosts: BTreeSet<String> = Config::from_value(config)
            .map(|c| {
                c.endpoints.iter().filter_map(|e| url::Url::parse(&e.url).ok()?.host_str().map(str::to_owned)).collect()
            })
            .unwrap_or_default();
        let manifest = json!({
            "name": "webhooks",
            "version": env!("CARGO_PKG_VERSION"),
            "apiVersion": "1.0.0",
            "capabilities": ["http.outbound", "session.events", "storage.kv", "scheduler", "routes"],
            "outboundHosts": hosts,
            "routePrefix": "auto",
        });
        ManifestSource { text: manifest.to_string(), format: Format::Json }
    }

    async fn init(&self, ctx: PluginContext) -> Result<(), PluginError> {
        let config = Config::from_value(ctx.config()).map_err(PluginError::Plugin)?;
        let newest = recover(&ctx).await?;
        self.seq.fetch_max(newest, Ordering::SeqCst);
        let routes_ctx = ctx.clone();
        ctx.routes().get("/deliveries", move |_req: RouteRequest| {
            let ctx = routes_ctx.clone();
            async move {
                match ctx.storage().list("d/", MAX_DELIVERIES as usize).await {
                    Ok(entries) => {
                        let list: Vec<Value> = entries.into_iter().map(|(_, v)| v).collect();
                        RouteResponse::json(StatusCode::OK, &json!({ "deliveries": list }))
                    }
                    Err(e) => RouteResponse::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), e.reason()),
                }
            }
        })?;
        let mut events = ctx.session_events().subscribe()?;
        let seq = self.seq.clone();
        let deliverer = Arc::new(Deliverer { ctx, config, sleep: self.sleep.clone() });
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        if let Err(e) = enqueue(&deliverer, &seq, &event).await {
                            tracing::warn!(error = %e, job = %event.job_id, "webhooks: cannot enqueue a delivery");
                        }
                    }
                    Err(EventsError::Lagged(n)) => tracing::warn!(lost = n, "webhooks: lifecycle events lost"),
                    Err(_) => break,
                }
            }
        });
        Ok(())
    }
}

/// One delivery in flight.
struct Delivery {
    key: String,
    record: Value,
    url: String,
    secret: String,
    event: String,
    body: Bytes,
}

async fn enqueue(deliverer: &Arc<Deliverer>, seq: &AtomicU64, e: &JobLifecycle) -> Result<(), PluginError> {
    let (ctx, config) = (&deliverer.ctx, &deliverer.config);
    let kind = match e.kind {
        LifecycleKind::Accepted => "accepted",
        LifecycleKind::Result => "result",
        _ => "error",
    };
    for endpoint in &config.endpoints {
        if endpoint.events.as_ref().is_some_and(|evs| !evs.iter().any(|x| x == kind)) {
            continue;
        }
        let n = seq.fetch_add(1, Ordering::SeqCst) + 1;
        let id = format!("dlv_{n:012}");
        let event = format!("job.{kind}");
        let body = json!({
            "id": id, "event": event, "job_id": e.job_id, "session_id": e.session_id,
            "principal": e.principal, "agent": e.agent, "at_millis": e.at_millis, "payload": e.payload,
        });
        let record = json!({
            "id": id, "url": endpoint.url, "event": event, "job_id": e.job_id,
            "status": "pending", "attempts": 0,
        });
        let d = Delivery {
            key: format!("d/{n:012}"),
            record,
            url: endpoint.url.clone(),
            secret: endpoint.secret.clone(),
            event,
            body: Bytes::from(body.to_string()),
        };
        ctx.storage().set(&d.key, d.record.clone()).await?;
        if n > MAX_DELIVERIES {
            ctx.storage().delete(&format!("d/{:012}", n - MAX_DELIVERIES)).await?;
        }
        schedule(deliverer.clone(), d, Duration::ZERO)?;
    }
    Ok(())
}

/// The next attempt of `d`, after `delay`.
fn schedule(deliverer: Arc<Deliverer>, d: Delivery, delay: Duration) -> Result<(), PluginError> {
    let ctx = deliverer.ctx.clone();
    match deliverer.sleep.clone() {
        Some(sleep) if !delay.is_zero() => ctx.scheduler().after(Duration::ZERO, async move {
            sleep(delay).await;
            attempt(deliverer, d).await;
        }),
        _ => ctx.scheduler().after(delay, attempt(deliverer, d)),
    }
}

async fn attempt(deliverer: Arc<Deliverer>, mut d: Delivery) {
    let (ctx, config) = (&deliverer.ctx, &deliverer.config);
    let id = d.record["id"].as_str().unwrap_or_default().to_owned();
    let request = OutboundRequest::post(d.url.clone(), d.body.clone())
        .header("content-type", "application/json")
        .header(SIGNATURE_HEADER, signature(d.secret.as_bytes(), &d.body))
        .header("x-arcp-delivery", id.clone())
        .header("x-arcp-event", d.event.clone())
        .timeout(Duration::from_millis(config.timeout_ms));
    let outcome = ctx.http().request(request).await;
    let attempts = d.record["attempts"].as_u64().unwrap_or(0) + 1;
    d.record["attempts"] = json!(attempts);
    let (ok, detail) = match &outcome {
        Ok(r) if r.status.is_success() => (true, json!(r.status.as_u16())),
        Ok(r) => (false, json!(r.status.as_u16())),
        Err(e) => (false, json!(e.to_string())),
    };
    d.record["last_result"] = detail;
    let retry = !ok && attempts < u64::from(config.max_attempts) && !ctx.is_revoked();
    d.record["status"] = json!(if ok {
        "delivered"
    } else if retry {
        "retrying"
    } else {
        "failed"
    });
    if let Err(e) = ctx.storage().set(&d.key, d.record.clone()).await {
        tracing::warn!(delivery = %id, error = %e, "webhooks: cannot record a delivery");
    }
    if retry {
        let delay = config.backoff(u32::try_from(attempts).unwrap_or(u32::MAX));
        tracing::debug!(delivery = %id, attempts, ?delay, "webhooks: retrying");
        if let Err(e) = schedule(deliverer.clone(), d, delay) {
            tracing::warn!(delivery = %id, error = %e, "webhooks: cannot schedule a retry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = Config::from_value(Some(&json!({"endpoints": [{"url": "http://h.example/x", "secret": "s"}],
            "initialBackoffMs": 100, "maxBackoffMs": 350})))
        .unwrap();
        let delays: Vec<u64> = (1..=5).map(|n| c.backoff(n).as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 350, 350, 350]);
        assert_eq!(c.backoff(200).as_millis(), 350);
    }

    #[test]
    fn bad_configs_are_refused() {
        for bad in [
            json!({}),
            json!({"endpoints": []}),
            json!({"endpoints": [{"url": "nope", "secret": "s"}]}),
            json!({"endpoints": [{"url": "http://h.example", "secret": ""}]}),
            json!({"endpoints": [{"url": "http://h.example", "secret": "s", "events": ["x"]}]}),
            json!({"endpoints": [{"url": "http://h.example", "secret": "s"}], "maxAttempts": 0}),
            json!({"endpoints": [{"url": "http://h.example", "secret": "s"}], "colour": 1}),
        ] {
            assert!(Config::from_value(Some(&bad)).is_err(), "{bad}");
        }
        assert!(Config::from_value(None).is_err());
    }
}
