//! The `demo` plugin: the smallest complete plugin, and the example of `docs/plugins.md`.
//! It registers the agent `demo.hello` (answers `{"hello": <input>}`) and the route
//! `GET /plugins/demo/hello`, which counts its hits in the plugin's key/value store when
//! `storage.kv` is granted.

use arcp_server::{AgentError, JobContext};
use async_trait::async_trait;
use hyper::StatusCode;
use plugin_api::Format;
use serde_json::{Value, json};

use super::{ManifestSource, Plugin, PluginContext, PluginError, RouteRequest, RouteResponse};

/// The demo plugin's manifest.
pub const MANIFEST: &str = r#"{
  "name": "demo",
  "version": "0.1.0",
  "apiVersion": "1.0.0",
  "capabilities": ["agents.register", "routes", "storage.kv", "http.outbound"],
  "outboundHosts": ["api.example.com", "localhost"],
  "routePrefix": "auto"
}"#;

/// The demo plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct Demo;

#[async_trait]
impl Plugin for Demo {
    fn name(&self) -> &str {
        "demo"
    }

    fn manifest(&self, _config: Option<&Value>) -> ManifestSource {
        ManifestSource { text: MANIFEST.to_owned(), format: Format::Json }
    }

    async fn init(&self, ctx: PluginContext) -> Result<(), PluginError> {
        // An agent, registered as `demo.hello`.
        ctx.agents().register("hello", |_job: JobContext, input: Value| async move {
            Ok::<_, AgentError>(json!({ "hello": input }))
        })?;
        // A route, mounted at `/plugins/demo/hello`. The handler keeps its own clone of the
        // context: every call through it is checked (and fails once the plugin is unloaded).
        let routes_ctx = ctx.clone();
        ctx.routes().get("/hello", move |_req: RouteRequest| {
            let ctx = routes_ctx.clone();
            async move {
                let hits = match ctx.storage().get("hits").await {
                    Ok(n) => n.and_then(|v| v.as_u64()).unwrap_or(0) + 1,
                    // `storage.kv` not granted: still answer, without a counter.
                    Err(_) => return RouteResponse::json(StatusCode::OK, &json!({ "hello": "world" })),
                };
                if let Err(e) = ctx.storage().set("hits", json!(hits)).await {
                    tracing::warn!(error = %e, "demo: cannot store the hit counter");
                }
                RouteResponse::json(StatusCode::OK, &json!({ "hello": "world", "hits": hits }))
            }
        })?;
        Ok(())
    }
}
